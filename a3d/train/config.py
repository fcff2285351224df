"""What a training run depends on: :class:`TrainConfig` (every setting, flat and JSON-serialisable, saved in
each checkpoint; ``a3d train`` makes each field a flag) and the learning-rate schedule :func:`get_lr`."""
from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import InputError, check_int, check_number
from ..core.files import read_json

if TYPE_CHECKING:
    from ..model.network import ModelConfig

__all__ = ["TrainConfig", "get_lr", "EXPORT_DTYPES"]

EXPORT_DTYPES = ("float16", "float32", "int8")  # storage of an exported model's weights (checkpoint.export)


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
    synth_ahead: int = 1  # without a pool: one generator call makes the heads of this many steps (the same heads)
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
    # L1 between every supervised view's rendered alpha and its true matte (synthetic heads only: exact
    # mattes): a silhouette signal that does not depend on the colour contrast against the background
    # (round 5 found 75% of the held-out error where the silhouettes disagree; 0: off, rounds 1-5)
    lambda_alpha: float = 0.0
    multiview_prob: float = 0.25  # each of left/right/back is given as a photo with this probability
    augment: bool = False  # photo-like degradations of the network's input image (a3d.data.augment)
    # with augment and synthetic data: the colour rendition and framing error go to the heads (every view sees
    # them, a3d.data.augment.augment_heads) instead of to the input alone, which makes the targets contradict the
    # input (round 4's ablation, docs/training.md; False: rounds 2-3 and round 4's control arm)
    augment_heads: bool = True
    # with the heads augmented: each synthetic head (the whole person) turned by a yaw and a pitch drawn
    # uniformly within ±head_yaw / ±head_pitch degrees, then framed again by its eyes and mouth as
    # preprocessing frames a photo (a3d.data.augment.augment_heads): the generator's heads face the camera exactly,
    # photos seldom do (0: off, rounds 1-5)
    head_yaw: float = 0.0
    head_pitch: float = 0.0
    # > 1: the turns drawn as max · sign(v) · |v|^power (v uniform in [-1, 1]), more heads nearly facing the
    # camera as in most portraits, the same largest turn (1: uniform, round 6; a3d.data.augment.turn_angles)
    head_turn_power: float = 1.0
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
    # > 0: each evaluation also scores the held-out heads turned ±eval_turn degrees of yaw (`a3d eval
    # --synthetic-turn`), under "turned" in the logged evaluation
    eval_turn: float = 0.0
    eval_seed: int = 987_654_321  # held-out heads: a generator seed no training rank uses (mix_seed never gives it
    # in practice; the generator's head streams of two seeds do not overlap within 1,000,003 heads)
    gallery_images: int = 2  # PNGs of 3 held-out heads each written at the end (gallery_K.png)
    export_dir: str = ""  # after training: EMA weights written here with save_pretrained
    export_dtype: str = "float16"  # how they are stored: float16, float32 or int8 (a3d.model.quantize)
    progress: bool = True

    @property
    def heads_augmented(self) -> bool:
        """Whether the synthetic heads carry the colour rendition and framing error (``augment_heads``), so
        the input's own augmentation leaves them out."""
        return self.augment and self.augment_heads and self.data == "synthetic"

    def __post_init__(self) -> None:
        ints = ("num_views", "num_workers", "batch_size", "max_steps", "warmup_steps", "log_every", "ckpt_every",
                "eval_every", "eval_heads", "eval_views", "synth_gaussians", "gallery_images", "synth_pool",
                "synth_refresh", "synth_ahead")
        for name in ints:
            v = getattr(self, name)
            low = 1 if name in ("num_views", "batch_size", "max_steps", "log_every", "ckpt_every", "synth_ahead") else 0
            check_int(v, f"TrainConfig.{name}", low)
        for name in ("lr", "min_lr", "weight_decay", "grad_clip", "lambda_l2", "lambda_lpips", "max_minutes",
                     "lambda_own", "lambda_depth", "lambda_alpha"):
            check_number(getattr(self, name), f"TrainConfig.{name}", 0.0)
        for name in ("ema_decay", "beta1", "beta2", "one_step_prob", "multiview_prob"):
            check_number(getattr(self, name), f"TrainConfig.{name}", 0.0, 1.0)
        for name in ("head_yaw", "head_pitch", "eval_turn"):
            check_number(getattr(self, name), f"TrainConfig.{name}", 0.0, 90.0)
        check_number(self.head_turn_power, "TrainConfig.head_turn_power", 1.0, 8.0)
        if (self.head_yaw or self.head_pitch) and not self.heads_augmented:
            raise InputError("TrainConfig.head_yaw/head_pitch turn the synthetic heads, which happens with their "
                             "augmentation: set augment (and keep augment_heads) with data 'synthetic'")
        if not isinstance(self.model_overrides, dict):
            raise InputError(f"TrainConfig.model_overrides: expected a dict of ModelConfig fields, "
                             f"got {type(self.model_overrides).__name__}")
        if self.synth_ahead > 1 and self.synth_pool > 0:
            raise InputError(f"TrainConfig.synth_ahead {self.synth_ahead}: generating ahead is for fresh heads; "
                             f"with a pool (synth_pool {self.synth_pool}) set synth_ahead to 1")
        if self.export_dtype not in EXPORT_DTYPES:
            raise InputError(f"TrainConfig.export_dtype: expected one of {EXPORT_DTYPES}, got {self.export_dtype!r}")
        if self.min_lr > self.lr:
            raise InputError(f"TrainConfig.min_lr {self.min_lr} must not exceed lr {self.lr}")

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> "TrainConfig":
        """Read a JSON object of TrainConfig fields (unknown keys fail), bounded (:func:`a3d.core.files.read_json`)."""
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
        from ..model.network import get_config  # torch: only when a model is built, not when flags are parsed

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
