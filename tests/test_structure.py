"""The package's structure as its imports draw it: no circle, nothing imports back up to the package root,
every module opens with a docstring naming its idea, and docs/design.md's "Package layout" names every
module and no other.

The graph is read from the source (ast), lazy imports inside functions included: a circle through a
function-level import is still a circle a reader has to untangle. Blocks that only a type checker or a
script run sees (``if TYPE_CHECKING:``, ``if __name__ == "__main__":``) are not part of the structure. Notebook
display hooks (``_repr_html_`` and the like) are: a hook that imports the display layer makes the class
depend on it like any other method does.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "a3d"


def _module_name(path: Path) -> str:
    parts = ("a3d", *path.relative_to(PACKAGE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _package_of(module: str, path: Path) -> str:
    """The package a relative import of ``module`` starts from (a package's __init__ is its own package)."""
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def _skipped(node: ast.If) -> bool:
    test = ast.unparse(node.test)
    return test in ("TYPE_CHECKING", "typing.TYPE_CHECKING") or test.replace("'", '"') == '__name__ == "__main__"'


def _imports(tree: ast.AST, modules: dict[str, Path], package: str = "a3d") -> set[str]:
    """a3d modules (or "a3d" itself, the root) that ``tree`` imports; ``package`` is the package its
    relative imports start from. Importing a sub-package counts as importing its ``__init__``."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _skipped(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name == "a3d" or a.name.startswith("a3d."))
        elif isinstance(node, ast.ImportFrom):
            if node.level >= 1:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            elif node.level == 0 and node.module and node.module.split(".")[0] == "a3d":
                base = node.module
            else:
                base = None
            if base is not None and base in modules and modules[base].name == "__init__.py":
                # `from .pkg import x`: a submodule of pkg, or a name of pkg's __init__
                found.update(f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names)
            elif base is not None:
                found.add(base)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(ast.parse(path.read_text(encoding="utf-8")), modules, _package_of(name, path))
            for name, path in modules.items()}


def test_the_graph_reader_sees_every_kind_of_import():
    modules = {"a3d": Path("__init__.py"), "a3d.core": Path("__init__.py"), "a3d.core.ops": Path("ops.py"),
               "a3d.core.framing": Path("framing.py"), "a3d.io.ply": Path("ply.py")}
    src = ("import a3d\nfrom ..core import framing\nfrom .. import __version__\nfrom ..core.ops import backend\n"
           "from .ply import save_ply\n"
           "def f():\n    from a3d.core.ops import info\n"
           "if TYPE_CHECKING:\n    from ..api import Avatar\n"
           "def _repr_html_(self):\n    from .display import html\n"
           "if __name__ == '__main__':\n    from ..cli import main\n")
    assert _imports(ast.parse(src), modules, "a3d.io") == {"a3d", "a3d.core.framing", "a3d.core.ops", "a3d.io.ply",
                                                           "a3d.io.display"}


def test_no_module_imports_the_package_root():
    upward = {m: sorted(d) for m, d in _graph().items() if m not in ("a3d", "a3d.__main__") and "a3d" in d}
    assert not upward, f"modules importing the package root a3d/__init__.py (import the defining module): {upward}"


def test_no_import_circles():
    graph = {m: {d for d in deps if d != "a3d"} for m, deps in _graph().items() if m != "a3d"}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def walk(m: str) -> list[str] | None:
        state[m], _ = 1, path.append(m)
        for d in sorted(graph.get(m, ())):
            if state.get(d) == 1:
                return path[path.index(d):] + [d]
            if d not in state and (circle := walk(d)):
                return circle
        state[m] = 2
        path.pop()
        return None

    for m in sorted(graph):
        if m not in state and (circle := walk(m)):
            raise AssertionError("import circle: " + " -> ".join(circle))


def test_every_module_opens_with_its_idea():
    missing = [name for name, path in _modules().items()
               if not (ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or "").strip()]
    assert not missing, f"modules without an opening docstring: {missing}"


def test_package_root_names_resolve_lazily():
    import a3d

    assert sorted(a3d.__all__) == sorted(a3d._EXPORTS)
    for name in a3d.__all__:
        assert getattr(a3d, name) is not None, name
    assert a3d.core.ops.backend is a3d.backend  # submodules resolve too, as after an eager import
    assert set(a3d.__all__) <= set(dir(a3d))


def test_bundled_files_are_found_through_one_asset_folder():
    from a3d import api
    from a3d.core.assets import ASSET_DIR
    from a3d.data import head_basis
    from a3d.perception import lpips

    for path in (api.DEFAULT_MODEL_DIR / "config.json", Path(head_basis.BASIS_PATH),
                 lpips.WEIGHTS_DIR / "alex.safetensors"):
        assert path.is_file() and path.is_relative_to(ASSET_DIR), path
    own = [name for name, path in _modules().items() if name != "a3d.core.assets"
           and "__file__" in (text := path.read_text(encoding="utf-8")) and '"assets"' in text]
    assert not own, f"modules that locate a3d/assets themselves (use a3d.core.assets.ASSET_DIR): {own}"


def _layout_section() -> str:
    """The "Package layout" section of docs/design.md, up to the next section."""
    text = (PACKAGE.parent / "docs" / "design.md").read_text(encoding="utf-8")
    start = text.index("\n## Package layout\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end != -1 else None]


def test_design_md_names_every_module_and_no_other():
    named = set(re.findall(r"\ba3d/[A-Za-z0-9_/]+\.py\b", _layout_section()))
    modules = {f"a3d/{p.relative_to(PACKAGE).as_posix()}" for p in PACKAGE.rglob("*.py")
               if p.name != "__init__.py" or p.parent == PACKAGE}  # a sub-package's __init__ only names it
    assert not modules - named, f"modules missing from docs/design.md, Package layout: {sorted(modules - named)}"
    stale = {m for m in named - modules if not (PACKAGE.parent / m).is_file()}
    assert not stale, f"docs/design.md, Package layout, names modules that do not exist: {sorted(stale)}"
