"""Notebook display: short text summaries and inline HTML for :class:`a3d.Avatar` and :class:`a3d.Gaussians`.

Jupyter, VS Code and Colab show an object's HTML when it is the last expression of a cell: Avatar's
``_repr_html_`` delegates to :func:`avatar_html`; Gaussians, a core class that knows nothing of display,
has :func:`gaussians_html` registered for it with IPython's HTML formatter by the package root
(a3d/__init__.py). Everything is self-contained HTML (images and videos as data
URIs), so it survives saving the notebook and needs no server. The turntable is one WebM (VP9) video,
which Jupyter in Chrome, Firefox and Safari (16.4 and later) and VS Code's notebook view play (an MP4
beside it would double the output for the few players that lack VP9), so an Avatar's output stays under
300 KB. Avatar's ``_repr_mimebundle_`` (:func:`avatar_mimebundle`) adds an ``image/png`` of the input and
the views beside the HTML, for renderers that drop HTML or video (GitHub's notebook view, nbconvert to
PDF) and a plain-text line for terminals.
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

__all__ = ["gaussians_summary", "gaussians_html", "avatar_summary", "avatar_html", "avatar_mimebundle"]

PREVIEW_SIZE = 192
"""Side of each preview view of :func:`gaussians_html`, pixels."""


def gaussians_summary(g: Gaussians) -> str:
    """One line: count, batch shape, SH degree, dtype, device and the bounds of the means (``repr(g)``)."""
    return repr(g)


def _png_bytes(img: np.ndarray, colours: int | None = None) -> bytes:
    """PNG of [H, W, 3] uint8; ``colours`` quantises to a palette first (a third of the bytes for renders)."""
    from PIL import Image

    pil = Image.fromarray(img)
    if colours is not None:
        pil = pil.quantize(colours, method=Image.Quantize.MEDIANCUT)
    buf = io.BytesIO()
    pil.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _jpeg_uri(img: np.ndarray, quality: int = 85) -> str:
    """A JPEG data URI: photos and renders at a seventh of a PNG's bytes, for the Avatar's HTML."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


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
    return (f'<div>{text}<br><img src="{_jpeg_uri(strip)}" alt="four views around the scene" '
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


def _video_source(avatar, frames: int, size: int) -> str:
    """The turntable as one WebM ``<source>`` (data URI)."""
    from .video import encode_frames, orbit_frames

    imgs = list(orbit_frames(avatar.gaussians.detach(), frames, size, background=framing.BACKGROUND))
    with tempfile.TemporaryDirectory() as tmp:
        path = encode_frames(imgs, os.path.join(tmp, "turntable.webm"), fps=24)
        with open(path, "rb") as f:
            return f'<source type="video/webm" src="data:video/webm;base64,{base64.b64encode(f.read()).decode()}">'


def _input_and_views(avatar, size: int) -> tuple[np.ndarray, np.ndarray]:
    """([size, size, 3] the model's input, [size, 2·size, 3] eight views around the head), uint8."""
    from PIL import Image

    from ..core.rendering import to_uint8

    inp = to_uint8(avatar.input_image.detach().permute(1, 2, 0))
    if inp.shape[0] != size:
        inp = np.asarray(Image.fromarray(inp).resize((size, size), Image.BILINEAR))
    return inp, np.asarray(avatar.grid(views=8, size=size // 2, columns=4))


def avatar_mimebundle(avatar, frames: int = 36, size: int = 224) -> dict[str, str | bytes]:
    """The notebook output of an Avatar: ``text/html`` (:func:`avatar_html`), ``image/png`` (the input
    beside the eight views, one picture) and ``text/plain`` (the summary line); the views are rendered once."""
    inp, grid = _input_and_views(avatar, size)
    both = np.concatenate([inp, np.full((size, 8, 3), 255, np.uint8), grid], axis=1)
    return {"text/html": avatar_html(avatar, frames, size, _rendered=(inp, grid)),
            "image/png": _png_bytes(both, colours=256), "text/plain": avatar_summary(avatar)}


def avatar_html(avatar, frames: int = 36, size: int = 224, _rendered: tuple | None = None) -> str:
    """The input the model saw, eight views around the head and a looping turntable, side by side."""
    inp, grid = _rendered if _rendered is not None else _input_and_views(avatar, size)
    cell = "display:inline-block;vertical-align:top;margin:0 8px 4px 0;text-align:center;font-size:90%"
    return (
        f"<div><code>{html.escape(avatar_summary(avatar))}</code><br>"
        f'<div style="{cell}"><img src="{_jpeg_uri(inp)}" width="{size}" alt="model input"><br>input</div>'
        f'<div style="{cell}"><video autoplay loop muted playsinline controls width="{size}">'
        f"{_video_source(avatar, frames, size)}</video><br>turntable</div>"
        f'<div style="{cell}"><img src="{_jpeg_uri(grid)}" width="{2 * size}" alt="eight views"><br>'
        f"views around the head</div></div>"
    )
