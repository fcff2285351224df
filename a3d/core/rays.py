"""Plücker ray embeddings, the pure-PyTorch reference (the extension op in :mod:`a3d.core.ops` matches it)."""
from __future__ import annotations

import torch
from torch import Tensor


def plucker_rays_reference(viewmats: Tensor, Ks: Tensor, width: int, height: int) -> Tensor:
    """Per-pixel Plücker coordinates ``[o × d, d]`` (LGM / GS-LRM order) with unit ``d``.

    Args:
        viewmats: [..., C, 4, 4] world-to-camera (OpenCV).
        Ks: [..., C, 3, 3] intrinsics in pixels.
        width, height: image size; pixel (u, v) is sampled at its centre (u + 0.5, v + 0.5).

    Returns:
        [..., C, H, W, 6] in the dtype of ``viewmats``: moment ``o × d`` then direction ``d``,
        both in world coordinates, ``o`` the camera centre.
    """
    R = viewmats[..., :3, :3]  # [..., C, 3, 3]
    t = viewmats[..., :3, 3]
    origin = -(R.transpose(-1, -2) @ t[..., None])[..., 0]  # [..., C, 3]
    fx, fy = Ks[..., 0, 0, None, None], Ks[..., 1, 1, None, None]
    cx, cy = Ks[..., 0, 2, None, None], Ks[..., 1, 2, None, None]
    v, u = torch.meshgrid(torch.arange(height, dtype=viewmats.dtype, device=viewmats.device),
                          torch.arange(width, dtype=viewmats.dtype, device=viewmats.device), indexing="ij")
    x = (u + 0.5 - cx) / fx  # [..., C, H, W]
    y = (v + 0.5 - cy) / fy
    d_cam = torch.stack([x, y, torch.ones_like(x)], -1)  # [..., C, H, W, 3]
    d = torch.einsum("...ji,...hwj->...hwi", R, d_cam)  # R^T d_cam: camera -> world direction
    d = torch.nn.functional.normalize(d, dim=-1)
    o = origin[..., None, None, :].expand_as(d)
    return torch.cat([torch.linalg.cross(o, d, dim=-1), d], -1)
