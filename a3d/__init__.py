"""a3d: one portrait in, a full 360° 3D Gaussian-splat head out.

    import a3d
    avatar = a3d.reconstruct("portrait.jpg")
    avatar.save_ply("head.ply")
    avatar.orbit_video("orbit.mp4")

The package root only names the public API; each name is imported from its module on first use
(PEP 562), so ``import a3d`` and ``a3d --help`` load neither torch nor the model.
"""
from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING

from .version import __version__ as __version__  # the alias marks a re-export

# public name -> the module that defines it
_EXPORTS: dict[str, str] = {
    "Avatar": "api", "load_model": "api", "reconstruct": "api", "reconstruct_many": "api", "refine": "api",
    "Cameras": "core.cameras", "canonical_cameras": "core.cameras", "orbit_cameras": "core.cameras",
    "Gaussians": "core.gaussians",
    "load_ply": "io.ply", "save_ply": "io.ply", "save_splat": "io.ply",
    "backend": "core.ops",
    "orbit_video": "io.video", "render": "core.rendering",
    "InputError": "errors", "SetupError": "errors",
}

__all__ = [
    "Avatar", "Cameras", "Gaussians", "InputError", "SetupError", "backend", "canonical_cameras", "load_model",
    "load_ply", "orbit_cameras", "orbit_video", "reconstruct", "reconstruct_many", "refine", "render", "save_ply",
    "save_splat",
]

if TYPE_CHECKING:  # what a type checker or an IDE sees; at run time __getattr__ below imports on demand
    from .api import Avatar, load_model, reconstruct, reconstruct_many, refine
    from .core.cameras import Cameras, canonical_cameras, orbit_cameras
    from .errors import InputError, SetupError
    from .core.gaussians import Gaussians
    from .io.ply import load_ply, save_ply, save_splat
    from .core.ops import backend
    from .core.rendering import render
    from .io.video import orbit_video


def __getattr__(name: str):
    """Import a public name's module on first use; ``a3d.<submodule>`` works as after an eager import."""
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    else:
        try:
            value = importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError as e:
            if e.name != f"{__name__}.{name}":
                raise  # the submodule exists but something it imports is missing
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


def _gaussians_html(g) -> str:
    """A Gaussians' notebook view (:func:`a3d.io.display.gaussians_html`), its module imported on first use."""
    return importlib.import_module(".io.display", __name__).gaussians_html(g)


def _register_notebook_display(html_formatter) -> None:
    """Show :class:`Gaussians` in notebooks as its summary and four small views.

    The class has no ``_repr_html_`` of its own: the core layer does not reach up into the display layer
    (which renders, and so imports the core). The view is registered with IPython's ``text/html``
    formatter by the class's dotted name, so registering imports neither torch nor the class.
    """
    html_formatter.for_type_by_name(f"{__name__}.{_EXPORTS['Gaussians']}", "Gaussians", _gaussians_html)


_shell = getattr(sys.modules.get("IPython"), "get_ipython", lambda: None)()  # a notebook kernel or IPython
if _shell is not None:
    _register_notebook_display(_shell.display_formatter.formatters["text/html"])
del _shell

