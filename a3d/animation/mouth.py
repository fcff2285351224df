"""The mouth's interior: Gaussians for the mouth cavity, tongue and teeth, placed on the fitted head.

A reconstruction from a photo with a closed mouth has nothing behind the lips; when the jaw opens, the
gap would show the inside of the back of the head. The morphable head has a mouth cavity and a tongue
(:mod:`a3d.data.head_basis` regions ``mouth`` and ``tongue``) that the jaw actions move, so Gaussians
sampled on those triangles open with the jaw. Colours: a dark red cavity darkening with depth, a
pink-red tongue, and two narrow rows of teeth (off-white) at the cavity's front just above and below the
lips' line. The colours are scaled channel by channel by the reconstruction's lip colour against a lip
colour in good light, so that a dim photo gets a dim mouth and a black-and-white photo a grey one. (A
dark cavity is also what MediaPipe's face mesh needs to find the inner lips of an open mouth.)

Hidden behind closed lips, these Gaussians still must not change a neutral face: their opacity is
scaled per frame by :func:`mouth_opening` (0 for a closed mouth).
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..core.gaussians import Gaussians
from ..core.rotations import rotmat_to_quat
from ..data.head_basis import HeadBasis
from .bind import triangle_frames

__all__ = ["mouth_gaussians", "mouth_opening", "MOUTH_COLORS"]

MOUTH_COLORS: dict[str, tuple[float, float, float]] = {
    "cavity": (0.22, 0.06, 0.06), "tongue": (0.62, 0.3, 0.3), "teeth": (0.85, 0.82, 0.74)}
"""sRGB colours of the mouth's parts before the reconstruction's lip colour scales them."""

_TEETH_DEPTH, _TEETH_HEIGHT = 0.04, 0.025  # head units: how far behind the lips' line the teeth reach, and how high
_OPENING = {"jawOpen": 1.0, "mouthLowerDownLeft": 0.25, "mouthLowerDownRight": 0.25, "mouthUpperUpLeft": 0.25,
            "mouthUpperUpRight": 0.25, "mouthFunnel": 0.3, "mouthClose": -1.0}


def mouth_opening(basis: HeadBasis, expressions: Tensor) -> Tensor:
    """[F, E] ARKit weights -> [F] how far the lips part, 0 (closed) … 1 (wide open): the jaw's opening,
    plus the lips' own opening actions, less ``mouthClose`` (which closes the lips over an open jaw)."""
    w = torch.zeros(len(basis.expressions), dtype=expressions.dtype, device=expressions.device)
    for name, k in _OPENING.items():
        w[basis.expressions.index(name)] = k
    return (expressions @ w).clamp(0, 1)


def mouth_gaussians(basis: HeadBasis, vertices: Tensor, lip_color: Tensor | None = None, per_triangle: int = 6,
                    seed: int = 0) -> tuple[Gaussians, Tensor, Tensor]:
    """Sample the mouth's Gaussians on the fitted head's ``vertices`` [V, 3] (neutral).

    Args:
        lip_color: [3] the reconstruction's lip colour (scales the mouth's colours); None: as they are.
        per_triangle: Gaussians a triangle of the cavity, tongue and teeth.
        seed: seed of the sample positions (the mouth is a function of the fit and the seed).
    Returns:
        (Gaussians [M] with full opacity, [M] int64 triangle of each, [M, 3] barycentric coordinates).
    """
    dev = vertices.device
    faces = basis.faces.to(dev)
    regions = basis.regions.to(dev)
    r = basis.region
    tri_reg = regions[faces].mean(1)  # [F, R]
    mouth_pt = basis.landmarks(vertices)[basis.landmark_names.index("mouth")]
    centroid = vertices[faces].mean(1)
    cavity = tri_reg[:, r("mouth")] > 0.5
    tongue = tri_reg[:, r("tongue")] > 0.5
    # teeth: two narrow rows of the cavity's front, just above and just below the lips' line (the lower row
    # sits on the jaw's triangles, so it opens with the jaw); the rest of the cavity stays dark
    teeth = cavity & (centroid[:, 2] > mouth_pt[2] - _TEETH_DEPTH) \
        & ((centroid[:, 1] - mouth_pt[1]).abs() < _TEETH_HEIGHT) & ((centroid[:, 0] - mouth_pt[0]).abs() < 0.1)
    tris = torch.nonzero(cavity | tongue)[:, 0]
    gen = torch.Generator().manual_seed(seed)
    T = len(tris)
    u = torch.rand(T, per_triangle, 2, generator=gen).to(dev)
    flip = u.sum(-1, keepdim=True) > 1  # fold the unit square onto the triangle
    u = torch.where(flip, 1 - u, u)
    bary = torch.cat([1 - u.sum(-1, keepdim=True), u], -1).reshape(-1, 3)
    tri = tris.repeat_interleave(per_triangle)
    means = (bary[:, :, None] * vertices[faces[tri]]).sum(1)
    frames, area = triangle_frames(vertices, faces[tri])
    side = (2 * area / per_triangle).sqrt().clamp(0.002, 0.02)  # about the spacing of the samples
    scales = torch.stack([side, side, side * 0.2], -1)  # flat along the surface
    quats = rotmat_to_quat(frames)
    cols = {k: torch.tensor(v, device=dev) for k, v in MOUTH_COLORS.items()}
    is_tongue = tongue[tri] & ~teeth[tri]
    is_teeth = teeth[tri]
    colors = torch.where(is_tongue[:, None], cols["tongue"], cols["cavity"])
    colors = torch.where(is_teeth[:, None], cols["teeth"], colors)
    # deeper inside is darker (less light reaches it)
    depth = (mouth_pt[2] - means[:, 2]).clamp_min(0)
    colors = colors * (1 - (depth / 0.15).clamp(0, 0.7))[:, None]
    if lip_color is not None:  # per channel: a dim photo gets a dim mouth, a black-and-white one a grey mouth
        reference = torch.tensor([0.75, 0.45, 0.42], device=dev)  # a lip colour in good light
        colors = colors * (lip_color.to(dev) / reference).clamp(0.3, 1.3)
    opacities = torch.full((len(means),), 0.95, device=dev)
    return Gaussians(means, quats, scales, opacities, colors.clamp(0, 1)), tri, bary
