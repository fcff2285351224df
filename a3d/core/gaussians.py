"""3D Gaussians as a dataclass of activated values.

Every field holds activated (physical) values, never raw network outputs; the activations live in
:mod:`a3d.model.network` alone, and the file formats (:mod:`a3d.io.ply`) convert to their own encodings.
Files are io_ply's idea: write with ``a3d.save_ply(gaussians, path)`` / ``a3d.save_splat``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Sequence

import torch
from torch import Tensor

from ..errors import InputError
from .contract import ALPHA_MIN

SH_C0 = 0.28209479177387814
"""Zeroth spherical-harmonic constant: colour = 0.5 + SH_C0 * f_dc."""


@dataclass
class Gaussians:
    """A set of 3D Gaussians with optional leading batch dims ``*`` (one set per scene).

    Attributes:
        means: [*, N, 3] centres, world coordinates (head units).
        quats: [*, N, 4] rotations as quaternions (w, x, y, z); need not be normalised.
        scales: [*, N, 3] standard deviations along the rotated axes (linear, > 0).
        opacities: [*, N] in (0, 1).
        colors: [*, N, 3] RGB in [0, 1] (sh_degree 0, the paper's setting).
        sh_rest: optional [*, N, K, 3] higher-order SH coefficients (K = (deg+1)^2 - 1); the
            renderer uses only the DC colour, files keep them.
    """

    means: Tensor
    quats: Tensor
    scales: Tensor
    opacities: Tensor
    colors: Tensor
    sh_rest: Tensor | None = None

    def __post_init__(self) -> None:
        m = self.means
        if not isinstance(m, Tensor) or m.dim() < 2 or m.shape[-1] != 3:
            raise ValueError(f"means: expected a tensor [*, N, 3], got {_desc(m)}")
        lead = m.shape[:-1]  # (*, N)
        expect = {"quats": lead + (4,), "scales": lead + (3,), "opacities": lead, "colors": lead + (3,)}
        for name, shape in expect.items():
            v = getattr(self, name)
            if not isinstance(v, Tensor) or tuple(v.shape) != tuple(shape):
                raise ValueError(f"{name}: expected shape {tuple(shape)} to match means {tuple(m.shape)}, "
                                 f"got {_desc(v)}")
        if self.sh_rest is not None:
            s = self.sh_rest
            if not isinstance(s, Tensor) or s.dim() != m.dim() + 1 or s.shape[:-2] != lead or s.shape[-1] != 3:
                raise ValueError(f"sh_rest: expected [*, N, K, 3] matching means {tuple(m.shape)}, got {_desc(s)}")

    # ---- container behaviour -------------------------------------------------------------------
    def _map(self, fn) -> "Gaussians":
        return Gaussians(**{f.name: (None if getattr(self, f.name) is None else fn(getattr(self, f.name)))
                            for f in fields(self)})

    def to(self, device=None, dtype=None) -> "Gaussians":
        return self._map(lambda t: t.to(device=device, dtype=dtype))

    def detach(self) -> "Gaussians":
        return self._map(Tensor.detach)

    def float(self) -> "Gaussians":
        return self._map(Tensor.float)

    @property
    def num_gaussians(self) -> int:
        return self.means.shape[-2]

    @property
    def batch_shape(self) -> torch.Size:
        return self.means.shape[:-2]

    @property
    def device(self) -> torch.device:
        return self.means.device

    def __len__(self) -> int:
        return self.num_gaussians

    def index(self, idx: Tensor | slice | Sequence[int]) -> "Gaussians":
        """Select Gaussians along the N dim (a boolean mask, indices or a slice)."""
        n_dim = self.means.dim() - 2  # the N dim sits at the same index in every field
        sl = (slice(None),) * n_dim + (idx,)
        return self._map(lambda t: t[sl])

    def scene(self, b: int) -> "Gaussians":
        """The b-th scene of a batch with one leading dim: [B, N, ...] -> [N, ...]."""
        if len(self.batch_shape) != 1:
            raise ValueError(f"scene: expected one leading batch dim, got batch shape {tuple(self.batch_shape)}")
        return self._map(lambda t: t[b])

    @staticmethod
    def cat(parts: Sequence["Gaussians"]) -> "Gaussians":
        """Concatenate along the N dim; all parts share batch shape and the presence of sh_rest."""
        if not parts:
            raise ValueError("parts: expected at least one Gaussians")
        if len({p.sh_rest is None for p in parts}) != 1:
            raise ValueError("parts: either all or none must carry sh_rest")
        out = {}
        for f in fields(Gaussians):
            vals = [getattr(p, f.name) for p in parts]
            if vals[0] is None:
                out[f.name] = None
            else:  # the N dim sits at the same index in every field
                out[f.name] = torch.cat(vals, dim=parts[0].means.dim() - 2)
        return Gaussians(**out)

    def prune(self, min_opacity: float = ALPHA_MIN) -> "Gaussians":
        """Drop Gaussians that can never show (opacity below ``min_opacity``, by default the rasterizer's
        cull threshold 1/255; non-finite or zero scale, non-finite mean). Only for a single scene (no batch
        dims): the count changes."""
        if self.means.dim() != 2:
            raise ValueError("prune: works on one scene [N, ...]; index a batch with .scene(b) first")
        keep = (self.opacities >= min_opacity) & torch.isfinite(self.means).all(-1) \
            & torch.isfinite(self.scales).all(-1) & (self.scales > 0).all(-1) & torch.isfinite(self.colors).all(-1) \
            & torch.isfinite(self.quats).all(-1) & (self.quats.norm(dim=-1) > 0)
        return self.index(keep)

    # ---- display -------------------------------------------------------------------------------
    def __repr__(self) -> str:
        """One line (count, batch shape, SH degree, dtype, device, bounds of the means), not the tensors."""
        k = 0 if self.sh_rest is None else self.sh_rest.shape[-2]
        degree = math.isqrt(k + 1) - 1
        sh = f"sh_degree={degree}" if (degree + 1) ** 2 == k + 1 else f"sh_rest K={k}"
        batch = f", batch={tuple(self.batch_shape)}" if len(self.batch_shape) else ""
        parts = [f"{self.num_gaussians:,} Gaussians{batch}", sh, str(self.means.dtype).replace("torch.", ""),
                 str(self.device)]
        if self.means.numel() and not self.means.is_meta:
            m = self.means.detach().reshape(-1, 3)
            lo, hi = m.min(0).values.tolist(), m.max(0).values.tolist()
            parts.append("bounds " + " ".join(f"{a}[{lo[i]:.2f}, {hi[i]:.2f}]" for i, a in enumerate("xyz")))
        return f"Gaussians({', '.join(parts)})"


def _desc(x) -> str:
    return f"shape {tuple(x.shape)}" if isinstance(x, Tensor) else type(x).__name__


def require_scene(gaussians: object, what: str = "gaussians") -> Gaussians:
    """``gaussians`` itself if it is one scene of :class:`Gaussians` (means [N, 3], no batch dims); an
    InputError naming ``what`` otherwise. The check every function that takes a single head makes first."""
    if not isinstance(gaussians, Gaussians):
        raise InputError(f"{what}: expected a3d.Gaussians, got {type(gaussians).__name__}")
    if gaussians.means.dim() != 2:
        raise InputError(f"{what}: expected one scene without batch dims, got batch shape "
                         f"{tuple(gaussians.batch_shape)}")
    return gaussians
