"""Constant tensors on a device, copied there once: :func:`on_device`.

A constant (a tuple of floats, or a module-level palette tensor) used by a batched computation every step
(the synthetic heads of :mod:`a3d.data.synth`, the augmentations of :mod:`a3d.data.augment`) would cost a
host-to-device copy a step, which stalls the GPU queue; :func:`on_device` keeps one copy per device.
"""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["on_device"]


_COPIES: dict = {}


def on_device(device: torch.device, x: tuple | Tensor) -> Tensor:
    """A constant (a tuple of floats, or a module-level palette tensor) on ``device``, copied there once:
    a fresh host-to-device copy every batch would stall the GPU queue."""
    key = (str(device), x if isinstance(x, tuple) else id(x))
    t = _COPIES.get(key)
    if t is None:
        t = _COPIES[key] = (torch.tensor(x, dtype=torch.float32) if isinstance(x, tuple) else x).to(device)
    return t
