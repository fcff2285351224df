"""Confidence per Gaussian: how much of the head the given photos showed, and how much the network guessed.

A Gaussian is *seen* by a given photo when its centre projects inside that photo's camera, onto the
head (the photo's matte, where there is one) and no deeper than the surface the reconstruction itself
renders there: the depth test uses the network's own Gaussians, so a cheek hidden behind the nose, the
back of the head and the far side of a turned face count as guessed. Per given view::

    seen_v(i) = inside · alpha_v(p) · matte_v(p) · clamp(2 − (z_i − D_v(p)) / tol_i, 0, 1)

with p the pixel the centre falls in, z_i its depth, D_v and alpha_v the rendered depth and opacity there,
and tol_i = 0.02 head units + the Gaussian's largest radius (a Gaussian of the visible surface lies within
its own size of the rendered depth; the test fades to 0 over one more tolerance). The confidence is the
largest seen_v over the given views, in [0, 1]: 1 for what a photo showed, 0 for what was guessed.

:func:`a3d.io.ply.save_ply` stores it as an extra vertex property ``confidence`` (viewers ignore unknown
properties); :func:`a3d.io.ply.load_confidence` reads it back; ``Avatar.confidence`` computes it; the demo
tints guessed regions with :func:`tint_guessed`.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from ..core.cameras import Cameras
from ..core.gaussians import Gaussians, require_scene
from ..errors import InputError

__all__ = ["gaussian_confidence", "tint_guessed", "SURFACE_TOLERANCE"]

SURFACE_TOLERANCE = 0.02
"""Head units a Gaussian may lie behind the rendered surface (plus its own radius) and still count as seen."""


def gaussian_confidence(gaussians: Gaussians, cameras: Cameras, given: Tensor | None = None,
                        masks: Tensor | None = None) -> Tensor:
    """[N] in [0, 1]: how much each Gaussian of one scene was seen by the given photos (module docstring).

    Args:
        gaussians: one scene [N] (no batch dims).
        cameras: the photos' cameras, viewmats [V, 4, 4] (an Avatar's canonical cameras).
        given: [V] bool, which cameras had a photo (default: the first only, the front).
        masks: [V, H, W] mattes in [0, 1] of the photos (ones where unknown), or None.
    """
    from ..core.rendering import render

    require_scene(gaussians)
    V = len(cameras)
    if given is None:
        given = torch.zeros(V, dtype=torch.bool)
        given[0] = True
    given = torch.as_tensor(given, dtype=torch.bool).cpu()
    if given.shape != (V,):
        raise InputError(f"given: expected [{V}] bools, got shape {tuple(given.shape)}")
    g = gaussians.detach().float()
    views = torch.nonzero(given)[:, 0]
    cams = cameras[views].to(g.device)
    with torch.no_grad():
        out = render(g, cams)
    H, W = cameras.height, cameras.width
    vm, K = cams.viewmats.float(), cams.Ks.float()
    cam = g.means @ vm[:, :3, :3].transpose(-1, -2) + vm[:, None, :3, 3]  # [v, N, 3]
    z = cam[..., 2]
    uv = (cam @ K.transpose(-1, -2))[..., :2] / z.clamp_min(1e-6)[..., None]
    px, py = uv[..., 0].floor().long(), uv[..., 1].floor().long()
    inside = (z > 1e-6) & (px >= 0) & (px < W) & (py >= 0) & (py < H)
    px, py = px.clamp(0, W - 1), py.clamp(0, H - 1)
    v_idx = torch.arange(len(views), device=g.device)[:, None]
    depth = out.depth[..., 0][v_idx, py, px]
    alpha = out.alpha[..., 0][v_idx, py, px]
    weight = alpha
    if masks is not None:
        m = torch.as_tensor(masks, dtype=torch.float32).to(g.device)[views.to(g.device)]
        if m.shape[-2:] != (H, W):
            raise InputError(f"masks: expected [{V}, {H}, {W}], got {tuple(masks.shape)}")
        weight = weight * m[v_idx, py, px]
    tol = SURFACE_TOLERANCE + g.scales.max(-1).values
    front = (2.0 - (z - depth) / tol).clamp(0.0, 1.0)
    seen = torch.where(inside, weight * front, torch.zeros_like(front))
    return seen.max(0).values.clamp(0.0, 1.0) if len(views) else torch.zeros(g.num_gaussians, device=g.device)


def tint_guessed(gaussians: Gaussians, confidence: Tensor, color: Sequence[float] = (1.0, 0.0, 0.75),
                 strength: float = 0.75) -> Gaussians:
    """The same Gaussians with colours pulled toward ``color`` (magenta) by ``strength · (1 − confidence)``:
    what the photos showed keeps its colour, what was guessed turns magenta. Higher SH are dropped."""
    c = torch.as_tensor(color, dtype=gaussians.colors.dtype, device=gaussians.colors.device)
    w = (strength * (1.0 - confidence.to(gaussians.colors))).clamp(0, 1)[..., None]
    return Gaussians(gaussians.means, gaussians.quats, gaussians.scales, gaussians.opacities,
                     gaussians.colors * (1 - w) + c * w)
