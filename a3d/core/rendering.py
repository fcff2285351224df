"""Rendering Gaussians from cameras: :func:`render` (differentiable, batched) and its helpers.

Gaussians that carry higher SH (``sh_rest``, e.g. a degree-3 PLY from another 3DGS tool) are shaded
per camera first (:func:`a3d.core.sh.view_colors`), then rasterized with those colours.
Turntable videos live in :mod:`a3d.io.video`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from .cameras import Cameras
from .gaussians import Gaussians
from .rasterize import rasterize
from .sh import view_colors

__all__ = ["RenderOutput", "render", "channels_first", "to_uint8"]


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


def channels_first(images: Tensor) -> Tensor:
    """Rendered images [..., H, W, C] (a :class:`RenderOutput` field) as [..., C, H, W], the layout of
    networks and losses; a view, no copy."""
    return images.movedim(-1, -3)


def render(gaussians: Gaussians, cameras: Cameras, background: Tensor | Sequence[float] | None = None) -> RenderOutput:
    """Render ``gaussians`` (batch dims ``*``) from ``cameras``; differentiable.

    Args:
        gaussians: Gaussians with any leading batch dims ``*`` (none for a single scene).
        cameras: viewmats [C, 4, 4] shared by every scene, or [*, C, 4, 4] one set per scene.
        background: RGB in [0, 1], as a [3] sequence/tensor, or [*, C, 3]; default black.

    Returns:
        :class:`RenderOutput` with [*, C, H, W, ·] images. The backend is :func:`a3d.core.ops.backend`'s
        choice for the Gaussians' device.
    """
    if not isinstance(gaussians, Gaussians):
        raise TypeError(f"gaussians: expected a3d.Gaussians, got {type(gaussians).__name__}")
    if not isinstance(cameras, Cameras):
        raise TypeError(f"cameras: expected a3d.core.cameras.Cameras, got {type(cameras).__name__}")
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
    means, quats, scales = g.means.reshape(B, N, 3), g.quats.reshape(B, N, 4), g.scales.reshape(B, N, 3)
    opacities, colors = g.opacities.reshape(B, N), g.colors.reshape(B, N, 3)
    if g.sh_rest is not None and g.sh_rest.shape[-2] > 0:
        # View-dependent colour: every (scene, camera) pair becomes a scene of its own with one camera.
        k = g.sh_rest.shape[-2]
        colors = view_colors(colors, g.sh_rest.reshape(B, N, k, 3), means, Cameras(vm, K, cameras.width,
                                                                                   cameras.height).centers)
        rgb, alpha, depth = rasterize(*(t[:, None].expand(B, C, *t.shape[1:]).reshape(B * C, *t.shape[1:])
                                        for t in (means, quats, scales, opacities)),
                                      colors.reshape(B * C, N, 3), vm.reshape(B * C, 1, 4, 4).contiguous(),
                                      K.reshape(B * C, 1, 3, 3).contiguous(), cameras.width, cameras.height,
                                      None if bg is None else bg.reshape(B * C, 1, 3))
    else:
        rgb, alpha, depth = rasterize(means, quats, scales, opacities, colors, vm.contiguous(), K.contiguous(),
                                      cameras.width, cameras.height, bg)
    H, W = cameras.height, cameras.width
    return RenderOutput(rgb.reshape(*batch, C, H, W, 3), alpha.reshape(*batch, C, H, W, 1),
                        depth.reshape(*batch, C, H, W, 1))


def to_uint8(images: Tensor) -> np.ndarray:
    """[..., H, W, 3] floats in [0, 1] -> uint8 numpy array of the same shape."""
    return (images.detach().clamp(0, 1) * 255 + 0.5).to(torch.uint8).cpu().numpy()
