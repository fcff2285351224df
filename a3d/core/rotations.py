"""Rotations as the Gaussians store them: unit quaternions (w, x, y, z) and their 3x3 matrices.

One convention for the whole package: a quaternion ``q = (w, x, y, z)`` rotates column vectors by the
matrix :func:`quat_to_rotmat` returns (``p' = R p``); ``q`` and ``-q`` are the same rotation, and
:func:`rotmat_to_quat` picks the one with ``w >= 0``. The rasterizer builds covariances from these
matrices; the network, the synthetic heads and augmentation turn frames back into quaternions.
"""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["quat_to_rotmat", "rotmat_to_quat", "quat_multiply"]


def quat_to_rotmat(quats: Tensor) -> Tensor:
    """[..., 4] quaternions (w, x, y, z), any norm > 0 -> [..., 3, 3] rotation matrices."""
    w, x, y, z = torch.nn.functional.normalize(quats, dim=-1).unbind(-1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], -1).reshape(*quats.shape[:-1], 3, 3)


def rotmat_to_quat(R: Tensor) -> Tensor:
    """[..., 3, 3] rotation matrices -> [..., 4] unit quaternions (w, x, y, z) with w >= 0, the inverse of
    :func:`quat_to_rotmat` (Shepperd's method: from the largest of the four candidate components, so no
    division by a small number)."""
    m00, m01, m02 = R[..., 0, 0], R[..., 0, 1], R[..., 0, 2]
    m10, m11, m12 = R[..., 1, 0], R[..., 1, 1], R[..., 1, 2]
    m20, m21, m22 = R[..., 2, 0], R[..., 2, 1], R[..., 2, 2]
    candidates = torch.stack([
        torch.stack([1 + m00 + m11 + m22, m21 - m12, m02 - m20, m10 - m01], -1),
        torch.stack([m21 - m12, 1 + m00 - m11 - m22, m01 + m10, m02 + m20], -1),
        torch.stack([m02 - m20, m01 + m10, 1 - m00 + m11 - m22, m12 + m21], -1),
        torch.stack([m10 - m01, m02 + m20, m12 + m21, 1 - m00 - m11 + m22], -1),
    ], -2)  # [..., 4, 4]: row k is 4·q_k·q, largest where |q_k| is
    k = torch.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1).argmax(-1)
    q = candidates.gather(-2, k[..., None, None].expand(*k.shape, 1, 4))[..., 0, :]
    q = torch.nn.functional.normalize(q, dim=-1)
    return torch.where(q[..., :1] < 0, -q, q)


def quat_multiply(p: Tensor, q: Tensor) -> Tensor:
    """Hamilton product ``p ⊗ q`` of quaternions (w, x, y, z) [..., 4], broadcast: the rotation ``q``, then ``p``
    (``quat_to_rotmat(p ⊗ q) = quat_to_rotmat(p) @ quat_to_rotmat(q)``)."""
    pw, px, py, pz = p.unbind(-1)
    qw, qx, qy, qz = q.unbind(-1)
    return torch.stack([pw * qw - px * qx - py * qy - pz * qz, pw * qx + px * qw + py * qz - pz * qy,
                        pw * qy - px * qz + py * qw + pz * qx, pw * qz + px * qy - py * qx + pz * qw], -1)
