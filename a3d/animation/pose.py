"""Head pose: rotations from axis-angle vectors and from (yaw, pitch, roll) degrees, in a3d's framing.

World axes are :mod:`a3d.core.framing`'s: x toward the subject's left, y up, face toward +z. A head
pose is three angles in degrees: yaw turns the face toward the subject's left (+x) for positive
values, pitch nods the face down for positive values, roll tilts the head toward the subject's
left shoulder for positive values. The head turns about :data:`NECK_PIVOT`, a point in the neck
below the skull's centre, as a head turns on the spine.
"""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["NECK_PIVOT", "axis_angle_matrix", "pose_matrix", "pose_axis_angle", "pose_from_matrix"]

NECK_PIVOT: tuple[float, float, float] = (0.0, -0.45, -0.05)
"""Head units: the top of the spine (atlas joint) of a framed head, the point a head pose turns about."""


def axis_angle_matrix(rotvec: Tensor) -> Tensor:
    """[..., 3] axis-angle vectors (radians, right-handed) -> [..., 3, 3] rotation matrices (Rodrigues;
    differentiable, exact at zero)."""
    theta2 = (rotvec * rotvec).sum(-1, keepdim=True)[..., None]  # [..., 1, 1]
    theta = theta2.clamp_min(1e-12).sqrt()
    small = theta2 < 1e-8
    # sin(θ)/θ and (1 − cos θ)/θ² with their Taylor series near 0 (no 0/0 in the gradient)
    a = torch.where(small, 1 - theta2 / 6, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta2 / 24, (1 - torch.cos(theta)) / theta2.clamp_min(1e-12))
    x, y, z = rotvec.unbind(-1)
    zero = torch.zeros_like(x)
    K = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], -1).reshape(*rotvec.shape[:-1], 3, 3)
    eye = torch.eye(3, dtype=rotvec.dtype, device=rotvec.device).expand_as(K)
    return eye + a * K + b * (K @ K)


def pose_axis_angle(head_pose: Tensor) -> Tensor:
    """[..., 3] (yaw, pitch, roll) degrees -> [..., 3] axis-angle vector of the same rotation
    (``R = R_yaw · R_pitch · R_roll``, applied to the head in its rest pose)."""
    from ..core.rotations import rotmat_to_quat

    q = rotmat_to_quat(pose_matrix(head_pose))
    w = q[..., :1].clamp(-1, 1)
    angle = 2 * torch.acos(w)
    s = (1 - w * w).clamp_min(1e-12).sqrt()
    return torch.where(s > 1e-6, q[..., 1:] * angle / s, 2 * q[..., 1:])


def pose_matrix(head_pose: Tensor) -> Tensor:
    """[..., 3] (yaw, pitch, roll) in degrees (see the module docstring) -> [..., 3, 3] rotation
    ``R_yaw(y axis) · R_pitch(x axis) · R_roll(z axis)``."""
    yaw, pitch, roll = (torch.deg2rad(head_pose[..., i]) for i in range(3))
    zero = torch.zeros_like(yaw)
    R_yaw = axis_angle_matrix(torch.stack([zero, yaw, zero], -1))  # +yaw: +z (face) turns toward +x
    R_pitch = axis_angle_matrix(torch.stack([pitch, zero, zero], -1))  # +pitch about +x: the face turns down
    R_roll = axis_angle_matrix(torch.stack([zero, zero, -roll], -1))  # +roll: the top tilts toward +x
    return R_yaw @ R_pitch @ R_roll



def pose_from_matrix(R: Tensor) -> Tensor:
    """[..., 3, 3] rotations -> [..., 3] (yaw, pitch, roll) degrees, the inverse of :func:`pose_matrix`
    (pitch within ±90°)."""
    pitch = torch.asin((-R[..., 1, 2]).clamp(-1, 1))
    yaw = torch.atan2(R[..., 0, 2], R[..., 2, 2])
    roll = -torch.atan2(R[..., 1, 0], R[..., 1, 1])
    return torch.rad2deg(torch.stack([yaw, pitch, roll], -1))
