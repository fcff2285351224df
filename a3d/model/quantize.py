"""Weights stored in int8 with a float scale per output channel, dequantised when they are loaded.

Why: the bundled model must fit the repository's limits (≤ 16 MiB a file, ≤ 24 MiB in all); float16
holds about 8 M parameters in 16 MiB, int8 twice as many. Only storage changes: a loaded model holds
float weights and computes exactly as a float model would with the dequantised values.

What is quantised: every floating-point tensor named ``*.weight`` with at least two dimensions and
:data:`MIN_ELEMENTS` elements (linear and convolution weights, which hold nearly all parameters).
Each output channel (dimension 0) gets the symmetric scale ``max |w| / 127`` and its values become
``round(w / scale)`` in [-127, 127]; the scale is stored beside it as float32 under the tensor's name
plus :data:`SCALE_SUFFIX`. Biases, norms, embeddings and small tensors stay float16. The file's
metadata says :data:`INT8_FORMAT` under :data:`METADATA_KEY`, so a reader knows to dequantise and an
int8 tensor in any other file is refused. Quantising the dequantised weights again gives the same
tensors, so loading and saving an int8 model round-trips.
"""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["quantize_state", "dequantize_state", "INT8_FORMAT", "METADATA_KEY", "SCALE_SUFFIX", "MIN_ELEMENTS"]

METADATA_KEY = "a3d_quantization"
INT8_FORMAT = "int8-per-output-channel"
SCALE_SUFFIX = ".int8_scale"
MIN_ELEMENTS = 1024  # smaller weights gain nothing worth their precision


def _quantized(name: str, value: Tensor) -> bool:
    return (name.endswith(".weight") and value.is_floating_point() and value.dim() >= 2
            and value.numel() >= MIN_ELEMENTS)


def quantize_state(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Float tensors by name -> the tensors to store: int8 values + float32 scales [C_out] for the
    weights this module quantises (see the module docstring), float16 for the other floats."""
    out: dict[str, Tensor] = {}
    for name, value in state.items():
        if name.endswith(SCALE_SUFFIX):
            raise ValueError(f"{name}: a weight's name may not end with {SCALE_SUFFIX!r}")
        v = value.detach().cpu()
        if not _quantized(name, v):
            out[name] = v.half() if v.is_floating_point() else v
            continue
        v = v.float()
        rows = v.reshape(v.shape[0], -1)
        # an all-zero channel gets scale 1 (any scale stores its zeros exactly)
        scale = rows.abs().amax(1) / 127.0
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        out[name] = torch.round(rows / scale[:, None]).clamp(-127, 127).to(torch.int8).reshape(v.shape)
        out[name + SCALE_SUFFIX] = scale
    return out


def dequantize_state(stored: dict[str, Tensor], path: str = "weights") -> dict[str, Tensor]:
    """The inverse of :func:`quantize_state`: float32 tensors by name (the scales folded in). A
    quantised weight without its scale, a scale without its weight or of the wrong shape, is a
    ValueError naming ``path``."""
    out: dict[str, Tensor] = {}
    scales = {k[: -len(SCALE_SUFFIX)]: v for k, v in stored.items() if k.endswith(SCALE_SUFFIX)}
    for name, value in stored.items():
        if name.endswith(SCALE_SUFFIX):
            if name[: -len(SCALE_SUFFIX)] not in stored:
                raise ValueError(f"{path}: scale {name} belongs to no weight")
            continue
        if value.dtype != torch.int8:
            out[name] = value.float() if value.is_floating_point() else value
            continue
        scale = scales.get(name)
        if scale is None or not scale.is_floating_point() or scale.shape != (value.shape[0],):
            raise ValueError(f"{path}: int8 weight {name} {tuple(value.shape)} needs a float scale "
                             f"[{value.shape[0]}] named {name + SCALE_SUFFIX}")
        out[name] = value.float() * scale.float().reshape((-1,) + (1,) * (value.dim() - 1))
    return out
