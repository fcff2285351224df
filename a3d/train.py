"""Training the Any3DAvatar model (paper §3.3-3.4, §4.1): ``a3d train`` and :func:`train`.

One flat loop in the manner of nanoGPT:

* Data: synthetic heads generated on the fly on the training device (:mod:`a3d.synth`, the default)
  or a dataset folder in the AnyHead layout (:mod:`a3d.data`). Either way a batch holds the input
  portrait (the front canonical view), the 4 canonical views (the flow-matching target and the AVAS
  target) and ``num_views`` supervision views with their cameras.
* Flow matching (paper convention, :mod:`a3d.model`): t ~ U(0, 1) except that a fraction
  ``one_step_prob`` of the samples gets t = 0, the one-step objective used at inference;
  g_t = (1 − t)·noise + t·(canonical views in [-1, 1]).
* Loss (Eq. 6): ``lambda_l2``·L2 + ``lambda_lpips``·LPIPS on the ``num_views`` rendered views of
  the predicted Gaussians, plus the same on the 4 AVAS views (§3.4), λ2 = 1, λp = 0.5.
* AdamW, linear warmup then cosine decay to ``min_lr`` (:func:`get_lr`), bf16 autocast on CUDA
  (the Gaussian decoder's last layer, the rasterizer and the losses run in float32), gradient
  clipping, an EMA of the weights (what is evaluated and exported).
* torchrun: DDP over the ranks, per-rank seeds, a DistributedSampler for folder data, logging,
  evaluation and checkpoints on rank 0 only.
* Checkpoints (``OUT/ckpt.pt``) are written atomically (temporary file + ``os.replace``) and hold the
  model, optimizer, EMA, step, every rank's RNG states (torch, CUDA, numpy, python) and the config;
  a run restarted with the same config continues exactly where the checkpoint left it (bitwise on
  CPU). ``OUT/log.jsonl`` gets one JSON line per logged step and per evaluation.
* Evaluation: held-out synthetic heads (a seed never used for training), the EMA model at one step,
  ``eval_views`` views on a horizontal circle that skips the input azimuth; PSNR, SSIM (Gaussian
  window 11, σ 1.5) and LPIPS (AlexNet), per view-angle bucket: front (|azimuth| ≤ 45°), side,
  back (|azimuth| ≥ 135°), and per 22.5° yaw bin; the metrics and the eval set live in :mod:`a3d.evaluate`.
* Export: the EMA weights without the training-only AVAS decoder, in float16, through
  ``save_pretrained`` (config.json + model.safetensors), loadable by :func:`a3d.api.load_model`.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import functools
import json
import math
import os
import pickle
import random
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor

from . import framing
from .cameras import Cameras, canonical_cameras
from .errors import InputError, check_device, check_int, check_number
from .evaluate import (_views_nchw, bucket, eval_azimuths, evaluate, psnr, save_gallery, ssim,
                       synthetic_eval_set)
from .files import atomic_write, read_json
from .gaussians import Gaussians
from .lpips import lpips
from .model import A3DModel, ModelConfig, get_config, images_to_state, interpolate, load_weights, sample_t
from .rendering import render
from .seeding import mix_seed

__all__ = ["TrainConfig", "get_lr", "ssim", "psnr", "train", "evaluate", "export", "cmd_train",
           "plot_log", "bucket", "eval_azimuths", "make_eval_set"]  # metrics and eval set: from a3d.evaluate

CKPT_NAME = "ckpt.pt"
LOG_NAME = "log.jsonl"
EVAL_NAME = "eval.json"


@dataclass
class TrainConfig:
    """Everything a training run depends on; flat, JSON-serialisable, saved in every checkpoint.

    Model: ``preset`` ('tiny' or 'paper') with ``model_overrides`` (ModelConfig fields, e.g.
    ``{"image_size": 32}``). Data: ``data`` is ``"synthetic"`` or a dataset folder.
    Schedule: ``max_steps`` optimizer steps (the cosine runs over them) and an optional wall-clock
    stop ``max_minutes`` after which the run checkpoints, evaluates and exports, whatever the step.
    """

    # model
    preset: str = "tiny"
    model_overrides: dict = field(default_factory=dict)
    # data
    data: str = "synthetic"
    num_views: int = 8  # rendered supervision views a sample (paper: 8)
    num_workers: int = 4  # DataLoader workers for folder data
    synth_gaussians: int = 80_000  # Gaussians a synthetic head (the generator's floor is 2,000)
    synth_pool: int = 0  # > 0: generate this many heads a rank once and draw batches from them
    synth_refresh: int = 0  # with a pool: heads of the pool replaced by new ones after every step
    # optimisation
    batch_size: int = 8  # per rank
    max_steps: int = 20000
    max_minutes: float = 0.0  # 0: no wall-clock stop
    lr: float = 4e-4
    min_lr: float = 4e-5
    warmup_steps: int = 500
    weight_decay: float = 0.05
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    # objective
    lambda_l2: float = 1.0
    lambda_lpips: float = 0.5
    avas: bool = True
    one_step_prob: float = 0.5
    lpips_net: str = "alex"
    # input decoder (ModelConfig.input_decoder): the given photos' own Gaussians alone must reproduce the
    # photo and its matte, and lie on the visible surface (synthetic data only: it has depth)
    lambda_own: float = 1.0
    lambda_depth: float = 1.0
    multiview_prob: float = 0.25  # each of left/right/back is given as a photo with this probability
    augment: bool = False  # photo-like degradations of the network's input image (a3d.augment)
    init_from: str = ""  # a model folder: start from its weights (new parameters keep their initialisation)
    # system
    bf16: bool = True  # autocast on CUDA
    seed: int = 0
    device: str = ""  # "" = cuda if available, else cpu
    out_dir: str = "runs/tiny"
    log_every: int = 20
    ckpt_every: int = 1000
    eval_every: int = 2000  # 0: only at the end
    eval_heads: int = 16
    eval_views: int = 16
    eval_seed: int = 987_654_321  # held-out heads: a generator seed no training rank uses (mix_seed never gives it
    # in practice; the generator's head streams of two seeds do not overlap within 1,000,003 heads)
    gallery_images: int = 2  # PNGs of 3 held-out heads each written at the end (gallery_K.png)
    export_dir: str = ""  # after training: EMA weights (float16) written here with save_pretrained
    progress: bool = True

    def __post_init__(self) -> None:
        ints = ("num_views", "num_workers", "batch_size", "max_steps", "warmup_steps", "log_every", "ckpt_every",
                "eval_every", "eval_heads", "eval_views", "synth_gaussians", "gallery_images", "synth_pool",
                "synth_refresh")
        for name in ints:
            v = getattr(self, name)
            low = 1 if name in ("num_views", "batch_size", "max_steps", "log_every", "ckpt_every") else 0
            check_int(v, f"TrainConfig.{name}", low)
        for name in ("lr", "min_lr", "weight_decay", "grad_clip", "lambda_l2", "lambda_lpips", "max_minutes",
                     "lambda_own", "lambda_depth"):
            check_number(getattr(self, name), f"TrainConfig.{name}", 0.0)
        for name in ("ema_decay", "beta1", "beta2", "one_step_prob", "multiview_prob"):
            check_number(getattr(self, name), f"TrainConfig.{name}", 0.0, 1.0)
        if not isinstance(self.model_overrides, dict):
            raise InputError(f"TrainConfig.model_overrides: expected a dict of ModelConfig fields, "
                             f"got {type(self.model_overrides).__name__}")
        if self.min_lr > self.lr:
            raise InputError(f"TrainConfig.min_lr {self.min_lr} must not exceed lr {self.lr}")

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> "TrainConfig":
        """Read a JSON object of TrainConfig fields (unknown keys fail), bounded (:func:`a3d.files.read_json`)."""
        d = read_json(path, 2**20, what="training config")
        try:
            return cls.from_dict(d)
        except ValueError as e:
            raise InputError(f"{path}: {e}") from None

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        if not isinstance(d, dict):
            raise InputError(f"config: expected a JSON object of TrainConfig fields, got {type(d).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        bad = sorted(set(d) - names)
        if bad:
            raise InputError(f"config: unknown TrainConfig fields {bad}")
        return cls(**d)

    def model_config(self) -> ModelConfig:
        return get_config(self.preset, **self.model_overrides)


def get_lr(step: int, cfg: TrainConfig) -> float:
    """Learning rate of optimizer step ``step`` (0-based): linear warmup over ``warmup_steps``, then a
    cosine from ``lr`` down to ``min_lr`` at ``max_steps``."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if step >= cfg.max_steps:
        return cfg.min_lr
    ratio = (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps)
    coeff = 0.5 * (1.0 + math.cos(math.pi * ratio))  # 1 -> 0
    return cfg.min_lr + coeff * (cfg.lr - cfg.min_lr)


# ---- data -------------------------------------------------------------------------------------------

class SyntheticBatches:
    """Training batches rendered on the fly from :class:`a3d.synth.SyntheticHeads` on ``device``.

    Heads: with ``pool`` = 0, step ``k`` takes heads ``k·B … k·B + B − 1`` of the generator's stream
    ``seed`` (a head is a function of its seed and index alone). With ``pool`` = P > 0, heads
    0 … P − 1 are generated up front and each step draws B of them, so generation is paid once and
    rendering new views every step; ``refresh`` = r > 0 then replaces r pool entries after every
    step with the next heads of the stream (head P + k·r + i goes to slot (k·r + i) mod P), so the
    pool keeps changing at the cost of r generated heads a step. Views: ``num_views`` of each head's
    80 cameras (40 fixed circular + 40 random, paper App. C), the input view excluded, drawn by a
    generator seeded by (seed, k); the canonical views come from
    :func:`a3d.cameras.canonical_cameras`. A batch is a function of (seed, step) alone, so a resumed
    run sees the same data (the pool of step k is rebuilt directly when a run starts there).
    """

    def __init__(self, size: int, batch: int, num_views: int, num_gaussians: int, seed: int, device: torch.device,
                 pool: int = 0, refresh: int = 0, progress: bool = False):
        from .synth import SyntheticHeads

        if refresh and not pool:
            raise ValueError("refresh: replacing pool entries needs a pool (pool > 0)")
        self.batch, self.num_views, self.seed, self.device = batch, num_views, seed, device
        self.pool_size, self.refresh, self.progress = pool, refresh, progress
        self.heads = SyntheticHeads(device, seed=seed, num_gaussians=num_gaussians, image_size=size)
        self.canonical = canonical_cameras(size).to(device)
        self.gen = torch.Generator(device=device)
        self.pool: tuple[Gaussians, Cameras] | None = None
        self.pool_step = 0  # the step whose pool ``self.pool`` holds
        if pool > 0:
            self.pool = self._generate(self.pool_ids(0))

    def pool_ids(self, step: int) -> list[int]:
        """Head ids in the pool's slots at the start of step ``step``."""
        P, r = self.pool_size, self.refresh
        end = P + step * r  # ids P .. end-1 have been added; id h sits in slot (h - P) mod P
        return [j if end - P - j <= 0 else P + j + (end - P - j - 1) // P * P for j in range(P)]

    def _generate(self, ids: list[int]) -> tuple[Gaussians, Cameras]:
        from tqdm.auto import tqdm

        parts, chunk = [], _SYNTH_CHUNK
        for start in tqdm(range(0, len(ids), chunk), desc="synthetic heads", unit="chunk",
                          disable=not self.progress or len(ids) <= chunk):
            parts.append(self.heads.sample(len(ids[start:start + chunk]), head_ids=ids[start:start + chunk]))
        self.input_view = parts[0].input_view
        g = Gaussians(**{k: torch.cat([getattr(p.gaussians, k) for p in parts]) for k in _FIELDS})
        cams = Cameras(torch.cat([p.cameras.viewmats for p in parts]), torch.cat([p.cameras.Ks for p in parts]),
                       parts[0].cameras.width, parts[0].cameras.height)
        return g, cams

    def _heads(self, step: int) -> tuple[Gaussians, Cameras]:
        B = self.batch
        if self.pool is None:
            return self._generate(list(range(step * B, (step + 1) * B)))
        if self.refresh and step != self.pool_step:  # a resumed run: rebuild the pool of this step
            self.pool, self.pool_step = self._rebuild_pool(step), step
        g, cams = self.pool
        idx = torch.randint(len(g.means), (B,), generator=self.gen, device=self.device)
        pick = Gaussians(**{k: getattr(g, k)[idx] for k in _FIELDS})
        return pick, Cameras(cams.viewmats[idx], cams.Ks[idx], cams.width, cams.height)

    def _rebuild_pool(self, step: int) -> tuple[Gaussians, Cameras]:
        """The pool at the start of ``step`` for a resumed run, bit for bit: a head's last bits may depend
        on the batch the generator made it in (SIMD rounding), so each head is made in the same call
        as in an uninterrupted run: the first P in chunks of _SYNTH_CHUNK, then the r of each step."""
        P, r, C = self.pool_size, self.refresh, _SYNTH_CHUNK

        def call(h: int) -> range:  # the ids of the generator call that made head h
            first, end = (0, P) if h < P else (P + (h - P) // r * r, P + (h - P) // r * r + r)
            lo = first + (h - first) // C * C
            return range(lo, min(lo + C, end))

        ids = self.pool_ids(step)
        made = {c: self._generate(list(c)) for c in dict.fromkeys(call(h) for h in ids)}
        picks = [(made[call(h)], call(h).index(h)) for h in ids]
        g = Gaussians(**{k: torch.stack([getattr(m[0], k)[i] for m, i in picks]) for k in _FIELDS})
        cams = Cameras(torch.stack([m[1].viewmats[i] for m, i in picks]), torch.stack([m[1].Ks[i] for m, i in picks]),
                       picks[0][0][1].width, picks[0][0][1].height)
        return g, cams

    def _refresh(self, step: int) -> None:
        """Replace the pool entries that step ``step`` hands over to the next heads of the stream."""
        P, r = self.pool_size, self.refresh
        ids = [P + step * r + i for i in range(r)]
        slots = torch.tensor([(h - P) % P for h in ids], device=self.device)
        new_g, new_c = self._generate(ids)
        g, cams = self.pool
        for k in _FIELDS:
            getattr(g, k)[slots] = getattr(new_g, k)
        cams.viewmats[slots] = new_c.viewmats
        cams.Ks[slots] = new_c.Ks
        self.pool_step = step + 1

    def get(self, step: int, clock: "_StageClock | None" = None) -> dict[str, Tensor]:
        B, V = self.batch, self.num_views
        self.gen.manual_seed(mix_seed(self.seed, step, bits=31))
        g, cams = self._heads(step)
        if clock is not None:
            clock.mark("generate")
        score = torch.rand(B, len(cams), generator=self.gen, device=self.device)
        score[:, self.input_view] = 2.0  # never the input view itself
        idx = score.argsort(dim=1)[:, :V]  # V distinct random views a head
        vm = cams.viewmats.gather(1, idx[..., None, None].expand(B, V, 4, 4))
        K = cams.Ks.gather(1, idx[..., None, None].expand(B, V, 3, 3))
        batch = render_batch(g, self.canonical, Cameras(vm, K, cams.width, cams.height))
        if clock is not None:
            clock.mark("render_gt")
        if self.refresh:
            self._refresh(step)
            if clock is not None:
                clock.mark("generate")
        return batch


_FIELDS = ("means", "quats", "scales", "opacities", "colors")
_SYNTH_CHUNK = 64  # heads a generator call (its cost hardly grows with the batch)


class _StageClock:
    """Wall time per training stage on the steps that are logged: each :meth:`mark` synchronises the
    device and books the time since the previous mark to a stage, so the log shows where a step's
    time goes (generation, ground-truth rendering, network + loss, backward, optimizer) without
    synchronising on the other steps."""

    def __init__(self, device: torch.device):
        self.device = device
        self.seconds: dict[str, float] = {}
        self._sync()
        self.last = time.perf_counter()

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def mark(self, stage: str) -> None:
        self._sync()
        now = time.perf_counter()
        self.seconds[stage] = self.seconds.get(stage, 0.0) + now - self.last
        self.last = now


@torch.no_grad()
def render_batch(heads: Gaussians, canonical: Cameras, cams: Cameras) -> dict[str, Tensor]:
    """Ground truth for Gaussians [B, N] (synthetic heads): the 4 canonical views (the front one is
    the input portrait) and supervision views from ``cams`` [B, V]; the layout of a HeadDataset batch."""
    B = heads.means.shape[0]
    bg = framing.BACKGROUND
    canon = render(heads, canonical, bg)  # [B, 4, S, S, ·]
    sup = render(heads, cams, bg)  # [B, V, S, S, ·]
    canon_rgb = _views_nchw(canon.rgb).clamp(0, 1)
    return {
        "input": canon_rgb[:, 0].contiguous(),
        "images": _views_nchw(sup.rgb).clamp(0, 1).contiguous(),
        "viewmats": cams.viewmats, "Ks": cams.Ks,
        "canonical": canon_rgb.contiguous(),
        "canonical_valid": torch.ones(B, 4, dtype=torch.bool, device=canon_rgb.device),
        "canonical_alpha": _views_nchw(canon.alpha).contiguous(),  # [B, 4, 1, S, S]
        "canonical_depth": _views_nchw(canon.depth).contiguous(),  # camera z, [B, 4, 1, S, S]
        "geometry_valid": torch.ones(B, dtype=torch.bool, device=canon_rgb.device),
        "ok": torch.ones(B, dtype=torch.bool, device=canon_rgb.device),
        "skipped": torch.zeros(B, dtype=torch.long, device=canon_rgb.device),
    }


class _ResumableSampler(torch.utils.data.DistributedSampler):
    """DistributedSampler that can start an epoch part-way (after a resume) without loading the
    skipped items."""

    def __init__(self, dataset, num_replicas: int, rank: int, seed: int):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=True)
        self.start = 0

    def __iter__(self):
        it = list(super().__iter__())
        return iter(it[self.start:])


class FolderBatches:
    """Training batches from a dataset folder (:class:`a3d.data.HeadDataset`) through a DataLoader;
    the batch of a step is a function of (seed, step), also after a resume."""

    def __init__(self, root: str, size: int, batch: int, num_views: int, seed: int, rank: int, world: int,
                 workers: int, device: torch.device):
        from .data import HeadDataset

        self.dataset = HeadDataset(root, size=size, num_views=num_views, seed=seed)
        self.sampler = _ResumableSampler(self.dataset, world, rank, seed)
        self.per_epoch = len(self.sampler) // batch
        if self.per_epoch < 1:
            raise InputError(f"data: {len(self.dataset)} captures give no full batch of {batch} per rank "
                             f"over {world} ranks; lower batch_size")
        self.batch, self.workers, self.device = batch, workers, device
        self.iter = None
        self.epoch, self._next_step = -1, -1

    def _start(self, epoch: int, offset_batches: int) -> None:
        self.epoch = epoch
        self.sampler.set_epoch(epoch)
        self.dataset.set_epoch(epoch)
        self.sampler.start = offset_batches * self.batch
        # The loader's own generator: creating an iterator must not draw from the global RNG, or a
        # resumed run (which starts its iterator mid-epoch) would diverge from an uninterrupted one.
        gen = torch.Generator().manual_seed(mix_seed(self.sampler.seed, epoch, bits=31))
        loader = torch.utils.data.DataLoader(self.dataset, batch_size=self.batch, sampler=self.sampler,
                                             num_workers=self.workers, drop_last=True, generator=gen,
                                             pin_memory=self.device.type == "cuda")
        self.iter = iter(loader)

    def get(self, step: int, clock: "_StageClock | None" = None) -> dict[str, Tensor]:
        epoch, k = divmod(step, self.per_epoch)
        if self.iter is None or epoch != self.epoch or self._next_step != step:
            self._start(epoch, k)
        self._next_step = step + 1
        batch = next(self.iter)
        keys = ("input", "images", "viewmats", "Ks", "canonical", "canonical_valid", "ok", "skipped")
        out = {key: batch[key].to(self.device, non_blocking=True) for key in keys}
        # captured photos carry no depth or matte of the canonical views: those loss terms are off
        B, _, _, S, _ = out["canonical"].shape
        out["canonical_alpha"] = out["canonical"].new_zeros(B, 4, 1, S, S)
        out["canonical_depth"] = out["canonical"].new_zeros(B, 4, 1, S, S)
        out["geometry_valid"] = torch.zeros(B, dtype=torch.bool, device=self.device)
        if clock is not None:
            clock.mark("load")
        return out


# ---- the objective --------------------------------------------------------------------------------

def _weighted_mean(per_sample: Tensor, w: Tensor) -> Tensor:
    return (per_sample * w).sum() / w.sum().clamp_min(1.0)


def compute_loss(model: torch.nn.Module, batch: dict[str, Tensor], cfg: TrainConfig, mcfg: ModelConfig,
                 autocast: bool) -> tuple[Tensor, dict[str, Tensor]]:
    """Eq. 6 on one batch. Returns (loss, its detached parts for the log; tensors, so that no step
    waits for the GPU).

    The flow state's clean value g1 is the canonical views; samples without all 4 canonical targets
    (folder data whose cameras do not match them) train at t = 0 (pure noise in) with their AVAS
    terms masked out.
    """
    image = batch["input"]
    B = image.shape[0]
    dev = image.device
    valid = batch["canonical_valid"]  # [B, 4]
    ok = batch["ok"].float()
    S = mcfg.image_size
    t = sample_t(B, one_step_prob=cfg.one_step_prob, device=dev)
    t = torch.where(valid.all(1), t, torch.zeros_like(t))
    g0 = torch.randn(B, 4, 3, S, S, device=dev)
    g_t = interpolate(g0, images_to_state(batch["canonical"]), t)
    kwargs = {}
    if mcfg.input_decoder:
        # view dropout: the front photo always, each other canonical view with multiview_prob (where
        # its photo exists), so one model serves one to four photos
        given = (torch.rand(B, 4, device=dev) < cfg.multiview_prob) & valid
        given[:, 0] = True
        kwargs = {"photos": batch["canonical"], "given": given}
    if cfg.augment:
        from .augment import augment_inputs

        image = augment_inputs(image, batch["canonical_alpha"][:, 0] if "canonical_alpha" in batch else None)
    with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=autocast):
        out = model(image, g_t, t, **kwargs)
    g = out.gaussians.float()
    V = batch["images"].shape[1]
    cams = Cameras(batch["viewmats"], batch["Ks"], S, S)
    target = batch["images"]
    view_w = ok[:, None].expand(B, V)
    if mcfg.input_decoder:
        # the canonical views are in the loss too, the input view among them (the photo must come back)
        canon = _canonical(mcfg, dev)
        cams = Cameras(torch.cat([cams.viewmats, canon.viewmats.expand(B, 4, 4, 4)], 1),
                       torch.cat([cams.Ks, canon.Ks.expand(B, 4, 3, 3)], 1), S, S)
        target = torch.cat([target, batch["canonical"]], 1)
        view_w = torch.cat([view_w, valid.float() * ok[:, None]], 1)
        V = V + 4
    pred = _views_nchw(render(g, cams, framing.BACKGROUND).rgb)  # [B, V, 3, S, S]
    l2 = ((pred - target) ** 2).mean(dim=(2, 3, 4))  # [B, V]
    lp = lpips(pred.reshape(B * V, 3, S, S), target.reshape(B * V, 3, S, S), cfg.lpips_net).view(B, V)
    l2, lp = _weighted_mean(l2.flatten(), view_w.flatten()), _weighted_mean(lp.flatten(), view_w.flatten())
    loss = cfg.lambda_l2 * l2 + cfg.lambda_lpips * lp
    parts = {"l2": l2.detach(), "lpips": lp.detach()}
    if mcfg.input_decoder:
        own_loss, own_parts = _own_view_loss(g, batch, kwargs["given"] & valid, mcfg, cfg)
        loss = loss + own_loss
        parts.update(own_parts)
    if out.views is not None:
        views = out.views.float()  # [B, 4, 3, S, S]
        w = valid.float() * ok[:, None]  # [B, 4]
        a_l2 = ((views - batch["canonical"]) ** 2).mean(dim=(2, 3, 4))  # [B, 4]
        a_lp = lpips(views.reshape(B * 4, 3, S, S), batch["canonical"].reshape(B * 4, 3, S, S),
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


def _own_view_loss(g: Gaussians, batch: dict[str, Tensor], given: Tensor, mcfg: ModelConfig, cfg: TrainConfig
                   ) -> tuple[Tensor, dict[str, Tensor]]:
    """Make each given view's own Gaussians the visible surface of its photo.

    Each canonical view's set alone, rendered from its own camera, must reproduce the photo (L2) and
    its matte (L1 on alpha), and each Gaussian whose pixel is inside the matte must lie at the
    surface's depth (L1 on camera z). Without this the other views' sets draw the face and the
    given view's set hides behind them, streaky and spread along the rays. Weighted by ``given``
    [B, 4]; the matte and depth terms only where ``batch["geometry_valid"]``.
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
    geo = w * batch["geometry_valid"].float()[:, None]
    l2 = _weighted_mean(((rgb - batch["canonical"]) ** 2).mean(dim=(2, 3, 4)).flatten(), w.flatten())
    a1 = _weighted_mean((alpha - batch["canonical_alpha"]).abs().mean(dim=(2, 3, 4)).flatten(), geo.flatten())
    # camera z of each view's own Gaussians against the rendered surface's z where the matte is solid
    R, tr = canon.viewmats[:, :3, :3], canon.viewmats[:, :3, 3]
    z = (torch.einsum("vj,bvnj->bvn", R[:, 2], own.means) + tr[:, 2][None, :, None]).view(B, 4, 1, S, S)
    solid = (batch["canonical_alpha"] > 0.5).float()
    dz = ((z - batch["canonical_depth"]).abs() * solid).sum(dim=(2, 3, 4)) / solid.sum(dim=(2, 3, 4)).clamp_min(1.0)
    d1 = _weighted_mean(dz.flatten(), geo.flatten())
    loss = cfg.lambda_own * (l2 + a1) + cfg.lambda_depth * d1
    return loss, {"own_l2": l2.detach(), "own_alpha": a1.detach(), "own_depth": d1.detach()}


# ---- evaluation (a3d.evaluate) ------------------------------------------------------------------

def make_eval_set(cfg: TrainConfig, size: int, device: torch.device) -> dict[str, Tensor]:
    """The held-out synthetic heads of ``cfg`` (:func:`a3d.evaluate.synthetic_eval_set`)."""
    return synthetic_eval_set(cfg.eval_heads, cfg.eval_views, size, device, cfg.eval_seed, cfg.synth_gaussians)


# ---- checkpoints, EMA, export ---------------------------------------------------------------------

def warm_start(model: A3DModel, folder: str | os.PathLike) -> dict[str, int]:
    """Copy the weights of the model in ``folder`` (config.json + model.safetensors) into ``model``
    wherever they fit, so a changed architecture starts from a trained one.

    A tensor of the same name and shape is copied; a 2D weight that gained input columns (a layer
    whose input was extended, e.g. the per-pixel MLP when the input decoder's features were appended
    at the end of its input) gets the old columns and zeros in the new ones, so the layer computes
    what it did; everything else keeps its initialisation (the new output layers start at zero).
    Returns counts of copied, extended and fresh tensors.
    """
    path = os.path.join(os.fspath(folder), "model.safetensors")
    if not os.path.isfile(path):
        raise InputError(f"init_from: no model.safetensors in {folder}")
    old = load_weights(path)
    counts = {"copied": 0, "extended": 0, "fresh": 0}
    with torch.no_grad():
        for name, p in model.state_dict().items():
            src = old.get(name)
            if src is not None and src.shape == p.shape:
                p.copy_(src.to(p.dtype))
                counts["copied"] += 1
            elif src is not None and p.dim() == 2 and src.dim() == 2 and src.shape[0] == p.shape[0] \
                    and src.shape[1] < p.shape[1]:
                p.zero_()
                p[:, :src.shape[1]] = src.to(p.dtype)
                counts["extended"] += 1
            else:
                counts["fresh"] += 1
    return counts


def _rng_state() -> dict[str, Any]:
    """This process's RNG states in types that ``torch.load(weights_only=True)`` reads back."""
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), int(np_state[2]), int(np_state[3]),
                  float(np_state[4])],
        "python": _py_state_to_list(random.getstate()),
    }


def _py_state_to_list(s) -> list:
    return [s[0], list(s[1]), s[2]]


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if torch.cuda.is_available() and state["cuda"]:
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state((n[0], n[1].numpy().astype(np.uint32), n[2], n[3], n[4]))
    p = state["python"]
    random.setstate((p[0], tuple(p[1]), p[2]))


def load_checkpoint(path: str) -> dict[str, Any]:
    """Read a training checkpoint (``torch.load(weights_only=True)``: tensors and plain containers
    only, nothing is unpickled); InputError naming the file when it is unreadable or not a3d's."""
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, ValueError, EOFError, pickle.UnpicklingError) as e:  # a truncated zip, a foreign pickle
        raise InputError(f"{path}: not a readable a3d checkpoint ({' '.join(str(e).split())[:200]}); "
                         f"delete it to start afresh") from None
    keys = {"model", "ema", "optimizer", "step", "config", "model_config", "rng"}
    if not isinstance(ck, dict) or not keys <= set(ck):
        raise InputError(f"{path}: not an a3d checkpoint (expected the keys {sorted(keys)})")
    return ck


def _atomic_save(obj: Any, path: str) -> None:
    with atomic_write(path) as f:
        torch.save(obj, f)


@torch.no_grad()
def _ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    e = [p for p in ema.parameters()]
    m = [p.detach() for p in model.parameters()]
    torch._foreach_lerp_(e, m, 1.0 - decay)


def export(ema: A3DModel, folder: str | os.PathLike, fp16: bool = True) -> str:
    """Write ``ema``'s weights without the AVAS decoder (float16 when ``fp16``) with
    ``save_pretrained`` to ``folder`` (config.json + model.safetensors); returns the folder."""
    model = A3DModel(ema.config, with_avas=False)
    state = {k: v for k, v in ema.state_dict().items() if not k.startswith("avas.")}
    model.load_state_dict(state, strict=True)
    if fp16:
        model = model.half()
    os.makedirs(folder, exist_ok=True)
    model.save_pretrained(str(folder))
    return os.fspath(folder)


# ---- the loop -------------------------------------------------------------------------------------

def _dist_info() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment (0, 1, 0 without it)."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


def _log(path: str, record: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def _truncate_log(path: str, step: int) -> None:
    """Drop log lines after ``step`` (written by a run that died after its last checkpoint)."""
    if not os.path.exists(path):
        return
    keep = []
    with open(path) as f:
        for line in f:
            try:
                record = json.loads(line)
            except ValueError:  # a line cut short by the kill
                continue
            if isinstance(record, dict) and record.get("step", 0) <= step:
                keep.append(line)
    with atomic_write(path, "w") as f:
        f.writelines(keep)


def train(cfg: TrainConfig, on_step: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Run (or resume) training as configured; returns the final evaluation (empty when disabled).

    ``on_step(step)`` is called after each optimizer step and checkpoint (tests use it to interrupt
    a run). Under torchrun every rank calls this; rank 0 logs, evaluates, checkpoints and exports.
    """
    t_start = time.time()
    rank, world, local_rank = _dist_info()
    ddp = "LOCAL_RANK" in os.environ  # launched by torchrun (also with one process: same code path)
    if cfg.device:
        device = check_device(cfg.device, "TrainConfig.device")
    else:
        device = torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    if ddp:
        import torch.distributed as dist

        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    master = rank == 0
    autocast = cfg.bf16 and device.type == "cuda"
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    rank_seed = mix_seed(cfg.seed, 1000 + rank, bits=31)  # per-rank seeds: each rank draws its own noise and data
    torch.manual_seed(rank_seed)
    np.random.seed(rank_seed % 2**32)
    random.seed(rank_seed)

    mcfg = cfg.model_config()
    model = A3DModel(mcfg, with_avas=cfg.avas).to(device)
    if cfg.init_from:
        report = warm_start(model, cfg.init_from)
        if master:
            print(f"warm start from {cfg.init_from}: {report}")
    ema = copy.deepcopy(model).requires_grad_(False)
    decay, no_decay = [], []
    for n, p in model.named_parameters():
        (decay if p.dim() >= 2 else no_decay).append(p)  # no weight decay on biases, norms, embeddings rows
    optim = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                               {"params": no_decay, "weight_decay": 0.0}],
                              lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), fused=device.type == "cuda")

    os.makedirs(cfg.out_dir, exist_ok=True)
    ckpt_path = os.path.join(cfg.out_dir, CKPT_NAME)
    log_path = os.path.join(cfg.out_dir, LOG_NAME)
    step = 0
    elapsed_before = 0.0
    rng_resumed = None
    if os.path.exists(ckpt_path):
        ck = load_checkpoint(ckpt_path)
        if ck["config"] != asdict(cfg) and master:
            print(f"note: resuming {ckpt_path} written with another config; using the current one")
        model.load_state_dict(ck["model"])
        ema.load_state_dict(ck["ema"])
        optim.load_state_dict(ck["optimizer"])
        step = int(ck["step"])
        elapsed_before = float(ck.get("elapsed", 0.0))
        rng = ck["rng"]
        rng_resumed = rng[rank] if rank < len(rng) else rng[0]  # restored when the loop starts, see there
        if master:
            _truncate_log(log_path, step)
            print(f"resumed from {ckpt_path} at step {step}")
    elif master and os.path.exists(log_path):
        os.remove(log_path)  # a run that died before its first checkpoint: its log is not this run's
    if master:
        with open(os.path.join(cfg.out_dir, "train_config.json"), "w") as f:
            json.dump(asdict(cfg), f, indent=1)

    train_model = model
    if ddp:
        from torch.nn.parallel import DistributedDataParallel as DDP

        train_model = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)

    S = mcfg.image_size
    if cfg.data == "synthetic":
        source: Any = SyntheticBatches(S, cfg.batch_size, cfg.num_views, cfg.synth_gaussians,
                                       mix_seed(cfg.seed, 2000 + rank, bits=31), device, cfg.synth_pool,
                                       cfg.synth_refresh, master and cfg.progress)
    else:
        source = FolderBatches(cfg.data, S, cfg.batch_size, cfg.num_views, cfg.seed, rank, world,
                               cfg.num_workers, device)
    eval_set = make_eval_set(cfg, S, device) if (master and cfg.eval_heads > 0) else None
    if master:
        _log(log_path, {"step": step, "setup_s": time.time() - t_start})  # model, data source (head pool), eval set

    def save_checkpoint() -> None:
        rng = [_rng_state()]
        if ddp:
            import torch.distributed as dist

            gathered: list = [None] * world
            dist.all_gather_object(gathered, rng[0])
            rng = gathered
        if master:
            _atomic_save({"model": model.state_dict(), "ema": ema.state_dict(), "optimizer": optim.state_dict(),
                          "step": step, "config": asdict(cfg), "model_config": mcfg.to_dict(), "rng": rng,
                          "elapsed": elapsed_before + time.time() - t_start}, ckpt_path)

    def run_eval() -> dict[str, Any]:
        if eval_set is None:
            return {}
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):  # training RNG untouched
            res = evaluate(ema, eval_set, cfg.lpips_net, seed=cfg.eval_seed)
        _log(log_path, {"step": step, "eval": res})
        return res

    bar = None
    if master and cfg.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.max_steps, initial=step, desc="train", unit="step", dynamic_ncols=True)
    deadline = t_start + 60.0 * cfg.max_minutes if cfg.max_minutes > 0 else math.inf
    skipped_total = 0
    t_last, samples_since = time.time(), 0
    model.train()
    stopped_by_clock = False
    # Resume exactly: the RNG state of the checkpoint is restored last, after everything built at the
    # start (data source, eval set) has drawn what it draws, so the loop sees what an uninterrupted
    # run saw. (Modules built lazily inside the loop must not draw from the global generator:
    # a3d.lpips builds its network under a forked RNG.)
    if rng_resumed is not None:
        _set_rng_state(rng_resumed)
    while step < cfg.max_steps:
        clock = _StageClock(device) if master and (step + 1) % cfg.log_every == 0 else None
        batch = source.get(step, clock)
        lr = get_lr(step, cfg)
        for group in optim.param_groups:
            group["lr"] = lr
        loss, parts = compute_loss(train_model, batch, cfg, mcfg, autocast)
        if clock is not None:
            clock.mark("forward_loss")
        optim.zero_grad(set_to_none=True)
        loss.backward()
        if clock is not None:
            clock.mark("backward")
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip) if cfg.grad_clip > 0 else None
        optim.step()
        # EMA warm-up: a short average early on so that the EMA is useful before 1/(1-decay) steps
        _ema_update(ema, model, min(cfg.ema_decay, (1.0 + step) / (10.0 + step)))
        if clock is not None:
            clock.mark("optimizer_ema")
        step += 1
        skipped_total = skipped_total + batch["skipped"].sum()  # a tensor: read only when logged
        samples_since += cfg.batch_size * world
        if master and (step % cfg.log_every == 0 or step == cfg.max_steps):
            now = time.time()
            rec = {"step": step, "lr": lr, **{k: float(v) for k, v in parts.items()},
                   "grad_norm": float(grad_norm) if grad_norm is not None else None,
                   "samples_per_s": samples_since / max(now - t_last, 1e-9), "skipped_files": int(skipped_total),
                   "elapsed_s": elapsed_before + now - t_start}
            if clock is not None:  # this step's time per stage (synchronised), seconds
                rec["stage_s"] = {k: round(v, 5) for k, v in clock.seconds.items()}
            _log(log_path, rec)
            t_last, samples_since = now, 0
            if bar is not None:
                bar.set_postfix(loss=f"{rec['loss']:.4f}", sps=f"{rec['samples_per_s']:.1f}")
        if bar is not None:
            bar.update(1)
        # All ranks agree on the wall-clock stop (rank 0's clock decides).
        stop = time.time() > deadline
        if ddp and math.isfinite(deadline):
            import torch.distributed as dist

            flag = torch.tensor([float(stop)], device=device)
            dist.broadcast(flag, 0)
            stop = bool(flag.item())
        if step % cfg.ckpt_every == 0 and not stop and step < cfg.max_steps:
            save_checkpoint()
        if master and cfg.eval_every and step % cfg.eval_every == 0 and step < cfg.max_steps and not stop:
            run_eval()
        if on_step is not None:
            on_step(step)
        if stop:
            stopped_by_clock = True
            break
    if bar is not None:
        bar.close()
    save_checkpoint()
    result: dict[str, Any] = {}
    if master:
        result = run_eval()
        summary = {"step": step, "stopped_by_clock": stopped_by_clock, "skipped_files": int(skipped_total),
                   "elapsed_s": elapsed_before + time.time() - t_start, "eval": result, "config": asdict(cfg)}
        with open(os.path.join(cfg.out_dir, EVAL_NAME), "w") as f:
            json.dump(summary, f, indent=1)
        if cfg.export_dir:
            export(ema, cfg.export_dir)
            print(f"exported the EMA weights to {cfg.export_dir}")
        if eval_set is not None:
            for k in range(cfg.gallery_images):
                save_gallery(ema, eval_set, os.path.join(cfg.out_dir, f"gallery_{k}.png"), range(3 * k, 3 * k + 3),
                             seed=cfg.eval_seed)
    if ddp:
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()
    return result


# ---- the training curve ---------------------------------------------------------------------------

def plot_log(log_path: str | os.PathLike, png_path: str | os.PathLike, size: tuple[int, int] = (900, 420)) -> str:
    """Plot a run's loss curve (and its evaluations' PSNR) from ``log.jsonl`` to a PNG with PIL."""
    from PIL import Image, ImageDraw, ImageFont

    steps, losses, ev = [], [], []
    with open(log_path) as f:
        for line in f:
            r = json.loads(line)
            if "loss" in r:
                steps.append(r["step"])
                losses.append(r["loss"])
            elif "eval" in r and "all" in r["eval"]:
                ev.append((r["step"], r["eval"]["all"]["psnr"]))
    if not steps:
        raise ValueError(f"log_path: {log_path} holds no logged loss")
    W, H = size
    img = Image.new("RGB", (W, H), "white")
    d = ImageDraw.Draw(img)
    try:
        d.font = ImageFont.load_default(size=13)  # a scalable font where PIL has FreeType
    except (TypeError, ImportError, OSError):
        pass  # PIL's small bitmap font
    L, R, T, B = 70, 70, 30, 50
    x0, x1 = 0, max(steps)
    lo, hi = min(losses), max(losses)
    span = max(math.log(hi) - math.log(lo), 1e-9)
    ly = lambda v: T + (H - T - B) * (1 - (math.log(v) - math.log(lo)) / span)  # noqa: E731
    lx = lambda s: L + (W - L - R) * (s - x0) / max(x1 - x0, 1)  # noqa: E731
    d.rectangle([L, T, W - R, H - B], outline="black")
    for k in range(5):  # y ticks (log scale)
        v = math.exp(math.log(lo) + (math.log(hi) - math.log(lo)) * k / 4)
        d.text((5, ly(v) - 6), f"{v:.3g}", fill="black")
        d.line([L - 4, ly(v), L, ly(v)], fill="black")
    for k in range(6):
        s = x0 + (x1 - x0) * k / 5
        d.text((lx(s) - 12, H - B + 6), f"{int(s)}", fill="black")
    d.text((W // 2 - 20, H - 22), "step", fill="black")
    d.text((L, 8), "training loss (Eq. 6, log scale)", fill=(30, 80, 200))
    d.line([(lx(s), ly(v)) for s, v in zip(steps, losses)], fill=(30, 80, 200), width=2)
    if ev:
        p_lo, p_hi = min(p for _, p in ev) - 0.5, max(p for _, p in ev) + 0.5
        py = lambda p: T + (H - T - B) * (1 - (p - p_lo) / (p_hi - p_lo))  # noqa: E731
        pts = [(lx(s), py(p)) for s, p in ev]
        if len(pts) > 1:
            d.line(pts, fill=(200, 60, 30), width=2)
        for x, y in pts:
            d.ellipse([x - 3, y - 3, x + 3, y + 3], fill=(200, 60, 30))
        for k in range(3):
            p = p_lo + (p_hi - p_lo) * k / 2
            d.text((W - R + 6, py(p) - 6), f"{p:.1f}", fill=(200, 60, 30))
        d.text((W - 260, 8), "held-out PSNR dB (EMA, right axis)", fill=(200, 60, 30))
    img.save(png_path)
    return os.fspath(png_path)


# ---- CLI ------------------------------------------------------------------------------------------

def config_from_args(args: argparse.Namespace) -> TrainConfig:
    d = asdict(TrainConfig.from_json(args.config)) if args.config else {}
    for f in dataclasses.fields(TrainConfig):
        v = getattr(args, f.name, None)
        if v is not None:
            d[f.name] = v
    return TrainConfig.from_dict(d)


def cmd_train(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    if args.export_only:
        if not cfg.export_dir:
            raise InputError("--export-only needs --export-dir")
        ck = load_checkpoint(os.path.join(cfg.out_dir, CKPT_NAME))
        ema = A3DModel(ModelConfig.from_dict(ck["model_config"]), with_avas=cfg.avas)
        ema.load_state_dict(ck["ema"])
        print(f"exported step {ck['step']} to {export(ema, cfg.export_dir)}")
        return 0
    res = train(cfg)
    if res and _dist_info()[0] == 0:
        print(json.dumps(res, indent=1))
    if args.plot and _dist_info()[0] == 0:
        print(f"wrote {plot_log(os.path.join(cfg.out_dir, LOG_NAME), args.plot)}")
    return 0


if __name__ == "__main__":  # `python -m a3d.train ...` / `torchrun --nproc_per_node=N -m a3d.train ...`
    import sys

    from a3d.cli import main  # the same command as `a3d train`: one-line errors, exit codes, --debug

    raise SystemExit(main(["train", *sys.argv[1:]]))
