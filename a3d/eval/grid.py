"""The grid index: how strongly a render shows a square, axis-aligned pattern (the decoder's patch grid).

A decoder that gives every patch of the token map its own colours independently leaves a woven,
patch-periodic pattern wherever the photo does not dictate the colours, most visibly on the back of
the head. A pattern repeated every p pixels along both image axes puts its power on the two frequency
axes at radius W/p (and at its multiples); hair, skin and noise spread theirs over every direction.
The index compares the two:

1. Render the back view (azimuth 180°, the back canonical camera of :mod:`a3d.core.framing`) at
   :data:`GRID_SIZE`² (:func:`back_view_grid_index`); any other image goes to :func:`grid_index`.
2. Luminance Y = 0.299 R + 0.587 G + 0.114 B (Rec. 601) inside the head (alpha > 0.5), its mean over
   those pixels removed, zero outside.
3. Its 2D power spectrum |FFT|² (no window: outside the head the image is already zero).
4. For each integer frequency k from W/32 to W/4 bins (periods W/k of 32 down to 4 px): the mean power
   ON the two axes at that frequency (the four bins (±k, 0), (0, ±k)) divided by the mean power of the
   diagonal part of the same ring (bins at distance k ± 1 from the origin whose angle, folded into
   [0°, 90°], lies in [15°, 75°]).
5. The grid index is the largest ratio; :attr:`GridIndex.period` is the period W/k (px) where it peaks.

Each ratio of an image without preferred directions is about 1, but the four on-axis bins of a real
image are two independent powers, so the largest of the 57 ratios at 256² is typically 2-4 (isotropic
noise); a pattern tiled every p pixels scores orders of magnitude above, at period p. A checkerboard
is not such a pattern: its fundamental lies on the diagonals ((±1, ±1)·W/p) and it scores below 1.
A 90° rotation or a mirror image leaves the index unchanged (the axes and the diagonal sector map
onto themselves); rotating a grid by 45° moves its power off the axes.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor

from ..errors import InputError

__all__ = ["GridIndex", "GRID_SIZE", "grid_index", "back_view_grid_index", "grid_summary", "luminance"]

GRID_SIZE = 256
"""Side in pixels of the back view the index is measured on."""

MIN_PERIOD, MAX_PERIOD = 4, 32
"""Periods (px) the index looks at."""

DIAGONAL_DEG = (15.0, 75.0)
"""The diagonal part of a ring: bins whose angle, folded into [0°, 90°], lies in this range."""

RING_HALF_WIDTH = 1.0
"""The diagonal part of the ring at frequency k holds the bins at distance k ± this from the origin."""


@dataclass(frozen=True)
class GridIndex:
    """A grid index: ``index`` (the largest on-axis / diagonal power ratio, dimensionless) and ``period``
    (pixels of the measured image, where it peaks); ``ratios`` {period px: ratio} for every ring."""

    index: float
    period: float
    ratios: dict[float, float]

    def as_dict(self) -> dict[str, float]:
        """``{"grid_index": index, "grid_period": period}`` (what eval.json records)."""
        return {"grid_index": self.index, "grid_period": self.period}


def luminance(rgb: Tensor) -> Tensor:
    """Rec. 601 luminance of RGB images [..., 3, H, W] -> [..., H, W]."""
    if rgb.dim() < 3 or rgb.shape[-3] != 3:
        raise InputError(f"rgb: expected images [..., 3, H, W], got {tuple(rgb.shape)}")
    w = torch.tensor([0.299, 0.587, 0.114], dtype=rgb.dtype, device=rgb.device)
    return (rgb * w.view(3, 1, 1)).sum(-3)


@functools.lru_cache(maxsize=4)
def _ring_masks(size: int, device: torch.device) -> tuple[list[int], Tensor, Tensor]:
    """Frequencies k (bins) from size/32 to size/4, and for each the averaging weights [K, size²] (torch.fft.fft2's
    bin order, flattened; each row sums to 1) of its four on-axis bins and of its ring's diagonal part."""
    f = torch.fft.fftfreq(size, d=1.0 / size, device=device, dtype=torch.float64)  # integer bins, signed
    ky, kx = torch.meshgrid(f, f, indexing="ij")
    radius = torch.hypot(kx, ky)
    angle = torch.rad2deg(torch.atan2(ky.abs(), kx.abs()))  # folded into [0°, 90°]
    on_axis = (kx == 0) | (ky == 0)
    diagonal = (angle >= DIAGONAL_DEG[0]) & (angle <= DIAGONAL_DEG[1])
    ks = list(range(math.ceil(size / MAX_PERIOD), size // MIN_PERIOD + 1))
    k = torch.tensor(ks, dtype=torch.float64, device=device).view(-1, 1, 1)
    ring = (radius - k).abs() <= RING_HALF_WIDTH
    axes, diag = (on_axis & (radius == k)).flatten(1).double(), (ring & diagonal).flatten(1).double()
    return ks, axes / axes.sum(1, keepdim=True), diag / diag.sum(1, keepdim=True)


def grid_index(rgb: Tensor, alpha: Tensor) -> GridIndex:
    """The grid index (module docstring) of one image.

    Args:
        rgb: [3, S, S] RGB in [0, 1] (any float dtype), square, S ≥ 64.
        alpha: [S, S] coverage; the pixels above 0.5 are the head.
    Returns:
        :class:`GridIndex`; periods are in pixels of this image.

    >>> x = torch.arange(128.0)
    >>> lines = ((x % 8 == 0)[:, None] | (x % 8 == 0)[None]).float().expand(3, 128, 128)
    >>> g = grid_index(lines, torch.ones(128, 128)); round(g.period), g.index > 100
    (8, True)
    """
    if rgb.dim() != 3 or rgb.shape[0] != 3 or rgb.shape[1] != rgb.shape[2]:
        raise InputError(f"rgb: expected a square image [3, S, S], got {tuple(rgb.shape)}")
    S = rgb.shape[-1]
    if S < 2 * MAX_PERIOD:
        raise InputError(f"rgb: an image of {S}² is too small for periods up to {MAX_PERIOD} px (at least "
                         f"{2 * MAX_PERIOD}²)")
    if alpha.shape != (S, S):
        raise InputError(f"alpha: expected [{S}, {S}] like rgb, got {tuple(alpha.shape)}")
    inside = alpha.to(rgb.device) > 0.5
    if int(inside.sum()) < 2:
        raise InputError("alpha: fewer than two pixels above 0.5; there is no head to measure")
    y = luminance(rgb.double())
    y = torch.where(inside, y - y[inside].mean(), torch.zeros_like(y))
    power = torch.fft.fft2(y).abs().square().flatten()  # [S²]
    ks, axes, diagonal = _ring_masks(S, y.device)
    # a floor far below any real image's diagonal power keeps a pure pattern's ratio finite (eval.json is JSON)
    floor = 1e-12 * float(power.mean()) + torch.finfo(torch.float64).tiny
    ratio = (axes @ power) / (diagonal @ power).clamp_min(floor)  # [K] mean powers' ratios
    ratios = {S / k: float(r) for k, r in zip(ks, ratio)}
    best = int(ratio.argmax())
    return GridIndex(index=float(ratio[best]), period=S / ks[best], ratios=ratios)


@torch.no_grad()
def back_view_grid_index(gaussians, size: int = GRID_SIZE) -> GridIndex:
    """The grid index of a head's back view: ``gaussians`` (one head, [N]) rendered from the back canonical
    camera (azimuth 180°) at ``size``² over :data:`a3d.core.framing.BACKGROUND`."""
    from ..core import framing
    from ..core.cameras import canonical_cameras
    from ..core.rendering import render

    if gaussians.means.dim() != 2:
        raise InputError(f"gaussians: expected one head [N], got batch shape {tuple(gaussians.means.shape[:-1])}")
    back = canonical_cameras(size)[[framing.CANONICAL_VIEWS.index("back")]].to(gaussians.means.device)
    out = render(gaussians.detach().float(), back, framing.BACKGROUND)
    return grid_index(out.rgb[0].permute(2, 0, 1).clamp(0, 1), out.alpha[0, ..., 0])


def grid_summary(values: Sequence[dict[str, float]]) -> dict[str, float]:
    """Mean and largest of several heads' :meth:`GridIndex.as_dict` -> ``{"mean", "max", "period_at_max"}``."""
    if not values:
        raise InputError("values: no grid index to summarise")
    worst = max(values, key=lambda v: v["grid_index"])
    return {"mean": sum(v["grid_index"] for v in values) / len(values), "max": worst["grid_index"],
            "period_at_max": worst["grid_period"]}
