"""The compiled operators of a3d._C, resolved lazily, and the choice of backend.

``import a3d`` never needs the extension. Each op has three implementations that compute the same
function: the CUDA kernel, the C++ CPU kernel, and the pure-PyTorch reference. :func:`backend`
says which one runs for tensors on a device; ``A3D_BACKEND=torch|cpu|cuda`` forces one, and forcing
a compiled backend that was not built raises an error saying how to build it (never a silent
fallback that changes results).
"""
from __future__ import annotations

import importlib
import os
from typing import Literal

import torch
from torch import Tensor

from .rays import plucker_rays_reference

Backend = Literal["cuda", "cpu", "torch"]
_BACKENDS = ("cuda", "cpu", "torch")
_BUILD_HINT = (
    "Build the a3d extension from a source checkout with `pip install --no-build-isolation -e .` "
    "(a CUDA build needs a CUDA-enabled torch and nvcc; set A3D_BUILD_CUDA=1 to insist on it), "
    "or set A3D_BACKEND=torch to use the pure-PyTorch reference."
)
_ext_error: Exception | None = None
_ext_loaded = False


def extension_error() -> Exception | None:
    """The error raised when importing a3d._C, if it failed (None if it loaded or was not tried)."""
    _load()
    return _ext_error


def _load() -> bool:
    global _ext_loaded, _ext_error
    if not _ext_loaded and _ext_error is None:
        try:
            importlib.import_module("a3d._C")
            _ext_loaded = True
        except (ImportError, OSError) as e:  # missing or built against another torch
            _ext_error = e
    return _ext_loaded


def has_kernel(op: str, device_type: str) -> bool:
    """Whether ``a3d::op`` has a compiled kernel for ``device_type`` ('cpu' or 'cuda')."""
    if not _load():
        return False
    try:
        return torch._C._dispatch_has_kernel_for_dispatch_key(f"a3d::{op}", device_type.upper())
    except RuntimeError:  # the op is not defined by this build of the extension
        return False


def backend(device: torch.device | str | None = None, op: str = "plucker_rays") -> Backend:
    """The backend that runs ``op`` for tensors on ``device`` (default: CUDA if available, else CPU).

    Honours ``A3D_BACKEND``; raises RuntimeError if it names a compiled backend that is not built
    or does not match the device.
    """
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device).type
    forced = os.environ.get("A3D_BACKEND", "").strip().lower()
    if forced:
        if forced not in _BACKENDS:
            raise RuntimeError(f"A3D_BACKEND={forced!r}: expected one of {', '.join(_BACKENDS)}")
        if forced == "torch":
            return "torch"
        if forced != dev:
            raise RuntimeError(f"A3D_BACKEND={forced} but the tensors are on {dev}; unset A3D_BACKEND "
                               f"or move the tensors to {forced}")
        if not has_kernel(op, forced):
            why = f" (import failed: {_ext_error})" if _ext_error is not None else ""
            raise RuntimeError(f"A3D_BACKEND={forced}: the a3d extension has no {forced.upper()} kernel "
                               f"for {op}{why}. {_BUILD_HINT}")
        return forced  # type: ignore[return-value]
    if dev in ("cuda", "cpu") and has_kernel(op, dev):
        return dev  # type: ignore[return-value]
    return "torch"


def plucker_rays(viewmats: Tensor, Ks: Tensor, width: int, height: int) -> Tensor:
    """Plücker rays [..., C, H, W, 6] = [o × d, d], unit d; see :func:`a3d.rays.plucker_rays_reference`.

    Runs the compiled kernel where one is built for the tensors' device, else the reference.
    Not differentiable (rays depend on cameras only, which a3d never optimises).
    """
    if viewmats.shape[-2:] != (4, 4) or Ks.shape[-2:] != (3, 3) or viewmats.shape[:-2] != Ks.shape[:-2]:
        raise ValueError(f"plucker_rays: expected viewmats [..., C, 4, 4] and Ks [..., C, 3, 3], "
                         f"got {tuple(viewmats.shape)} and {tuple(Ks.shape)}")
    for name, v in (("width", width), ("height", height)):
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise ValueError(f"{name}: expected a positive int number of pixels, got {v!r}")
    if backend(viewmats.device, "plucker_rays") == "torch":
        return plucker_rays_reference(viewmats, Ks, width, height)
    lead = viewmats.shape[:-2]
    Ks = Ks.to(viewmats.dtype)
    out = torch.ops.a3d.plucker_rays(viewmats.reshape(-1, 4, 4), Ks.reshape(-1, 3, 3), int(width), int(height))
    return out.reshape(*lead, height, width, 6)


def info() -> dict[str, object]:
    """Which kernels are built, for ``a3d info`` and bug reports."""
    _load()
    return {
        "extension": "loaded" if _ext_loaded else f"not loaded ({_ext_error})",
        "cpu_kernels": has_kernel("plucker_rays", "cpu"),
        "cuda_kernels": has_kernel("plucker_rays", "cuda"),
        "backend_cpu": _safe_backend("cpu"),
        "backend_cuda": _safe_backend("cuda") if torch.cuda.is_available() else "no CUDA device",
    }


def _safe_backend(device: str) -> str:
    try:
        return backend(device)
    except RuntimeError as e:
        return f"error: {e}"
