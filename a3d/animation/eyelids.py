"""Closing eyelids: skin-coloured Gaussians on the morphable head's moving lids, shown as the eyes close.

A portrait's eyes are open: the reconstruction's Gaussians over each eye are the eye itself, bound to the
fitted eyeball, which a blink does not move, and the lids' own skin is a thin fold above it. Closing the
lids needs skin where there was an eye. The morphable head's blink actions (``eyeBlinkLeft``,
``eyeBlinkRight``) move the lids' triangles down over the eyeballs; the upper triangles that a blink moves
down by more than 2 mm carry Gaussians in the colour of the skin below that eye. They sit on the fitted
surface pushed out by the fit's depth offset (:class:`a3d.animation.fit.HeadFit`: how far in front of the
fitted mesh the reconstruction's surface shows), so that a closed lid lies over the reconstruction's eye,
not behind it. Their opacity follows the side's blink weight (:func:`lid_fade`: 0 for open eyes, so a
neutral head renders as reconstructed).

Where the closed lid meets the lower lid, a closed eye shows a dark line (lashes, the lids' seam); those of
the lid's Gaussians that end up within ``LASH_BAND`` of the closed lid's lower edge take the skin colour darkened
to ``LASH_SHADE``. Without that line a closed lid is an even patch of skin, which MediaPipe's face mesh reads
as an open eye (its lid points stay where the eye was); with it the face mesh follows the lid down.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..core.gaussians import Gaussians
from ..core.rotations import rotmat_to_quat
from ..data.head_basis import HeadBasis
from .bind import triangle_frames

__all__ = ["lid_gaussians", "lid_fade", "BLINKS"]

BLINKS = ("eyeBlinkRight", "eyeBlinkLeft")
"""The blink action of each side, in the order of the side index (0: the subject's right eye, at -x)."""
_MOVES = 0.01  # head units (2 mm): an upper triangle that the blink moves down by more is part of the closing lid
LASH_BAND = 0.008
"""Head units (1.7 mm): how far above the closed lid's lower edge the dark lash line reaches."""
LASH_SHADE = 0.25
"""The lash line's colour as a fraction of the lid's skin colour (dark, in the photo's own hue and light)."""


def lid_fade(basis: HeadBasis, expressions: Tensor) -> Tensor:
    """[F, 52] weights -> [F, 2] opacity factor of the right and left lids' Gaussians: 0 until the blink weight
    reaches 0.15, 1 from 0.5 on (a half-closed lid has already covered the eye's upper half)."""
    w = expressions[:, [basis.expressions.index(n) for n in BLINKS]]
    return ((w - 0.15) / 0.35).clamp(0, 1)


def lid_gaussians(basis: HeadBasis, vertices: Tensor, skin: Tensor, offset: float, *, closed: Tensor,
                  per_triangle: int = 6, seed: int = 1) -> tuple[Gaussians, Tensor, Tensor, Tensor, Tensor]:
    """Sample the lids' Gaussians on the fitted head's neutral ``vertices`` [V, 3].

    Args:
        skin: [2, 3] the skin colour of the right and left eye's lids.
        offset: head units along each triangle's normal (the fit's depth offset).
        closed: [V, 3] the fitted head with both eyes closed (both blinks at 1), where the lash line is found.
    Returns:
        (Gaussians [M] at full opacity, [M] triangle, [M, 3] barycentric coordinates, [M, 3] offset in the
        triangle's frame, [M] side: 0 right, 1 left).
    """
    dev = vertices.device
    faces = basis.faces.to(dev)
    tris, sides = [], []
    eye_y = basis.landmarks(vertices)[basis.landmark_names.index("right_eye"), 1]
    upper = vertices[faces].mean(1)[:, 1] > eye_y - 0.01  # the upper lid (the lower one hardly moves)
    for side, name in enumerate(BLINKS):
        down = basis.expr_basis[basis.expressions.index(name)].to(dev)[:, 1]  # [V] vertical move at weight 1
        moving = torch.nonzero((down[faces].mean(1) < -_MOVES) & upper)[:, 0]
        tris.append(moving)
        sides.append(torch.full_like(moving, side))
    tri_ids, side_ids = torch.cat(tris), torch.cat(sides)
    gen = torch.Generator().manual_seed(seed)
    u = torch.rand(len(tri_ids), per_triangle, 2, generator=gen).to(dev)
    u = torch.where(u.sum(-1, keepdim=True) > 1, 1 - u, u)
    bary = torch.cat([1 - u.sum(-1, keepdim=True), u], -1).reshape(-1, 3)
    tri = tri_ids.repeat_interleave(per_triangle)
    side = side_ids.repeat_interleave(per_triangle)
    frames, area = triangle_frames(vertices, faces[tri])
    local = torch.zeros(len(tri), 3, device=dev)
    local[:, 2] = offset  # along the normal (the frame's third axis)
    means = (bary[:, :, None] * vertices[faces[tri]]).sum(1) + frames[..., 2] * offset
    spacing = (2 * area / per_triangle).sqrt().clamp(0.001, 0.01)
    scales = torch.stack([spacing, spacing, spacing * 0.2], -1)
    colors = skin.to(dev)[side]
    at = (bary[:, :, None] * closed[faces[tri]]).sum(1)  # each Gaussian's place on the closed lid
    colors = torch.where(_lash_line(at, side)[:, None], colors * LASH_SHADE, colors)
    g = Gaussians(means, rotmat_to_quat(frames), scales, torch.full((len(tri),), 0.95, device=dev), colors)
    return g, tri, bary, local, side


def _lash_line(points: Tensor, side: Tensor, bins: int = 12) -> Tensor:
    """[M] bool: the points [M, 3] (on the closed lids) within :data:`LASH_BAND` above their lid's lower edge,
    the edge taken as the lowest point in each of ``bins`` slices across the eye's width."""
    out = torch.zeros(len(points), dtype=torch.bool, device=points.device)
    for s in (0, 1):
        m = torch.nonzero(side == s)[:, 0]
        if len(m) == 0:
            continue
        x, y = points[m, 0], points[m, 1]
        k = ((x - x.min()) / (x.max() - x.min()).clamp_min(1e-9) * (bins - 1)).round().long()
        low = torch.full((bins,), float("inf"), device=points.device).scatter_reduce(0, k, y, "amin")
        out[m] = y < low[k] + LASH_BAND
    return out
