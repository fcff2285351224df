"""Counter-based random numbers of the synthetic heads: element ``j`` of the stream ``name`` of a head is
a hash of (the head's key, ``name``, ``j``), so a head is a function of its seed and index alone, whatever
the batch it is built in, on every device (integer arithmetic).
"""
from __future__ import annotations

import math
import zlib
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ..device_constants import on_device
from ...core.seeding import GOLDEN, INDEX_MUL, MUL1, MUL2, OFFSET, splitmix64

__all__ = ["HeadRandom", "Draws", "Noises", "head_keys", "normal_quantile"]


# =================================================================================================
# Counter-based random numbers
# =================================================================================================
def _signed64(x: int) -> int:
    """A 64-bit pattern as the signed int torch's int64 holds."""
    x &= 2**64 - 1
    return x - 2**64 if x >= 2**63 else x


_GOLDEN = _signed64(GOLDEN)
_MUL1 = _signed64(MUL1)
_MUL2 = _signed64(MUL2)
_HEAD_MUL = _signed64(INDEX_MUL)


def _mix64(x: Tensor) -> Tensor:
    """splitmix64's finaliser on int64 tensors: wrapping products, logical shifts by masking (torch
    shifts signed integers arithmetically). Integer arithmetic: the same bits on every device."""
    x = x ^ ((x >> 30) & ((1 << 34) - 1))
    x = x * _MUL1
    x = x ^ ((x >> 27) & ((1 << 37) - 1))
    x = x * _MUL2
    return x ^ ((x >> 31) & ((1 << 33) - 1))


def head_keys(seed: int, ids: Tensor) -> Tensor:
    """[B] int64 keys of heads ``ids`` of stream ``seed``: nearby (seed, head) pairs give unrelated keys."""
    return _mix64(ids.long() * _HEAD_MUL + _signed64(seed * GOLDEN + OFFSET))  # a3d.core.seeding.mix_seed, on tensors


class HeadRandom:
    """Random numbers of a batch of heads: element ``j`` of stream ``name`` of head ``b`` is a hash of
    (key[b], name, j), so a head's numbers depend neither on its batch nor on how many are drawn
    after them (a [B, n, k] draw's first m rows are the same for every n >= m)."""

    def __init__(self, keys: Tensor):
        self.keys = keys
        self.device = keys.device
        self._index_cache: dict[int, Tensor] = {}

    def _bits(self, name: str, shape: tuple[int, ...]) -> Tensor:
        # splitmix64: the state of element j is key + stream + j·golden, so streams are far-apart
        # offsets of each head's sequence (the keys are already mixed)
        stream = _signed64(splitmix64(zlib.crc32(name.encode()) * GOLDEN + 0x2545F4914F6CDD1D))
        n = math.prod(shape)
        idx = self._index_cache.get(n)
        if idx is None:
            idx = self._index_cache[n] = torch.arange(n, device=self.device, dtype=torch.int64) * _GOLDEN
        return _mix64((self.keys[:, None] + stream) + idx).reshape(len(self.keys), *shape)

    def uniform(self, name: str, *shape: int) -> Tensor:
        """[B, *shape] float32 uniform in the open interval (0, 1) (23-bit resolution: exact in float32)."""
        x = self._bits(name, shape)
        return ((x >> 41) & 0x7FFFFF).float() * 2.0**-23 + 2.0**-24

    def normal(self, name: str, *shape: int) -> Tensor:
        """[B, *shape] float32 standard normal (the normal quantile of a uniform)."""
        return normal_quantile(self.uniform(name, *shape))


def normal_quantile(u: Tensor) -> Tensor:
    """Standard normal values from uniforms in (0, 1) (|z| < 5.4 for 23-bit uniforms)."""
    return math.sqrt(2.0) * torch.erfinv(2 * u - 1)


class Draws:
    """Columns of one block of uniforms and one of normals [B, k], handed out in order: a head's
    attributes are drawn with two hashes' worth of launches, whatever their number."""

    def __init__(self, rng: HeadRandom, name: str, uniforms: int, normals: int):
        u = rng.uniform(name, uniforms + normals)
        self._u, self._z = u[:, :uniforms], normal_quantile(u[:, uniforms:])
        self._iu = self._iz = 0

    def u(self, lo: float = 0.0, hi: float = 1.0, k: int = 0) -> Tensor:
        """[B] (or [B, k] for k > 0) uniform in (lo, hi)."""
        n = max(k, 1)
        if self._iu + n > self._u.shape[1]:
            raise RuntimeError("attribute draws: the uniform block is too small")
        x = self._u[:, self._iu:self._iu + n]
        self._iu += n
        return lo + (hi - lo) * (x if k else x[:, 0])

    def z(self, k: int = 0) -> Tensor:
        """[B] (or [B, k]) standard normal."""
        n = max(k, 1)
        if self._iz + n > self._z.shape[1]:
            raise RuntimeError("attribute draws: the normal block is too small")
        x = self._z[:, self._iz:self._iz + n]
        self._iz += n
        return x if k else x[:, 0]

    def choice(self, p: Sequence[float] | Tensor) -> Tensor:
        """[B] int64 indices drawn with weights ``p`` [K]."""
        w = tuple(float(x) for x in (p.tolist() if isinstance(p, Tensor) else p))
        cdf = on_device(self._u.device, tuple(sum(w[:i + 1]) / sum(w) for i in range(len(w))))
        return torch.searchsorted(cdf, self.u().contiguous(), right=True).clamp(max=len(p) - 1)

    def bernoulli(self, p: float | Tensor) -> Tensor:
        """[B] bool."""
        return self.u() < p


class Noises:
    """Several smooth random scalar fields on R^3 at once (one per frequency), per head: [B, n, k]."""

    def __init__(self, rng: HeadRandom, name: str, freqs: Sequence[float], waves: int = 12):
        k = len(freqs)
        scale = on_device(rng.device, tuple(float(f) for f in freqs for _ in range(waves)))
        z = rng.normal(name, k * waves, 5)  # directions, and a length and a phase from normal quantiles
        u = 0.5 * (1 + torch.erf(z[..., 3:] * (0.5 ** 0.5)))
        self.dirs = F.normalize(z[..., :3], dim=-1) * (scale[:, None] * (0.6 + 0.8 * u[..., :1]))  # [B, kw, 3]
        self.phase = u[..., 1] * 2 * math.pi  # [B, kw]
        self.k, self.waves = k, waves
        self.amp = math.sqrt(2.0 / waves)

    def __call__(self, p: Tensor) -> Tensor:
        # a batched product: one same-shaped product a head, so a head's result does not depend on its batch
        w = torch.sin(torch.baddbmm(self.phase[:, None], p, self.dirs.transpose(1, 2)))
        return w.reshape(*p.shape[:-1], self.k, self.waves).sum(-1) * self.amp
