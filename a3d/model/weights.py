"""A model's weights on disk: ``model.safetensors`` read with every check a3d makes (floating point, finite,
the int8 format of :mod:`a3d.model.quantize` dequantised), never unpickled."""
import os
from typing import Optional, Union

import torch
from torch import Tensor

from ..errors import InputError

__all__ = ["load_weights", "load_weights_and_format"]


def load_weights(path: Union[str, os.PathLike]) -> dict[str, Tensor]:
    """The tensors of a ``model.safetensors`` file (on the CPU; an int8 file, :mod:`a3d.model.quantize`,
    dequantised to float32), refused with an InputError naming the file when it is not a readable
    safetensors file or holds tensors that are not floating point or not finite (a model with NaN
    weights would reconstruct NaN Gaussians without a word)."""
    return load_weights_and_format(path)[0]


def load_weights_and_format(path: Union[str, os.PathLike]) -> tuple[dict[str, Tensor], Optional[str]]:
    """:func:`load_weights` and the file's quantisation format (None for float weights)."""
    from .quantize import dequantize_state

    state, quantization = _read_safetensors(path)
    if quantization is not None:
        try:
            state = dequantize_state(state, os.fspath(path))
        except ValueError as e:
            raise InputError(str(e)) from None
    bad = [k for k, v in state.items() if not v.is_floating_point()]
    if bad:
        raise InputError(f"{path}: weights that are not floating point: {bad[:8]}")
    bad = [k for k, v in state.items() if not torch.isfinite(v).all()]
    if bad:
        raise InputError(f"{path}: weights holding NaN or inf: {bad[:8]}")
    return state, quantization


def _read_safetensors(path: Union[str, os.PathLike]) -> tuple[dict[str, Tensor], Optional[str]]:
    """(the stored tensors, the file's quantisation format or None); an InputError for an unreadable file
    or an unknown format."""
    from safetensors import SafetensorError, safe_open

    from .quantize import INT8_FORMAT, METADATA_KEY

    try:
        with safe_open(os.fspath(path), framework="pt", device="cpu") as f:
            quantization = (f.metadata() or {}).get(METADATA_KEY)
            state = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, ValueError, RuntimeError, OSError) as e:  # a malformed header or truncated data
        raise InputError(f"{path}: not a readable safetensors file ({' '.join(str(e).split())})") from None
    if quantization not in (None, INT8_FORMAT):
        raise InputError(f"{path}: unknown weight quantisation {quantization!r} (this a3d reads {INT8_FORMAT!r})")
    return state, quantization
