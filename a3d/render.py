"""Rendering Gaussians from cameras, and turntable videos."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from . import framing
from .cameras import Cameras, orbit_cameras
from .errors import InputError, check_int
from .gaussians import Gaussians
from .rasterize import rasterize

__all__ = ["RenderOutput", "render", "orbit_video", "to_uint8"]

_VIDEO_EXTS = (".mp4", ".gif")


@dataclass
class RenderOutput:
    """Images rendered for every scene and camera.

    Attributes:
        rgb: [*, C, H, W, 3] colour, background composited.
        alpha: [*, C, H, W, 1] accumulated opacity (1 − final transmittance).
        depth: [*, C, H, W, 1] expected camera-space z of the visible surface (0 where alpha is 0).
    """

    rgb: Tensor
    alpha: Tensor
    depth: Tensor


def render(gaussians: Gaussians, cameras: Cameras, background: Tensor | Sequence[float] | None = None) -> RenderOutput:
    """Render ``gaussians`` (batch dims ``*``) from ``cameras``; differentiable.

    Args:
        gaussians: Gaussians with any leading batch dims ``*`` (none for a single scene).
        cameras: viewmats [C, 4, 4] shared by every scene, or [*, C, 4, 4] one set per scene.
        background: RGB in [0, 1], as a [3] sequence/tensor, or [*, C, 3]; default black.

    Returns:
        :class:`RenderOutput` with [*, C, H, W, ·] images. The backend is :func:`a3d.ops.backend`'s
        choice for the Gaussians' device.
    """
    if not isinstance(gaussians, Gaussians):
        raise TypeError(f"gaussians: expected a3d.Gaussians, got {type(gaussians).__name__}")
    if not isinstance(cameras, Cameras):
        raise TypeError(f"cameras: expected a3d.cameras.Cameras, got {type(cameras).__name__}")
    batch = gaussians.batch_shape
    N = gaussians.num_gaussians
    dev, dtype = gaussians.device, gaussians.means.dtype
    B = int(np.prod(batch)) if len(batch) else 1
    C = len(cameras)
    vm, K = cameras.viewmats.to(dev, dtype), cameras.Ks.to(dev, dtype)
    if vm.dim() == 3:
        vm, K = vm.expand(B, C, 4, 4), K.expand(B, C, 3, 3)
    elif tuple(vm.shape[:-3]) == tuple(batch):
        vm, K = vm.reshape(B, C, 4, 4), K.reshape(B, C, 3, 3)
    else:
        raise ValueError(f"cameras: viewmats {tuple(cameras.viewmats.shape)} must be [C, 4, 4] or carry the "
                         f"Gaussians' batch dims {tuple(batch)}")
    bg = None
    if background is not None:
        bg = torch.as_tensor(background, dtype=dtype, device=dev)
        if bg.shape == (3,):
            bg = bg.expand(B, C, 3)
        elif tuple(bg.shape) == tuple(batch) + (C, 3):
            bg = bg.reshape(B, C, 3)
        else:
            raise ValueError(f"background: expected [3] or {tuple(batch) + (C, 3)}, got {tuple(bg.shape)}")
    g = gaussians
    rgb, alpha, depth = rasterize(g.means.reshape(B, N, 3), g.quats.reshape(B, N, 4), g.scales.reshape(B, N, 3),
                                  g.opacities.reshape(B, N), g.colors.reshape(B, N, 3), vm.contiguous(),
                                  K.contiguous(), cameras.width, cameras.height, bg)
    H, W = cameras.height, cameras.width
    return RenderOutput(rgb.reshape(*batch, C, H, W, 3), alpha.reshape(*batch, C, H, W, 1),
                        depth.reshape(*batch, C, H, W, 1))


def to_uint8(images: Tensor) -> np.ndarray:
    """[..., H, W, 3] floats in [0, 1] -> uint8 numpy array of the same shape."""
    return (images.detach().clamp(0, 1) * 255 + 0.5).to(torch.uint8).cpu().numpy()


@torch.no_grad()
def orbit_video(gaussians: Gaussians, path: str | os.PathLike, frames: int = 120, fps: int = 30, size: int = 512,
                elevation: float = 10.0, background: Sequence[float] = (1.0, 1.0, 1.0),
                radius: float = framing.CANONICAL_RADIUS, fov: float = framing.CANONICAL_FOV_DEG,
                batch_frames: int = 8, progress: bool = True) -> str:
    """Render a 360° turntable of one scene to ``path`` (.mp4 through imageio-ffmpeg, or .gif).

    Args:
        gaussians: one scene (no batch dims).
        path: output file; its extension picks the format.
        frames: number of frames for the full turn; fps: frames per second.
        size: square frame size in pixels (even, for H.264).
        elevation: camera elevation in degrees; background: RGB in [0, 1].
        radius, fov: orbit radius (head units) and vertical field of view (degrees).
        batch_frames: frames rendered per call (memory vs. speed).
        progress: show a tqdm progress bar.

    Returns:
        The path written, as a string.
    """
    import imageio.v2 as imageio
    from tqdm.auto import tqdm

    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext not in _VIDEO_EXTS:
        raise InputError(f"path: expected a file ending in {' or '.join(_VIDEO_EXTS)}, got {path!r}")
    if gaussians.means.dim() != 2:
        raise ValueError(f"gaussians: expected one scene without batch dims, "
                         f"got batch shape {tuple(gaussians.batch_shape)}")
    for name, v, lo, hi in (("frames", frames, 1, 100_000), ("fps", fps, 1, 240), ("size", size, 16, 8192),
                            ("batch_frames", batch_frames, 1, None)):
        check_int(v, name, lo, hi)
    if os.path.isdir(path):
        raise InputError(f"path: {path} is a folder; expected a video file name")
    if ext == ".mp4" and size % 2:
        raise InputError(f"size: H.264 needs an even frame size, got {size}")
    cams = orbit_cameras(frames, radius=radius, elevation=elevation, fov=fov, size=size)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    open(path, "wb").close()  # an unwritable path fails here, before any frame is rendered
    if ext == ".mp4":
        writer = imageio.get_writer(path, fps=fps, codec="libx264", quality=8, macro_block_size=1,
                                    ffmpeg_log_level="error")
    else:
        writer = imageio.get_writer(path, mode="I", duration=1000.0 / fps, loop=0)
    try:
        with tqdm(total=frames, desc="orbit", unit="frame", disable=not progress) as bar:
            for start in range(0, frames, batch_frames):
                out = render(gaussians, cams[start:start + batch_frames], background)
                for img in to_uint8(out.rgb):
                    writer.append_data(img)
                bar.update(out.rgb.shape[0])
    finally:
        writer.close()
    return path
