"""Progress bars: tqdm's notebook widget where it can draw, its text bar everywhere else.

``tqdm.auto`` picks the widget inside a Jupyter kernel, but when ipywidgets is not installed it warns
(a TqdmWarning, "IProgress not found", printed into the notebook's output) and falls back to text.
:func:`progress_bar` asks for the widget only when ipywidgets imports, so a notebook without it gets the
text bar and no warning.
"""
from __future__ import annotations

import importlib.util
from typing import Any

__all__ = ["progress_bar"]


def progress_bar(*args: Any, **kwargs: Any):
    """A ``tqdm`` bar (same arguments): the notebook widget when ipywidgets is installed (tqdm.auto
    decides whether this is a notebook), else tqdm's text bar."""
    if importlib.util.find_spec("ipywidgets") is not None:
        from tqdm.auto import tqdm
    else:
        from tqdm import tqdm
    return tqdm(*args, **kwargs)
