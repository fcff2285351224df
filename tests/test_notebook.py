"""examples/quickstart.ipynb runs top to bottom in a fresh kernel (nbclient + ipykernel, the dev extra) and
shows what it promises: the avatar's inline turntable and views (under 300 KB, with a PNG for renderers
without HTML), the Gaussians' preview, the exported files, no warning in the output. The notebook is stored
with its outputs, small, so that GitHub shows the pictures."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "examples" / "quickstart.ipynb"


def test_notebook_is_stored_with_small_outputs():
    """Run in order from a fresh kernel, every code cell's output stored, the whole file under 600 KB, and the
    avatar's output carrying a PNG that GitHub's notebook view shows."""
    nb = json.loads(NOTEBOOK.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert [c["execution_count"] for c in code] == list(range(1, len(code) + 1)), "not run top to bottom"
    assert all(c["outputs"] for c in code), "a code cell without its output"
    assert NOTEBOOK.stat().st_size < 600_000
    avatar = next(c for c in code if "".join(c["source"]).strip().endswith("avatar"))
    assert any("image/png" in o.get("data", {}) for o in avatar["outputs"])
    assert "Warning" not in "\n".join(_texts(c) for c in code)


def _texts(cell) -> str:
    out = []
    for o in cell.get("outputs", []):
        out.append(o.get("text", "") if isinstance(o.get("text", ""), str) else "".join(o["text"]))
        for mime, value in o.get("data", {}).items():
            out.append(f"[{mime}]" + (value if isinstance(value, str) else "".join(value)))
    return "\n".join(out)


def test_reprs_are_one_line_and_html_shows_a_preview():
    formatters = pytest.importorskip("IPython.core.formatters", reason="the dev extra installs ipykernel")
    import a3d

    html = formatters.HTMLFormatter()  # a kernel's text/html formatter; `import a3d` registers with the live one
    a3d._register_notebook_display(html)
    g = a3d.load_ply(REPO / "a3d" / "assets" / "example_head.ply")
    text = repr(g)
    assert text.startswith("Gaussians(35,680 Gaussians, sh_degree=0, float32, cpu, bounds x[-0.50, 0.50]"), text
    assert len(text) < 200 and "tensor(" not in text
    page = html(g)
    assert page.count("data:image/jpeg;base64,") == 1 and "35,680 Gaussians" in page
    two = [torch.stack([t, t]) for t in (g.means, g.quats, g.scales, g.opacities, g.colors)]
    batch = a3d.Gaussians(*two, sh_rest=torch.zeros(2, g.num_gaussians, 3, 3))
    assert "batch=(2,)" in repr(batch) and "sh_degree=1" in repr(batch) and "<img" not in html(batch)


def test_quickstart_runs_top_to_bottom(tmp_path):
    nbformat = pytest.importorskip("nbformat", reason="the dev extra installs nbformat, nbclient and ipykernel")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    # The notebook reads ../demo/examples/astronaut.jpg and writes quickstart_out/ beside itself: run a copy.
    (tmp_path / "examples").mkdir()
    shutil.copy(NOTEBOOK, tmp_path / "examples" / NOTEBOOK.name)
    os.symlink(REPO / "demo", tmp_path / "demo")
    nb = nbformat.read(tmp_path / "examples" / NOTEBOOK.name, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=900, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path / "examples")}})
    client.execute()  # raises CellExecutionError, with the cell and its traceback, on any error

    code = [c for c in nb.cells if c.cell_type == "code"]
    everything = "\n".join(_texts(c) for c in code)
    assert "INFO: Created" not in everything, "LiteRT's delegate line leaked into the notebook"
    assert "Traceback" not in everything
    avatar = next(c for c in code if c.source.strip().endswith("avatar"))
    html = "".join(o["data"]["text/html"] for o in avatar.outputs if "text/html" in o.get("data", {}))
    assert "<video" in html and html.count("data:video/webm;base64,") == 1 and "video/mp4" not in html
    assert html.count("data:image/jpeg;base64,") == 2  # the input and the views
    assert len(html) < 300_000  # one video, JPEG pictures
    assert any("image/png" in o.get("data", {}) for o in avatar.outputs)  # for renderers without HTML
    assert "Warning" not in everything  # no TqdmWarning (ipywidgets absent) nor any other
    plain = "".join(o["data"]["text/plain"] for o in avatar.outputs if "text/plain" in o.get("data", {}))
    assert plain.startswith("Avatar(") and "Gaussians" in plain and len(plain) < 400  # a line, not tensors
    preview = next(c for c in code if c.source.strip() == "avatar.gaussians")
    assert any("<img" in o.get("data", {}).get("text/html", "") for o in preview.outputs)
    out = tmp_path / "examples" / "quickstart_out"
    for name in ("head.ply", "head.splat", "head.sog", "grid.png", "head_sh3.ply", "head_yup.splat", "orbit.webm"):
        assert (out / name).stat().st_size > 1000, name
