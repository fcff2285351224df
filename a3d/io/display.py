"""Notebook display: short text summaries and inline HTML for :class:`a3d.Avatar` and :class:`a3d.Gaussians`.

Jupyter, VS Code and Colab show an object's HTML when it is the last expression of a cell: Avatar's
``_repr_html_`` delegates to :func:`avatar_html`; Gaussians, a core class that knows nothing of display,
has :func:`gaussians_html` registered for it with IPython's HTML formatter by the package root
(a3d/__init__.py). Everything is self-contained HTML (images and videos as data
URIs), so it survives saving the notebook and needs no server. The turntable is WebM (VP9) with an
MP4 (H.264) fallback: VS Code's notebook view plays only the former, older Safari only the latter.
"""
from __future__ import annotations

import base64
import dataclasses
import html
import io
import os
import tempfile

from typing import TYPE_CHECKING

import numpy as np
import torch

from ..core import framing

if TYPE_CHECKING:  # annotations only: the view is built from the fields, the class is not needed at run time
    from ..core.gaussians import Gaussians

__all__ = ["gaussians_summary", "gaussians_html", "avatar_summary", "avatar_html"]

PREVIEW_SIZE = 192
"""Side of each preview view of :func:`gaussians_html`, pixels."""


def gaussians_summary(g: Gaussians) -> str:
    """One line: count, batch shape, SH degree, dtype, device and the bounds of the means (``repr(g)``)."""
    return repr(g)


def _png_uri(img: np.ndarray) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _views(g: Gaussians, n: int, size: int, elevation: float = 10.0) -> np.ndarray:
    """[size, n * size, 3] uint8: ``n`` views evenly around the scene (front first), side by side.
    Framed around the origin for an a3d head, else by :func:`a3d.io.video.fit_orbit`."""
    from ..core.cameras import orbit_cameras
    from ..core.rendering import render, to_uint8
    from .video import fit_orbit

    (cx, cy, cz), radius = fit_orbit(g)
    if max(abs(cx), abs(cy), abs(cz)) < 0.1 and radius < 2 * framing.CANONICAL_RADIUS:
        center, radius = torch.zeros(3), framing.CANONICAL_RADIUS  # an a3d head: the canonical framing
    else:
        center = torch.tensor([cx, cy, cz])
    moved = dataclasses.replace(g, means=g.means - center.to(g.means))
    with torch.no_grad():
        imgs = to_uint8(render(moved, orbit_cameras(n, radius=radius, elevation=elevation, size=size),
                               framing.BACKGROUND).rgb)
    return np.concatenate(list(imgs), axis=1)


def gaussians_html(g: Gaussians) -> str:
    """The summary line and, for one scene, four small views (front, left, back, right)."""
    text = f"<code>{html.escape(gaussians_summary(g))}</code>"
    if g.means.dim() != 2 or g.num_gaussians == 0 or g.means.is_meta:
        return f"<div>{text}</div>"
    strip = _views(g.detach(), 4, PREVIEW_SIZE)
    return (f'<div>{text}<br><img src="{_png_uri(strip)}" alt="four views around the scene" '
            f'style="max-width:100%;image-rendering:auto"></div>')


def avatar_summary(avatar) -> str:
    """One line: the Gaussians' summary, the model and the input."""
    meta = avatar.metadata or {}
    extra = [f"{k}={meta[k]!r}" for k in ("source", "seed") if k in meta]
    model = (meta.get("model") or {}).get("id")
    if model:
        extra.append(f"model={model!r}")
    inner = gaussians_summary(avatar.gaussians)[len("Gaussians("):-1]
    return f"Avatar({', '.join([inner] + extra)})"


def _video_sources(avatar, frames: int, size: int) -> str:
    from .video import encode_frames, orbit_frames

    imgs = list(orbit_frames(avatar.gaussians.detach(), frames, size, background=framing.BACKGROUND))
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for ext, mime in ((".webm", "video/webm"), (".mp4", "video/mp4")):
            path = encode_frames(imgs, os.path.join(tmp, "turntable" + ext), fps=24)
            with open(path, "rb") as f:
                out.append(f'<source type="{mime}" src="data:{mime};base64,{base64.b64encode(f.read()).decode()}">')
    return "".join(out)


def avatar_html(avatar, frames: int = 36, size: int = 224) -> str:
    """The input the model saw, eight views around the head and a looping turntable, side by side."""
    from ..core.rendering import to_uint8

    inp = to_uint8(avatar.input_image.detach().permute(1, 2, 0))
    grid = np.asarray(avatar.grid(views=8, size=size // 2, columns=4))
    cell = "display:inline-block;vertical-align:top;margin:0 8px 4px 0;text-align:center;font-size:90%"
    return (
        f"<div><code>{html.escape(avatar_summary(avatar))}</code><br>"
        f'<div style="{cell}"><img src="{_png_uri(inp)}" width="{size}" alt="model input"><br>input</div>'
        f'<div style="{cell}"><video autoplay loop muted playsinline controls width="{size}">'
        f"{_video_sources(avatar, frames, size)}</video><br>turntable</div>"
        f'<div style="{cell}"><img src="{_png_uri(grid)}" width="{2 * size}" alt="eight views"><br>'
        f"views around the head</div></div>"
    )
