"""The training objective, Eq. 6 of the paper (§3.3-3.4, §4.1): :func:`compute_loss` on one
:class:`a3d.data.batch.Batch`.

* Flow matching (paper convention, :mod:`a3d.model.network`): t ~ U(0, 1) except that a fraction
  ``one_step_prob`` of the samples gets t = 0, the one-step objective used at inference;
  g_t = (1 − t)·noise + t·(canonical views in [-1, 1]).
* ``lambda_l2``·L2 + ``lambda_lpips``·LPIPS on the ``num_views`` rendered views of the predicted
  Gaussians, plus the same on the 4 AVAS views (§3.4); the paper's λ2 = 1, λp = 0.5 (the recipe's weights:
  :class:`a3d.train.config.TrainConfig`).
* ``lambda_alpha`` > 0 (synthetic heads): L1 between each rendered view's alpha and its true matte.
* The canonical views join the rendered views, and each given photo's own Gaussians alone must reproduce the
  photo and its matte and lie on the visible surface (:func:`_own_view_loss`; synthetic data only: it has depth).

The network runs under bf16 autocast on CUDA when asked; the rasterizer and the losses run in float32.
"""
from __future__ import annotations

import functools

import torch
from torch import Tensor

from ..core import framing
from ..data.batch import Batch
from ..core.cameras import Cameras, canonical_cameras
from ..core.gaussians import Gaussians
from ..perception.lpips import lpips
from ..model.config import ModelConfig
from ..model.flow import images_to_state, interpolate, sample_t
from ..core.rendering import channels_first, render
from .config import TrainConfig

__all__ = ["compute_loss"]

_FIELDS = ("means", "quats", "scales", "opacities", "colors")


def _weighted_mean(per_sample: Tensor, w: Tensor) -> Tensor:
    return (per_sample * w).sum() / w.sum().clamp_min(1.0)


def compute_loss(model: torch.nn.Module, batch: Batch, cfg: TrainConfig, mcfg: ModelConfig,
                 autocast: bool) -> tuple[Tensor, dict[str, Tensor]]:
    """Eq. 6 on one batch. Returns (loss, its detached parts for the log; tensors, so that no step
    waits for the GPU).

    The flow state's clean value g1 is the canonical views; samples without all 4 canonical targets
    (folder data whose cameras do not match them) train at t = 0 (pure noise in) with their AVAS
    terms masked out.
    """
    image = batch.input
    B = image.shape[0]
    dev = image.device
    valid = batch.canonical_valid  # [B, 4]
    ok = batch.ok.float()
    S = mcfg.image_size
    t = sample_t(B, one_step_prob=cfg.one_step_prob, device=dev)
    t = torch.where(valid.all(1), t, torch.zeros_like(t))
    g0 = torch.randn(B, 4, 3, S, S, device=dev)
    g_t = interpolate(g0, images_to_state(batch.canonical), t)
    # view dropout: the front photo always, each other canonical view with multiview_prob (where its
    # photo exists), so one model serves one to four photos
    given = (torch.rand(B, 4, device=dev) < cfg.multiview_prob) & valid
    given[:, 0] = True
    kwargs = {"photos": batch.canonical, "given": given}
    # the mattes go in with the photos, as preprocessing hands them to reconstruct() (synthetic heads
    # have exact ones; a dataset's captures may have none, and their opacities stay learned)
    masks = batch.canonical_alpha[:, :, 0] if cfg.data == "synthetic" else None
    if cfg.augment:
        from ..data.augment import augment_inputs

        # colour and framing: already in every view where the heads carry them
        image, front_mask = augment_inputs(image, batch.canonical_alpha[:, 0], return_alpha=True,
                                           colour=not cfg.heads_augmented, framing=not cfg.heads_augmented)
        if masks is not None:
            masks = torch.cat([front_mask, masks[:, 1:]], 1)  # the input's matte, edged and framed as it is
    if masks is not None:
        kwargs["masks"] = masks
    with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=autocast):
        out = model(image, g_t, t, **kwargs)
    g = out.gaussians.float()
    V = batch.images.shape[1]
    cams = Cameras(batch.viewmats, batch.Ks, S, S)
    target = batch.images
    view_w = ok[:, None].expand(B, V)
    # the canonical views are in the loss too, the input view among them (the photo must come back)
    canon = _canonical(mcfg, dev)
    cams = Cameras(torch.cat([cams.viewmats, canon.viewmats.expand(B, 4, 4, 4)], 1),
                   torch.cat([cams.Ks, canon.Ks.expand(B, 4, 3, 3)], 1), S, S)
    target = torch.cat([target, batch.canonical], 1)
    view_w = torch.cat([view_w, valid.float() * ok[:, None]], 1)
    V = V + 4
    rendered = render(g, cams, framing.BACKGROUND)
    pred = channels_first(rendered.rgb)  # [B, V, 3, S, S]
    l2 = ((pred - target) ** 2).mean(dim=(2, 3, 4))  # [B, V]
    lp = lpips(pred.reshape(B * V, 3, S, S), target.reshape(B * V, 3, S, S), cfg.lpips_net).view(B, V)
    l2, lp = _weighted_mean(l2.flatten(), view_w.flatten()), _weighted_mean(lp.flatten(), view_w.flatten())
    loss = cfg.lambda_l2 * l2 + cfg.lambda_lpips * lp
    parts = {"l2": l2.detach(), "lpips": lp.detach()}
    if cfg.lambda_alpha > 0:
        # only where the mattes are exact (a dataset's may be all ones for photos without alpha)
        alpha_w = view_w * batch.geometry_valid.float()[:, None]
        # the same views as ``target``: the supervision views, then the canonical ones
        true_alpha = torch.cat([batch.masks, batch.canonical_alpha], 1)
        a1 = (channels_first(rendered.alpha) - true_alpha).abs().mean(dim=(2, 3, 4))  # [B, V]
        a1 = _weighted_mean(a1.flatten(), alpha_w.flatten())
        loss = loss + cfg.lambda_alpha * a1
        parts["alpha"] = a1.detach()
    own_loss, own_parts = _own_view_loss(g, batch, given & valid, mcfg, cfg)
    loss = loss + own_loss
    parts.update(own_parts)
    if out.views is not None:
        views = out.views.float()  # [B, 4, 3, S, S]
        w = valid.float() * ok[:, None]  # [B, 4]
        a_l2 = ((views - batch.canonical) ** 2).mean(dim=(2, 3, 4))  # [B, 4]
        a_lp = lpips(views.reshape(B * 4, 3, S, S), batch.canonical.reshape(B * 4, 3, S, S),
                     cfg.lpips_net).view(B, 4)
        a_l2, a_lp = _weighted_mean(a_l2.flatten(), w.flatten()), _weighted_mean(a_lp.flatten(), w.flatten())
        loss = loss + cfg.lambda_l2 * a_l2 + cfg.lambda_lpips * a_lp
        parts.update(avas_l2=a_l2.detach(), avas_lpips=a_lp.detach())
    parts["loss"] = loss.detach()
    return loss, parts


def _canonical(mcfg: ModelConfig, device: torch.device) -> Cameras:
    """The model's 4 canonical cameras on ``device``, built once: the loss needs them every step, and
    building them on the host and copying them over each time is needless work in the loop."""
    return _canonical_cached(mcfg.image_size, mcfg.camera_radius, mcfg.camera_fov_deg, torch.device(device))


@functools.lru_cache(maxsize=8)
def _canonical_cached(size: int, radius: float, fov: float, device: torch.device) -> Cameras:
    return canonical_cameras(size, radius=radius, fov=fov).to(device)


def _own_view_loss(g: Gaussians, batch: Batch, given: Tensor, mcfg: ModelConfig, cfg: TrainConfig
                   ) -> tuple[Tensor, dict[str, Tensor]]:
    """Make each given view's own Gaussians the visible surface of its photo.

    Each canonical view's set alone, rendered from its own camera, must reproduce the photo (L2) and
    its matte (L1 on alpha), and each Gaussian whose pixel is inside the matte must lie at the
    surface's depth (L1 on camera z). Without this the other views' sets draw the face and the
    given view's set hides behind them, streaky and spread along the rays. Weighted by ``given``
    [B, 4]; the matte and depth terms only where ``batch.geometry_valid``.
    """
    B = given.shape[0]
    S = mcfg.image_size
    canon = _canonical(mcfg, g.device)
    own = Gaussians(**{k: getattr(g, k).reshape(B, 4, -1, *getattr(g, k).shape[2:]) for k in _FIELDS})
    cams = Cameras(canon.viewmats[None, :, None].expand(B, 4, 1, 4, 4), canon.Ks[None, :, None].expand(B, 4, 1, 3, 3),
                   S, S)
    out = render(own, cams, framing.BACKGROUND)  # [B, 4, 1, S, S, ·]
    rgb = out.rgb[:, :, 0].permute(0, 1, 4, 2, 3)  # [B, 4, 3, S, S]
    alpha = out.alpha[:, :, 0].permute(0, 1, 4, 2, 3)  # [B, 4, 1, S, S]
    w = given.float()
    geo = w * batch.geometry_valid.float()[:, None]
    l2 = _weighted_mean(((rgb - batch.canonical) ** 2).mean(dim=(2, 3, 4)).flatten(), w.flatten())
    a1 = _weighted_mean((alpha - batch.canonical_alpha).abs().mean(dim=(2, 3, 4)).flatten(), geo.flatten())
    # camera z of each view's own Gaussians against the rendered surface's z where the matte is solid
    R, tr = canon.viewmats[:, :3, :3], canon.viewmats[:, :3, 3]
    z = (torch.einsum("vj,bvnj->bvn", R[:, 2], own.means) + tr[:, 2][None, :, None]).view(B, 4, 1, S, S)
    solid = (batch.canonical_alpha > 0.5).float()
    dz = ((z - batch.canonical_depth).abs() * solid).sum(dim=(2, 3, 4)) / solid.sum(dim=(2, 3, 4)).clamp_min(1.0)
    d1 = _weighted_mean(dz.flatten(), geo.flatten())
    loss = cfg.lambda_own * (l2 + a1) + cfg.lambda_depth * d1
    return loss, {"own_l2": l2.detach(), "own_alpha": a1.detach(), "own_depth": d1.detach()}
