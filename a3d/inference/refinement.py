"""Per-subject refinement: fit a reconstructed head's Gaussians to the photos it was made from.

HQ-Head (§3.5) follows its feed-forward network with a per-subject optimisation of about 400 s. The
same idea in seconds: the feed-forward Gaussians are already a good start, so a few dozen Adam steps
on their colours, opacities, scales and small position offsets, through the project's own
rasterizer backward (CUDA or the C++ CPU kernel), fit every given photo closely.

The objective, for the given canonical views G and the others U:

    Σ_{v∈G} [ L2_w(render_v, photo_v) + λ_lpips · LPIPS(render_v, photo_v) ]
  + λ_anchor · Σ_{u∈U} L2(render_u, initial_render_u)
  + λ_symmetry · L2(render_left, mirror(render_right))         (only when neither side is given)
  + λ_drift · mean over Gaussians of |Δ colour logit|² + |Δ opacity logit|²
  + λ_identity · mean over yaw ∈ {±30°, ±60°} of d(render_yaw, photo_front)   (with the front photo)

d is dlib's face-descriptor distance (:class:`a3d.perception.identity.ViewIdentity`: crops at the cameras'
projected eyes and mouth, differentiable with respect to the renders), HQ-Head's identity guidance of the
views the photo does not show; it needs the ``eval`` extra's weights and is skipped, with a warning, without
them.

L2_w weights the photo's foreground (its matte) fully and the background by ``background_weight``,
so a rough matte edge does not pull hair into the background. The anchor keeps what no photo sees
close to the feed-forward prediction (refinement must not make unseen views worse); the symmetry
prior keeps the two unseen sides consistent. The drift term matters because Adam normalises each
parameter's step: a Gaussian the photo barely sees (behind the surface, at a grazing angle) would
otherwise move as fast as a visible one and show as coloured speckles from in-between angles; with
the drift term its tiny photo gradient is outweighed and it stays near the network's prediction,
while a visible Gaussian still moves as far as its pixel error asks. Position offsets are bounded (``max_offset`` head
units, through a tanh, ~½ pixel at 128²) so the geometry stays the network's: the photo pulls a Gaussian to
wherever its colour fits best in that one view, and a bound of ±0.02 (~2 px) lets that show from every other angle
(held-out synthetic views end 0.14 dB and 0.010 LPIPS worse than before refinement; docs/faithful_heads.md). Nothing is
random: the result is a function of the inputs (up to the float atomics of the CUDA backward).
"""
from __future__ import annotations

import dataclasses
import time
import warnings
from dataclasses import dataclass

import torch
from torch import Tensor

from ..core import framing
from ..core.cameras import Cameras
from .. import limits
from ..errors import InputError
from ..core.gaussians import Gaussians
from ..perception.lpips import lpips
from ..core.rendering import render

__all__ = ["RefineSettings", "refine_gaussians", "IDENTITY_AZIMUTHS"]

IDENTITY_AZIMUTHS: tuple[float, ...] = (30.0, -30.0, 60.0, -60.0)
"""Yaws (degrees, elevation 0) of the renders the identity term compares with the front photo."""

# RefineSettings fields with a range of their own in a3d.limits (other float fields are loss weights)
_FIELD_LIMITS = {"steps": "refine_steps", "lr": "refine_lr", "background_weight": "refine_background_weight",
                 "max_offset": "refine_max_offset", "anchor_every": "refine_anchor_every"}


@dataclass
class RefineSettings:
    """Knobs of :func:`refine_gaussians`; the defaults are the measured ones (docs/faithful_heads.md).

    steps: Adam steps. lr: learning rate of the colour and opacity logits (scales and offsets use
    fractions of it). lambda_lpips, lambda_anchor, lambda_symmetry: weights of the objective's terms
    (module docstring). background_weight: weight of the photo's background pixels in the L2.
    max_offset: bound of each Gaussian's position offset, head units. anchor_every: render the anchor
    views (and the symmetry prior, and the identity views) every this many steps (1: every step).
    lambda_identity: weight of the identity term (the mean dlib distance of the renders at
    :data:`IDENTITY_AZIMUTHS` to the front photo; 0: off). Off by default: on three photos λ 0.02 halves dlib's
    distance at ±30°-±60° by painting faint colour flecks on the cheeks that the network reads as identity, and
    costs about 4 s a step on a CPU (docs/faithful_heads.md, "Identity guidance").

    LPIPS is off by default: on the held-out synthetic views it made refinement no better (λ 0.05 and 0.2
    against 0: 19.31 dB all three, LPIPS 0.078–0.079) and costs 0.6 s a step on a CPU.
    :meth:`for_device` gives the defaults a device can afford: on a CPU the anchors are rendered every 4th
    step (as good on those views: 19.34 dB against 19.31 every step).
    """

    steps: int = 40
    lr: float = 0.1
    lambda_lpips: float = 0.0
    lambda_anchor: float = 0.5
    lambda_symmetry: float = 0.05
    lambda_drift: float = 0.2
    background_weight: float = 0.25
    max_offset: float = 0.005
    anchor_every: int = 1
    lambda_identity: float = 0.0

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> "RefineSettings":
        """Check every field against :data:`a3d.limits.LIMITS` (an InputError naming the field); returns self.
        :func:`refine_gaussians` calls it too, so a field changed after construction is checked where it is used.
        Float fields without a row of their own are loss weights (finite, in [0, 1000]); bool fields must be bools."""
        for f in dataclasses.fields(self):
            value, name = getattr(self, f.name), f"RefineSettings.{f.name}"
            kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", "")
            if kind == "bool":
                if not isinstance(value, bool):
                    raise InputError(f"{name}: expected True or False, got {value!r}")
            elif f.name in _FIELD_LIMITS or kind in ("int", "float"):
                limits.check(_FIELD_LIMITS.get(f.name, "refine_weight"), value, name)
        return self


    @classmethod
    def for_device(cls, device: torch.device | str, steps: int = 40) -> "RefineSettings":
        """The defaults for ``device`` with ``steps`` steps: as is on a GPU; on a CPU with the anchors every
        4th step (about 0.35 s a step for the tiny preset)."""
        if torch.device(device).type == "cpu":
            return cls(steps=steps, anchor_every=4)
        return cls(steps=steps)


def _logit(x: Tensor, eps: float = 1e-4) -> Tensor:
    return torch.logit(x.clamp(eps, 1 - eps))


def refine_gaussians(gaussians: Gaussians, cameras: Cameras, photos: Tensor, given: Tensor,
                     masks: Tensor | None = None, settings: RefineSettings | None = None,
                     progress: bool = False) -> tuple[Gaussians, dict]:
    """Fit ``gaussians`` to the given photos of the canonical views.

    Args:
        gaussians: Gaussians [N] of one head (float32), any device with a rasterizer backward.
        cameras: the 4 canonical cameras (front, left, right, back) of the photos' resolution S.
        photos: [4, 3, S, S] in [0, 1], composited over :data:`a3d.core.framing.BACKGROUND`; read where ``given``.
        given: [4] bool, which views have a photo (at least one).
        masks: [4, S, S] foreground mattes in [0, 1] (None: every pixel counts fully).
        settings: :class:`RefineSettings` (None: the defaults).
        progress: show a progress bar.
    Returns:
        (refined Gaussians [N], a report: steps, seconds, and the photo loss before and after).
    """
    from ..core.progress import progress_bar

    if settings is not None and not isinstance(settings, RefineSettings):
        raise InputError(f"settings: expected a RefineSettings, got {type(settings).__name__}")
    s = (settings if settings is not None else RefineSettings()).validate()  # fields may have changed since
    if gaussians.means.dim() != 2:
        raise InputError(f"gaussians: expected one head [N], got batch shape {tuple(gaussians.batch_shape)}")
    if len(cameras) != 4:
        raise InputError(f"cameras: expected the 4 canonical cameras, got {len(cameras)}")
    S = cameras.width
    if photos.shape != (4, 3, S, S):
        raise InputError(f"photos: expected [4, 3, {S}, {S}], got {tuple(photos.shape)}")
    given = torch.as_tensor(given, dtype=torch.bool).cpu()
    if given.shape != (4,) or not bool(given.any()):
        raise InputError(f"given: expected [4] bools with at least one True, got {given.tolist()}")
    dev = gaussians.device
    g0 = gaussians.detach().float()
    photos = photos.to(dev, torch.float32)
    bg = framing.BACKGROUND
    seen = [v for v in range(4) if given[v]]
    unseen = [v for v in range(4) if not given[v]]
    weight = torch.ones(4, 1, S, S, device=dev)
    if masks is not None:
        m = masks.to(dev, torch.float32)[:, None]
        weight = m + s.background_weight * (1 - m)
    cams_seen = cameras[seen].to(dev)
    cams_unseen = cameras[unseen].to(dev) if unseen else None
    symmetric = not given[1] and not given[2] and s.lambda_symmetry > 0
    start = time.perf_counter()
    identity, id_cams, id_report = _identity_term(s, cameras, photos, given) if s.lambda_identity > 0 else (None,) * 3
    with torch.no_grad():
        anchors = render(g0, cams_unseen, bg).rgb if unseen else None  # [U, S, S, 3]

    # the optimised values, in unbounded coordinates
    color0, opacity0 = _logit(g0.colors), _logit(g0.opacities)
    color = color0.clone().requires_grad_(True)
    opacity = opacity0.clone().requires_grad_(True)
    log_scale = g0.scales.clamp_min(1e-8).log().requires_grad_(True)
    offset = torch.zeros_like(g0.means, requires_grad=True)
    optim = torch.optim.Adam([{"params": [color, opacity], "lr": s.lr},
                              {"params": [log_scale], "lr": 0.2 * s.lr},
                              {"params": [offset], "lr": 0.5 * s.lr}])

    def current() -> Gaussians:
        return Gaussians(means=g0.means + s.max_offset * torch.tanh(offset), quats=g0.quats,
                         scales=log_scale.exp(), opacities=torch.sigmoid(opacity), colors=torch.sigmoid(color))

    target = photos[seen].permute(0, 2, 3, 1)  # [G, S, S, 3]
    w = weight[seen].permute(0, 2, 3, 1)  # [G, S, S, 1]

    def photo_loss(rgb: Tensor) -> tuple[Tensor, Tensor]:
        l2 = (w * (rgb - target) ** 2).mean()
        lp = lpips(rgb.permute(0, 3, 1, 2), target.permute(0, 3, 1, 2)).mean() if s.lambda_lpips > 0 else l2 * 0
        return l2, lp

    with torch.no_grad():
        l2_before, _ = photo_loss(render(g0, cams_seen, bg).rgb)
        if identity is not None:
            id_report["before"] = identity(_nchw(render(g0, id_cams, bg).rgb)).tolist()
    for step in progress_bar(range(s.steps), desc="refine", unit="step", disable=not progress):
        g = current()
        rgb_seen = render(g, cams_seen, bg).rgb
        l2, lp = photo_loss(rgb_seen)
        loss = l2 + s.lambda_lpips * lp
        if unseen and (s.lambda_anchor > 0 or symmetric) and step % s.anchor_every == 0:
            rgb_unseen = render(g, cams_unseen, bg).rgb
            loss = loss + s.lambda_anchor * ((rgb_unseen - anchors) ** 2).mean()
            if symmetric:  # left (camera on +x) mirrored is the right view of a symmetric head
                left, right = rgb_unseen[unseen.index(1)], rgb_unseen[unseen.index(2)]
                loss = loss + s.lambda_symmetry * ((left - right.flip(1)) ** 2).mean()
        if identity is not None and step % s.anchor_every == 0:
            loss = loss + s.lambda_identity * identity(_nchw(render(g, id_cams, bg).rgb)).mean()
        if s.lambda_drift > 0:  # keeps what the photos barely see where it was (see the module docstring)
            drift = ((color - color0) ** 2).sum(-1) + (opacity - opacity0) ** 2
            loss = loss + s.lambda_drift * drift.mean()
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
    with torch.no_grad():
        out = current().detach()
        l2_after, _ = photo_loss(render(out, cams_seen, bg).rgb)
        if identity is not None:
            id_report["after"] = identity(_nchw(render(out, id_cams, bg).rgb)).tolist()
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    report = {"steps": s.steps, "seconds": round(time.perf_counter() - start, 4),
              "views": [framing.CANONICAL_VIEWS[v] for v in seen],
              "photo_l2_before": float(l2_before), "photo_l2_after": float(l2_after),
              "settings": {k: v for k, v in vars(s).items()}}
    if id_report is not None:
        report["identity"] = id_report
    return out, report


def _nchw(rgb: Tensor) -> Tensor:
    """Renders [V, H, W, 3] -> [V, 3, H, W] in [0, 1]."""
    return rgb.permute(0, 3, 1, 2).clamp(0, 1)


def _identity_term(s: RefineSettings, cameras: Cameras, photos: Tensor, given: Tensor):
    """The identity term's pieces: (:class:`a3d.perception.identity.ViewIdentity` of the front photo at
    :data:`IDENTITY_AZIMUTHS`, those cameras (the canonical cameras' radius, field of view and size), the report's
    entry with the distances before refinement), or (None, None, {"skipped": why}) with a warning when there is
    no front photo or the identity weights are not installed."""
    from ..core.cameras import focal_to_fov, orbit_cameras
    from ..perception import identity as ident

    why = None
    if not bool(given[0]):
        why = "it compares the renders with the front photo, and none was given"
    elif not ident.has_identity_model():
        try:
            ident.model_path()
        except ident.IdentityModelMissing as e:
            why = str(e)
    if why is not None:
        warnings.warn(f"refinement: the identity term (lambda_identity {s.lambda_identity:g}) is skipped: {why}",
                      RuntimeWarning, stacklevel=3)
        return None, None, {"skipped": why}
    dev = photos.device
    S = cameras.width
    radius = float(torch.linalg.vector_norm(cameras.viewmats[0, :3, 3]))
    fov = focal_to_fov(float(cameras.Ks[0, 1, 1]), S)
    cams = orbit_cameras(len(IDENTITY_AZIMUTHS), radius=radius, fov=fov, size=S, azimuths=IDENTITY_AZIMUTHS)
    term = ident.ViewIdentity(photos[0], cams.viewmats, cams.Ks, ident.cached_embedder(str(dev)))
    return term, cams.to(dev), {"azimuths": list(IDENTITY_AZIMUTHS)}


def settings_from(refine: bool | int | RefineSettings | None, device: torch.device | str = "cuda"
                  ) -> RefineSettings | None:
    """What ``reconstruct(refine=...)`` accepts → settings, or None for no refinement:
    False/None/0 → none; True → the defaults for ``device`` (:meth:`RefineSettings.for_device`); an int →
    those with that many steps; a RefineSettings as is."""
    if refine is None or refine is False:
        return None
    if refine is True:
        return RefineSettings.for_device(device)
    if isinstance(refine, RefineSettings):
        return refine.validate()
    if isinstance(refine, int):
        limits.check("refine_steps", refine, "refine")
        return None if refine == 0 else RefineSettings.for_device(device, steps=refine)
    raise InputError(f"refine: expected a bool, a number of steps or a RefineSettings, got {refine!r}")
