"""The person matte of a photo and the colour of the person behind it.

* :func:`segment_person`: MediaPipe's selfie segmentation (256², coarse) upsampled and refined by a guided
  filter on the photo, so the edge follows hair and shoulders rather than the 256² grid.
* :func:`estimate_foreground`: where the matte is partial (hair, the shoulders' edge) a pixel mixes the
  person with the background, I = α F + (1 − α) B. Compositing I itself over a new background keeps the old
  background's colour in the fringe (blue specks along white hair in front of a blue curtain). The
  foreground colour F is estimated instead, by the blur-fusion estimator of Forte and Pitié ("Approximate
  Fast Foreground Colour Estimation", ICIP 2021): local means of the foreground and background weighted by
  α and 1 − α, then each pixel's F corrected so that α F + (1 − α) B reproduces it; two passes, a wide
  then a narrow window. Measured in BENCHMARKS.md ("Matte edges"). (pymatting's multilevel estimator would
  bring numba and llvmlite, 64 MB of wheels and a compile at first use, for a 256² crop.)
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .mediapipe import SEGMENTER, run_model

__all__ = ["person_probability", "segment_person", "estimate_foreground", "composite", "SEGMENT_SIZE"]

SEGMENT_SIZE = 256
"""The selfie segmenter's input side, pixels."""


def person_probability(rgb: np.ndarray) -> np.ndarray:
    """The selfie segmenter's raw person probability [256, 256] in [0, 1] for ``rgb`` [H, W, 3] in [0, 1]
    (resized to 256², aspect not kept)."""
    x = torch.from_numpy(np.ascontiguousarray(rgb, np.float32)).permute(2, 0, 1)[None]
    small = F.interpolate(x, size=(SEGMENT_SIZE, SEGMENT_SIZE), mode="bilinear", antialias=True, align_corners=False)
    (prob,) = run_model(SEGMENTER, small[0].permute(1, 2, 0).numpy()[None])  # input RGB in [0, 1]
    return np.clip(prob[0, :, :, 0], 0.0, 1.0)


def segment_person(rgb: np.ndarray) -> np.ndarray:
    """Foreground (person) matte [H, W] in [0, 1] for ``rgb`` [H, W, 3] in [0, 1].

    MediaPipe selfie segmentation at 256², upsampled, refined with a guided filter whose guide is
    the photo (so the edge follows hair and shoulders rather than the 256² grid), then softly
    thresholded (smoothstep over 0.3-0.7) to clean the fringe.
    """
    H, W = rgb.shape[:2]
    p = torch.from_numpy(person_probability(rgb))[None, None]
    p = F.interpolate(p, size=(H, W), mode="bilinear", align_corners=False)[0, 0]
    gray = torch.from_numpy(np.ascontiguousarray(rgb, np.float32)).mean(-1)
    q = _guided_filter(gray, p, radius=max(2, round(max(H, W) / 96)), eps=1e-3)
    q = ((q - 0.3) / 0.4).clamp(0, 1)
    return (q * q * (3 - 2 * q)).numpy()


def _box_mean(x: Tensor, r: int) -> Tensor:
    """Mean over a (2r+1)² window (the image's edge replicated beyond its border), x [..., H, W]: summed-area
    tables in float64, so the cost does not grow with the window (blur fusion's widest is a tenth of the image)."""
    k = 2 * r + 1
    lead, (H, W) = x.shape[:-2], x.shape[-2:]
    pad = F.pad(x.reshape(-1, 1, H, W), (r, r, r, r), mode="replicate")[:, 0].double()
    table = F.pad(pad.cumsum(-1).cumsum(-2), (1, 0, 1, 0))  # table[i, j] = sum of pad[:i, :j]
    sums = table[:, k:, k:] - table[:, :-k, k:] - table[:, k:, :-k] + table[:, :-k, :-k]
    return (sums / (k * k)).to(x.dtype).reshape(*lead, H, W)


def _guided_filter(guide: Tensor, src: Tensor, radius: int, eps: float) -> Tensor:
    """He et al.'s guided filter with a grayscale guide: an edge-aware smoothing of ``src``."""
    mean_i, mean_p = _box_mean(guide, radius), _box_mean(src, radius)
    cov_ip = _box_mean(guide * src, radius) - mean_i * mean_p
    var_i = _box_mean(guide * guide, radius) - mean_i * mean_i
    a = cov_ip / (var_i + eps)
    b = mean_p - a * mean_i
    return _box_mean(a, radius) * guide + _box_mean(b, radius)


def estimate_foreground(image: Tensor, alpha: Tensor, radii: tuple[int, ...] | None = None) -> Tensor:
    """The person's own colour F [3, H, W] in [0, 1] behind ``image`` [3, H, W] (RGB in [0, 1]) given its matte
    ``alpha`` [H, W] (or [1, H, W]) in [0, 1], by blur fusion (see the module docstring).

    Where α = 1 F is the image; where α = 0 it is a local mean of the nearby foreground (it is invisible after
    compositing); in between the background's share is taken out. ``radii``: the box windows' radii, pixels,
    widest first; default: 1/11 and 1/170 of the image's longer side (23 and 2 pixels at 256², chosen with
    bench/bench_matte_edges.py: 2.8 levels of error in the edge band, against 2.9 for the published windows
    scaled, 4.6 for one pass).
    """
    a = alpha.reshape(1, *image.shape[-2:]).clamp(0, 1).to(image.dtype)
    if radii is None:
        n = max(image.shape[-2:])
        radii = (max(2, round(n / 11)), max(1, round(n / 170)))
    fg, bg = image, image
    for r in radii:
        fg, bg = _blur_fusion(image, fg, bg, a, r)
    return fg.clamp(0, 1)


def _blur_fusion(image: Tensor, fg: Tensor, bg: Tensor, a: Tensor, r: int) -> tuple[Tensor, Tensor]:
    """One pass of blur fusion at window radius ``r``: F̂ = blur(α F)/blur(α), B̂ = blur((1−α) B)/blur(1−α),
    F = F̂ + α (I − α F̂ − (1 − α) B̂)."""
    tiny = 1e-5
    blur_a = _box_mean(a, r)
    f_hat = _box_mean(fg * a, r) / (blur_a + tiny)
    b_hat = _box_mean(bg * (1 - a), r) / (_box_mean(1 - a, r) + tiny)
    fg = f_hat + a * (image - a * f_hat - (1 - a) * b_hat)
    return fg.clamp(0, 1), b_hat


def composite(image: Tensor, alpha: Tensor, background: Tensor) -> Tensor:
    """``image`` [3, H, W] over ``background`` [3, 1, 1] by ``alpha`` [H, W]: the estimated foreground colour where
    the matte is partial (:func:`estimate_foreground`), the image where it is 1."""
    a = alpha.reshape(1, *image.shape[-2:])
    fg = estimate_foreground(image, a) if bool(((a > 0) & (a < 1)).any()) else image
    return (fg * a + background * (1 - a)).clamp(0, 1)
