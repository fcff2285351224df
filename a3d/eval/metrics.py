"""Image metrics of the one instrument (``a3d eval``): SSIM, PSNR and how right a render's outline is.
LPIPS is :mod:`a3d.perception.lpips`; identity distances :mod:`a3d.perception.identity`; the grid index
:mod:`a3d.eval.grid`."""
import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import InputError

__all__ = ["ssim", "psnr", "silhouette_metrics", "gaussian_blur"]


def _gaussian_window(size: int, sigma: float, device, dtype) -> Tensor:
    x = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(x ** 2) / (2 * sigma ** 2))
    return g / g.sum()


def ssim(x: Tensor, y: Tensor, window: int = 11, sigma: float = 1.5) -> Tensor:
    """Structural similarity (Wang et al. 2004) of image pairs: Gaussian window ``window`` × ``window``
    with std ``sigma``, constants (0.01·1)² and (0.03·1)² for a data range of 1, statistics over
    the valid region (no padding), averaged over channels and pixels.

    Args:
        x, y: [B, 3, H, W] images in [0, 1], H, W >= ``window``.
    Returns:
        [B] SSIM values (1 for identical images), computed in float32.
    """
    if x.shape != y.shape or x.dim() != 4:
        raise InputError(f"x, y: expected two [B, C, H, W] tensors of one shape, "
                         f"got {tuple(x.shape)}, {tuple(y.shape)}")
    if min(x.shape[-2:]) < window:
        raise InputError(f"x: images of {tuple(x.shape[-2:])} are smaller than the {window}-pixel window")
    x, y = x.float(), y.float()
    C = x.shape[1]
    g = _gaussian_window(window, sigma, x.device, x.dtype)

    def blur(t: Tensor) -> Tensor:  # separable Gaussian filter, valid region
        t = F.conv2d(t, g.view(1, 1, 1, -1).expand(C, 1, 1, window), groups=C)
        return F.conv2d(t, g.view(1, 1, -1, 1).expand(C, 1, window, 1), groups=C)
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    mx, my = blur(x), blur(y)
    sxx = blur(x * x) - mx * mx
    syy = blur(y * y) - my * my
    sxy = blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return s.mean(dim=(1, 2, 3))


def psnr(x: Tensor, y: Tensor) -> Tensor:
    """PSNR in dB of [B, C, H, W] images in [0, 1] -> [B] (capped at 100 dB for identical images)."""
    mse = ((x.float() - y.float()) ** 2).mean(dim=(1, 2, 3))
    return (-10 * torch.log10(mse.clamp_min(1e-10))).clamp(max=100.0)


def silhouette_metrics(pred: Tensor, pred_alpha: Tensor, gt: Tensor, gt_alpha: Tensor) -> dict[str, Tensor]:
    """How right the outline of a render is: for [N, 3, H, W] images in [0, 1] and their alphas [N, H, W]
    -> {"silhouette_iou": [N], "psnr_silhouette_right": [N]}.

    The silhouettes are alpha > 0.5; their IoU is 1 where both are empty. ``psnr_silhouette_right`` is
    :func:`psnr` with every pixel where the silhouettes disagree taken from ``gt``: never below the
    plain PSNR, equal to it where the outlines agree.
    """
    p, g = pred_alpha > 0.5, gt_alpha > 0.5
    inter = (p & g).flatten(1).sum(1).float()
    union = (p | g).flatten(1).sum(1).float()
    iou = torch.where(union > 0, inter / union.clamp_min(1.0), torch.ones_like(union))
    fixed = torch.where((p != g)[:, None], gt, pred)
    return {"silhouette_iou": iou.cpu(), "psnr_silhouette_right": psnr(fixed, gt).cpu()}


def gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    """[B, C, H, W] images blurred by a Gaussian of std ``sigma`` pixels (replicated edges), same shape."""
    r = int(math.ceil(3 * sigma))
    g = _gaussian_window(2 * r + 1, sigma, x.device, x.dtype)
    C = x.shape[1]
    x = F.pad(x, (r, r, r, r), mode="replicate")
    x = F.conv2d(x, g.view(1, 1, 1, -1).expand(C, 1, 1, 2 * r + 1), groups=C)
    return F.conv2d(x, g.view(1, 1, -1, 1).expand(C, 1, 2 * r + 1, 1), groups=C)
