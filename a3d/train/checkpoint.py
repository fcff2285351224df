"""A training run's state on disk and its product: checkpoints (written atomically, read without
unpickling), the RNG states they carry (so a resumed run continues bit for bit on the CPU), the EMA of
the weights, the warm start of a changed architecture from a trained model, and the export of the EMA
weights as a model folder that :func:`a3d.api.load_model` reads.

A checkpoint holds ``model``, ``ema``, ``optimizer`` (state dicts), ``step``, ``config`` (the
TrainConfig as a dict), ``model_config``, ``rng`` (one :func:`rng_state` per rank) and ``elapsed``
(training seconds before it was written).
"""
from __future__ import annotations

import os
import pickle
import random
from typing import Any

import numpy as np
import torch

from ..errors import InputError
from ..core.files import atomic_write
from ..model.config import ModelConfig
from ..model.network import A3DModel
from ..model.weights import load_weights
from .config import EXPORT_DTYPES

__all__ = ["warm_start", "rng_state", "set_rng_state", "load_checkpoint", "save_checkpoint", "ema_update", "export",
           "export_checkpoint"]


# Layers whose tensors are laid out by the patch's pixels: the tokenizers' first layer reads a patch as
# (channels, row, column); the patch decoder's and AVAS's expansion write one as (row, column, channels).
_PATCH_INPUTS = ("image_tokenizer.mlp.0.weight", "gaussian_tokenizer.mlp.0.weight")
_PATCH_OUTPUTS = ("decoder.upsample.weight", "decoder.upsample.bias", "avas.upsample.weight", "avas.upsample.bias")


def _finer_patch(name: str, src: torch.Tensor, old_p: int, new_p: int) -> torch.Tensor | None:
    """``src``, a tensor of a patch of ``old_p`` pixels, for patches of ``new_p`` = k · ``old_p`` pixels, each
    new pixel taking the old pixel it lies in: a tokenizer then gives the same token for an image k times
    finer (each old pixel repeated k × k: its weights are divided by k²), and a patch expansion gives each old
    pixel's value to its k × k new pixels. None when ``name`` is not laid out by pixels or k is no integer."""
    if new_p == old_p or new_p % old_p:
        return None
    k = new_p // old_p
    idx = torch.arange(new_p) // k  # the old row (column) that each new one lies in
    if name in _PATCH_INPUTS:
        w = src.reshape(src.shape[0], -1, old_p, old_p)  # [D, C, p, p]
        return (w[:, :, idx][:, :, :, idx] / k**2).reshape(src.shape[0], -1)
    if name in _PATCH_OUTPUTS:
        w = src.reshape(old_p, old_p, -1, *src.shape[1:])  # [p, p, c, (D)]
        return w[idx][:, idx].reshape(-1, *src.shape[1:])
    return None


def warm_start(model: A3DModel, folder: str | os.PathLike) -> dict[str, int]:
    """Copy the weights of the model in ``folder`` (config.json + model.safetensors) into ``model``
    wherever they fit, so a changed architecture starts from a trained one.

    A tensor of the same name and shape is copied; a 2D weight that gained input columns (a layer
    whose input was extended, e.g. the per-pixel MLP when the input decoder's features were appended
    at the end of its input) gets the old columns and zeros in the new ones, so the layer computes
    what it did; everything else keeps its initialisation (the new output layers start at zero). A DiT
    block that the old weights lack (a deeper model: ``ModelConfig.depth`` raised) starts as the
    identity, its attention and MLP output layers zero (their gradients are not: it learns from the
    first step), so the deeper model computes what the old one did.

    A finer model (``patch_size`` and ``image_size`` both k times the old ones: the same tokens, k² times
    the Gaussians) takes the patch-laid-out layers pixel by pixel (:func:`_finer_patch`), and the
    upsampler's stages that the old model lacks start as plain bilinear ×2 steps (the 1 × 1 skip the
    identity, the residual zero), so its features are the old model's, upsampled.
    Returns counts of copied, extended, refined (finer patch) and fresh tensors, and of the blocks that
    start as the identity and the upsampler stages that start as bilinear steps.
    """
    path = os.path.join(os.fspath(folder), "model.safetensors")
    if not os.path.isfile(path):
        raise InputError(f"init_from: no model.safetensors in {folder}")
    old = load_weights(path)
    config_path = os.path.join(os.fspath(folder), "config.json")
    old_p = ModelConfig.from_json(config_path).patch_size if os.path.isfile(config_path) else model.config.patch_size
    counts = {"copied": 0, "extended": 0, "refined": 0, "fresh": 0}
    with torch.no_grad():
        for name, p in model.state_dict().items():
            src = old.get(name)
            finer = _finer_patch(name, src, old_p, model.config.patch_size) if src is not None else None
            if finer is not None and finer.shape == p.shape:
                p.copy_(finer.to(p.dtype))
                counts["refined"] += 1
            elif src is not None and src.shape == p.shape:
                p.copy_(src.to(p.dtype))
                counts["copied"] += 1
            elif src is not None and p.dim() == 2 and src.dim() == 2 and src.shape[0] == p.shape[0] \
                    and src.shape[1] < p.shape[1]:
                p.zero_()
                p[:, :src.shape[1]] = src.to(p.dtype)
                counts["extended"] += 1
            else:
                counts["fresh"] += 1
        old_blocks = {name.split(".")[1] for name in old if name.startswith("blocks.")}
        new_blocks = [i for i in range(len(model.blocks)) if str(i) not in old_blocks]
        for i in new_blocks:
            for layer in (model.blocks[i].proj, model.blocks[i].mlp[-1]):
                layer.weight.zero_()
                layer.bias.zero_()
        # stages added to a trained upsampler (a wholly new upsampler keeps its initialisation)
        old_stages = {name.split(".")[3] for name in old if name.startswith("decoder.upsampler.stages.")}
        added = [st for i, st in enumerate(model.decoder.upsampler.stages) if str(i) not in old_stages] \
            if old_stages and model.config.decoder == "upsampler" else []
        for stage in added:
            if stage.skip.in_channels == stage.skip.out_channels:
                stage.skip.weight.copy_(torch.eye(stage.skip.in_channels)[:, :, None, None])
                stage.skip.bias.zero_()
                stage.conv2.weight.zero_()
                stage.conv2.bias.zero_()
    counts["identity_blocks"] = len(new_blocks)
    counts["bilinear_stages"] = len(added)
    return counts


def rng_state() -> dict[str, Any]:
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


def set_rng_state(state: dict[str, Any]) -> None:
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


def save_checkpoint(state: dict[str, Any], path: str) -> None:
    """Write ``state`` (the keys of the module docstring) to ``path`` atomically: a temporary file, then
    ``os.replace``, so a kill mid-write leaves the previous checkpoint whole."""
    with atomic_write(path) as f:
        torch.save(state, f)


@torch.no_grad()
def ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """Move each of ``ema``'s parameters toward ``model``'s: ema ← decay·ema + (1 − decay)·model."""
    e = [p for p in ema.parameters()]
    m = [p.detach() for p in model.parameters()]
    torch._foreach_lerp_(e, m, 1.0 - decay)


def export(ema: A3DModel, folder: str | os.PathLike, dtype: str = "float16") -> str:
    """Write ``ema``'s weights without the AVAS decoder, stored as ``dtype`` (one of
    :data:`EXPORT_DTYPES`; int8: :mod:`a3d.model.quantize`), with ``save_pretrained`` to ``folder``
    (config.json + model.safetensors); returns the folder."""
    if dtype not in EXPORT_DTYPES:
        raise InputError(f"dtype: expected one of {EXPORT_DTYPES}, got {dtype!r}")
    model = A3DModel(ema.config, with_avas=False)
    state = {k: v for k, v in ema.state_dict().items() if not k.startswith("avas.")}
    model.load_state_dict(state, strict=True)
    if dtype == "float16":
        model = model.half()
    elif dtype == "int8":
        model.stored_dtype = torch.int8
    os.makedirs(folder, exist_ok=True)
    model.save_pretrained(str(folder))
    return os.fspath(folder)


def export_checkpoint(path: str | os.PathLike, folder: str | os.PathLike, with_avas: bool = True,
                      dtype: str = "float16") -> tuple[int, str]:
    """:func:`export` the EMA weights of the checkpoint at ``path`` as ``dtype`` (``with_avas``: whether the
    run's model had the AVAS decoder); returns (the checkpoint's step, the folder)."""
    ck = load_checkpoint(os.fspath(path))
    ema = A3DModel(ModelConfig.from_dict(ck["model_config"]), with_avas=with_avas)
    ema.load_state_dict(ck["ema"])
    return int(ck["step"]), export(ema, folder, dtype)
