"""The compiled operators of a3d._C, resolved lazily, and the choice of backend.

``import a3d`` never needs the extension. Each op has three implementations that compute the same
function: the CUDA kernel, the C++ CPU kernel, and the pure-PyTorch reference. :func:`backend`
says which one runs for tensors on a device; ``A3D_BACKEND=torch|cpu|cuda`` forces one, and forcing
a compiled backend that was not built raises an error saying how to build it (never a silent
fallback that changes results).

Where the extension comes from: the prebuilt ``a3d._C`` (setup.py) when it imports; otherwise the
operators are compiled on first use with ninja into a per-user cache (:mod:`a3d.core._jit`; ``A3D_JIT=0``
turns that off). A failed build leaves the reference backend running, with one warning naming the cause.
"""
from __future__ import annotations

import importlib
import os
import warnings
from typing import Literal

import torch
from torch import Tensor

from . import _jit
from .contract import DEPTH_ALPHA_EPS, PROJ_FIELDS, TILE_SIZE
from ..errors import SetupError, check_int
from .rays import plucker_rays_reference

Backend = Literal["cuda", "cpu", "torch"]
_BACKENDS = ("cuda", "cpu", "torch")
_BUILD_HINT = (
    "Build the a3d extension from a source checkout with `pip install --no-build-isolation -e .`, or let a3d "
    "compile it on first use (needs a C++ compiler and ninja; A3D_JIT=0 turns that off) "
    "(a CUDA build needs a CUDA-enabled torch and nvcc; set A3D_BUILD_CUDA=1 to insist on it), "
    "or set A3D_BACKEND=torch to use the pure-PyTorch reference."
)
_ext_error: Exception | None = None
_ext_loaded = False
_ext_build = "none"  # which build is loaded: 'prebuilt' (a3d._C), 'jit' (compiled on first use) or 'none'
_ext_path: str | None = None  # where the loaded library lives
_prebuilt_error: Exception | None = None  # why a3d._C did not import, when the JIT build stood in


class ExtensionBuildWarning(UserWarning):
    """a3d._C is absent and compiling it on first use failed: the reference backend runs instead."""


class BackendError(SetupError, RuntimeError):
    """``A3D_BACKEND`` asks for a backend this installation or these tensors cannot run (a bad
    environment: the CLI exits 3; still a RuntimeError, as it always was)."""


def extension_error() -> Exception | None:
    """The error raised when importing a3d._C, if it failed (None if it loaded or was not tried)."""
    _load()
    return _ext_error


def _load() -> bool:
    """Load the extension once per process: the prebuilt a3d._C, else the JIT build (see the module doc)."""
    global _ext_loaded, _ext_error, _ext_build, _ext_path, _prebuilt_error
    if _ext_loaded or _ext_error is not None:
        return _ext_loaded
    try:
        _ext_path = importlib.import_module("a3d._C").__file__
        _ext_build = "prebuilt"
    except (ImportError, OSError) as e:  # missing (a pure-Python install, the Space) or built against another torch
        _prebuilt_error = e
        if not _jit.enabled():
            _ext_error = e
            return False
        try:
            build = _jit.load_or_build()
        except _jit.BuildError as be:
            _ext_error = be
            warnings.warn(f"a3d: no compiled kernels ({be}); running the pure-PyTorch reference backend, several "
                          f"times slower. Install a C++ compiler and ninja, or set {_jit.JIT_ENV}=0 to skip the "
                          "build and this warning.", ExtensionBuildWarning, stacklevel=3)
            return False
        _ext_path, _ext_build = str(build.path), "jit"
    _ext_loaded = True
    _register_rasterizer()
    return True


def has_kernel(op: str, device_type: str) -> bool:
    """Whether ``a3d::op`` has a compiled kernel for ``device_type`` ('cpu' or 'cuda')."""
    key = getattr(torch.DispatchKey, device_type.upper(), None)
    if key is None or not _load():
        return False
    try:
        overload = getattr(torch.ops.a3d, op).default
    except (AttributeError, RuntimeError):  # the op is not defined by this build of the extension
        return False
    # True only for a kernel registered for exactly this key (TORCH_LIBRARY_IMPL in csrc/), not a fallback.
    return overload.has_kernel_for_dispatch_key(key)


def backend(device: torch.device | str | None = None, op: str = "plucker_rays") -> Backend:
    """The backend that runs ``op`` for tensors on ``device`` (default: CUDA if available, else CPU).

    Honours ``A3D_BACKEND``; raises :class:`BackendError` (a RuntimeError) if it names a compiled
    backend that is not built or does not match the device.
    """
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device).type
    forced = os.environ.get("A3D_BACKEND", "").strip().lower()
    if forced:
        if forced not in _BACKENDS:
            raise BackendError(f"A3D_BACKEND={forced!r}: expected one of {', '.join(_BACKENDS)}")
        if forced == "torch":
            return "torch"
        if forced != dev:
            raise BackendError(f"A3D_BACKEND={forced} but the tensors are on {dev}; unset A3D_BACKEND "
                               f"or move the tensors to {forced}")
        if not has_kernel(op, forced):
            why = f" (import failed: {_ext_error})" if _ext_error is not None else ""
            raise BackendError(f"A3D_BACKEND={forced}: the a3d extension has no {forced.upper()} kernel "
                               f"for {op}{why}. {_BUILD_HINT}")
        return forced  # type: ignore[return-value]
    if dev in ("cuda", "cpu") and has_kernel(op, dev):
        return dev  # type: ignore[return-value]
    return "torch"


def plucker_rays(viewmats: Tensor, Ks: Tensor, width: int, height: int) -> Tensor:
    """Plücker rays [..., C, H, W, 6] = [o × d, d], unit d; see :func:`a3d.core.rays.plucker_rays_reference`.

    Runs the compiled kernel where one is built for the tensors' device, else the reference.
    Not differentiable (rays depend on cameras only, which a3d never optimises).
    """
    if viewmats.shape[-2:] != (4, 4) or Ks.shape[-2:] != (3, 3) or viewmats.shape[:-2] != Ks.shape[:-2]:
        raise ValueError(f"plucker_rays: expected viewmats [..., C, 4, 4] and Ks [..., C, 3, 3], "
                         f"got {tuple(viewmats.shape)} and {tuple(Ks.shape)}")
    for name, v in (("width", width), ("height", height)):
        check_int(v, name, 1)
    if backend(viewmats.device, "plucker_rays") == "torch":
        return plucker_rays_reference(viewmats, Ks, width, height)
    lead = viewmats.shape[:-2]
    Ks = Ks.to(viewmats.dtype)
    out = torch.ops.a3d.plucker_rays(viewmats.reshape(-1, 4, 4), Ks.reshape(-1, 3, 3), int(width), int(height))
    return out.reshape(*lead, height, width, 6)


def info() -> dict[str, object]:
    """Which kernels are built, for ``a3d info`` and bug reports."""
    _load()
    build = _ext_build
    if build == "jit":
        build += f" (compiled on first use; a3d._C: {_prebuilt_error})"
    return {
        "extension": "loaded" if _ext_loaded else f"not loaded ({_ext_error})",
        "extension_build": build,
        "extension_path": _ext_path or "-",
        "jit_cache": f"{_jit.cache_root()}" + ("" if _jit.enabled() else f" (first-use build off: {_jit.JIT_ENV}=0)"),
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


# --- Rasterizer ------------------------------------------------------------------------------------------
# a3d::rasterize_fwd / a3d::rasterize_bwd (schemas in csrc/ops.cpp; kernels in csrc/rasterize_{cpu,cuda}*).
# The forward op also returns what its backward needs (projections, the per-tile depth-ordered lists, the
# per-pixel count of list entries up to the last included Gaussian and the final transmittance); the
# autograd formula below turns the gradients of (rgb, alpha, depth) into those of the kernel's outputs.


def rasterize_compiled(means: Tensor, quats: Tensor, scales: Tensor, opacities: Tensor, colors: Tensor,
                       viewmats: Tensor, Ks: Tensor, width: int, height: int,
                       backgrounds: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """The compiled rasterizer (CUDA kernel, or the C++ CPU kernel); same contract as
    :func:`a3d.core.rasterize.rasterize` (shapes there: Gaussians [B, N, ...], cameras [B, C, ...]).

    Returns rgb [B, C, H, W, 3], alpha [B, C, H, W, 1], depth [B, C, H, W, 1]. Differentiable w.r.t. means,
    quats, scales, opacities, colors and backgrounds on both devices (the CPU backward is C++ too, parallel
    over tiles). All scenes × views run in one call; the CUDA forward synchronises with the host once (to size
    the (Gaussian, tile) list). float32 or float64.
    """
    if not _load():
        raise BackendError(f"rasterize_compiled: the a3d extension failed to load ({_ext_error}). {_BUILD_HINT}")
    dtype = means.dtype
    if backgrounds is not None:
        backgrounds = backgrounds.to(dtype)
    out = torch.ops.a3d.rasterize_fwd(means, quats, scales, opacities, colors, viewmats.to(dtype), Ks.to(dtype),
                                      backgrounds, int(width), int(height))
    return out[0], out[1], out[2]


def _rasterize_setup_context(ctx, inputs, output):
    means, quats, scales, opacities, colors, viewmats, Ks, backgrounds, width, height = inputs
    rgb, alpha, depth, proj, tile_ranges, isect_gids, last, T_final = output
    ctx.mark_non_differentiable(proj, tile_ranges, isect_gids, last, T_final)
    ctx.size = (width, height)
    ctx.has_bg = backgrounds is not None
    ctx.save_for_backward(means, quats, scales, opacities, colors, viewmats, Ks, backgrounds, alpha, depth, proj,
                          tile_ranges, isect_gids, last, T_final)


def _rasterize_backward(ctx, v_rgb, v_alpha, v_depth, *_unused):
    (means, quats, scales, opacities, colors, viewmats, Ks, backgrounds, alpha, depth, proj, tile_ranges,
     isect_gids, last, T_final) = ctx.saved_tensors
    width, height = ctx.size
    v_rgb = torch.zeros_like(alpha).expand(*alpha.shape[:-1], 3) if v_rgb is None else v_rgb
    v_alpha = torch.zeros_like(alpha) if v_alpha is None else v_alpha
    v_depth = torch.zeros_like(depth) if v_depth is None else v_depth
    # depth = dsum / max(alpha, eps): the kernel takes d/d dsum; the part through the normalisation joins alpha.
    denom = alpha.clamp_min(DEPTH_ALPHA_EPS)
    v_dsum = (v_depth / denom)[..., 0]
    v_alpha_total = (v_alpha - torch.where(alpha > DEPTH_ALPHA_EPS, v_depth * depth / denom,
                                           torch.zeros_like(alpha)))[..., 0]
    v_means, v_quats, v_scales, v_opac, v_colors = torch.ops.a3d.rasterize_bwd(
        means, quats, scales, opacities, colors, viewmats, Ks, backgrounds, width, height, proj, tile_ranges,
        isect_gids, last, T_final, v_rgb.contiguous(), v_alpha_total.contiguous(), v_dsum.contiguous())
    v_bg = (v_rgb * T_final[..., None]).sum((2, 3)) if ctx.has_bg else None
    return v_means, v_quats, v_scales, v_opac, v_colors, None, None, v_bg, None, None


def _register_rasterizer() -> None:
    """Autograd and fake (meta) kernels of the rasterizer ops; runs once the extension is loaded."""
    if not hasattr(torch.ops.a3d, "rasterize_fwd") or getattr(_register_rasterizer, "done", False):
        return
    _register_rasterizer.done = True

    @torch.library.register_fake("a3d::rasterize_fwd")
    def _fwd_fake(means, quats, scales, opacities, colors, viewmats, Ks, backgrounds, width, height):
        B, C, N = means.shape[0], viewmats.shape[1], means.shape[1]
        tiles = ((width + TILE_SIZE - 1) // TILE_SIZE) * ((height + TILE_SIZE - 1) // TILE_SIZE)
        P = torch.library.get_ctx().new_dynamic_size()
        img = means.new_empty
        return (img(B, C, height, width, 3), img(B, C, height, width, 1), img(B, C, height, width, 1),
                img(B, C, N, PROJ_FIELDS), means.new_empty(B * C * tiles, 2, dtype=torch.int32),
                means.new_empty(P, dtype=torch.int32), means.new_empty(B, C, height, width, dtype=torch.int32),
                img(B, C, height, width))

    @torch.library.register_fake("a3d::rasterize_bwd")
    def _bwd_fake(means, quats, scales, opacities, colors, viewmats, Ks, backgrounds, width, height, proj,
                  tile_ranges, isect_gids, last, T_final, v_rgb, v_alpha, v_dsum):
        return (torch.empty_like(means), torch.empty_like(quats), torch.empty_like(scales),
                torch.empty_like(opacities), torch.empty_like(colors))

    torch.library.register_autograd("a3d::rasterize_fwd", _rasterize_backward, setup_context=_rasterize_setup_context)
