"""Fitting the morphable head (:mod:`a3d.data.head_basis`) to a reconstruction: identity, scale and pose.

A reconstruction is a cloud of Gaussians framed by :mod:`a3d.core.framing`, so its pupils and mouth sit
on the face anchors. The fit finds the identity coefficients ``c`` [K] and the similarity ``(s, R, t)``
that place the morphable head ``s R (mean + c · shape_basis) + t`` on it, minimising

* anchors: the basis's pupil and mouth landmarks against :data:`a3d.core.framing.FACE_ANCHORS_3D`;
* depth: how far each face vertex (skin, lips, eyelids, brows in front of the ears) lies in front of
  or behind the reconstruction's surface along its camera ray, in depth maps of views around the
  front (matches further than 8 mm, such as a fringe over the forehead, are left out, refreshed
  every few steps);
* silhouettes: outer vertices (not the eyeballs, mouth cavity or tongue) that project outside the
  reconstruction's silhouette in any view;
* a prior ``|c|²`` that keeps the identity near the population (coefficients are ~N(0, 1)).

Everything runs on the reconstruction's device with Adam in float32: 1.7-2.8 s for the bundled model's heads on
one thread of the shared 2-core CPU (BENCHMARKS.md, "Head animation").
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from ..core import framing
from ..core.cameras import Cameras, orbit_cameras
from ..core.gaussians import Gaussians, require_scene
from ..core.rendering import render
from ..data.head_basis import HeadBasis, load_head_basis
from .pose import axis_angle_matrix

__all__ = ["HeadFit", "SurfaceViews", "surface_views", "fit_head", "face_vertex_mask", "outer_vertex_mask"]

_ANCHOR_NAMES = ("right_eye", "left_eye", "mouth")
_VIEW_AZIMUTHS = (-70.0, -35.0, 0.0, 35.0, 70.0, 180.0)
_VIEW_ELEVATIONS = (-15.0, 15.0)
_MATCH_MAX = 0.04  # head units (~8 mm): a vertex further in front of or behind the surface is left out


@dataclass
class HeadFit:
    """The morphable head placed on one reconstruction.

    Attributes:
        identity: [K] identity coefficients (~N(0, 1) over the population).
        scale: [] scale ``s``; rotation: [3, 3] ``R``; translation: [3] ``t``: a basis point ``p`` (its
            unframed coordinates) lands at ``s R p + t`` in the reconstruction's world.
        vertices: [V, 3] the neutral fitted head in the world (no expression).
        report: residuals (head units) and seconds.
    """

    identity: Tensor
    scale: Tensor
    rotation: Tensor
    translation: Tensor
    vertices: Tensor
    report: dict = field(default_factory=dict)

    def expression_offsets(self, basis: HeadBasis, expressions: Tensor) -> Tensor:
        """[F, E] ARKit weights -> [F, V, 3] world-space vertex offsets from :attr:`vertices`."""
        off = torch.einsum("fe,evc->fvc", expressions.to(basis.expr_basis), basis.expr_basis)
        return self.scale * off @ self.rotation.T

    def to(self, device) -> "HeadFit":
        return HeadFit(self.identity.to(device), self.scale.to(device), self.rotation.to(device),
                       self.translation.to(device), self.vertices.to(device), dict(self.report))


@dataclass
class SurfaceViews:
    """What the fit reads from a reconstruction: renders from a few cameras around it.

    Attributes:
        cameras: C cameras; alpha: [C, H, W] silhouettes; depth: [C, H, W] camera-space depth of the
            visible surface (0 where alpha is 0); facing: [C] bool, the views within 40° of the front,
            whose depth the face vertices are matched against.
    """

    cameras: Cameras
    alpha: Tensor
    depth: Tensor
    facing: Tensor


def face_vertex_mask(basis: HeadBasis) -> Tensor:
    """[V] bool: vertices of the visible face (skin, lips, eyelids, brows; in front of the ears, below the
    hairline), which the depth term matches against the reconstruction's surface."""
    r = basis.region
    inner = sum(basis.regions[:, r(k)] for k in ("ears", "eyes", "sockets", "mouth", "tongue", "neck"))
    x, y, z = basis.mean.unbind(-1)
    return (inner < 0.5) & (z > 0.12) & (y < 0.22) & (y > -0.62)


def outer_vertex_mask(basis: HeadBasis) -> Tensor:
    """[V] bool: vertices on the head's outer surface (not eyeballs, eye sockets, mouth cavity or tongue),
    which must project inside the reconstruction's silhouettes."""
    r = basis.region
    inner = sum(basis.regions[:, r(k)] for k in ("eyes", "sockets", "mouth", "tongue"))
    return inner < 0.5


@torch.no_grad()
def surface_views(gaussians: Gaussians, size: int = 96) -> SurfaceViews:
    """Render ``gaussians`` (one scene) from cameras around the front and one from behind: the
    reconstruction's depth maps and silhouettes."""
    cams = Cameras.cat([orbit_cameras(0, elevation=e, size=size, azimuths=_VIEW_AZIMUTHS)
                        for e in _VIEW_ELEVATIONS]).to(gaussians.device)
    out = render(gaussians, cams)
    facing = torch.tensor([abs(a) < 40 for _ in _VIEW_ELEVATIONS for a in _VIEW_AZIMUTHS], device=gaussians.device)
    return SurfaceViews(cams, out.alpha[..., 0], out.depth[..., 0], facing)


def _project(points: Tensor, cams: Cameras) -> tuple[Tensor, Tensor]:
    """[M, 3] world points -> ([C, M, 2] normalised image coordinates in [-1, 1] (grid_sample's), [C, M]
    camera depth)."""
    R, t = cams.viewmats[:, :3, :3], cams.viewmats[:, :3, 3]
    cam = points @ R.transpose(-1, -2) + t[:, None]
    uvw = cam @ cams.Ks.transpose(-1, -2)
    uv = uvw[..., :2] / uvw[..., 2:].clamp_min(1e-6)
    return torch.stack([uv[..., 0] / cams.width * 2 - 1, uv[..., 1] / cams.height * 2 - 1], -1), cam[..., 2]


def fit_head(gaussians: Gaussians, basis: HeadBasis | None = None, *, steps: int = 200,
             views: SurfaceViews | None = None, prior: float = 3e-4) -> HeadFit:
    """Fit the morphable head to one reconstruction (see the module docstring).

    Args:
        gaussians: one scene [N] in a3d's framing (any reconstruction: one photo or several, refined or not).
        basis: the morphable head (default: the bundled one).
        steps: Adam steps.
        views: precomputed :func:`surface_views` (default: rendered here).
        prior: weight of ``|c|² / K`` on the identity coefficients.
    Returns:
        :class:`HeadFit`; ``report`` has the final mean anchor error, the median face-vertex distance to the
        surface, the fraction of outer vertices outside the silhouettes, and the seconds taken.
    """
    require_scene(gaussians)
    start = time.perf_counter()
    dev = gaussians.device
    basis = (basis or load_head_basis()).to(dev)
    views = views or surface_views(gaussians.detach())
    anchors = torch.tensor([framing.FACE_ANCHORS_3D[n] for n in _ANCHOR_NAMES], device=dev)
    lm_idx = [basis.landmark_names.index(n) for n in _ANCHOR_NAMES]
    face = face_vertex_mask(basis)
    outer = outer_vertex_mask(basis)
    # silhouettes blurred a little so that the penalty has a slope a few pixels outside them
    sil = F.avg_pool2d(views.alpha[:, None], 5, stride=1, padding=2)  # [C, 1, H, W]
    K = basis.shape_basis.shape[0]
    identity = torch.zeros(K, device=dev, requires_grad=True)
    log_s = torch.zeros((), device=dev, requires_grad=True)
    rotvec = torch.zeros(3, device=dev, requires_grad=True)
    t = torch.zeros(3, device=dev, requires_grad=True)
    # the rendered surface lies a little in front of the skin it shows (Gaussians have thickness, and
    # expected depth averages over them): one offset along the rays, fitted with the rest
    bias = torch.zeros((), device=dev, requires_grad=True)
    opt = torch.optim.Adam([{"params": [identity], "lr": 0.05},
                            {"params": [log_s, rotvec, t, bias], "lr": 0.005}])

    def place() -> Tensor:
        v = basis.mean + torch.einsum("k,kvc->vc", identity, basis.shape_basis)
        return log_s.exp() * v @ axis_angle_matrix(rotvec).T + t

    front = views.cameras[views.facing]
    front_depth = views.depth[views.facing][:, None]  # [Cf, 1, H, W]
    front_alpha = views.alpha[views.facing][:, None]

    def depth_residual(fv: Tensor) -> tuple[Tensor, Tensor]:
        """[Cf, M] vertex depth minus the surface's depth at its pixel, and where that pixel is solid."""
        uv, z = _project(fv, front)
        d = F.grid_sample(front_depth, uv[:, :, None], align_corners=False)[:, 0, :, 0]
        a = F.grid_sample(front_alpha, uv[:, :, None], align_corners=False)[:, 0, :, 0]
        return z - d, a > 0.95

    near = None
    for step in range(steps):
        verts = place()
        r, solid = depth_residual(verts[face])
        r = r - bias
        if step % 10 == 0:  # which matches count, refreshed as the head moves (far ones: hair, occlusion)
            near = (solid & (r.detach().abs() < _MATCH_MAX)).float()
        depth_term = (r ** 2 * near).sum() / near.sum().clamp_min(1)
        lm = basis.landmarks(verts)[lm_idx]
        anchor_term = ((lm - anchors) ** 2).sum(-1).mean()
        grid = _project(verts[outer], views.cameras)[0][:, :, None]  # [C, M, 1, 2]
        inside = F.grid_sample(sil, grid, align_corners=False, padding_mode="zeros")[:, 0, :, 0]  # [C, M]
        sil_term = ((1 - inside) ** 2).mean()
        loss = depth_term + anchor_term + 1e-3 * sil_term + prior * (identity ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    with torch.no_grad():
        verts = place()
        lm = basis.landmarks(verts)[lm_idx]
        r, solid = depth_residual(verts[face])
        r = r - bias
        d = r.abs()[solid & (r.abs() < _MATCH_MAX)]
        grid = _project(verts[outer], views.cameras)[0][:, :, None]
        inside = F.grid_sample(views.alpha[:, None], grid, align_corners=False)[:, 0, :, 0]
        report = {"anchor_error": round(float((lm - anchors).norm(dim=-1).mean()), 5),
                  "face_depth_median": round(float(d.median()), 5),
                  "depth_bias": round(float(bias), 5),
                  "outside_silhouette": round(float((inside < 0.5).float().mean()), 4),
                  "seconds": round(time.perf_counter() - start, 3)}
        return HeadFit(identity.detach(), log_s.detach().exp(), axis_angle_matrix(rotvec.detach()), t.detach(),
                       verts.detach(), report)
