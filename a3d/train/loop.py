"""The training loop of the Any3DAvatar model (paper §3.3-3.4, §4.1): :func:`train`, run by ``a3d train``,
``python -m a3d.train`` and ``torchrun -m a3d.train``.

One flat loop in the manner of nanoGPT; each of its parts is a module of its own:

* the settings, :class:`a3d.train.config.TrainConfig`, and the learning rate, :func:`a3d.train.config.get_lr`
  (linear warmup, then a cosine down to ``min_lr``);
* the data, :mod:`a3d.train.batches`: synthetic heads generated on the fly on the training device
  (:mod:`a3d.data.synth`, the default) or a dataset folder in the AnyHead layout (:mod:`a3d.data.dataset`). Either way a
  :class:`a3d.data.batch.Batch` holds the input portrait (the front canonical view), the 4 canonical views
  (the flow-matching target and the AVAS target) and ``num_views`` supervision views with their cameras;
* the loss, Eq. 6 with flow matching, :mod:`a3d.train.objective`;
* checkpoints, RNG states, the EMA and the export, :mod:`a3d.train.checkpoint`;
* the evaluation and its pictures, :mod:`a3d.eval.evaluate`.

A step: AdamW (no weight decay on biases and norms), bf16 autocast on CUDA (the Gaussian decoder's last
layer, the rasterizer and the losses run in float32), gradient clipping, an EMA of the weights (what is
evaluated and exported; a short average early on, so that it is useful before 1/(1 − decay) steps).
torchrun: DDP over the ranks, per-rank seeds, a DistributedSampler for folder data; logging, evaluation
and checkpoints on rank 0 only.

The run folder ``OUT``:

* ``ckpt.pt`` every ``ckpt_every`` steps and at the end, written atomically, holding every rank's RNG
  states: a run restarted with the same config continues exactly where the checkpoint left it
  (bitwise on the CPU);
* ``log.jsonl``: a first line with the setup time, one line per logged step (loss and its parts,
  learning rate, gradient norm, samples/s, skipped files, ``stage_s``: the logged step's seconds per
  stage, device-synchronised, generation amortised when ``synth_ahead`` > 1: :class:`a3d.train.batches.StageClock`)
  and one per evaluation; a resumed run trims it to its checkpoint's step;
* ``eval.json`` (the final evaluation and a summary), ``train_config.json``, ``gallery_K.png``.

Evaluation: held-out synthetic heads (a seed never used for training), the EMA model at one step,
``eval_views`` views on a horizontal circle that skips the input azimuth; PSNR, SSIM and LPIPS per
view-angle bucket and per 22.5° yaw bin (:func:`a3d.eval.evaluate.evaluate`). Export: the EMA weights
without the training-only AVAS decoder, in float16, through ``save_pretrained``
(:func:`a3d.train.checkpoint.export`), loadable by :func:`a3d.api.load_model`.
"""
from __future__ import annotations

import copy
import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor

from .batches import FolderBatches, StageClock, SyntheticBatches
from .checkpoint import ema_update, export, load_checkpoint, rng_state, save_checkpoint, set_rng_state, warm_start
from ..errors import check_device
from ..eval.evaluate import evaluate, save_gallery, synthetic_eval_set
from ..core.files import atomic_write
from ..model.config import ModelConfig
from ..model.network import A3DModel
from .objective import compute_loss
from ..core.seeding import mix_seed
from .config import TrainConfig, get_lr

__all__ = ["train", "dist_info", "CKPT_NAME", "LOG_NAME", "EVAL_NAME"]

CKPT_NAME = "ckpt.pt"
LOG_NAME = "log.jsonl"
EVAL_NAME = "eval.json"


def train(cfg: TrainConfig, on_step: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Run (or resume) training as configured; returns the final evaluation (empty when disabled).

    ``on_step(step)`` is called after each optimizer step and checkpoint (tests use it to interrupt
    a run). Under torchrun every rank calls this; rank 0 logs, evaluates, checkpoints and exports.
    """
    run = _start(cfg)
    log = _RunLog(run)
    deadline = run.t_start + 60.0 * cfg.max_minutes if cfg.max_minutes > 0 else math.inf
    run.model.train()
    # Resume exactly: the RNG state of the checkpoint is restored last, after everything built at the
    # start (data source, eval set) has drawn what it draws, so the loop sees what an uninterrupted
    # run saw. (Modules built lazily inside the loop must not draw from the global generator:
    # a3d.perception.lpips builds its network under a forked RNG.)
    if run.rng_resumed is not None:
        set_rng_state(run.rng_resumed)
    stopped_by_clock = False
    while run.step < cfg.max_steps:
        if cfg.budget_minutes > 0:
            run.spent = _agreed_elapsed(run)
            if run.spent >= 60.0 * cfg.budget_minutes:
                break  # the schedule's end, as max_steps without a budget
        clock = StageClock(run.device) if run.master and (run.step + 1) % cfg.log_every == 0 else None
        done = _train_step(run, clock)
        log.add(done, clock)
        stop = _out_of_time(run, deadline)
        if not stop and run.step < cfg.max_steps:
            if run.step % cfg.ckpt_every == 0:
                _save(run)
            if run.master and cfg.eval_every and run.step % cfg.eval_every == 0:
                _evaluate(run)
        if on_step is not None:
            on_step(run.step)
        if stop:
            stopped_by_clock = True
            break
    log.close()
    return _finish(run, stopped_by_clock, log.skipped_total)


# ---- setup ----------------------------------------------------------------------------------------

@dataclass
class _Run:
    """What the loop works on; :func:`_start` builds it and each step advances ``step``."""

    cfg: TrainConfig
    mcfg: ModelConfig
    device: torch.device
    rank: int
    world: int
    ddp: bool  # launched by torchrun
    model: A3DModel
    ema: A3DModel
    optim: torch.optim.Optimizer
    train_model: torch.nn.Module  # the model, or its DDP wrapper
    source: SyntheticBatches | FolderBatches
    eval_set: dict[str, Tensor] | None  # rank 0 only
    step: int  # optimizer steps done
    t_start: float  # time.time() when this process started training
    elapsed_before: float  # training seconds of the runs before a resume
    rng_resumed: dict[str, Any] | None  # this rank's RNG states from the checkpoint
    ckpt_path: str
    log_path: str
    eval_turned: dict[str, Tensor] | None = None  # rank 0, with eval_turn: the held-out heads turned
    spent: float = 0.0  # training seconds (all ranks agree) when the step began: budget_minutes' schedule

    @property
    def master(self) -> bool:
        return self.rank == 0

    @property
    def autocast(self) -> bool:
        return self.cfg.bf16 and self.device.type == "cuda"

    def elapsed(self) -> float:
        return self.elapsed_before + time.time() - self.t_start


def dist_info() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment (0, 1, 0 without it)."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


def _start(cfg: TrainConfig) -> _Run:
    """The process group, seeds, model, optimizer, checkpoint (if any), data source and eval set, in an
    order that a resumed run repeats (whatever draws from the global RNG draws the same)."""
    t_start = time.time()
    rank, world, local_rank = dist_info()
    ddp = "LOCAL_RANK" in os.environ  # launched by torchrun (also with one process: same code path)
    device = _init_device(cfg, local_rank, ddp)
    rank_seed = mix_seed(cfg.seed, 1000 + rank, bits=31)  # per-rank seeds: each rank draws its own noise and data
    torch.manual_seed(rank_seed)
    np.random.seed(rank_seed % 2**32)
    random.seed(rank_seed)

    mcfg = cfg.model_config()
    model, ema, optim = _build_model(cfg, mcfg, device, rank == 0)
    os.makedirs(cfg.out_dir, exist_ok=True)
    ckpt_path, log_path = os.path.join(cfg.out_dir, CKPT_NAME), os.path.join(cfg.out_dir, LOG_NAME)
    step, elapsed_before, rng_resumed = _resume(cfg, model, ema, optim, rank, ckpt_path, log_path)
    if rank == 0:
        with atomic_write(os.path.join(cfg.out_dir, "train_config.json"), "w") as f:
            json.dump(asdict(cfg), f, indent=1)
    train_model: torch.nn.Module = model
    if ddp:
        from torch.nn.parallel import DistributedDataParallel as DDP

        train_model = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)

    S = mcfg.image_size
    source: SyntheticBatches | FolderBatches
    if cfg.data == "synthetic":
        source = SyntheticBatches(S, cfg.batch_size, cfg.num_views, cfg.synth_gaussians,
                                  mix_seed(cfg.seed, 2000 + rank, bits=31), device, ahead=cfg.synth_ahead,
                                  augment=cfg.heads_augmented, turn=(cfg.head_yaw, cfg.head_pitch),
                                  turn_power=cfg.head_turn_power, progress=rank == 0 and cfg.progress)
    else:
        source = FolderBatches(cfg.data, S, cfg.batch_size, cfg.num_views, cfg.seed, rank, world,
                               cfg.num_workers, device)
    eval_set = None
    if rank == 0 and cfg.eval_heads > 0:
        eval_set = synthetic_eval_set(cfg.eval_heads, cfg.eval_views, S, device, cfg.eval_seed, cfg.synth_gaussians)
    eval_turned = None
    if eval_set is not None and cfg.eval_turn > 0:
        eval_turned = synthetic_eval_set(cfg.eval_heads, cfg.eval_views, S, device, cfg.eval_seed,
                                         cfg.synth_gaussians, turn=cfg.eval_turn)
    if rank == 0:
        _log(log_path, {"step": step, "setup_s": time.time() - t_start})  # model, data source, eval set
    return _Run(cfg, mcfg, device, rank, world, ddp, model, ema, optim, train_model, source, eval_set, step,
                t_start, elapsed_before, rng_resumed, ckpt_path, log_path, eval_turned)


def _init_device(cfg: TrainConfig, local_rank: int, ddp: bool) -> torch.device:
    """This rank's device (joining the process group under torchrun), with TF32 matmuls on CUDA."""
    if cfg.device:
        device = check_device(cfg.device, "TrainConfig.device")
    else:
        device = torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    if ddp:
        import torch.distributed as dist

        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return device


def _build_model(cfg: TrainConfig, mcfg: ModelConfig, device: torch.device, master: bool
                 ) -> tuple[A3DModel, A3DModel, torch.optim.Optimizer]:
    """The model (warm-started from ``init_from`` if set), its EMA copy and AdamW."""
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
    return model, ema, optim


def _resume(cfg: TrainConfig, model: A3DModel, ema: A3DModel, optim: torch.optim.Optimizer, rank: int,
            ckpt_path: str, log_path: str) -> tuple[int, float, dict[str, Any] | None]:
    """Load ``ckpt_path`` if it exists: (its step, its elapsed seconds, this rank's RNG states), the log
    trimmed to that step; else (0, 0.0, None), and a log left by a run that died before its first
    checkpoint is removed (it is not this run's)."""
    if not os.path.exists(ckpt_path):
        if rank == 0 and os.path.exists(log_path):
            os.remove(log_path)
        return 0, 0.0, None
    ck = load_checkpoint(ckpt_path)
    if ck["config"] != asdict(cfg) and rank == 0:
        print(f"note: resuming {ckpt_path} written with another config; using the current one")
    model.load_state_dict(ck["model"])
    ema.load_state_dict(ck["ema"])
    optim.load_state_dict(ck["optimizer"])
    step = int(ck["step"])
    rng = ck["rng"]
    if rank == 0:
        _truncate_log(log_path, step)
        print(f"resumed from {ckpt_path} at step {step}")
    return step, float(ck.get("elapsed", 0.0)), rng[rank] if rank < len(rng) else rng[0]


# ---- a step ---------------------------------------------------------------------------------------

@dataclass
class _StepDone:
    """What a step leaves for the log (tensors stay on the device until a line is written)."""

    lr: float
    parts: dict[str, Tensor]  # the loss and its parts, detached
    grad_norm: Tensor | None
    skipped: Tensor  # images of the batch that failed to decode


def _train_step(run: _Run, clock: StageClock | None) -> _StepDone:
    """One optimizer step on the batch of ``run.step``, the EMA update, and ``run.step`` advanced;
    ``clock`` (on logged steps) books the stages."""
    cfg = run.cfg
    batch = run.source.get(run.step, clock)
    lr = get_lr(run.step, cfg, run.spent)
    for group in run.optim.param_groups:
        group["lr"] = lr
    loss, parts = compute_loss(run.train_model, batch, cfg, run.mcfg, run.autocast)
    if clock is not None:
        clock.mark("forward_loss")
    run.optim.zero_grad(set_to_none=True)
    loss.backward()
    if clock is not None:
        clock.mark("backward")
    params = run.model.parameters()
    grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip) if cfg.grad_clip > 0 else None
    run.optim.step()
    ema_update(run.ema, run.model, min(cfg.ema_decay, (1.0 + run.step) / (10.0 + run.step)))  # EMA warm-up
    if clock is not None:
        clock.mark("optimizer_ema")
    run.step += 1
    return _StepDone(lr, parts, grad_norm, batch.skipped.sum())


def _agreed_elapsed(run: _Run) -> float:
    """The run's training seconds so far (resumed calls included); all ranks agree (rank 0's clock), so
    that every rank's schedule gives the same learning rate."""
    spent = run.elapsed()
    if run.ddp:
        import torch.distributed as dist

        value = torch.tensor([spent], dtype=torch.float64, device=run.device)
        dist.broadcast(value, 0)
        spent = float(value.item())
    return spent


def _out_of_time(run: _Run, deadline: float) -> bool:
    """Whether the wall-clock stop has come; all ranks agree (rank 0's clock decides)."""
    stop = time.time() > deadline
    if run.ddp and math.isfinite(deadline):
        import torch.distributed as dist

        flag = torch.tensor([float(stop)], device=run.device)
        dist.broadcast(flag, 0)
        stop = bool(flag.item())
    return stop


# ---- the log --------------------------------------------------------------------------------------

class _RunLog:
    """The lines of the logged steps in ``log.jsonl`` (rank 0), the counts between them, the progress bar."""

    def __init__(self, run: _Run):
        self.run = run
        self.bar = None
        if run.master and run.cfg.progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=run.cfg.max_steps, initial=run.step, desc="train", unit="step", dynamic_ncols=True)
        self.skipped_total: int | Tensor = 0  # a tensor once counting: read only when logged
        self.t_last, self.samples_since = time.time(), 0

    def add(self, done: _StepDone, clock: StageClock | None) -> None:
        """Count the step just done; on a logged step write its line."""
        run, cfg = self.run, self.run.cfg
        self.skipped_total = self.skipped_total + done.skipped
        self.samples_since += cfg.batch_size * run.world
        if run.master and (run.step % cfg.log_every == 0 or run.step == cfg.max_steps):
            now = time.time()
            rec = {"step": run.step, "lr": done.lr, **{k: float(v) for k, v in done.parts.items()},
                   "grad_norm": float(done.grad_norm) if done.grad_norm is not None else None,
                   "samples_per_s": self.samples_since / max(now - self.t_last, 1e-9),
                   "skipped_files": int(self.skipped_total), "elapsed_s": run.elapsed_before + now - run.t_start}
            if clock is not None:  # this step's time per stage (synchronised), seconds
                rec["stage_s"] = {k: round(v, 5) for k, v in clock.seconds.items()}
            _log(run.log_path, rec)
            self.t_last, self.samples_since = now, 0
            if self.bar is not None:
                self.bar.set_postfix(loss=f"{rec['loss']:.4f}", sps=f"{rec['samples_per_s']:.1f}")
        if self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


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


# ---- checkpoints, evaluation, the end -------------------------------------------------------------

def _save(run: _Run) -> None:
    """Checkpoint the run (every rank takes part: rank 0 gathers the RNG states and writes)."""
    rng = [rng_state()]
    if run.ddp:
        import torch.distributed as dist

        gathered: list = [None] * run.world
        dist.all_gather_object(gathered, rng[0])
        rng = gathered
    if run.master:
        save_checkpoint({"model": run.model.state_dict(), "ema": run.ema.state_dict(),
                         "optimizer": run.optim.state_dict(), "step": run.step, "config": asdict(run.cfg),
                         "model_config": run.mcfg.to_dict(), "rng": rng, "elapsed": run.elapsed()}, run.ckpt_path)


def _evaluate(run: _Run) -> dict[str, Any]:
    """The EMA model on the held-out heads, logged (empty without an eval set; with ``eval_turn`` the same heads
    turned too, under "turned"); the training RNG is untouched."""
    if run.eval_set is None:
        return {}
    with torch.random.fork_rng(devices=[run.device] if run.device.type == "cuda" else []):
        res = evaluate(run.ema, run.eval_set, run.cfg.lpips_net, seed=run.cfg.eval_seed)
        if run.eval_turned is not None:
            res["turned"] = evaluate(run.ema, run.eval_turned, run.cfg.lpips_net, seed=run.cfg.eval_seed)
    _log(run.log_path, {"step": run.step, "eval": res})
    return res


def _finish(run: _Run, stopped_by_clock: bool, skipped_total: int | Tensor) -> dict[str, Any]:
    """The last checkpoint; on rank 0 the final evaluation, ``eval.json``, the export and the gallery."""
    cfg = run.cfg
    _save(run)
    result: dict[str, Any] = {}
    if run.master:
        result = _evaluate(run)
        summary = {"step": run.step, "stopped_by_clock": stopped_by_clock, "skipped_files": int(skipped_total),
                   "elapsed_s": run.elapsed(), "eval": result, "config": asdict(cfg)}
        with atomic_write(os.path.join(cfg.out_dir, EVAL_NAME), "w") as f:
            json.dump(summary, f, indent=1)
        if cfg.export_dir:
            export(run.ema, cfg.export_dir, cfg.export_dtype)
            print(f"exported the EMA weights to {cfg.export_dir}")
        if run.eval_set is not None:
            for k in range(cfg.gallery_images):
                save_gallery(run.ema, run.eval_set, os.path.join(cfg.out_dir, f"gallery_{k}.png"),
                             range(3 * k, 3 * k + 3), seed=cfg.eval_seed)
    if run.ddp:
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()
    return result
