"""Small geometric helpers of the synthetic heads and :class:`Splats`, the Gaussians of a head's part
before lighting (positions, local frames, scales, opacities, albedo).
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ...core.rotations import rotmat_to_quat
from ..device_constants import on_device

__all__ = ["Splats", "umeyama", "frame_quats", "smoothstep", "interp", "gather_rows", "R2", "PROFILE_BINS"]


R2 = (0.7548776662, 0.5698402910)  # the R2 low-discrepancy sequence's steps
PROFILE_BINS = 64  # azimuth bins of a head's horizontal profile


# =================================================================================================
# Small geometric helpers
# =================================================================================================
def umeyama(src: Tensor, dst: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Similarity (s [B], R [B,3,3], t [B,3]) minimising Σ|s R src + t − dst|² for [B, K, 3] point sets."""
    mu_s, mu_d = src.mean(-2, keepdim=True), dst.mean(-2, keepdim=True)
    xs, xd = src - mu_s, dst - mu_d
    U, S, Vh = torch.linalg.svd(xd.transpose(-1, -2) @ xs / src.shape[-2])
    d = torch.sign(torch.linalg.det(U @ Vh))
    D = torch.ones_like(S)
    D[..., 2] = d
    R = U @ torch.diag_embed(D) @ Vh
    s = (S * D).sum(-1) / (xs ** 2).sum((-1, -2)) * src.shape[-2]
    t = mu_d[..., 0, :] - s[..., None] * (R @ mu_s[..., 0, :, None])[..., 0]
    return s, R, t


def frame_quats(tangent: Tensor, normal: Tensor) -> Tensor:
    """Quaternions [..., 4] of the frames (t, n × t, n): scales (s_t, s_b, s_n) lie along them."""
    n = F.normalize(normal, dim=-1, eps=1e-12)
    t = tangent - (tangent * n).sum(-1, keepdim=True) * n
    fallback = torch.linalg.cross(n, on_device(n.device, (0.31, 0.83, 0.47)).to(n.dtype).expand_as(n),
                                  dim=-1)
    t = torch.where(t.norm(dim=-1, keepdim=True) > 1e-6, t, fallback)
    t = F.normalize(t, dim=-1, eps=1e-12)
    b = torch.linalg.cross(n, t, dim=-1)
    return rotmat_to_quat(torch.stack([t, b, n], -1))


def smoothstep(e0: float | Tensor, e1: float | Tensor, x: Tensor) -> Tensor:
    t = ((x - e0) / (e1 - e0)).clamp(0, 1)
    return t * t * (3 - 2 * t)


def interp(x: Tensor, xp: Sequence[float], fp: Sequence[float]) -> Tensor:
    """Piecewise-linear interpolation of knots (xp [K] ascending, fp [K]) at x (any shape)."""
    xp_t = torch.tensor(xp, device=x.device, dtype=x.dtype)
    fp_t = torch.tensor(fp, device=x.device, dtype=x.dtype)
    i = torch.searchsorted(xp_t, x.contiguous().clamp(xp[0], xp[-1]), right=True).clamp(1, len(xp) - 1)
    x0, x1, f0, f1 = xp_t[i - 1], xp_t[i], fp_t[i - 1], fp_t[i]
    return f0 + (f1 - f0) * ((x - x0) / (x1 - x0)).clamp(0, 1)


def gather_rows(x: Tensor, index: Tensor) -> Tensor:
    """x [B, M, ...] rows picked per head by index [B, ...idx] -> [B, ...idx, ...]."""
    b = torch.arange(x.shape[0], device=x.device).reshape(-1, *([1] * (index.dim() - 1)))
    return x[b, index]


@dataclass
class Splats:
    """Gaussians of one part of every head of a batch, [B, M, ·], before their frames become
    quaternions and their albedo is lit: centres, tangent and normal directions (scales lie along
    tangent, normal × tangent, normal), scales, opacities, albedo, ambient occlusion and a skin flag
    (warm shadows)."""

    means: Tensor
    tangents: Tensor
    normals: Tensor
    scales: Tensor
    opacities: Tensor
    albedo: Tensor
    occlusion: Tensor
    skin: Tensor

    @staticmethod
    def make(means, tangents, normals, scales, opacities, albedo, occlusion=None, skin: bool = False) -> "Splats":
        B, M = means.shape[:2]
        one = means.new_ones(B, M)
        opacities = one * opacities
        return Splats(means, tangents.expand(B, M, 3), normals.expand(B, M, 3), scales, opacities,
                       albedo.expand(B, M, 3), one if occlusion is None else occlusion,
                       one if skin else torch.zeros_like(one))

    @staticmethod
    def cat(parts: Sequence["Splats"]) -> "Splats":
        return Splats(*(torch.cat([getattr(p, f.name) for p in parts], 1) for f in fields(Splats)))

    def where(self, cond: Tensor, other: "Splats") -> "Splats":
        """Per head: self where cond [B] else other."""
        out = []
        for f in fields(Splats):
            a, b = getattr(self, f.name), getattr(other, f.name)
            c = cond.reshape(-1, *([1] * (a.dim() - 1)))
            out.append(torch.where(c, a, b))
        return Splats(*out)

    def gather(self, index: Tensor) -> "Splats":
        """Rows [B, N] of every field."""
        return Splats(*(gather_rows(getattr(self, f.name), index) for f in fields(Splats)))
