"""Binding Gaussians to the fitted head's triangles, and moving them with the triangles (as GaussianAvatars
binds 3D Gaussians to FLAME's triangles).

Each Gaussian is bound to its nearest triangle of the fitted head (outer surface: not the mouth cavity,
tongue or eye sockets): the barycentric coordinates of its projection onto the triangle's plane, and its
offset from that point expressed in the triangle's frame (edge, normal × edge, normal). When the triangle
moves, the Gaussian keeps its barycentric point and its offset in the triangle's new frame, its rotation
turns with the frame, and its scales grow with the square root of the triangle's area ratio.

Two weights per Gaussian say how much of that it follows:

* ``follow``: how much it follows the face surface's deformation (expressions). 1 on the face; it fades
  to 0 (rigid) with the distance from the surface (hair, clothing: 0.02–0.05 head units, 4–10 mm) and over
  the regions that expressions do not move (ears, neck).
* ``head``: how much it follows the head's rotation (head pose) about the neck pivot. 1 above the chin,
  0 for the shoulders, a blend over the neck, so the neck twists rather than tears.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..core.gaussians import Gaussians
from ..core.rotations import quat_multiply, quat_to_rotmat, rotmat_to_quat
from ..data.head_basis import HeadBasis
from .pose import NECK_PIVOT, axis_angle_matrix

__all__ = ["Binding", "bind", "bindable_faces", "triangle_frames", "move"]

FOLLOW_NEAR, FOLLOW_FAR = 0.02, 0.05
"""Head units: Gaussians closer to the surface than FOLLOW_NEAR follow it fully, beyond FOLLOW_FAR not at all."""
NECK_BLEND = (0.25, 0.05)
"""Head units below the chin where the head weight reaches 0 (shoulders) and 1 (the head)."""


@dataclass
class Binding:
    """Where each of N Gaussians sits on the fitted head.

    Attributes:
        triangle: [N] int64 index into the basis's faces.
        bary: [N, 3] barycentric coordinates of the bound point (sum 1, non-negative).
        offset: [N, 3] the Gaussian's centre minus the bound point, in the triangle's rest frame.
        local_rot: [N, 3, 3] the Gaussian's rotation in the triangle's rest frame.
        follow: [N] in [0, 1], how much the Gaussian follows expressions.
        head: [N] in [0, 1], how much it follows the head pose.
    """

    triangle: Tensor
    bary: Tensor
    offset: Tensor
    local_rot: Tensor
    follow: Tensor
    head: Tensor

    @staticmethod
    def cat(parts: list["Binding"]) -> "Binding":
        return Binding(*(torch.cat([getattr(p, k) for p in parts]) for k in
                         ("triangle", "bary", "offset", "local_rot", "follow", "head")))


def bindable_faces(basis: HeadBasis) -> Tensor:
    """[F] bool: triangles of the head's outer surface (not the mouth cavity, tongue or eye sockets)."""
    r = basis.region
    inner = sum(basis.regions[:, r(k)] for k in ("sockets", "mouth", "tongue"))
    return inner[basis.faces].mean(1) < 0.5


def triangle_frames(verts: Tensor, faces: Tensor) -> tuple[Tensor, Tensor]:
    """[..., V, 3] vertices -> ([..., F, 3, 3] frames with columns (edge, normal × edge, normal), [..., F] areas)."""
    a, b, c = verts[..., faces[:, 0], :], verts[..., faces[:, 1], :], verts[..., faces[:, 2], :]
    cross = torch.linalg.cross(b - a, c - a, dim=-1)
    n = F.normalize(cross, dim=-1, eps=1e-12)
    e = F.normalize(b - a, dim=-1, eps=1e-12)
    return torch.stack([e, torch.linalg.cross(n, e, dim=-1), n], -1), 0.5 * cross.norm(dim=-1)


def _vertex_faces(faces: Tensor, allowed: Tensor, num_vertices: int) -> Tensor:
    """[V, D] the allowed faces around each vertex, padded with -1."""
    f = torch.nonzero(allowed)[:, 0]
    vid = faces[f].reshape(-1)
    fid = f.repeat_interleave(3)
    order = torch.argsort(vid, stable=True)
    vid, fid = vid[order], fid[order]
    deg = torch.bincount(vid, minlength=num_vertices)
    slot = torch.arange(len(vid), device=faces.device) - torch.repeat_interleave(torch.cumsum(deg, 0) - deg, deg)
    table = torch.full((num_vertices, max(int(deg.max()), 1)), -1, dtype=torch.int64, device=faces.device)
    table[vid, slot] = fid
    return table


def _nearest_triangles(points: Tensor, verts: Tensor, faces: Tensor, allowed: Tensor,
                       chunk: int = 8192) -> tuple[Tensor, Tensor]:
    """[P, 3] points -> ([P] triangle, [P, 3] barycentric coordinates of the closest point of its plane,
    clamped into the triangle): the candidates are the allowed triangles around the nearest vertex of one."""
    table = _vertex_faces(faces, allowed, len(verts))
    usable = (table >= 0).any(1)
    vidx = torch.nonzero(usable)[:, 0]
    tri_out, bary_out = [], []
    for s in range(0, len(points), chunk):
        p = points[s:s + chunk]
        near = vidx[torch.cdist(p, verts[vidx]).argmin(1)]  # [p]
        cand = table[near]  # [p, D]
        ok = cand >= 0
        c = cand.clamp_min(0)
        tri = verts[faces[c]]  # [p, D, 3, 3]
        bary = _plane_barycentric(p[:, None], tri)
        closest = (bary[..., None] * tri).sum(-2)
        d = (closest - p[:, None]).norm(dim=-1).masked_fill(~ok, float("inf"))
        k = d.argmin(1)
        tri_out.append(c.gather(1, k[:, None])[:, 0])
        bary_out.append(bary[torch.arange(len(p)), k])
    return torch.cat(tri_out), torch.cat(bary_out)


def _plane_barycentric(p: Tensor, tri: Tensor) -> Tensor:
    """[..., 3] points, [..., 3, 3] triangles -> [..., 3] barycentric coordinates of the point's projection
    onto the triangle's plane, negative ones clamped to 0 and renormalised (a point near the triangle)."""
    a, b, c = tri.unbind(-2)
    v0, v1, v2 = b - a, c - a, p - a
    d00, d01, d11 = (v0 * v0).sum(-1), (v0 * v1).sum(-1), (v1 * v1).sum(-1)
    d20, d21 = (v2 * v0).sum(-1), (v2 * v1).sum(-1)
    den = (d00 * d11 - d01 * d01).clamp_min(1e-12)
    v = (d11 * d20 - d01 * d21) / den
    w = (d00 * d21 - d01 * d20) / den
    bary = torch.stack([1 - v - w, v, w], -1).clamp_min(0)
    return bary / bary.sum(-1, keepdim=True).clamp_min(1e-12)


def _smoothstep(e0: float, e1: float, x: Tensor) -> Tensor:
    t = ((x - e0) / (e1 - e0)).clamp(0, 1)
    return t * t * (3 - 2 * t)


def bind(gaussians: Gaussians, basis: HeadBasis, vertices: Tensor) -> Binding:
    """Bind one scene's Gaussians [N] to the fitted head ``vertices`` [V, 3] (the neutral
    :attr:`a3d.animation.fit.HeadFit.vertices`); see the module docstring."""
    faces = basis.faces.to(vertices.device)
    allowed = bindable_faces(basis).to(vertices.device)
    means = gaussians.means.detach()
    tri, bary = _nearest_triangles(means, vertices, faces, allowed)
    frames, _ = triangle_frames(vertices, faces)
    R = frames[tri]  # [N, 3, 3]
    point = (bary[:, :, None] * vertices[faces[tri]]).sum(1)
    offset = ((means - point)[:, None, :] @ R)[:, 0]  # Rᵀ (p − point)
    local_rot = R.transpose(-1, -2) @ quat_to_rotmat(gaussians.quats.detach())
    regions = basis.regions.to(vertices.device)
    r = basis.region
    rigid_region = (regions[:, r("ears")] + regions[:, r("neck")]).clamp(0, 1)  # [V]
    rigid = (bary * rigid_region[faces[tri]]).sum(1)
    follow = (1 - rigid) * (1 - _smoothstep(FOLLOW_NEAR, FOLLOW_FAR, offset.norm(dim=-1)))
    chin_y = float(basis.landmarks(vertices)[basis.landmark_names.index("chin"), 1])
    head = _smoothstep(chin_y - NECK_BLEND[0], chin_y - NECK_BLEND[1], means[:, 1])
    return Binding(tri, bary, offset, local_rot, follow, head)


def move(gaussians: Gaussians, binding: Binding, basis: HeadBasis, rest: Tensor, deformed: Tensor,
         head_rotvec: Tensor | None = None) -> Gaussians:
    """Move one scene's Gaussians [N] with the head.

    Args:
        gaussians: the bound Gaussians [N] (rest pose).
        binding: their :func:`bind`.
        rest: [V, 3] the fitted head's neutral vertices; deformed: [B, V, 3] its vertices per frame.
        head_rotvec: optional [B, 3] head rotation per frame (axis-angle, radians) about
            :data:`a3d.animation.pose.NECK_PIVOT`.
    Returns:
        Gaussians [B, N]: means, quats and scales moved; opacities and colours as given (expanded).
    """
    B = deformed.shape[0]
    faces = basis.faces.to(rest.device)
    N = gaussians.num_gaussians
    means = gaussians.means.expand(B, N, 3).clone()
    quats = F.normalize(gaussians.quats, dim=-1).expand(B, N, 4).clone()
    scales = gaussians.scales.expand(B, N, 3).clone()
    moving = torch.nonzero(binding.follow > 1e-4)[:, 0]
    if len(moving):
        tri, w = binding.triangle[moving], binding.follow[moving]
        used = torch.unique(tri)  # frames only of the triangles some Gaussian needs
        remap = torch.zeros(faces.shape[0], dtype=torch.int64, device=rest.device)
        remap[used] = torch.arange(len(used), device=rest.device)
        frames, area = triangle_frames(deformed, faces[used])  # [B, T, 3, 3], [B, T]
        _, area0 = triangle_frames(rest, faces[used])
        t = remap[tri]
        R = frames[:, t]  # [B, M, 3, 3]
        point = (binding.bary[moving][None, :, :, None] * deformed[:, faces[tri]]).sum(2)  # [B, M, 3]
        bound = point + (R @ binding.offset[moving][None, :, :, None])[..., 0]
        means[:, moving] = means[:, moving] + w[None, :, None] * (bound - means[:, moving])
        q_bound = rotmat_to_quat(R @ binding.local_rot[moving])
        q0 = quats[:, moving]
        q_bound = torch.where((q_bound * q0).sum(-1, keepdim=True) < 0, -q_bound, q_bound)  # the nearer sign
        quats[:, moving] = F.normalize(q0 + w[None, :, None] * (q_bound - q0), dim=-1)  # nlerp
        ratio = (area[:, t] / area0[t].clamp_min(1e-12)).clamp(0.25, 4).sqrt()
        scales[:, moving] = scales[:, moving] * (1 + w[None, :] * (ratio - 1))[..., None]
    if head_rotvec is not None:
        pivot = torch.tensor(NECK_PIVOT, device=rest.device, dtype=means.dtype)
        turning = torch.nonzero(binding.head > 1e-4)[:, 0]
        rv = head_rotvec[:, None, :] * binding.head[turning][None, :, None]  # [B, M, 3]: the neck twists less
        Rh = axis_angle_matrix(rv)
        means[:, turning] = pivot + ((means[:, turning] - pivot)[..., None, :] @ Rh.transpose(-1, -2))[..., 0, :]
        quats[:, turning] = quat_multiply(rotmat_to_quat(Rh), quats[:, turning])
    def expand(x: Tensor | None) -> Tensor | None:
        return None if x is None else x.expand(B, *x.shape)

    return Gaussians(means, quats, scales, expand(gaussians.opacities), expand(gaussians.colors),
                     expand(gaussians.sh_rest))
