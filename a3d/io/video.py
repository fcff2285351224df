"""Turntable videos of one scene: MP4 (H.264, fast start), WebM (VP9) or GIF, picked by the extension.

MP4 files are written with their index (the ``moov`` box) before the media data (``mdat``), so a
browser can start playing and seek while the file is still loading; :func:`mp4_box_order` reads the
top-level box order back (tests/test_render.py checks it). WebM is VP9 in yuv420p, which every
current browser plays; GIF loops forever.
"""
from __future__ import annotations

import itertools
import os
import struct
from typing import Sequence

import torch

from ..core import framing
from ..core.cameras import orbit_cameras
from ..core.files import atomic_path, check_writable, writer_process
from ..errors import InputError, check_int, check_number
from ..core.gaussians import Gaussians, require_scene
from .. import limits
from ..core.rendering import render, to_uint8

__all__ = ["VIDEO_EXTS", "orbit_video", "orbit_frames", "fit_orbit", "mp4_box_order", "encode_frames"]

VIDEO_EXTS = (".mp4", ".webm", ".gif")


def _ffmpeg_args(ext: str, width: int, height: int, fps: int) -> list[str]:
    """ffmpeg reading raw RGB frames from stdin and writing ``ext`` to the path appended last."""
    from imageio_ffmpeg import get_ffmpeg_exe

    args = [get_ffmpeg_exe(), "-y", "-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}",
            "-r", str(fps), "-i", "-", "-an", "-pix_fmt", "yuv420p"]
    if ext == ".mp4":  # +faststart: ffmpeg moves moov to the front after encoding
        return args + ["-vcodec", "libx264", "-crf", "10", "-movflags", "+faststart", "-f", "mp4"]
    # WebM: constant quality (-crf with -b:v 0); row-mt keeps small frames quick
    return args + ["-vcodec", "libvpx-vp9", "-crf", "32", "-b:v", "0", "-row-mt", "1", "-deadline", "good",
                   "-cpu-used", "4", "-f", "webm"]


def encode_frames(frames, path: str | os.PathLike, fps: int = 30) -> str:
    """Write [H, W, 3] uint8 frames (numpy arrays, all one size) to ``path`` (.mp4, .webm or .gif, as
    :func:`orbit_video`); returns it.

    The file follows a3d's writing rule (:mod:`a3d.core.files`): it appears under ``path`` only once
    complete; an error or an interruption while frames are still coming leaves an existing file there
    untouched and no temporary behind, and kills the encoder.
    """
    import numpy as np

    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext not in VIDEO_EXTS:
        raise InputError(f"path: expected a file ending in {', '.join(VIDEO_EXTS)}, got {path!r}")
    limits.check("video_fps", fps, "fps")
    check_writable(path)
    frames = iter(frames)
    first = next(frames, None)
    if first is None:
        raise InputError("frames: a video needs at least one frame")
    shape = np.shape(first)
    if len(shape) != 3 or shape[2] != 3 or min(shape[:2]) < 1:
        raise InputError(f"frames: expected [H, W, 3] uint8 images, got shape {shape}")

    def checked():
        for i, img in enumerate(itertools.chain([first], frames)):
            img = np.ascontiguousarray(img)
            if img.shape != shape or img.dtype != np.uint8:
                raise InputError(f"frames: frame {i} is {img.dtype} {img.shape}; expected uint8 {shape} as frame 0")
            yield img

    with atomic_path(path) as tmp:
        if ext == ".gif":
            from PIL import Image

            images = [Image.fromarray(img) for img in checked()]
            images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:],
                           duration=round(1000 / fps), loop=0)
        else:
            with writer_process(_ffmpeg_args(ext, shape[1], shape[0], fps) + [tmp]) as encoder:
                for img in checked():
                    encoder.stdin.write(img.tobytes())
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
    from ..core.progress import progress_bar

    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext not in VIDEO_EXTS:
        raise InputError(f"path: expected a file ending in {', '.join(VIDEO_EXTS)}, got {path!r}")
    require_scene(gaussians)
    limits.check("video_frames", frames, "frames")
    limits.check("video_fps", fps, "fps")
    limits.check("video_size", size, "size")
    limits.check("elevation", elevation, "elevation")
    background = limits.check_color(background, "background")
    check_number(radius, "radius", positive=True)
    check_number(fov, "fov", 1.0, 179.0)
    check_int(batch_frames, "batch_frames", 1)
    check_writable(path)
    if ext != ".gif" and size % 2:
        raise InputError(f"size: {ext} needs an even frame size, got {size}")
    center = torch.as_tensor(center, dtype=gaussians.means.dtype, device=gaussians.device)
    if center.shape != (3,) or not torch.isfinite(center).all():
        raise InputError(f"center: expected three finite numbers, got {center.tolist()}")
    if center.any():  # orbiting a point = moving the scene so that the point is the origin
        gaussians = Gaussians(gaussians.means - center, gaussians.quats, gaussians.scales, gaussians.opacities,
                              gaussians.colors, gaussians.sh_rest)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with progress_bar(total=frames, desc="orbit", unit="frame", disable=not progress) as bar:
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
        raise InputError(f"quantile: expected a number in (0, 1], got {quantile!r}")
    means = gaussians.means.detach().reshape(-1, 3).float()
    means = means[::max(1, means.shape[0] // 1_000_000)]  # a subsample is plenty (and torch.quantile is bounded)
    if means.shape[0] == 0:
        raise InputError("gaussians: an empty scene has nothing to frame")
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
                raise InputError(f"{path}: truncated MP4 box header at byte {pos}")
            length, kind = struct.unpack(">I4s", head[:8])
            if length == 1:  # 64-bit size follows the type
                if len(head) < 16:
                    raise InputError(f"{path}: truncated 64-bit MP4 box size at byte {pos}")
                length = struct.unpack(">Q", head[8:16])[0]
            elif length == 0:  # the box runs to the end of the file
                length = size - pos
            if length < 8 or pos + length > size:
                raise InputError(f"{path}: MP4 box {kind!r} at byte {pos} has a bad size {length}")
            kinds.append(kind.decode("latin-1"))
            pos += length
    return kinds
