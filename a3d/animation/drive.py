"""Driving a reconstruction: ARKit expression weights and a head pose -> moved Gaussians, and the presets.

:class:`Rig` holds what :meth:`a3d.Avatar.rig` builds once per reconstruction: the fitted morphable head
(:mod:`.fit`), the Gaussians' binding to it (:mod:`.bind`) and the mouth's interior (:mod:`.mouth`).
:meth:`Rig.deform` turns a batch of frames, each 52 ARKit weights (names in
:data:`ARKIT_NAMES`, the basis's order, which is ARKit's alphabetical order) and an optional head pose
(yaw, pitch, roll in degrees, :mod:`.pose`), into Gaussians [F, N + M].

Presets (:data:`PRESETS`) are short clips of weights over time, for ``a3d animate --preset``: ``smile``,
``blink``, ``surprise`` (each rises, holds and falls back) and ``talk`` (a cycle of syllables: the jaw
opening and closing with rounded and spread lips). :func:`preset_weights` samples one at F frames.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Mapping

import torch
from torch import Tensor

from ..core.gaussians import Gaussians, require_scene
from ..data.head_basis import HeadBasis, load_head_basis
from ..errors import InputError, check_int
from .bind import Binding, bind, move
from .fit import HeadFit, fit_head
from .eyelids import BLINKS, lid_fade, lid_gaussians
from .mouth import mouth_gaussians, mouth_opening
from .pose import pose_axis_angle

__all__ = ["Rig", "build_rig", "expression_tensor", "preset_weights", "PRESETS", "arkit_names"]

PRESETS: dict[str, dict[str, float]] = {
    "neutral": {},
    "smile": {"mouthSmileLeft": 0.9, "mouthSmileRight": 0.9, "cheekSquintLeft": 0.5, "cheekSquintRight": 0.5,
              "eyeSquintLeft": 0.25, "eyeSquintRight": 0.25, "mouthUpperUpLeft": 0.15, "mouthUpperUpRight": 0.15},
    "blink": {"eyeBlinkLeft": 1.0, "eyeBlinkRight": 1.0},
    "surprise": {"browInnerUp": 0.9, "browOuterUpLeft": 0.8, "browOuterUpRight": 0.8, "eyeWideLeft": 0.7,
                 "eyeWideRight": 0.7, "jawOpen": 0.45, "mouthFunnel": 0.2},
    "talk": {},  # a cycle over time: see _talk
}
"""Each preset's weights at its peak (``talk`` varies over time; its peak is a wide syllable)."""

_SYLLABLES = ({"jawOpen": 0.55, "mouthLowerDownLeft": 0.3, "mouthLowerDownRight": 0.3},   # "a"
              {"jawOpen": 0.25, "mouthFunnel": 0.5, "mouthPucker": 0.4},                  # "o"
              {"jawOpen": 0.2, "mouthStretchLeft": 0.4, "mouthStretchRight": 0.4},        # "e"
              {"jawOpen": 0.05, "mouthClose": 0.05, "mouthPressLeft": 0.3, "mouthPressRight": 0.3},  # "m"
              {"jawOpen": 0.35, "mouthSmileLeft": 0.2, "mouthSmileRight": 0.2})           # "i"


def arkit_names(basis: HeadBasis | None = None) -> tuple[str, ...]:
    """The 52 ARKit blendshape names in the basis's (alphabetical) order."""
    return (basis or load_head_basis()).expressions


def expression_tensor(expressions: Mapping[str, float] | Tensor | None, names: tuple[str, ...],
                      device: torch.device | str = "cpu") -> Tensor:
    """A dict {ARKit name: weight}, a [52] or [F, 52] tensor (or None: neutral) -> [F, 52] float weights.

    Raises InputError naming unknown names, wrong shapes and non-finite weights. Weights are clamped to
    [-1, 2] (ARKit's are in [0, 1]; a little beyond exaggerates)."""
    E = len(names)
    if expressions is None:
        return torch.zeros(1, E, device=device)
    if isinstance(expressions, Mapping):
        unknown = sorted(set(expressions) - set(names))
        if unknown:
            raise InputError(f"expressions: unknown ARKit names {unknown[:5]} (expected names like "
                             f"'jawOpen', 'mouthSmileLeft'; all 52 in a3d.animation.drive.arkit_names())")
        w = torch.zeros(1, E, device=device)
        for k, v in expressions.items():
            w[0, names.index(k)] = float(v)
    else:
        w = torch.as_tensor(expressions, dtype=torch.float32, device=device)
        if w.dim() == 1:
            w = w[None]
        if w.dim() != 2 or w.shape[1] != E:
            raise InputError(f"expressions: expected [{E}] or [F, {E}] weights, got shape {tuple(w.shape)}")
    if not torch.isfinite(w).all():
        raise InputError("expressions: weights must be finite")
    return w.clamp(-1, 2)


def _envelope(t: Tensor) -> Tensor:
    """0 → 1 → 0 over t in [0, 1]: a quarter rising, half holding, a quarter falling (smooth)."""
    up = ((t / 0.25).clamp(0, 1), ((1 - t) / 0.25).clamp(0, 1))
    x = torch.minimum(*up)
    return x * x * (3 - 2 * x)


def preset_weights(name: str, frames: int, names: tuple[str, ...]) -> Tensor:
    """[frames, 52] weights of preset ``name`` over time (see :data:`PRESETS`)."""
    if name not in PRESETS:
        raise InputError(f"preset: expected one of {', '.join(PRESETS)}, got {name!r}")
    check_int(frames, "frames", 1, 100_000)
    t = torch.linspace(0, 1, frames)
    out = torch.zeros(frames, len(names))
    if name == "talk":  # syllables of ~0.2 s at 30 fps, each rising and falling
        per = 6
        for f in range(frames):
            syl = _SYLLABLES[(f // per) % len(_SYLLABLES)]
            phase = math.sin(math.pi * ((f % per) + 0.5) / per)
            for k, v in syl.items():
                out[f, names.index(k)] = v * phase
        return out * _envelope(t)[:, None].clamp_min(0.3 if frames > 1 else 1)
    for k, v in PRESETS[name].items():
        out[:, names.index(k)] = v
    if name == "blink":  # two blinks, each ~0.25 of the clip
        x = (t * 2) % 1
        return out * (1 - ((x - 0.5).abs() / 0.25).clamp(0, 1))[:, None]
    return out * _envelope(t)[:, None] if frames > 1 else out


@dataclass
class Rig:
    """A reconstruction bound to its fitted morphable head (what :meth:`a3d.Avatar.rig` returns).

    Attributes:
        gaussians: the reconstruction's Gaussians [N] followed by the mouth's [M] (rest pose).
        binding: their :class:`a3d.animation.bind.Binding` [N + M].
        fit: the :class:`a3d.animation.fit.HeadFit`.
        basis: the morphable head.
        num_mouth: M, the mouth's Gaussians (after the reconstruction's N).
        seconds: time to build (fit, bind, mouth, lids).
        lid_side: [L] the closing lids' Gaussians (the last L, :mod:`a3d.animation.eyelids`): 0 right, 1 left.
    """

    gaussians: Gaussians
    binding: Binding
    fit: HeadFit
    basis: HeadBasis
    num_mouth: int
    seconds: float
    lid_side: Tensor | None = None

    @property
    def num_lids(self) -> int:
        return 0 if self.lid_side is None else len(self.lid_side)

    @property
    def num_own(self) -> int:
        """N: the reconstruction's own Gaussians (the first N)."""
        return self.gaussians.num_gaussians - self.num_mouth - self.num_lids

    @property
    def names(self) -> tuple[str, ...]:
        return self.basis.expressions

    def vertices(self, expressions: Tensor) -> Tensor:
        """[F, 52] weights -> [F, V, 3] the fitted head's vertices with those expressions."""
        return self.fit.vertices + self.fit.expression_offsets(self.basis, expressions)

    def deform(self, expressions: Mapping[str, float] | Tensor | None = None,
               head_pose: Tensor | None = None, mouth: bool = True) -> Gaussians:
        """Frames of weights (see :func:`expression_tensor`) and head poses [F, 3] or [3] (yaw, pitch, roll,
        degrees; :mod:`a3d.animation.pose`) -> Gaussians [F, N + M + L] (``mouth=False``: [F, N], the
        reconstruction's own, without the mouth's interior and the closing lids). A batch of one is broadcast
        against the other's frames."""
        dev = self.gaussians.device
        w = expression_tensor(expressions, self.names, dev)
        rotvec = None
        if head_pose is not None:
            hp = torch.as_tensor(head_pose, dtype=torch.float32, device=dev)
            hp = hp[None] if hp.dim() == 1 else hp
            if hp.dim() != 2 or hp.shape[1] != 3 or not torch.isfinite(hp).all():
                raise InputError(f"head_pose: expected finite (yaw, pitch, roll) degrees, [3] or [F, 3], got "
                                 f"shape {tuple(hp.shape)}")
            if len(hp) != len(w) and 1 not in (len(hp), len(w)):
                raise InputError(f"head_pose: {len(hp)} frames do not match the expressions' {len(w)}")
            if len(w) == 1:
                w = w.expand(len(hp), -1)
            rotvec = pose_axis_angle(hp).expand(len(w), 3)
        g, b = self.gaussians, self.binding
        n = self.num_own
        if not mouth:
            g, b = g.index(slice(0, n)), Binding(*(getattr(b, k)[:n] for k in Binding.__dataclass_fields__))
        with torch.no_grad():
            out = move(g, b, self.basis, self.fit.vertices, self.vertices(w), rotvec)
            if mouth and (self.num_mouth or self.num_lids):
                op = out.opacities.clone()
                m = slice(n, n + self.num_mouth)  # the interior shows only as far as the lips part
                op[:, m] = op[:, m] * ((mouth_opening(self.basis, w) - 0.02) / 0.12).clamp(0, 1)[:, None]
                if self.num_lids:  # the lids' skin only as the eyes close
                    lids = slice(n + self.num_mouth, None)
                    op[:, lids] = op[:, lids] * lid_fade(self.basis, w)[:, self.lid_side]
                out = Gaussians(out.means, out.quats, out.scales, op, out.colors, out.sh_rest)
        return out


def build_rig(gaussians: Gaussians, basis: HeadBasis | None = None, *, mouth: bool = True,
              fit: HeadFit | None = None) -> Rig:
    """Fit the morphable head to one reconstruction [N], bind its Gaussians and add the mouth's interior."""
    start = time.perf_counter()
    require_scene(gaussians)
    g = gaussians.detach()
    basis = (basis or load_head_basis()).to(g.device)
    fit = fit or fit_head(g, basis)
    binding = bind(g, basis, fit.vertices)
    num_mouth, lid_side = 0, None
    if mouth:
        own = g
        lips = _lip_color(g, binding, basis)
        mg, tri, bary = mouth_gaussians(basis, fit.vertices, lips)
        if g.sh_rest is not None:
            mg = Gaussians(mg.means, mg.quats, mg.scales, mg.opacities, mg.colors,
                           mg.colors.new_zeros(len(mg.means), g.sh_rest.shape[-2], 3))
        # bound where they were sampled, in their triangle's frame (their rotation is that frame)
        mb = Binding(tri, bary, torch.zeros_like(mg.means), torch.eye(3, device=g.device).expand(len(tri), 3, 3)
                     .clone(), torch.ones(len(tri), device=g.device), torch.ones(len(tri), device=g.device))
        g, binding, num_mouth = Gaussians.cat([g, mg]), Binding.cat([binding, mb]), len(mg.means)
        skin = _eye_skin(own, binding, basis)
        offset = min(max(float(fit.report.get("depth_bias", 0.0)), 0.0), 0.03) + 0.002
        shut = torch.zeros(1, len(basis.expressions), device=g.device)
        shut[0, [basis.expressions.index(n) for n in BLINKS]] = 1.0
        lg, tri, bary, local, lid_side = lid_gaussians(basis, fit.vertices, skin, offset,
                                                       closed=fit.vertices + fit.expression_offsets(basis, shut)[0])
        if g.sh_rest is not None:
            lg = Gaussians(lg.means, lg.quats, lg.scales, lg.opacities, lg.colors,
                           lg.colors.new_zeros(len(lg.means), g.sh_rest.shape[-2], 3))
        lb = Binding(tri, bary, local, torch.eye(3, device=g.device).expand(len(tri), 3, 3).clone(),
                     torch.ones(len(tri), device=g.device), torch.ones(len(tri), device=g.device))
        g, binding = Gaussians.cat([g, lg]), Binding.cat([binding, lb])
    return Rig(g, binding, fit, basis, num_mouth, time.perf_counter() - start, lid_side)


def _eye_skin(g: Gaussians, binding: Binding, basis: HeadBasis) -> Tensor:
    """[2, 3] the skin colour for the right and left lids: the median colour of the opaque Gaussians on the skin
    just below the eyes, on the face's side of the head (no brows or lashes there; the median passes over a
    glasses frame), the face's where there are none (one colour for both sides)."""
    r = basis.region
    n = g.num_gaussians
    skin = basis.regions[:, r("skin")][basis.faces[binding.triangle[:n]]].mean(1) > 0.5
    ok = skin & (binding.offset[:n].norm(dim=-1) < 0.01) & (g.opacities > 0.5)
    eyes = basis.landmarks(basis.mean)[[basis.landmark_names.index("right_eye"),
                                        basis.landmark_names.index("left_eye")]]  # rest pose, framed
    sel = torch.zeros_like(ok)
    for e in eyes:  # both eyes' samples together: one side may be under a frame or in shadow
        dx, dy, dz = g.means[:, 0] - e[0], g.means[:, 1] - e[1], g.means[:, 2] - e[2]
        # on the face only: the back of the head has skin (under the hair) at the same height and width
        sel |= ok & (dx.abs() < 0.05) & (dy < -0.04) & (dy > -0.1) & (dz > -0.1)
    sel = sel if int(sel.sum()) >= 10 else ok
    colour = g.colors[sel].median(0).values if bool(sel.any()) else g.colors.new_tensor([0.8, 0.6, 0.5])
    return colour.expand(2, 3).clone()


def _lip_color(g: Gaussians, binding: Binding, basis: HeadBasis) -> Tensor | None:
    """[3] the mean colour of the opaque Gaussians bound close to the lips, or None if there are none."""
    lips = basis.regions[:, basis.region("lips")][basis.faces[binding.triangle]].mean(1) > 0.5
    sel = lips & (binding.offset.norm(dim=-1) < 0.01) & (g.opacities > 0.5)
    return g.colors[sel].mean(0) if bool(sel.any()) else None
