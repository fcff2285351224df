"""Synthetic talking clips with known weights, and the driver's blink calibration measured on them.

:func:`talking_clip` drives a synthetic head (:mod:`a3d.data.synth`, no accessories) with known ARKit weights
and head turns and renders it from the front: the jaw opening and closing twice, a smile rising and falling,
both eyes blinking, the inner brows raised, ±15° of yaw and ±5° of pitch. ``bench/bench_animate.py`` measures
expression transfer on the clip of seed 3; :func:`eye_closure_levels` measures, on clips of other seeds
(:data:`CALIBRATION_SEEDS`), how closed open and closed eyes read, which sets the driver's
:data:`a3d.animation.driver.EYE_CLOSED`.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = ["talking_clip", "eye_closure_levels", "CALIBRATION_SEEDS"]

CALIBRATION_SEEDS = (11, 12, 13)
"""The synthetic heads :data:`a3d.animation.driver.EYE_CLOSED` was measured on (not the bench's seed 3)."""


def talking_clip(frames: int = 48, seed: int = 3, size: int = 256,
                 num_gaussians: int = 60_000) -> tuple[list[np.ndarray], Tensor, Tensor]:
    """A synthetic head driven with known weights and head turns, rendered from the front on white.

    Returns:
        (``frames`` [size, size, 3] uint8 images, [F, 52] weights in the basis's order, [F, 3] head poses:
        yaw, pitch, roll in degrees).
    """
    from ..core.cameras import canonical_cameras
    from ..core.rendering import render, to_uint8
    from ..data.synth import ACCESSORIES, SyntheticHeads
    from .drive import build_rig

    gen = SyntheticHeads("cpu", seed=seed, num_gaussians=num_gaussians, image_size=64, num_random_views=0)
    g = gen.sample(1, overrides={**ACCESSORIES["none"], "expression": "neutral"}).gaussians.scene(0)
    rig = build_rig(g, gen.basis)
    names = rig.names
    t = torch.arange(frames) / frames
    w = torch.zeros(frames, len(names))
    w[:, names.index("jawOpen")] = 0.5 * (1 - torch.cos(6 * torch.pi * t)) * (t < 0.66)
    for side in ("Left", "Right"):
        w[:, names.index("mouthSmile" + side)] = 0.9 * torch.sin(torch.pi * t) ** 2
        w[:, names.index("eyeBlink" + side)] = ((t > 0.7) & (t < 0.8)).float()
    w[:, names.index("browInnerUp")] = 0.7 * torch.sin(torch.pi * t / 0.3) * (t < 0.3)
    poses = torch.stack([15 * torch.sin(2 * torch.pi * t), 5 * torch.sin(4 * torch.pi * t), torch.zeros(frames)], -1)
    cam = canonical_cameras(size)[0]
    out: list[np.ndarray] = []
    with torch.no_grad():
        for s in range(0, frames, 8):
            moved = rig.deform(w[s:s + 8], poses[s:s + 8])
            out += list(to_uint8(render(moved, cam, (1.0, 1.0, 1.0)).rgb[:, 0]))
    return out, w, poses


def eye_closure_levels(seeds: tuple[int, ...] = CALIBRATION_SEEDS, frames: int = 48) -> dict[str, float]:
    """How closed the eyes read (:func:`a3d.animation.driver.relative_closure`: 0 for the clip's usual open eye,
    1 for skin-bright) over the :func:`talking_clip` of each seed: the 95th percentile and the largest value over
    open-eyed frames, the smallest over closed-eyed ones (both eyes). Half a minute on one CPU thread for three
    seeds."""
    from ..data.head_basis import load_head_basis
    from .driver import relative_closure
    from .eyelids import BLINKS
    from .face_mesh import track

    names = load_head_basis().expressions
    opened, closed = [], []
    for seed in seeds:
        images, truth, _ = talking_clip(frames, seed)
        rel = relative_closure(images, track(images))
        shut = truth[:, [names.index(n) for n in BLINKS]].numpy() > 0.5
        opened.append(rel[~shut])
        closed.append(rel[shut])
    o, c = np.concatenate(opened), np.concatenate(closed)
    o, c = o[np.isfinite(o)], c[np.isfinite(c)]
    return {"open_p95": round(float(np.percentile(o, 95)), 3), "open_max": round(float(o.max()), 3),
            "closed_min": round(float(c.min()), 3)}
