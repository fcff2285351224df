"""Real spherical harmonics: the view-dependent colour of 3DGS files (degrees 0 to 3).

3DGS files store a colour as SH coefficients per channel: the DC term (``colors = 0.5 + SH_C0 * f_dc``
in :class:`a3d.core.gaussians.Gaussians`) and ``K = (d + 1)² − 1`` higher terms (``sh_rest`` [*, N, K, 3]).
The colour seen along the unit direction ``v`` from the camera centre to the Gaussian's mean is

    colour(v) = max(0, colors + Σ_k sh_rest[k] · Y_k(v))

with the real SH basis ``Y_k`` in the order and sign convention of the Inria 3DGS code (degree 1 is
``−C1·y, C1·z, −C1·x``; the Condon–Shortley phase is part of the constants). The basis is
orthonormal on the unit sphere (tests/test_render.py checks it by quadrature, and the signs against
scipy's complex harmonics).

Flipping the world's y and z axes (a 180° turn about x, see :func:`flip_signs`) maps each basis
function to ± itself, so converting a file between y-up and y-down worlds only flips signs.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["MAX_DEGREE", "degree_of", "sh_basis", "view_colors", "flip_signs"]

MAX_DEGREE = 3

_C1 = 0.4886025119029199  # sqrt(3 / 4π)
_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
_C3 = (-0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154, -0.4570457994644658,
       1.445305721320277, -0.5900435899266435)


def degree_of(k: int) -> int:
    """SH degree d of ``k = (d + 1)² − 1`` higher coefficients; ValueError for other counts."""
    d = math.isqrt(k + 1) - 1
    if k < 0 or (d + 1) ** 2 != k + 1:
        raise ValueError(f"sh_rest: {k} coefficients per channel is not (d + 1)² − 1 for an SH degree d")
    return d


def sh_basis(dirs: Tensor, degree: int) -> Tensor:
    """The higher real SH basis functions at unit directions ``dirs`` [..., 3] -> [..., (degree+1)² − 1]
    (the DC term, a constant, is left out), in the Inria 3DGS order."""
    if not 0 <= degree <= MAX_DEGREE:
        raise ValueError(f"degree: a3d evaluates SH degrees 0..{MAX_DEGREE}, got {degree}")
    x, y, z = dirs.unbind(-1)
    out = []
    if degree >= 1:
        out += [-_C1 * y, _C1 * z, -_C1 * x]
    if degree >= 2:
        xx, yy, zz = x * x, y * y, z * z
        out += [_C2[0] * x * y, _C2[1] * y * z, _C2[2] * (2 * zz - xx - yy), _C2[3] * x * z, _C2[4] * (xx - yy)]
    if degree >= 3:
        out += [_C3[0] * y * (3 * xx - yy), _C3[1] * x * y * z, _C3[2] * y * (4 * zz - xx - yy),
                _C3[3] * z * (2 * zz - 3 * xx - 3 * yy), _C3[4] * x * (4 * zz - xx - yy),
                _C3[5] * z * (xx - yy), _C3[6] * x * (xx - 3 * yy)]
    return torch.stack(out, -1) if out else dirs.new_zeros(dirs.shape[:-1] + (0,))


def view_colors(colors: Tensor, sh_rest: Tensor | None, means: Tensor, centers: Tensor) -> Tensor:
    """The colour each camera sees: colors [B, N, 3], sh_rest [B, N, K, 3] or None, means [B, N, 3],
    camera centres [B, C, 3] -> [B, C, N, 3] (clamped at 0 like the Inria renderer; no upper clamp)."""
    B, C = centers.shape[:2]
    if sh_rest is None or sh_rest.shape[-2] == 0:
        return colors[:, None].expand(B, C, *colors.shape[1:])
    degree = degree_of(sh_rest.shape[-2])
    dirs = torch.nn.functional.normalize(means[:, None] - centers[:, :, None], dim=-1)  # [B, C, N, 3]
    basis = sh_basis(dirs, degree)  # [B, C, N, K]
    rest = torch.einsum("bcnk,bnkj->bcnj", basis, sh_rest.to(basis.dtype))
    return (colors[:, None] + rest).clamp_min(0.0)


def flip_signs(k: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """[k] signs s such that ``sh_rest * s[:, None]`` is the same colour field after the world turns
    180° about x (y -> −y, z -> −z): each basis function is a polynomial whose terms all have the same
    parity in (y, z) taken together, so it maps to ± itself."""
    degree = degree_of(k)
    if degree > MAX_DEGREE:
        raise ValueError(f"sh_rest: a3d handles SH degrees 0..{MAX_DEGREE}, got degree {degree}")
    return torch.tensor(_FLIP_SIGNS[:k], dtype=dtype)


# In sh_basis order: degree 1 (y, z, x), degree 2 (xy, yz, 2zz−xx−yy, xz, xx−yy), degree 3.
_FLIP_SIGNS = (-1, -1, 1, -1, 1, 1, -1, 1, -1, 1, -1, -1, 1, -1, 1)
