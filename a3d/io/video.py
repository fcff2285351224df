"""Turntable videos of one scene: MP4 (H.264, fast start), WebM (VP9) or GIF, picked by the extension.

MP4 files are written with their index (the ``moov`` box) before the media data (``mdat``), so a
browser can start playing and seek while the file is still loading; :func:`mp4_box_order` reads the
top-level box order back (tests/test_render.py checks it). WebM is VP9 in yuv420p, which every
current browser plays; GIF loops forever.
"""
from __future__ import annotations

import os
import struct
from typing import Sequence

import torch

from ..core import framing
from ..core.cameras import orbit_cameras
from ..errors import InputError, check_int
from ..core.gaussians import Gaussians
from ..core.rendering import render, to_uint8

__all__ = ["VIDEO_EXTS", "orbit_video", "orbit_frames", "fit_orbit", "mp4_box_order", "encode_frames"]

VIDEO_EXTS = (".mp4", ".webm", ".gif")


def _writer(path: str, ext: str, fps: int):
    import imageio.v2 as imageio

    if ext == ".mp4":  # +faststart: ffmpeg moves moov to the front after encoding
        return imageio.get_writer(path, fps=fps, codec="libx264", quality=8, macro_block_size=1,
                                  ffmpeg_log_level="error", output_params=["-movflags", "+faststart"])
    if ext == ".webm":  # constant quality (-crf with -b:v 0); row-mt keeps small frames quick
        return imageio.get_writer(path, format="FFMPEG", fps=fps, codec="libvpx-vp9", macro_block_size=1,
                                  pixelformat="yuv420p", ffmpeg_log_level="error", bitrate=None,
                                  output_params=["-crf", "32", "-b:v", "0", "-row-mt", "1", "-deadline", "good",
                                                 "-cpu-used", "4"])
    return imageio.get_writer(path, mode="I", duration=1000.0 / fps, loop=0)


def encode_frames(frames, path: str | os.PathLike, fps: int = 30) -> str:
    """Write [H, W, 3] uint8 frames to ``path`` (.mp4, .webm or .gif, as :func:`orbit_video`); returns it."""
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext not in VIDEO_EXTS:
        raise ValueError(f"path: expected a file ending in {', '.join(VIDEO_EXTS)}, got {path!r}")
    writer = _writer(path, ext, fps)
    try:
        for img in frames:
            writer.append_data(img)
    finally:
        writer.close()
    return path


@torch.no_grad()
def orbit_video(gaussians: Gaussians, path: str | os.PathLike, frames: int = 120, fps: int = 30, size: int = 512,
                elevation: float = 10.0, background: Sequence[float] = (1.0, 1.0, 1.0),
                radius: float = framing.CANONICAL_RADIUS, fov: float = framing.CANONICAL_FOV_DEG,
                batch_frames: int = 8, progress: bool = True, center: Sequence[float] = (0.0, 0.0, 0.0)) -> str:
    """Render a 360° turntable of one scene around ``center`` (the world y axis is up) to ``path``.

    Args:
        gaussians: one scene (no batch dims); higher SH (``sh_rest``) are shaded per frame.
        path: output file; its extension picks the format: ``.mp4`` (H.264, fast start), ``.webm``
            (VP9) or ``.gif``.
        frames: number of frames for the full turn; fps: frames per second.
        size: square frame size in pixels (even, for MP4 and WebM's 4:2:0 colour).
        elevation: camera elevation in degrees; background: RGB in [0, 1].
        radius, fov: orbit radius (head units) and vertical field of view (degrees).
        batch_frames: frames rendered per call (memory vs. speed).
        progress: show a tqdm progress bar.
        center: the point the cameras orbit and look at (world coordinates; :func:`fit_orbit`
            finds one for scenes other than a3d heads).

    Returns:
        The path written, as a string.
    """
    from tqdm.auto import tqdm

    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext not in VIDEO_EXTS:
        raise InputError(f"path: expected a file ending in {', '.join(VIDEO_EXTS)}, got {path!r}")
    if not isinstance(gaussians, Gaussians):
        raise ValueError(f"gaussians: expected a3d.Gaussians, got {type(gaussians).__name__}")
    if gaussians.means.dim() != 2:
        raise ValueError(f"gaussians: expected one scene without batch dims, got batch shape "
                         f"{tuple(gaussians.batch_shape)}")
    for name, v, lo, hi in (("frames", frames, 1, 100_000), ("fps", fps, 1, 240), ("size", size, 16, 8192),
                            ("batch_frames", batch_frames, 1, None)):
        check_int(v, name, lo, hi)
    if os.path.isdir(path):
        raise InputError(f"path: {path} is a folder; expected a video file name")
    if ext != ".gif" and size % 2:
        raise InputError(f"size: {ext} needs an even frame size, got {size}")
    center = torch.as_tensor(center, dtype=gaussians.means.dtype, device=gaussians.device)
    if center.shape != (3,) or not torch.isfinite(center).all():
        raise ValueError(f"center: expected three finite numbers, got {center.tolist()}")
    if center.any():  # orbiting a point = moving the scene so that the point is the origin
        gaussians = Gaussians(gaussians.means - center, gaussians.quats, gaussians.scales, gaussians.opacities,
                              gaussians.colors, gaussians.sh_rest)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    open(path, "wb").close()  # an unwritable path fails here, before any frame is rendered
    with tqdm(total=frames, desc="orbit", unit="frame", disable=not progress) as bar:
        def frames_with_progress():
            for img in orbit_frames(gaussians, frames, size, elevation, background, radius, fov, batch_frames):
                yield img
                bar.update(1)

        return encode_frames(frames_with_progress(), path, fps)


@torch.no_grad()
def orbit_frames(gaussians: Gaussians, frames: int, size: int, elevation: float = 10.0,
                 background: Sequence[float] = (1.0, 1.0, 1.0), radius: float = framing.CANONICAL_RADIUS,
                 fov: float = framing.CANONICAL_FOV_DEG, batch_frames: int = 8):
    """Yield the ``frames`` turntable images of one scene around the world origin, [size, size, 3] uint8
    each (front first), rendering ``batch_frames`` at a time; what :func:`orbit_video` encodes."""
    cams = orbit_cameras(frames, radius=radius, elevation=elevation, fov=fov, size=size)
    for start in range(0, frames, batch_frames):
        yield from to_uint8(render(gaussians, cams[start:start + batch_frames], background).rgb)


def fit_orbit(gaussians: Gaussians, fov: float = framing.CANONICAL_FOV_DEG,
              quantile: float = 0.95) -> tuple[tuple[float, float, float], float]:
    """An orbit that frames any scene: (centre, radius) for :func:`orbit_video`.

    The centre is the per-axis median of the means (robust to stray floaters); the radius puts the
    sphere holding ``quantile`` of the means inside the vertical field of view ``fov`` (degrees),
    with a 10% margin.
    """
    import math

    if not 0.0 < quantile <= 1.0:
        raise ValueError(f"quantile: expected a number in (0, 1], got {quantile!r}")
    means = gaussians.means.detach().reshape(-1, 3).float()
    means = means[::max(1, means.shape[0] // 1_000_000)]  # a subsample is plenty (and torch.quantile is bounded)
    if means.shape[0] == 0:
        raise ValueError("gaussians: an empty scene has nothing to frame")
    center = means.median(0).values
    extent = float(torch.quantile((means - center).norm(dim=-1), quantile)) if means.shape[0] > 1 else 1.0
    radius = 1.1 * max(extent, 1e-6) / math.sin(math.radians(fov) / 2)
    return tuple(float(c) for c in center.cpu()), radius


def mp4_box_order(path: str | os.PathLike) -> list[str]:
    """The types of an MP4 file's top-level boxes in file order, e.g. ``['ftyp', 'moov', 'mdat']``
    for a fast-start file. Raises ValueError for a file that is not a sequence of MP4 boxes."""
    path = os.fspath(path)
    size = os.path.getsize(path)
    kinds = []
    with open(path, "rb") as f:
        pos = 0
        while pos < size:
            f.seek(pos)
            head = f.read(16)
            if len(head) < 8:
                raise ValueError(f"{path}: truncated MP4 box header at byte {pos}")
            length, kind = struct.unpack(">I4s", head[:8])
            if length == 1:  # 64-bit size follows the type
                if len(head) < 16:
                    raise ValueError(f"{path}: truncated 64-bit MP4 box size at byte {pos}")
                length = struct.unpack(">Q", head[8:16])[0]
            elif length == 0:  # the box runs to the end of the file
                length = size - pos
            if length < 8 or pos + length > size:
                raise ValueError(f"{path}: MP4 box {kind!r} at byte {pos} has a bad size {length}")
            kinds.append(kind.decode("latin-1"))
            pos += length
    return kinds
