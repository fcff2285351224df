"""What a training run depends on: :class:`TrainConfig` (every setting, flat and JSON-serialisable, saved in
each checkpoint; ``a3d train`` makes each field a flag whose help is the field's docstring) and the
learning-rate schedule :func:`get_lr`.

The defaults are the recipe: the settings of the training run whose weights ship as the bundled model
(``a3d/assets/models/tiny``). That run warm-started from the weights before it; the chain of runs back to
a random initialisation is recorded as data in ``a3d/assets/models/tiny/provenance.json`` and told in
docs/training.md.

A config file carries ``config_version``; a file without it is version 1 and :func:`migrate` brings it to
the current version (one step: version 1's defaults fill the fields it leaves out, and the head pool it
could ask for is gone).
"""
from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import math
import os
import textwrap
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import limits
from ..errors import InputError, check_int, check_number
from ..core.files import read_json

if TYPE_CHECKING:
    from ..model.config import ModelConfig

__all__ = ["TrainConfig", "get_lr", "migrate", "field_help", "EXPORT_DTYPES", "CONFIG_VERSION", "RUN_FIELDS"]

EXPORT_DTYPES = ("float16", "float32", "int8")  # storage of an exported model's weights (checkpoint.export)
CONFIG_VERSION = 2


@dataclass
class TrainConfig:
    """Everything a training run depends on; flat, JSON-serialisable, saved in every checkpoint. The
    defaults are the recipe of the bundled model (module docstring). Each field's docstring is the help
    line of its ``a3d train`` flag (:func:`field_help`)."""

    # model
    preset: str = "tiny"
    """network preset of a3d.model.config.get_config ('tiny': the bundled model's architecture; 'paper')"""
    model_overrides: dict = field(default_factory=dict)
    """ModelConfig fields that replace the preset's, a JSON object (e.g. {"depth": 16})"""
    init_from: str = ""
    """a model folder to start from (its weights; parameters it lacks keep their initialisation, added DiT
    blocks start as the identity); empty: a random start"""
    # data
    data: str = "synthetic"
    """'synthetic' (heads generated on the training device, a3d.data.synth) or a dataset folder in the
    AnyHead layout (docs/dataset.md)"""
    num_views: int = 8
    """rendered supervision views a sample (the paper's 8)"""
    num_workers: int = 4
    """DataLoader workers for folder data"""
    synth_gaussians: int = 60_000
    """Gaussians a synthetic head (the generator's floor is 2,000)"""
    synth_ahead: int = 8
    """synthetic heads of this many steps made by one generator call (the same heads as one call a step,
    cheaper per head on a GPU); every step takes fresh heads"""
    # optimisation
    batch_size: int = 32
    """samples a step on each rank"""
    max_steps: int = 3600
    """optimizer steps; the cosine schedule ends at the last"""
    max_minutes: float = 0.0
    """wall-clock stop: after this many minutes the run checkpoints, evaluates and exports, whatever the
    step (0: none)"""
    budget_minutes: float = 0.0
    """training minutes over which the cosine runs, summed over resumed calls (checkpoints carry them); the
    run ends when they are spent, and max_steps only caps it (the learning rate then follows the clock, so
    such a run does not repeat bit for bit). 0: the cosine runs over max_steps"""
    lr: float = 3e-4
    """peak learning rate (AdamW), reached after the warmup"""
    min_lr: float = 3e-5
    """learning rate at the end of the cosine"""
    warmup_steps: int = 100
    """steps of linear warmup to lr"""
    weight_decay: float = 0.05
    """AdamW weight decay (none on biases and norms)"""
    beta1: float = 0.9
    """AdamW beta1"""
    beta2: float = 0.95
    """AdamW beta2"""
    grad_clip: float = 1.0
    """gradient-norm clip (0: none)"""
    ema_decay: float = 0.998
    """decay of the weights' EMA (what is evaluated and exported)"""
    # objective
    lambda_l2: float = 3.0
    """weight of the L2 term on the rendered views"""
    lambda_lpips: float = 0.5
    """weight of the LPIPS term on the rendered views"""
    avas: bool = True
    """train the AVAS decoder's terms (paper §3.4)"""
    one_step_prob: float = 0.8
    """fraction of samples trained at t = 0, the one-step objective used at inference"""
    lpips_net: str = "alex"
    """LPIPS trunk"""
    lambda_own: float = 1.0
    """weight of the terms asking each given photo's own Gaussians alone to reproduce the photo and its matte
    (synthetic data only)"""
    lambda_depth: float = 1.0
    """weight of the term putting each given photo's own Gaussians on the visible surface (synthetic data only:
    it has depth)"""
    lambda_alpha: float = 1.0
    """weight of the L1 between every supervised view's rendered alpha and its exact matte, a silhouette signal
    independent of the head's contrast with the background (synthetic data only; 0: off)"""
    multiview_prob: float = 0.25
    """probability with which each of the left, right and back views is also given as a photo"""
    # augmentation
    augment: bool = True
    """photo-like degradations of the network's input (a3d.data.augment)"""
    augment_heads: bool = True
    """with augment and synthetic data: the colour rendition and framing error go to the heads, so that every
    view sees them (a3d.data.augment.augment_heads), instead of to the input alone, which would make the
    targets contradict the input"""
    head_yaw: float = 30.0
    """with the heads augmented: each synthetic head turned by a yaw within ±head_yaw degrees, then framed
    again by its eyes and mouth (0: facing the camera; synthetic data only)"""
    head_pitch: float = 10.0
    """with the heads augmented: each synthetic head turned by a pitch within ±head_pitch degrees (synthetic
    data only)"""
    head_turn_power: float = 2.0
    """turns drawn as max·sign(v)·|v|^power, v uniform in [-1, 1]: above 1, more heads nearly face the camera,
    as in most portraits, with the same largest turn (1: uniform; a3d.data.augment.turn_angles)"""
    # system
    bf16: bool = True
    """bf16 autocast on CUDA"""
    seed: int = 5
    """seed of the run: its data, noise and initialisation (each rank draws its own)"""
    device: str = ""
    """torch device (empty: cuda if available, else cpu)"""
    out_dir: str = "runs/tiny"
    """run folder: checkpoint, log, evaluation, gallery; a run started again in it resumes"""
    log_every: int = 25
    """steps between log lines"""
    ckpt_every: int = 1000
    """steps between checkpoints (one is also written at the end)"""
    eval_every: int = 2000
    """steps between held-out evaluations (0: only at the end)"""
    eval_heads: int = 16
    """held-out synthetic heads an evaluation (0: no evaluation)"""
    eval_views: int = 16
    """views a held-out head"""
    eval_turn: float = 30.0
    """above 0: each evaluation also scores the held-out heads turned ±eval_turn degrees of yaw (a3d eval
    --synthetic-turn), under "turned" in the logged evaluation"""
    eval_seed: int = 987_654_321
    """generator seed of the held-out heads, one no training rank uses (the generator's head streams of two
    seeds do not overlap within 1,000,003 heads)"""
    gallery_images: int = 2
    """PNGs of 3 held-out heads each written at the end (gallery_K.png)"""
    export_dir: str = ""
    """after training, the EMA weights written here as a model folder (save_pretrained); empty: no export"""
    export_dtype: str = "float16"
    """how exported weights are stored: float16, float32 or int8 (a3d.model.quantize)"""
    progress: bool = True
    """progress bars"""
    config_version: int = CONFIG_VERSION
    """version of the config's layout (:func:`migrate` brings older ones up to date); not a flag"""

    @property
    def heads_augmented(self) -> bool:
        """Whether the synthetic heads carry the colour rendition and framing error (``augment_heads``), so
        the input's own augmentation leaves them out."""
        return self.augment and self.augment_heads and self.data == "synthetic"

    def __post_init__(self) -> None:
        ints = ("num_views", "num_workers", "batch_size", "max_steps", "warmup_steps", "log_every", "ckpt_every",
                "eval_every", "eval_heads", "eval_views", "synth_gaussians", "gallery_images", "synth_ahead")
        for name in ints:
            v = getattr(self, name)
            low = 1 if name in ("num_views", "batch_size", "max_steps", "log_every", "ckpt_every", "synth_ahead") else 0
            check_int(v, f"TrainConfig.{name}", low)
        for name in ("lr", "min_lr", "weight_decay", "grad_clip", "lambda_l2", "lambda_lpips", "max_minutes",
                     "budget_minutes", "lambda_own", "lambda_depth", "lambda_alpha"):
            check_number(getattr(self, name), f"TrainConfig.{name}", 0.0)
        for name in ("ema_decay", "beta1", "beta2", "one_step_prob", "multiview_prob"):
            check_number(getattr(self, name), f"TrainConfig.{name}", 0.0, 1.0)
        for name in ("head_yaw", "head_pitch", "eval_turn"):
            check_number(getattr(self, name), f"TrainConfig.{name}", 0.0, 90.0)
        check_number(self.head_turn_power, "TrainConfig.head_turn_power", 1.0, 8.0)
        for name in ("seed", "eval_seed"):  # the range a3d gives every seed (a3d.limits)
            limits.check("seed", getattr(self, name), f"TrainConfig.{name}")
        # Folder data has no heads to turn (the fields do not apply there); with synthetic data a turn
        # without the heads' augmentation would silently do nothing.
        if (self.head_yaw or self.head_pitch) and not (self.augment and self.augment_heads):
            raise InputError("TrainConfig.head_yaw/head_pitch turn the synthetic heads, which happens with their "
                             "augmentation: set augment and augment_heads, or head_yaw and head_pitch 0")
        if not isinstance(self.model_overrides, dict):
            raise InputError(f"TrainConfig.model_overrides: expected a dict of ModelConfig fields, "
                             f"got {type(self.model_overrides).__name__}")
        if self.export_dtype not in EXPORT_DTYPES:
            raise InputError(f"TrainConfig.export_dtype: expected one of {EXPORT_DTYPES}, got {self.export_dtype!r}")
        if self.min_lr > self.lr:
            raise InputError(f"TrainConfig.min_lr {self.min_lr} must not exceed lr {self.lr}")
        if self.config_version != CONFIG_VERSION:
            raise InputError(f"TrainConfig.config_version {self.config_version!r}: this a3d reads versions 1 to "
                             f"{CONFIG_VERSION} through TrainConfig.from_dict / from_json (a file without the "
                             f"field is version 1)")

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> "TrainConfig":
        """Read a JSON object of TrainConfig fields (unknown keys fail; an older version is migrated),
        bounded (:func:`a3d.core.files.read_json`)."""
        d = read_json(path, 2**20, what="training config")
        try:
            return cls.from_dict(d)
        except ValueError as e:
            raise InputError(f"{path}: {e}") from None

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """A TrainConfig from a dict of its fields, of any version this a3d reads (:func:`migrate`); fields
        left out take the defaults of the dict's version."""
        if not isinstance(d, dict):
            raise InputError(f"config: expected a JSON object of TrainConfig fields, got {type(d).__name__}")
        d = migrate(d)
        names = {f.name for f in dataclasses.fields(cls)}
        bad = sorted(set(d) - names)
        if bad:
            raise InputError(f"config: unknown TrainConfig fields {bad}")
        return cls(**d)

    def model_config(self) -> ModelConfig:
        from ..model.config import get_config  # only when a model is built, not when flags are parsed

        return get_config(self.preset, **self.model_overrides)


RUN_FIELDS = ("init_from", "num_workers", "max_minutes", "device", "out_dir", "log_every", "ckpt_every",
              "eval_every", "eval_heads", "eval_views", "eval_turn", "eval_seed", "gallery_images", "export_dir",
              "export_dtype", "progress", "config_version")
"""Fields that say where a run starts from and writes, how long it may take and what it reports, not what it
learns from: the recipe is every other field."""

# Version 1 (a config without ``config_version``) had other defaults; a version-1 file that leaves a field
# out meant these values.
_V1_DEFAULTS: dict[str, Any] = {
    "synth_gaussians": 80_000, "synth_ahead": 1, "batch_size": 8, "max_steps": 20_000, "lr": 4e-4, "min_lr": 4e-5,
    "warmup_steps": 500, "ema_decay": 0.999, "lambda_l2": 1.0, "one_step_prob": 0.5, "lambda_alpha": 0.0,
    "augment": False, "head_yaw": 0.0, "head_pitch": 0.0, "head_turn_power": 1.0, "seed": 0, "log_every": 20,
    "eval_turn": 0.0,
}
# Version 1's pool of synthetic heads (``synth_pool`` heads drawn from, ``synth_refresh`` of them replaced
# after every step); version 2 takes fresh heads every step.
_V1_POOL_FIELDS = ("synth_pool", "synth_refresh")


def migrate(d: dict) -> dict:
    """A config dict of any version this a3d reads, as a dict of the current version (a new dict).

    Version 1 → 2: the fields a version-1 dict leaves out take version 1's defaults, so that the file means
    what it meant (a warning names them: a hand-written file without the version may have meant today's);
    ``synth_pool`` / ``synth_refresh`` go if they are 0 (no pool), and a pool is an error
    naming the key (version 2 has none: every step takes fresh heads, ``synth_ahead``).
    """
    version = d.get("config_version", 1)
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= CONFIG_VERSION:
        raise InputError(f"config: config_version {version!r} is not one this a3d reads (1 to {CONFIG_VERSION}; "
                         f"a newer a3d wrote it?)")
    d = dict(d)
    if version == 1:
        for key in _V1_POOL_FIELDS:
            value = d.pop(key, 0)
            if value:
                raise InputError(f"config: {key} {value!r}: a pool of synthetic heads is not supported since "
                                 f"config_version 2 (every step takes fresh heads, made synth_ahead steps at a "
                                 f"time); remove {key}, or set it to 0")
        left_out = [k for k in _V1_DEFAULTS if k not in d]
        if left_out:  # the file may have been written for today's defaults: say what it gets
            warnings.warn(f"config without config_version: read as version 1, so {', '.join(left_out)} take "
                          f"version 1's defaults ({', '.join(f'{k}={_V1_DEFAULTS[k]}' for k in left_out)}); "
                          f"add \"config_version\": {CONFIG_VERSION} for the recipe's", stacklevel=3)
        d = {**_V1_DEFAULTS, **d, "config_version": 2}
    return d


@functools.cache
def field_help() -> dict[str, str]:
    """Each TrainConfig field's docstring (the string under it in the class body), whitespace folded: the
    help lines of ``a3d train``'s flags, read from the source so that they cannot drift from the fields."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(TrainConfig)))
    body = tree.body[0].body
    docs = {}
    for node, nxt in zip(body, body[1:]):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and isinstance(nxt, ast.Expr)
                and isinstance(nxt.value, ast.Constant) and isinstance(nxt.value.value, str)):
            docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def get_lr(step: int, cfg: TrainConfig, elapsed_s: float = 0.0) -> float:
    """Learning rate of optimizer step ``step`` (0-based), ``elapsed_s`` training seconds into the run: linear
    warmup over ``warmup_steps``, then a cosine from ``lr`` down to ``min_lr`` at ``max_steps`` or, with
    ``budget_minutes``, when they are spent."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.budget_minutes > 0:
        ratio = min(1.0, elapsed_s / (60.0 * cfg.budget_minutes))
    elif step >= cfg.max_steps:
        return cfg.min_lr
    else:
        ratio = (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps)
    coeff = 0.5 * (1.0 + math.cos(math.pi * ratio))  # 1 -> 0
    return cfg.min_lr + coeff * (cfg.lr - cfg.min_lr)
