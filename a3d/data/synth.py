"""AnyHead-style synthetic heads (paper §3.2, App. C): random 3D Gaussian heads and their cameras,
built a whole batch at a time on the training device.

A head is built on the morphable head basis (:mod:`a3d.data.head_basis`: mean mesh + 32 identity
components + 52 ARKit-style facial actions). Everything else is procedural and torch-native:

* skin: albedo over a range of skin tones with low- and high-frequency variation, redness on
  cheeks, nose and ears, lips (sometimes lipstick), brows, eyelids, sclera / iris / pupil, eye
  sockets, mouth, tongue and teeth, stubble, a shirt collar at the bottom of the neck;
* hair: bald, buzz, short, bob, long, bun and ponytail styles as volumes of anisotropic
  Gaussians offset from the scalp along its normals, elongated along a flow field; many colours;
* accessories: glasses (frame tubes and tinted lenses), hats (beanie, cap with visor, brimmed hat),
  earrings (studs, hoops);
* lighting: a random key light (wrapped Lambert, warmer shadows on skin) plus ambient, baked into
  the colours.

Every head is placed by the similarity transform that maps its pupils and mouth centre onto
:data:`a3d.core.framing.FACE_ANCHORS_3D`, so the front canonical camera frames every face the way
preprocessing frames a photo. Cameras follow the paper: 40 fixed circular views (8 azimuths at
each of the elevations -20°, -10°, 0°, 10°, 20°, at the canonical radius and field of view; the
0° ring contains the four canonical views, and its front view is the input view) and 40 random
views (positions on a spherical shell, jittered look-at, field of view and roll).

Batching: a batch is built with a fixed number of kernel launches whatever its size. Every head's
N Gaussians are split into parts (face, hair shell, curtain, bun, ponytail, hat pieces, glasses,
earrings) with counts that depend on its attributes; each part is built for the whole batch at the
largest count any head needs, and one gather keeps each head's own counts. The host waits for the
device once a batch (to learn those largest counts).

Determinism: random numbers are counter-based (a hash of the head's key, a named stream and the
element's index), so head ``i`` of generator seed ``s`` is a function of ``(s, i)`` alone, whatever
the batch it comes in; its attributes and cameras do not depend on ``num_gaussians``; CPU and CUDA
agree up to float rounding.

Usage::

    gen = SyntheticHeads("cuda", seed=0)
    sample = gen.sample(8)                          # HeadSample: Gaussians [8, N, ...], Cameras [8, 80]
    out = render_views(sample, views=[sample.input_view, 3, 50])   # RenderOutput [8, 3, H, W, ·]
"""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, fields
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ..core import framing
from ..core.cameras import Cameras, orbit_cameras
from ..errors import check_int, check_number
from ..core.gaussians import Gaussians
from ..core.rotations import rotmat_to_quat
from .head_basis import HeadBasis, load_head_basis
from ..core.seeding import GOLDEN, INDEX_MUL, MUL1, MUL2, OFFSET, splitmix64

__all__ = [
    "HeadBasis", "load_head_basis", "SynthConfig", "HeadAttributes", "HeadSample", "SyntheticHeads",
    "render_views", "fixed_cameras", "random_cameras",
    "HAIR_STYLES", "HATS", "EARRINGS", "EXPRESSIONS", "ACCESSORIES", "CIRCLE_ELEVATIONS", "NUM_FIXED_VIEWS",
    "INPUT_VIEW",
]

HAIR_STYLES: tuple[str, ...] = ("bald", "buzz", "short", "bob", "long", "bun", "ponytail", "curly", "shoulder")
_STYLE = {name: i for i, name in enumerate(HAIR_STYLES)}
HATS: tuple[str, ...] = ("none", "beanie", "cap", "brimmed")
EARRINGS: tuple[str, ...] = ("none", "studs", "hoops")

CIRCLE_ELEVATIONS: tuple[float, ...] = (-20.0, -10.0, 0.0, 10.0, 20.0)
"""Elevations (degrees) of the rings of fixed views; 8 azimuths each (odd rings turned by 22.5°)."""
_VIEWS_PER_RING = 8
NUM_FIXED_VIEWS = len(CIRCLE_ELEVATIONS) * _VIEWS_PER_RING
INPUT_VIEW = CIRCLE_ELEVATIONS.index(0.0) * _VIEWS_PER_RING
"""Index of the front canonical camera (azimuth 0, elevation 0) among a sample's views."""

# ---- palettes (sRGB albedo) ---------------------------------------------------------------------
_SKIN_TONES = torch.tensor([
    [0.98, 0.82, 0.72], [0.94, 0.74, 0.62], [0.88, 0.65, 0.52], [0.81, 0.57, 0.43], [0.71, 0.48, 0.34],
    [0.59, 0.38, 0.26], [0.46, 0.29, 0.19], [0.35, 0.21, 0.14], [0.26, 0.16, 0.11],
])
_HAIR_COLOURS = torch.tensor([
    [0.04, 0.035, 0.03], [0.10, 0.07, 0.05], [0.20, 0.13, 0.08], [0.32, 0.21, 0.12], [0.48, 0.34, 0.20],
    [0.45, 0.19, 0.08], [0.65, 0.33, 0.14], [0.78, 0.64, 0.40], [0.90, 0.84, 0.70], [0.52, 0.51, 0.50],
    [0.85, 0.85, 0.83],
])
_HAIR_COLOUR_P = torch.tensor([0.2, 0.2, 0.15, 0.1, 0.08, 0.04, 0.03, 0.08, 0.03, 0.05, 0.04])
_DYED_HAIR = torch.tensor([[0.75, 0.25, 0.55], [0.2, 0.35, 0.75], [0.45, 0.2, 0.65], [0.2, 0.6, 0.45],
                           [0.85, 0.35, 0.2]])
_IRIS_COLOURS = torch.tensor([[0.20, 0.11, 0.05], [0.36, 0.22, 0.10], [0.45, 0.37, 0.17], [0.28, 0.42, 0.26],
                              [0.28, 0.43, 0.62], [0.45, 0.50, 0.55]])
_IRIS_P = torch.tensor([0.35, 0.25, 0.12, 0.08, 0.13, 0.07])
_FRAME_COLOURS = torch.tensor([[0.03, 0.03, 0.03], [0.25, 0.14, 0.07], [0.75, 0.6, 0.3], [0.7, 0.7, 0.72],
                               [0.5, 0.1, 0.1], [0.1, 0.15, 0.35]])
_METALS = torch.tensor([[0.85, 0.66, 0.28], [0.80, 0.80, 0.82], [0.93, 0.91, 0.86], [0.75, 0.2, 0.3]])
_FABRIC = torch.tensor([[0.08, 0.08, 0.1], [0.7, 0.1, 0.1], [0.1, 0.2, 0.5], [0.2, 0.4, 0.2], [0.85, 0.8, 0.7],
                        [0.5, 0.5, 0.5], [0.55, 0.35, 0.2], [0.9, 0.6, 0.1], [0.4, 0.2, 0.5]])

# ARKit-style expression presets: action name -> weight at intensity 1.
_EXPRESSIONS: dict[str, dict[str, float]] = {
    "neutral": {},
    "smile": {"mouthSmileLeft": 0.8, "mouthSmileRight": 0.8, "cheekSquintLeft": 0.4, "cheekSquintRight": 0.4,
              "eyeSquintLeft": 0.2, "eyeSquintRight": 0.2},
    "laugh": {"mouthSmileLeft": 0.9, "mouthSmileRight": 0.9, "jawOpen": 0.35, "mouthUpperUpLeft": 0.3,
              "mouthUpperUpRight": 0.3, "cheekSquintLeft": 0.5, "cheekSquintRight": 0.5},
    "open": {"jawOpen": 0.6, "mouthLowerDownLeft": 0.3, "mouthLowerDownRight": 0.3},
    "surprise": {"browInnerUp": 0.8, "browOuterUpLeft": 0.7, "browOuterUpRight": 0.7, "eyeWideLeft": 0.6,
                 "eyeWideRight": 0.6, "jawOpen": 0.4},
    "sad": {"mouthFrownLeft": 0.7, "mouthFrownRight": 0.7, "browInnerUp": 0.5, "mouthShrugLower": 0.3},
    "angry": {"browDownLeft": 0.8, "browDownRight": 0.8, "noseSneerLeft": 0.5, "noseSneerRight": 0.5,
              "mouthPressLeft": 0.4, "mouthPressRight": 0.4},
    "pucker": {"mouthPucker": 0.8, "mouthFunnel": 0.3},
    "blink": {"eyeBlinkLeft": 1.0, "eyeBlinkRight": 1.0},
    "wink": {"eyeBlinkLeft": 1.0, "mouthSmileLeft": 0.5, "cheekSquintLeft": 0.3},
}
_EXPRESSION_P = [0.34, 0.18, 0.08, 0.07, 0.07, 0.06, 0.05, 0.04, 0.06, 0.05]
EXPRESSIONS: tuple[str, ...] = tuple(_EXPRESSIONS)
"""Names of the expression presets (``overrides={"expression": name}``, ``export_dataset(expressions=...)``)."""

_NO_ACCESSORY = {"glasses": False, "sunglasses": False, "hat": "none", "earrings": "none"}
ACCESSORIES: dict[str, dict] = {
    "none": dict(_NO_ACCESSORY),
    "glasses": {**_NO_ACCESSORY, "glasses": True},
    "sunglasses": {**_NO_ACCESSORY, "glasses": True, "sunglasses": True},
    "beanie": {**_NO_ACCESSORY, "hat": "beanie"},
    "cap": {**_NO_ACCESSORY, "hat": "cap"},
    "brimmed_hat": {**_NO_ACCESSORY, "hat": "brimmed"},
    "studs": {**_NO_ACCESSORY, "earrings": "studs"},
    "hoops": {**_NO_ACCESSORY, "earrings": "hoops"},
}
"""One accessory at a time (or none), as ``overrides``: the Accessory_Rich_Heads level of an export."""

_OVERRIDABLE = {"expression": EXPRESSIONS, "expression_intensity": float, "glasses": bool, "sunglasses": bool,
                "hat": HATS, "earrings": EARRINGS}


def _check_overrides(overrides: dict | None) -> None:
    if overrides is None:
        return
    if not isinstance(overrides, dict):
        raise ValueError(f"overrides: expected a dict, got {type(overrides).__name__}")
    for k, v in overrides.items():
        if k not in _OVERRIDABLE:
            raise ValueError(f"overrides: unknown attribute {k!r}; expected one of {sorted(_OVERRIDABLE)}")
        allowed = _OVERRIDABLE[k]
        if allowed is bool and not isinstance(v, bool):
            raise ValueError(f"overrides[{k!r}]: expected a bool, got {v!r}")
        if allowed is float:
            check_number(v, f"overrides[{k!r}]", 0, 1)
        if isinstance(allowed, tuple) and v not in allowed:
            raise ValueError(f"overrides[{k!r}]: expected one of {allowed}, got {v!r}")


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


_CONSTANTS: dict = {}


def _on(device: torch.device, x: tuple | Tensor) -> Tensor:
    """A constant (a tuple of floats, or a module-level palette tensor) on ``device``, copied there once:
    a fresh host-to-device copy every batch would stall the GPU queue."""
    key = (str(device), x if isinstance(x, tuple) else id(x))
    t = _CONSTANTS.get(key)
    if t is None:
        t = _CONSTANTS[key] = (torch.tensor(x, dtype=torch.float32) if isinstance(x, tuple) else x).to(device)
    return t


def _mix64(x: Tensor) -> Tensor:
    """splitmix64's finaliser on int64 tensors: wrapping products, logical shifts by masking (torch
    shifts signed integers arithmetically). Integer arithmetic: the same bits on every device."""
    x = x ^ ((x >> 30) & ((1 << 34) - 1))
    x = x * _MUL1
    x = x ^ ((x >> 27) & ((1 << 37) - 1))
    x = x * _MUL2
    return x ^ ((x >> 31) & ((1 << 33) - 1))


def _head_keys(seed: int, ids: Tensor) -> Tensor:
    """[B] int64 keys of heads ``ids`` of stream ``seed``: nearby (seed, head) pairs give unrelated keys."""
    return _mix64(ids.long() * _HEAD_MUL + _signed64(seed * GOLDEN + OFFSET))  # a3d.core.seeding.mix_seed, on tensors


class _Random:
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
        return _gaussian(self.uniform(name, *shape))


def _gaussian(u: Tensor) -> Tensor:
    """Standard normal values from uniforms in (0, 1) (|z| < 5.4 for 23-bit uniforms)."""
    return math.sqrt(2.0) * torch.erfinv(2 * u - 1)


class _Draws:
    """Columns of one block of uniforms and one of normals [B, k], handed out in order: a head's
    attributes are drawn with two hashes' worth of launches, whatever their number."""

    def __init__(self, rng: _Random, name: str, uniforms: int, normals: int):
        u = rng.uniform(name, uniforms + normals)
        self._u, self._z = u[:, :uniforms], _gaussian(u[:, uniforms:])
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
        cdf = _on(self._u.device, tuple(sum(w[:i + 1]) / sum(w) for i in range(len(w))))
        return torch.searchsorted(cdf, self.u().contiguous(), right=True).clamp(max=len(p) - 1)

    def bernoulli(self, p: float | Tensor) -> Tensor:
        """[B] bool."""
        return self.u() < p


class _Noises:
    """Several smooth random scalar fields on R^3 at once (one per frequency), per head: [B, n, k]."""

    def __init__(self, rng: _Random, name: str, freqs: Sequence[float], waves: int = 12):
        k = len(freqs)
        scale = _on(rng.device, tuple(float(f) for f in freqs for _ in range(waves)))
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


# =================================================================================================
# Small geometric helpers
# =================================================================================================
def _umeyama(src: Tensor, dst: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Similarity (s [B], R [B,3,3], t [B,3]) minimising Σ|s R src + t − dst|² for [B, K, 3] point sets."""
    mu_s, mu_d = src.mean(-2, keepdim=True), dst.mean(-2, keepdim=True)
    xs, xd = src - mu_s, dst - mu_d
    U, S, Vh = torch.linalg.svd(xd.transpose(-1, -2) @ xs / src.shape[-2])
    d = torch.sign(torch.linalg.det(U @ Vh))
    D = torch.ones_like(S)
    D[..., 2] = d
    R = U @ torch.diag_embed(D) @ Vh
    s = (S * D).sum(-1) / (xs ** 2).sum((-1, -2)) * src.shape[-2]
    t = mu_d[..., 0, :] - s[..., None] * (R @ mu_s[..., 0, :, None])[..., 0]
    return s, R, t


def _frame_quats(tangent: Tensor, normal: Tensor) -> Tensor:
    """Quaternions [..., 4] of the frames (t, n × t, n): scales (s_t, s_b, s_n) lie along them."""
    n = F.normalize(normal, dim=-1, eps=1e-12)
    t = tangent - (tangent * n).sum(-1, keepdim=True) * n
    fallback = torch.linalg.cross(n, _on(n.device, (0.31, 0.83, 0.47)).to(n.dtype).expand_as(n),
                                  dim=-1)
    t = torch.where(t.norm(dim=-1, keepdim=True) > 1e-6, t, fallback)
    t = F.normalize(t, dim=-1, eps=1e-12)
    b = torch.linalg.cross(n, t, dim=-1)
    return rotmat_to_quat(torch.stack([t, b, n], -1))


def _smoothstep(e0: float | Tensor, e1: float | Tensor, x: Tensor) -> Tensor:
    t = ((x - e0) / (e1 - e0)).clamp(0, 1)
    return t * t * (3 - 2 * t)


def _interp(x: Tensor, xp: Sequence[float], fp: Sequence[float]) -> Tensor:
    """Piecewise-linear interpolation of knots (xp [K] ascending, fp [K]) at x (any shape)."""
    xp_t = torch.tensor(xp, device=x.device, dtype=x.dtype)
    fp_t = torch.tensor(fp, device=x.device, dtype=x.dtype)
    i = torch.searchsorted(xp_t, x.contiguous().clamp(xp[0], xp[-1]), right=True).clamp(1, len(xp) - 1)
    x0, x1, f0, f1 = xp_t[i - 1], xp_t[i], fp_t[i - 1], fp_t[i]
    return f0 + (f1 - f0) * ((x - x0) / (x1 - x0)).clamp(0, 1)


def _gather_rows(x: Tensor, index: Tensor) -> Tensor:
    """x [B, M, ...] rows picked per head by index [B, ...idx] -> [B, ...idx, ...]."""
    b = torch.arange(x.shape[0], device=x.device).reshape(-1, *([1] * (index.dim() - 1)))
    return x[b, index]


@dataclass
class _Splats:
    """Gaussians of one part of every head of a batch, [B, M, ·], before their frames become
    quaternions and their albedo is lit: centres, tangent and normal directions (scales lie along
    tangent, normal × tangent, normal), scales, opacities, albedo, ambient occlusion and a skin flag
    (warm shadows)."""

    means: Tensor
    tangents: Tensor
    normals: Tensor
    scales: Tensor
    opacities: Tensor
    albedo: Tensor
    occlusion: Tensor
    skin: Tensor

    @staticmethod
    def make(means, tangents, normals, scales, opacities, albedo, occlusion=None, skin: bool = False) -> "_Splats":
        B, M = means.shape[:2]
        one = means.new_ones(B, M)
        opacities = one * opacities
        return _Splats(means, tangents.expand(B, M, 3), normals.expand(B, M, 3), scales, opacities,
                       albedo.expand(B, M, 3), one if occlusion is None else occlusion,
                       one if skin else torch.zeros_like(one))

    @staticmethod
    def cat(parts: Sequence["_Splats"]) -> "_Splats":
        return _Splats(*(torch.cat([getattr(p, f.name) for p in parts], 1) for f in fields(_Splats)))

    def where(self, cond: Tensor, other: "_Splats") -> "_Splats":
        """Per head: self where cond [B] else other."""
        out = []
        for f in fields(_Splats):
            a, b = getattr(self, f.name), getattr(other, f.name)
            c = cond.reshape(-1, *([1] * (a.dim() - 1)))
            out.append(torch.where(c, a, b))
        return _Splats(*out)

    def gather(self, index: Tensor) -> "_Splats":
        """Rows [B, N] of every field."""
        return _Splats(*(_gather_rows(getattr(self, f.name), index) for f in fields(_Splats)))


# =================================================================================================
# Cameras
# =================================================================================================
def fixed_cameras(size: int) -> Cameras:
    """The 40 fixed circular views [40, ...]: 8 azimuths on each ring of :data:`CIRCLE_ELEVATIONS` at
    the canonical radius and field of view, odd rings turned by 22.5°. View :data:`INPUT_VIEW` is the
    front canonical camera; the 0° ring holds the four canonical views at azimuths 0, 90, 180, 270."""
    rings = [orbit_cameras(_VIEWS_PER_RING, elevation=e, size=size, azimuth_start=22.5 * (i % 2))
             for i, e in enumerate(CIRCLE_ELEVATIONS)]
    return Cameras.cat(rings)


def _random_views(rng: _Random, n: int, size: int) -> tuple[Tensor, Tensor]:
    """viewmats [B, n, 4, 4] and Ks [B, n, 3, 3] of ``n`` random views a head (see :func:`random_cameras`)."""
    B, dev = len(rng.keys), rng.device
    u = rng.uniform("cameras", n, 8)
    az = u[..., 0] * 2 * math.pi
    lo, hi = math.sin(math.radians(-30.0)), math.sin(math.radians(55.0))
    el = torch.asin(lo + (hi - lo) * u[..., 1])
    radius = 1.7 + 1.6 * u[..., 2]
    eye = radius[..., None] * torch.stack([torch.cos(el) * torch.sin(az), torch.sin(el),
                                           torch.cos(el) * torch.cos(az)], -1)
    target = (0.1 * _gaussian(u[..., 5:])).clamp(-0.25, 0.25) \
        + _on(dev, (0.0, -0.05, 0.0))
    # look at the target (as :func:`a3d.core.cameras.look_at`, whose checks would wait for the device;
    # elevations within ±55° never look along the up axis), then roll about the optical axis
    fwd = F.normalize(target - eye, dim=-1)
    right = F.normalize(torch.linalg.cross(fwd, _on(dev, (0.0, 1.0, 0.0)).expand_as(fwd), dim=-1), dim=-1)
    down = torch.linalg.cross(fwd, right, dim=-1)
    roll = math.radians(6.0) * (2 * u[..., 3] - 1)
    c, s = torch.cos(roll)[..., None], torch.sin(roll)[..., None]
    R = torch.stack([c * right - s * down, s * right + c * down, fwd], -2)  # rows: camera axes in the world
    t = -(R @ eye[..., None])
    bottom = _on(dev, (0.0, 0.0, 0.0, 1.0)).expand(B, n, 1, 4)
    vm = torch.cat([torch.cat([R, t], -1), bottom], -2)
    fov = 22.0 + 18.0 * u[..., 4]
    f = 0.5 * size / torch.tan(torch.deg2rad(fov) / 2)
    zero, half, one = torch.zeros_like(f), torch.full_like(f, size / 2), torch.ones_like(f)
    K = torch.stack([f, zero, half, zero, f, half, zero, zero, one], -1).reshape(B, n, 3, 3)
    return vm, K


def random_cameras(seed: int, n: int, size: int, device: str | torch.device = "cpu") -> Cameras:
    """``n`` random views [n, ...]: camera centres on a spherical shell of radius 1.7–3.3 head units
    (azimuth uniform, elevation −30°…55°, uniform on the sphere band), looking at the origin jittered by
    about 0.1 units, vertical field of view 22°–40°, roll within ±6°. A function of ``seed`` alone."""
    check_int(seed, "seed")
    keys = _head_keys(seed, torch.zeros(1, dtype=torch.int64, device=torch.device(device)))
    vm, K = _random_views(_Random(keys), n, size)
    return Cameras(vm[0], K[0], size, size)


# =================================================================================================
# Configuration and attributes
# =================================================================================================
@dataclass
class SynthConfig:
    """Knobs of the generator (probabilities and ranges; defaults give the documented mix).

    Attributes:
        num_gaussians: Gaussians per head (fixed, so a batch stacks).
        image_size: width = height of the cameras of a sample, pixels.
        identity_scale: standard deviation of the identity coefficients (1 = the anny population).
        expression_p: probability of a non-neutral expression preset (its intensity is 0.3–1).
        hair_style_p: probabilities of :data:`HAIR_STYLES`.
        fringe_p: probability of a fringe (bangs) over the forehead, for styles other than bald and buzz.
        glasses_p, hat_p, earrings_p: probabilities of wearing each accessory (hat and earring kinds
            are then uniform among :data:`HATS` / :data:`EARRINGS` other than 'none').
        dyed_hair_p: probability of an unnatural dyed hair colour.
        ambient: range of the ambient light term (the rest is the key light's Lambert term).
        num_random_views: random views per head after the 40 fixed ones.
    """

    num_gaussians: int = 200_000
    image_size: int = 256
    identity_scale: float = 1.0
    expression_p: float = 0.66
    hair_style_p: tuple[float, ...] = (0.06, 0.08, 0.2, 0.11, 0.15, 0.08, 0.08, 0.11, 0.13)
    fringe_p: float = 0.3
    glasses_p: float = 0.25
    hat_p: float = 0.15
    earrings_p: float = 0.2
    dyed_hair_p: float = 0.05
    ambient: tuple[float, float] = (0.4, 0.7)
    num_random_views: int = 40

    def __post_init__(self) -> None:
        check_int(self.num_gaussians, "num_gaussians", 2_000, 4_000_000)
        check_int(self.image_size, "image_size", 8, 4096)
        if len(self.hair_style_p) != len(HAIR_STYLES) or min(self.hair_style_p) < 0 or sum(self.hair_style_p) <= 0:
            raise ValueError(f"hair_style_p: expected {len(HAIR_STYLES)} non-negative weights, got {self.hair_style_p}")
        for name in ("expression_p", "fringe_p", "glasses_p", "hat_p", "earrings_p", "dyed_hair_p"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name}: expected a probability in [0, 1], got {v}")
        if not 0.0 <= self.ambient[0] <= self.ambient[1] <= 1.0:
            raise ValueError(f"ambient: expected 0 <= lo <= hi <= 1, got {self.ambient}")
        if not 0 <= self.num_random_views <= 1000:
            raise ValueError(f"num_random_views: expected an int in [0, 1000], got {self.num_random_views}")


@dataclass
class HeadAttributes:
    """What was drawn for a batch of B heads: one row per head, tensors on the generator's device.

    Categorical attributes are int64 indices into the name tuples (``expression`` into
    :data:`EXPRESSIONS`, ``hair_style`` into :data:`HAIR_STYLES`, ``hat`` into :data:`HATS`,
    ``earrings`` into :data:`EARRINGS`); colours are sRGB albedo [B, 3] in [0, 1]; lengths are head
    units. :meth:`head` gives one head's attributes as a JSON-friendly dict with names.

    Attributes:
        identity: [B, K] identity coefficients (~N(0, identity_scale²)).
        expression, expression_intensity: [B] preset index and its weight (0.3–1).
        expression_coeffs: [B, E] the facial action weights used (preset, weak random extras, eyes).
        skin_tone: [B] 0 (lightest of the nine tones) … 1 (darkest); skin: [B, 3] its albedo.
        redness: [B] strength of the red on cheeks, nose and ears; masculine: [B] bool; age: [B] 0–1.
        hair_style: [B]; hair: [B, 3] hair colour; brow: [B, 3] brow colour.
        brow_shape: [B, 3] thickness (0–1), arch (0.3–1), height offset.
        hairline: [B] height of the front hairline (higher = receding); hair_thickness: [B] shell depth.
        hair_length: [B] height where hanging hair (bob, long, shoulder) ends (0 for other styles).
        hair_wave: [B] amplitude of waves in hanging hair (0: straight).
        curtain_front: [B] azimuth (rad) where hanging hair begins.
        fringe: [B] bool; fringe_shape: [B, 3] how low it hangs, its half width, its sideways sweep.
        bun: [B, 2] height, radius; ponytail: [B, 3] height, length, radius.
        stubble: [B] 0 (none) … 0.45; iris: [B, 3]; lips: [B, 3] lip colour; lipstick: [B] bool.
        glasses, sunglasses: [B] bool; glasses_shape: [B, 6] lens depth in front of the pupils, height
            and width offsets, half height, superellipse exponent (2 round … 5 rounded rectangle), frame
            thickness; frame_colour: [B, 3]; lens_tint: [B, 3]; lens_opacity: [B]; lens_shift: [B, 2].
        hat: [B]; hat_colours: [B, 2, 3] main and second colour; hat_size: [B, 2] brimmed crown
            height and brim width.
        earrings: [B]; earring_metal: [B, 3].
        shirt: [B, 3]; shirt_pattern: [B, 3] stripe strength, frequency and second-colour mix;
            neckline: [B] collar height at the back; neckline_scoop: [B] how much lower in front;
            v_neck: [B] bool.
        freckles: [B] strength of freckles and moles (0: none).
        light_dir: [B, 3] unit vector toward the key light; light_colour: [B, 3]; ambient: [B];
            fill: [B] strength of a fill light opposite the key; rim_dir: [B, 3] and rim: [B], a back
            light that outlines hair and shoulders.
    """

    identity: Tensor
    expression: Tensor
    expression_intensity: Tensor
    expression_coeffs: Tensor
    skin_tone: Tensor
    skin: Tensor
    redness: Tensor
    masculine: Tensor
    age: Tensor
    hair_style: Tensor
    hair: Tensor
    brow: Tensor
    brow_shape: Tensor
    hairline: Tensor
    hair_thickness: Tensor
    hair_length: Tensor
    hair_wave: Tensor
    curtain_front: Tensor
    fringe: Tensor
    fringe_shape: Tensor
    bun: Tensor
    ponytail: Tensor
    stubble: Tensor
    iris: Tensor
    lips: Tensor
    lipstick: Tensor
    glasses: Tensor
    sunglasses: Tensor
    glasses_shape: Tensor
    frame_colour: Tensor
    lens_tint: Tensor
    lens_opacity: Tensor
    lens_shift: Tensor
    hat: Tensor
    hat_colours: Tensor
    hat_size: Tensor
    earrings: Tensor
    earring_metal: Tensor
    shirt: Tensor
    shirt_pattern: Tensor
    neckline: Tensor
    neckline_scoop: Tensor
    v_neck: Tensor
    freckles: Tensor
    light_dir: Tensor
    light_colour: Tensor
    ambient: Tensor
    fill: Tensor
    rim_dir: Tensor
    rim: Tensor

    _NAMES = {"expression": EXPRESSIONS, "hair_style": HAIR_STYLES, "hat": HATS, "earrings": EARRINGS}

    def __len__(self) -> int:
        return self.identity.shape[0]

    def to(self, device: str | torch.device) -> "HeadAttributes":
        return HeadAttributes(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    def head(self, i: int) -> dict:
        """Head ``i``'s attributes: names for categorical ones, bools, floats and lists (rounded to 4 digits)."""
        out: dict = {}
        for f in fields(self):
            v = getattr(self, f.name)[i].cpu()
            if f.name in self._NAMES:
                out[f.name] = self._NAMES[f.name][int(v)]
            elif v.dtype == torch.bool:
                out[f.name] = bool(v)
            elif v.dim() == 0:
                out[f.name] = round(float(v), 4)
            else:
                out[f.name] = [round(float(x), 4) for x in v.reshape(-1).tolist()]
        return out


_HAIR_THICKNESS = {"bald": (0.0, 0.0), "buzz": (0.006, 0.006), "short": (0.02, 0.05), "bob": (0.03, 0.06),
                   "long": (0.03, 0.07), "bun": (0.015, 0.03), "ponytail": (0.015, 0.03), "curly": (0.05, 0.13),
                   "shoulder": (0.03, 0.07)}


def _draw_attributes(rng: _Random, cfg: SynthConfig, basis: HeadBasis, presets: Tensor,
                     overrides: dict | None) -> HeadAttributes:
    """Everything random about a batch of heads but their Gaussians' positions, with ``overrides``
    applied and the rules that tie attributes together. ``presets``: :func:`_expression_table`."""
    dev = rng.device
    B = len(rng.keys)
    K, E = basis.shape_basis.shape[0], basis.expr_basis.shape[0]
    d = _Draws(rng, "attributes", 96 + 2 * E, 24 + K)
    t = lambda x: _on(dev, tuple(x))  # noqa: E731
    ov = overrides or {}
    identity = d.z(K) * cfg.identity_scale
    expression = torch.where(d.bernoulli(cfg.expression_p), 1 + d.choice(_EXPRESSION_P[1:]), 0)
    intensity = d.u(0.3, 1.0)
    extra = (d.u(k=E) < 0.06) * d.u(k=E) * 0.25  # a few random extra actions, weakly
    eye_wide = d.u(0.1, 0.6)
    # skin: a tone between two of the nine, brightness, and a tilt along the warm (red-yellow) - cool
    # axis only: never green or blue skin
    tone = d.u()
    x = tone * (len(_SKIN_TONES) - 1)
    i0 = x.long().clamp(max=len(_SKIN_TONES) - 2)
    tones = _on(dev, _SKIN_TONES)
    skin = torch.lerp(tones[i0], tones[i0 + 1], (x - i0)[:, None])
    warm = 0.03 * d.z()
    tilt = torch.stack([1 + warm, torch.ones_like(warm), 1 - warm], -1)
    skin = (skin * (1 + 0.05 * d.z())[:, None] * tilt).clamp(0.05, 1)
    redness = d.u(0.5, 1.5)
    masculine = d.bernoulli(0.5)
    age = d.u()
    # hair
    style = d.choice(cfg.hair_style_p)
    feminine_style = (style == 4) | (style == 5) | (style == 6) | (style == 8)  # long, bun, ponytail, shoulder
    style = torch.where(masculine & feminine_style & d.bernoulli(0.5), 2, style)
    dyed = d.bernoulli(cfg.dyed_hair_p)
    dyed_colour = _on(dev, _DYED_HAIR)[d.choice([1.0] * len(_DYED_HAIR))]
    hi = d.choice(_HAIR_COLOUR_P)
    hi = torch.where((age > 0.8) & d.bernoulli(0.6), 9 + d.choice([0.6, 0.4]), hi)  # grey or white
    natural = _on(dev, _HAIR_COLOURS)[hi]
    hair = torch.where(dyed[:, None], dyed_colour, natural)
    hair = (hair * (1 + 0.08 * d.z())[:, None] * (1 + 0.03 * d.z(3))).clamp(0.01, 1)
    brow = natural * torch.where(natural.mean(-1, keepdim=True) < 0.6, 0.7, 0.55)  # natural under dyed hair
    brow_shape = torch.stack([d.u(), d.u(0.3, 1.0), d.u(-0.012, 0.012)], -1)
    hairline = d.u(0.26, 0.40) + torch.where(masculine & (age > 0.5), 0.1 * d.u(), 0.0)
    thick_lo = t([_HAIR_THICKNESS[s][0] for s in HAIR_STYLES])
    thick_hi = t([_HAIR_THICKNESS[s][1] for s in HAIR_STYLES])
    u_thick = d.u()
    curtain_front = d.u(1.1, 1.5)
    bun = torch.stack([d.u(0.15, 0.45), d.u(0.12, 0.18)], -1)
    ponytail = torch.stack([d.u(0.05, 0.35), d.u(0.5, 0.9), d.u(0.06, 0.1)], -1)
    bob_len, long_len, shoulder_len = d.u(-0.55, -0.3), d.u(-1.1, -0.6), d.u(-0.92, -0.7)
    hair_wave = torch.where(d.bernoulli(0.4), d.u(0.005, 0.025), 0.0)
    fringe = d.bernoulli(cfg.fringe_p) & (style >= 2)
    fringe_shape = torch.stack([d.u(0.1, 0.2), d.u(0.16, 0.3), d.u(-0.6, 0.6)], -1)
    stubble = torch.where(masculine & d.bernoulli(0.4), d.u(0.1, 0.45), 0.0)
    iris = (_on(dev, _IRIS_COLOURS)[d.choice(_IRIS_P)] * (1 + 0.1 * d.z(3))).clamp(0, 1)
    lipstick_colour = (t([0.6, 0.08, 0.15]) * (1 + 0.25 * d.z(3))).clamp(0.02, 0.9)
    lipstick = ~masculine & d.bernoulli(0.25)
    lips = torch.where(lipstick[:, None], lipstick_colour, skin * t([0.86, 0.6, 0.6]))
    # accessories
    glasses = d.bernoulli(cfg.glasses_p)
    sunglasses = d.bernoulli(0.25)  # if glasses
    glasses_shape = torch.stack([d.u(0.07, 0.1), d.u(-0.01, 0.02), d.u(-0.005, 0.015), d.u(0.06, 0.1),
                                 d.u(2.0, 5.0), d.u(0.004, 0.012)], -1)
    frame_colour = _on(dev, _FRAME_COLOURS)[d.choice([1.0] * len(_FRAME_COLOURS))]
    dark_tint, dark_opacity = t([0.05, 0.05, 0.06]) + 0.1 * d.u(k=3), d.u(0.8, 0.92)
    clear_opacity = d.u(0.04, 0.1)
    lens_shift = d.u(k=2)
    hat = torch.where(d.bernoulli(cfg.hat_p), 1 + d.choice([1.0] * (len(HATS) - 1)), 0)
    short_thickness = d.u(0.02, 0.04)  # for buns and ponytails under a hat
    fabric = _on(dev, _FABRIC)
    hat_colours = torch.stack([fabric[d.choice([1.0] * len(_FABRIC))], fabric[d.choice([1.0] * len(_FABRIC))]], 1)
    hat_size = torch.stack([d.u(0.03, 0.1), d.u(0.15, 0.35)], -1)
    earrings_p = cfg.earrings_p * torch.where(masculine, 0.4, 1.6)
    earrings = torch.where(d.bernoulli(earrings_p), 1 + d.choice([1.0] * (len(EARRINGS) - 1)), 0)
    earring_metal = _on(dev, _METALS)[d.choice([1.0] * len(_METALS))]
    shirt = fabric[d.choice([1.0] * len(_FABRIC))] * d.u(0.8, 1.1)[:, None]
    shirt_pattern = torch.stack([torch.where(d.bernoulli(0.3), d.u(0.3, 0.8), 0.0), d.u(40.0, 140.0), d.u()], -1)
    # crew, scoop and V necks, and now and then a high collar (turtleneck)
    neckline = torch.where(d.bernoulli(0.12), d.u(-0.72, -0.62), d.u(-0.9, -0.8))
    neckline_scoop, v_neck = d.u(0.02, 0.3), d.bernoulli(0.3)
    freckles = torch.where(d.bernoulli(0.2), d.u(0.3, 1.0), 0.0)
    # lighting: a key light from the front hemisphere, mostly from above
    az, el = d.u(-2.0, 2.0), d.u(-0.2, 1.1)
    light_dir = torch.stack([torch.cos(el) * torch.sin(az), torch.sin(el), torch.cos(el) * torch.cos(az)], -1)
    ambient = d.u(*cfg.ambient)
    # colour temperature from warm (tungsten) to cool (shade), and a little tint
    temperature = d.u(-1.0, 1.0)[:, None]
    light_colour = (t([1.0, 1.0, 1.0]) + temperature * t([0.1, 0.0, -0.12]) + 0.03 * d.z(3)).clamp(0.8, 1.2)
    fill = d.u(0.0, 0.4)
    rim_az, rim_el = d.u(2.2, 4.1), d.u(0.1, 0.9)  # from behind, above
    rim_dir = torch.stack([torch.cos(rim_el) * torch.sin(rim_az), torch.sin(rim_el),
                           torch.cos(rim_el) * torch.cos(rim_az)], -1)
    rim = torch.where(d.bernoulli(0.5), d.u(0.2, 0.7), 0.0)

    # overrides, then the rules that tie attributes together
    full = lambda v, dtype=None: torch.full((B,), v, device=dev, dtype=dtype)  # noqa: E731
    if "expression" in ov:
        expression = full(EXPRESSIONS.index(ov["expression"]), torch.int64)
    if "expression_intensity" in ov:
        intensity = full(float(ov["expression_intensity"]))
    if "glasses" in ov:
        glasses = full(ov["glasses"], torch.bool)
    if "sunglasses" in ov:
        sunglasses = full(ov["sunglasses"], torch.bool)
        if ov["sunglasses"]:
            glasses = full(True, torch.bool)
    if "hat" in ov:
        hat = full(HATS.index(ov["hat"]), torch.int64)
    if "earrings" in ov:
        earrings = full(EARRINGS.index(ov["earrings"]), torch.int64)
    sunglasses = glasses & sunglasses
    lens_tint = torch.where(sunglasses[:, None], dark_tint, t([0.85, 0.9, 0.95]))
    lens_opacity = torch.where(sunglasses, dark_opacity, clear_opacity)
    tied = (hat > 0) & ((style == 5) | (style == 6))  # buns and ponytails would poke through the hat
    style = torch.where(tied, 2, style)
    hair_thickness = thick_lo[style] + (thick_hi[style] - thick_lo[style]) * u_thick
    hair_thickness = torch.where(tied, short_thickness, hair_thickness)
    hair_length = torch.where(style == 3, bob_len, torch.where(style == 4, long_len,
                                                               torch.where(style == 8, shoulder_len, 0.0)))
    coeffs = extra + presets[expression] * intensity[:, None]
    eyes = _on(dev, tuple(float(x in ("eyeWideLeft", "eyeWideRight")) for x in basis.expressions))
    blinking = (expression == EXPRESSIONS.index("blink")) | (expression == EXPRESSIONS.index("wink"))
    wide = torch.where(blinking, 0.0, eye_wide)[:, None] * eyes  # the mean head's eyes are narrow: open them
    return HeadAttributes(
        identity=identity, expression=expression, expression_intensity=intensity,
        expression_coeffs=(coeffs + wide).clamp(0, 1), skin_tone=tone, skin=skin, redness=redness,
        masculine=masculine, age=age, hair_style=style, hair=hair, brow=brow, brow_shape=brow_shape,
        hairline=hairline, hair_thickness=hair_thickness, hair_length=hair_length, hair_wave=hair_wave,
        curtain_front=curtain_front, fringe=fringe, fringe_shape=fringe_shape,
        bun=bun, ponytail=ponytail, stubble=stubble, iris=iris, lips=lips, lipstick=lipstick, glasses=glasses,
        sunglasses=sunglasses, glasses_shape=glasses_shape, frame_colour=frame_colour, lens_tint=lens_tint,
        lens_opacity=lens_opacity, lens_shift=lens_shift, hat=hat, hat_colours=hat_colours, hat_size=hat_size,
        earrings=earrings, earring_metal=earring_metal, shirt=shirt, shirt_pattern=shirt_pattern, neckline=neckline,
        neckline_scoop=neckline_scoop, v_neck=v_neck, freckles=freckles, light_dir=light_dir,
        light_colour=light_colour, ambient=ambient, fill=fill, rim_dir=rim_dir, rim=rim)


def _expression_table(basis: HeadBasis, device: torch.device) -> Tensor:
    """[len(EXPRESSIONS), E] action weights of each preset at intensity 1."""
    table = torch.zeros(len(EXPRESSIONS), len(basis.expressions))
    for i, name in enumerate(EXPRESSIONS):
        for act, w in _EXPRESSIONS[name].items():
            table[i, basis.expressions.index(act)] = w
    return table.to(device)


@dataclass
class HeadSample:
    """A batch of synthetic heads and their cameras.

    Attributes:
        gaussians: Gaussians [B, N, ...] (activated values, a3d framing).
        cameras: Cameras [B, C, ...]: the 40 fixed views (:func:`fixed_cameras`) then the random views.
        view_names: C names ("000", ...), the image stems of an exported head.
        input_view: index of the front canonical camera among the views (the input portrait).
        head_ids: [B] int64 head indices (head ``i`` of a seed is always the same head).
        vertices: [B, V, 3] the framed head meshes (faces: the basis's ``faces``), without hair
            and accessories.
        attributes: :class:`HeadAttributes` of the batch (``attributes.head(i)``: one head's, by name).
    """

    gaussians: Gaussians
    cameras: Cameras
    view_names: list[str]
    input_view: int
    head_ids: Tensor
    vertices: Tensor
    attributes: HeadAttributes

    @property
    def batch_size(self) -> int:
        return self.gaussians.means.shape[0]


# =================================================================================================
# The generator
# =================================================================================================
_PARTS = ("face", "shell", "curtain", "fringe", "bun", "ponytail", "hat_shell", "visor", "brim_crown", "brim_top",
          "brim", "frame", "lens", "earring")
"""The parts of a head, in the order of its Gaussians."""
_HAIR_FRACTION = {"bald": 0.0, "buzz": 0.12, "short": 0.3, "bob": 0.4, "long": 0.45, "bun": 0.33, "ponytail": 0.35,
                  "curly": 0.42, "shoulder": 0.43}
_HAT_BANDS = {"none": (0.0, 0.0), "beanie": (0.22, 0.42), "cap": (0.3, 0.35), "brimmed": (0.3, 0.3)}
"""Per hat: height of the lower edge at the front, and how much lower it is at the back."""
_R2 = (0.7548776662, 0.5698402910)  # the R2 low-discrepancy sequence's steps
_BINS = 64  # azimuth bins of a head's horizontal profile


def _part_counts(N: int, style: str, hat: str, glasses: bool, earrings: str, fringe: bool) -> list[int]:
    """Gaussians of each part of :data:`_PARTS` for a head of N Gaussians with these attributes."""
    c = dict.fromkeys(_PARTS, 0)
    hair = int(round(N * _HAIR_FRACTION[style]))
    if fringe and style not in ("bald", "buzz"):
        c["fringe"] = int(round(N * 0.05))
    if style in ("bob", "long", "shoulder"):
        c["curtain"] = int(hair * 0.55)
    if style in ("bun", "ponytail"):
        c[style] = int(hair * 0.3)
    c["shell"] = hair - c["curtain"] - c["bun"] - c["ponytail"]
    n_hat = int(round(N * 0.12)) if hat != "none" else 0
    if hat == "beanie":
        c["hat_shell"] = n_hat
    elif hat == "cap":
        c["hat_shell"] = int(n_hat * 0.7)
        c["visor"] = n_hat - c["hat_shell"]
    elif hat == "brimmed":
        c["brim_crown"], c["brim_top"] = int(n_hat * 0.55), int(n_hat * 0.1)
        c["brim"] = n_hat - c["brim_crown"] - c["brim_top"]
    n_glasses = int(round(N * 0.05)) if glasses else 0
    c["lens"] = int(n_glasses * 0.5)
    c["frame"] = n_glasses - c["lens"]
    c["earring"] = int(round(N * 0.006)) if earrings != "none" else 0
    c["face"] = N - sum(c.values())
    return [c[p] for p in _PARTS]


class SyntheticHeads:
    """Random AnyHead-style heads as Gaussians, built a batch at a time, torch-native.

    Args:
        device: torch device everything is built on (``"cuda"`` during training).
        seed: stream seed; head ``i`` depends on ``(seed, i)`` only.
        config: :class:`SynthConfig` (defaults if None); keyword overrides of its fields may be
            passed instead, e.g. ``SyntheticHeads("cuda", num_gaussians=150_000)``.
        basis: a :class:`HeadBasis` (the bundled one if None).
    """

    def __init__(self, device: str | torch.device = "cpu", seed: int = 0, config: SynthConfig | None = None,
                 basis: HeadBasis | None = None, **overrides) -> None:
        if config is None:
            config = SynthConfig(**overrides)
        elif overrides:
            raise ValueError("pass either config or keyword overrides, not both")
        check_int(seed, "seed", 0, 2**31 - 1)
        self.device = dev = torch.device(device)
        self.seed = seed
        self.config = config
        self.basis = b = (basis or load_head_basis()).to(dev)
        self._next = 0
        self._anchors = torch.tensor([framing.FACE_ANCHORS_3D[n] for n in ("right_eye", "left_eye", "mouth")],
                                     dtype=torch.float64, device=dev)
        self._lm = {n: i for i, n in enumerate(b.landmark_names)}
        fixed = fixed_cameras(config.image_size).to(dev)
        self._fixed = (fixed.viewmats, fixed.Ks)
        self._view_names = [f"{i:03d}" for i in range(NUM_FIXED_VIEWS + config.num_random_views)]
        self._expressions = _expression_table(b, dev)
        self._components = torch.cat([b.shape_basis, b.expr_basis]).flatten(1)  # [K + E, V * 3]
        # part counts of every combination of (hair style, hat, glasses, earrings)
        N = config.num_gaussians
        self._counts = torch.tensor([[[[[_part_counts(N, s, h, g, e, f) for f in (False, True)] for e in EARRINGS]
                                       for g in (False, True)] for h in HATS] for s in HAIR_STYLES],
                                    dtype=torch.int64, device=dev)
        self._hat_bands = torch.tensor([_HAT_BANDS[h] for h in HATS], device=dev)  # [4, 2]
        # vertex normals without atomics (deterministic on every device): each vertex sums the normals
        # of its faces, listed in a padded table (pad = an extra zero face)
        Fn = b.faces.shape[0]
        vid = b.faces.reshape(-1).cpu()
        order = torch.argsort(vid, stable=True)
        deg = torch.bincount(vid, minlength=b.num_vertices)
        slot = torch.arange(len(vid)) - torch.repeat_interleave(torch.cumsum(deg, 0) - deg, deg)
        table = torch.full((b.num_vertices, int(deg.max())), Fn, dtype=torch.int64)
        table[vid[order], slot] = order // 3
        self._vertex_faces = table.to(dev)
        # per-triangle constants of the canonical (mean) mesh
        self._canon_centroid = b.mean[b.faces].mean(1)  # [F, 3]
        reg = b.regions[b.faces].mean(1)  # [F, R]
        r = b.region
        # sampling density per unit area: hidden inner surfaces get fewer Gaussians
        self._face_density = 1.0 - 0.7 * (reg[:, r("sockets")] + reg[:, r("mouth")] + reg[:, r("tongue")]).clamp(0, 1)
        self._not_ears = 1 - reg[:, r("ears")]
        self._vfeat = self._vertex_features()
        # per vertex: where hair never grows (features, ears, neck)
        hairless = ("ears", "eyes", "sockets", "mouth", "tongue", "lips", "brows", "eyelids")
        features = b.regions[:, [r(k) for k in hairless]]
        self._hairless = (1 - features.sum(-1).clamp(0, 1)) * (1 - b.regions[:, r("neck")])
        # the hairline's height over each vertex's azimuth (0 front, pi back) is h0 + hairline * h1: the
        # front part follows the sampled hairline, the temples, sideburns, ears and nape are fixed
        phi = torch.atan2(b.mean[:, 0], b.mean[:, 2]).abs()
        knots = [0.0, 0.5, 1.0, 1.3, 1.55, 1.85, 2.3, math.pi]
        self._hairline = (_interp(phi, knots, [0.0, 0.02, -0.06, 0.02, 0.12, 0.08, -0.2, -0.36]),
                          _interp(phi, knots, [1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0]))

    # ---- public API ---------------------------------------------------------------------------
    def sample(self, batch: int, head_ids: Sequence[int] | Tensor | None = None,
               overrides: dict | None = None) -> HeadSample:
        """Sample ``batch`` heads (the next ones of the stream, or the given ``head_ids``).

        ``overrides`` sets attributes of every head while keeping the rest of each head (identity,
        colours, hair, lighting, cameras) as drawn: ``"expression"`` (a name of :data:`EXPRESSIONS`),
        ``"expression_intensity"`` (0–1), ``"glasses"`` and ``"sunglasses"`` (bools; sunglasses imply
        glasses), ``"hat"`` (:data:`HATS`), ``"earrings"`` (:data:`EARRINGS`); :data:`ACCESSORIES`
        names useful sets. A hat turns a bun or a ponytail into short hair.
        """
        _check_overrides(overrides)
        check_int(batch, "batch", 1, 4096)
        if head_ids is None:
            ids = torch.arange(self._next, self._next + batch, dtype=torch.int64)
            self._next += batch
        else:
            ids = torch.as_tensor(head_ids if isinstance(head_ids, Tensor) else list(head_ids),
                                  dtype=torch.int64).reshape(-1).cpu()
            if len(ids) != batch or int(ids.min()) < 0:
                raise ValueError(f"head_ids: expected {batch} non-negative ids, got {ids.tolist()}")
        return self._build(ids, overrides)

    # ---- construction -------------------------------------------------------------------------
    @torch.no_grad()
    def _build(self, ids: Tensor, overrides: dict | None) -> HeadSample:
        cfg, b, dev = self.config, self.basis, self.device
        B = len(ids)
        rng = _Random(_head_keys(self.seed, ids.to(dev)))
        a = _draw_attributes(rng, cfg, b, self._expressions, overrides)
        # shape, then the similarity that puts the pupils and mouth on the face anchors
        raw = self._vertices(a)
        lm = self._landmarks(raw)
        s, R, t = _umeyama(lm[:, :3].double(), self._anchors.expand(B, 3, 3))
        A = (s[:, None, None] * R).float()
        verts = raw @ A.transpose(1, 2) + t.float()[:, None]
        geo = self._measure(verts, a)
        # the Gaussians of every part, then each head's own counts of them
        counts = self._counts[a.hair_style, a.hat, a.glasses.long(), a.earrings, a.fringe.long()]  # [B, P]
        widest_dev = counts.amax(0)
        widest = widest_dev.tolist()  # the one wait for the device
        normals = self._vertex_normals(verts)
        area = 0.5 * torch.linalg.cross(verts[:, b.faces[:, 1]] - verts[:, b.faces[:, 0]],
                                        verts[:, b.faces[:, 2]] - verts[:, b.faces[:, 0]], dim=-1).norm(dim=-1)
        mesh = (verts, normals, area)
        parts = []
        for k, name in enumerate(_PARTS):
            if widest[k]:
                parts.append(getattr(self, "_" + name)(rng, a, mesh, geo, counts[:, k], widest[k]))
        splats = _Splats.cat(parts)
        starts = widest_dev.cumsum(0) - widest_dev  # each part's first column (absent parts: width 0)
        end = counts.cumsum(1)
        slot = torch.arange(cfg.num_gaussians, device=dev).expand(B, -1).contiguous()
        part = torch.searchsorted(end, slot, right=True)  # [B, N]: (right: parts a head lacks are skipped)
        index = starts[part] + slot - (end - counts).gather(1, part)
        g = self._finish(splats.gather(index), a)
        # cameras: the fixed ring, then each head's random views
        vm, K = (x.expand(B, -1, -1, -1) for x in self._fixed)
        if cfg.num_random_views:
            rvm, rK = _random_views(rng, cfg.num_random_views, cfg.image_size)
            vm, K = torch.cat([vm, rvm], 1), torch.cat([K, rK], 1)
        cameras = Cameras(vm.contiguous(), K.contiguous(), cfg.image_size, cfg.image_size)
        return HeadSample(g, cameras, list(self._view_names), INPUT_VIEW, ids.clone(), verts, a)

    def _vertices(self, a: HeadAttributes) -> Tensor:
        """[B, V, 3] unframed vertices. A batched product (one same-shaped product a head, not one
        matrix product for the batch), so a head's vertices do not depend on the batch it comes in."""
        coeffs = torch.cat([a.identity, a.expression_coeffs], 1)[:, None]  # [B, 1, K + E]
        offsets = torch.bmm(coeffs, self._components.expand(len(a), -1, -1))
        return self.basis.mean + offsets.reshape(len(a), -1, 3)

    def _landmarks(self, verts: Tensor) -> Tensor:
        """[B, L, 3] landmarks of [B, V, 3] vertices."""
        b = self.basis
        return (verts[:, b.landmark_index] * b.landmark_weight[..., None]).sum(-2)

    def _vertex_normals(self, v: Tensor) -> Tensor:
        """[B, V, 3] unit area-weighted vertex normals."""
        f = self.basis.faces
        fn = torch.linalg.cross(v[:, f[:, 1]] - v[:, f[:, 0]], v[:, f[:, 2]] - v[:, f[:, 0]], dim=-1)
        fn = torch.cat([fn, fn.new_zeros(fn.shape[0], 1, 3)], 1)
        return F.normalize(fn[:, self._vertex_faces].sum(2), dim=-1, eps=1e-12)

    # ---- measurements of a framed head that place hair and accessories ----------------------------
    def _measure(self, verts: Tensor, a: HeadAttributes) -> dict:
        lm = self._landmarks(verts)
        x, y, z = verts.unbind(-1)
        eye_level = ((y - 0.03).abs() < 0.05) & (z > 0.1)
        half_width = torch.where(eye_level, x.abs(), 0.0).amax(1)
        band = self._hat_bands[a.hat, 0]
        hat_top = band + torch.where(a.hat == 3, 0.1, 0.05)
        return {
            "lm": lm, "half_width": half_width,
            "prof_curtain": self._head_profile(verts, torch.full_like(band, -0.15), torch.full_like(band, 0.25)),
            "prof_hat": self._head_profile(verts, band - 0.05, hat_top),
            "back_bun": self._back_point(verts, a.bun[:, 0]),
            "back_tail": self._back_point(verts, a.ponytail[:, 0]),
        }

    @staticmethod
    def _head_profile(verts: Tensor, y0: Tensor, y1: Tensor) -> Tensor:
        """[B, 64] largest horizontal distance from the y axis of the vertices with y in (y0, y1) [B],
        per azimuth bin."""
        B = verts.shape[0]
        y = verts[..., 1]
        sel = (y > y0[:, None]) & (y < y1[:, None])
        phi = torch.atan2(verts[..., 0], verts[..., 2])
        k = ((phi + math.pi) / (2 * math.pi) * _BINS).long().clamp(0, _BINS - 1)
        r = torch.hypot(verts[..., 0], verts[..., 2]) * sel
        prof = verts.new_zeros(B, _BINS).scatter_reduce(1, k, r, reduce="amax", include_self=True)
        for _ in range(4):  # fill empty bins from their neighbours
            prof = torch.where(prof > 0, prof, torch.maximum(prof.roll(1, 1), prof.roll(-1, 1)))
        return prof

    @staticmethod
    def _back_point(verts: Tensor, y: Tensor) -> Tensor:
        """[B, 3] the back of each head at height y [B] on the midline (the rearmost vertex near (0, y))."""
        sel = (verts[..., 0].abs() < 0.06) & ((verts[..., 1] - y[:, None]).abs() < 0.06)
        z = torch.where(sel, verts[..., 2], float("inf"))
        best = _gather_rows(verts, z.argmin(1))
        fallback = torch.stack([torch.zeros_like(y), y, torch.full_like(y, -0.5)], -1)
        return torch.where(sel.any(1)[:, None], best, fallback)

    # ---- lighting ---------------------------------------------------------------------------------
    def _finish(self, sp: _Splats, a: HeadAttributes) -> Gaussians:
        """[B, N] splats -> Gaussians: frames to quaternions, and the lighting baked into the colours.

        Lighting: wrapped Lambert from each head's key light (warm to cool), a fill light from the
        other side, sometimes a rim light from behind, plus an ambient term a little brighter from
        above (sky) than from below; on skin, shadows turn warmer (red light scatters further under
        the skin), by raising the shading to a per-channel power."""
        light_dir, light_col = a.light_dir[:, None], a.light_colour[:, None]
        amb = a.ambient[:, None, None]
        normal = F.normalize(sp.normals, dim=-1)
        ndl = (normal * light_dir).sum(-1, keepdim=True)
        wrap = ((ndl + 0.15) / 1.15).clamp(min=0)  # slightly wrapped Lambert: softer terminator, like skin
        # a fill light from the mirrored direction, and a rim light from behind that outlines the head
        fill_dir = light_dir * self._vec(-1.0, 0.3, 1.0)
        fill = a.fill[:, None, None] * (normal * F.normalize(fill_dir, dim=-1)).sum(-1, keepdim=True).clamp(min=0)
        rim = a.rim[:, None, None] * (normal * a.rim_dir[:, None]).sum(-1, keepdim=True).clamp(min=0) ** 2
        shade = amb * (0.75 + 0.25 * normal[..., 1:2]) + (1 - amb) * (wrap + fill) * light_col + rim
        power = _on(shade.device, (0.8, 1.0, 1.1))
        warm = shade.clamp(1e-4, 1.0) ** power * shade.clamp(min=1.0)
        shade = torch.where(sp.skin[..., None] > 0, warm, shade)
        colors = (sp.albedo.clamp(0, 1) * shade * sp.occlusion[..., None]).clamp(0.0, 1.0)
        return Gaussians(sp.means, _frame_quats(sp.tangents, normal), sp.scales, sp.opacities, colors)

    # ---- sampling the surface -----------------------------------------------------------------------
    def _scalp_mask(self, a: HeadAttributes) -> Tensor:
        """[B, V] soft mask of where hair grows, from canonical (mean-mesh) coordinates."""
        h = self._hairline[0] + a.hairline[:, None] * self._hairline[1]
        return _smoothstep(h - 0.015, h + 0.025, self.basis.mean[:, 1]) * self._hairless

    def _hat_band(self, a: HeadAttributes, canon: Tensor) -> Tensor:
        """[B, n] height of the hat's lower edge above canonical points [n, 3] or [B, n, 3]: lower toward
        the back."""
        front, drop = self._hat_bands[a.hat].unbind(-1)
        phi = torch.atan2(canon[..., 0], canon[..., 2]).abs()
        return front[:, None] - drop[:, None] * (phi / math.pi) ** 2

    def _sample_mesh(self, rng: _Random, name: str, mesh: tuple, weight: Tensor, n: Tensor, M: int):
        """Up to M points a head spread over its mesh with density ∝ ``weight`` [B, F] per unit area;
        head b's first n[b] points are its sample (the rest are to be dropped).

        Stratified, so the surface has no holes: systematic sampling gives each triangle the floor or
        the ceiling of its expected count, and a triangle's points follow a randomly shifted R2
        low-discrepancy sequence folded into the triangle.

        Returns (barycentrics [B, M, 3], triangle vertex ids [B, M, 3], positions [B, M, 3],
        interpolated unit normals [B, M, 3], spacing [B, M] = 1/sqrt(points per unit area there)).
        """
        verts, normals, area = mesh
        B, Fn = area.shape
        dev = area.device
        w = (area * weight).clamp(min=0).double()
        cdf = torch.cumsum(w, 1)
        total = cdf[:, -1:].clamp(min=1e-30)
        nn = n.clamp(min=1)[:, None].double()
        shift = rng.uniform(name + ".shift", Fn + 1, 2)  # per triangle, and (last row) the systematic offset
        pos = (torch.arange(M, device=dev, dtype=torch.float64) + shift[:, Fn:, 0].double()) * (total / nn)  # [B, M]
        fi = torch.searchsorted(cdf, pos, right=True).clamp(max=Fn - 1)  # ascending
        start = torch.searchsorted(fi, torch.arange(Fn, device=dev).expand(B, Fn).contiguous())  # first point
        j = torch.arange(M, device=dev) - start.gather(1, fi)  # index of the point within its triangle
        u = torch.frac(_gather_rows(shift, fi) + j[..., None].float() * _on(dev, _R2))
        flip = u.sum(-1) > 1
        u = torch.where(flip[..., None], 1 - u, u)
        bary = torch.stack([1 - u[..., 0] - u[..., 1], u[..., 0], u[..., 1]], -1)
        tri = self.basis.faces[fi]  # [B, M, 3]
        p = (_gather_rows(verts, tri) * bary[..., None]).sum(-2)
        nrm = F.normalize((_gather_rows(normals, tri) * bary[..., None]).sum(-2), dim=-1, eps=1e-12)
        density = (nn * weight.gather(1, fi) / total).float()  # points per unit area around each sample
        spacing = density.clamp(min=1e-12).rsqrt()
        return bary, tri, p, nrm, spacing

    # columns of the per-vertex features interpolated at every skin sample (see __init__)
    _VF = {name: i for i, name in enumerate(
        ("x", "y", "z", "eye_u", "eye_v", "red", "beard", "front", "neck", "lips", "eyelid_dark", "eyes", "sockets",
         "mouth", "tongue", "teeth", "occlusion"))}

    def _vertex_features(self) -> Tensor:
        """[V, 17] what the skin shader needs of the canonical mesh, per vertex (columns: _VF)."""
        b = self.basis
        c, reg = b.mean, b.regions
        r = lambda name: reg[:, b.region(name)]  # noqa: E731
        x, y, z = c.unbind(-1)
        cheeks = torch.exp(-(((x.abs() - 0.22) ** 2 + (y + 0.14) ** 2) / 0.012)) * (z > 0.2)
        nose = torch.exp(-((x ** 2 + (y + 0.2) ** 2) / 0.006)) * (z > 0.4)
        red = 0.12 * (cheeks + nose + r("ears"))
        beard = _smoothstep(-0.12, -0.2, y) * _smoothstep(-0.05, 0.15, z) * (1 - r("neck")) \
            * (1 - _smoothstep(0.2, 0.6, r("lips")))
        front = (z / c[:, [0, 2]].norm(dim=-1).clamp(min=1e-6)).clamp(min=0) ** 2
        m = self._landmarks(b.mean[None])[0, self._lm["mouth"]]
        teeth = ((z > m[2] - 0.07) & ((y - m[1]).abs() < 0.06) & (x.abs() < 0.13)).float()
        occlusion = 1 - 0.5 * (r("sockets") + r("mouth") + r("tongue")).clamp(0, 1)
        cols = [x, y, z, b.eye_coord[:, 0], b.eye_coord[:, 1], red, beard, front, r("neck"),
                _smoothstep(0.25, 0.7, r("lips")), 1 - 0.12 * _smoothstep(0.2, 0.8, r("eyelids")),
                _smoothstep(0.5, 0.95, r("eyes")), r("sockets"), r("mouth"), r("tongue"), teeth, occlusion]
        return torch.stack(cols, -1)

    # ---- the parts: each returns [B, M] splats of which head b keeps the first n[b] ----------------
    def _vec(self, *xs: float) -> Tensor:
        return _on(self.device, xs)

    def _face(self, rng, a, mesh, geo, n, M) -> _Splats:
        """The skin and the face's other surfaces as flat discs, with the procedural albedo."""
        B = len(a)
        bary, tri, pos, nrm, spacing = self._sample_mesh(rng, "face", mesh, self._face_density.expand(B, -1), n, M)
        f = (self._vfeat[tri] * bary[..., None]).sum(-2)  # [B, M, 17]: every feature interpolated at once
        scalp = (_gather_rows(self._scalp_mask(a), tri) * bary).sum(-1)
        col = lambda name: f[..., self._VF[name]]  # noqa: E731
        per_head = lambda x: x[:, None, None] if x.dim() == 1 else x[:, None]  # noqa: E731
        canon = f[..., :3]
        low, mid, high, spots = _Noises(rng, "face.noise", (6.0, 25.0, 140.0, 260.0))(canon).unbind(-1)
        skin = per_head(a.skin) * (1 + 0.035 * low + 0.015 * mid + 0.02 * high)[..., None]
        skin = skin * (1 - (col("red") * a.redness[:, None])[..., None] * self._vec(0.0, 0.25, 0.22))
        # freckles over the cheeks and nose, a few moles anywhere
        freckle = _smoothstep(0.9, 1.4, spots) * (col("red") * 4 + 0.15).clamp(max=1) \
            + _smoothstep(2.1, 2.4, low + spots)
        skin = skin * (1 - 0.35 * (a.freckles[:, None] * freckle).clamp(max=1)[..., None] * self._vec(0.6, 0.9, 1.0))
        beard = col("beard") * (0.75 + 0.25 * mid).clamp(0, 1)  # stubble on the lower face
        stubble = torch.minimum(per_head(a.hair) * 0.6, skin * 0.7)
        skin = torch.lerp(skin, stubble, (a.stubble[:, None] * beard)[..., None])
        # clothing at the bottom of the neck: a crew, scoop or V neckline (lower at the front) or a high
        # collar; plain or striped fabric
        v_shape = (1 - canon[..., 0].abs() / 0.3).clamp(min=0) * (canon[..., 2] > 0)
        front = torch.where(a.v_neck[:, None], v_shape, col("front"))
        line = a.neckline[:, None] - a.neckline_scoop[:, None] * front
        shirt = _smoothstep(line + 0.012, line - 0.012, canon[..., 1]) * col("neck")
        strength, freq, mix = (x[:, None] for x in a.shirt_pattern.unbind(-1))
        stripes = strength * _smoothstep(-0.3, 0.3, torch.sin(canon[..., 1] * freq))
        fabric = per_head(a.shirt) * (1 + 0.05 * mid)[..., None]
        second = torch.lerp(fabric * 0.35, self._vec(0.92, 0.92, 0.9).expand_as(fabric), mix[..., None])
        fabric = torch.lerp(fabric, second, stripes[..., None])
        albedo = torch.lerp(skin, fabric, shirt[..., None])
        # scalp under hair: the hair colour shows through the gaps
        under_hair = 0.9 * scalp * (a.hair_style > 0)[:, None]
        albedo = torch.lerp(albedo, per_head(a.hair) * 0.8, under_hair[..., None])
        albedo = torch.lerp(albedo, per_head(a.lips) * (1 + 0.05 * high)[..., None], col("lips")[..., None])
        albedo = torch.lerp(albedo, per_head(a.brow).expand_as(albedo),
                            (self._brows(a, canon) * (0.77 + 0.13 * high))[..., None])
        albedo = albedo * col("eyelid_dark")[..., None]
        # eyes: sclera, iris with radial streaks and a dark limbus, pupil
        eu, ev = col("eye_u"), col("eye_v")
        rad = torch.sqrt(eu * eu + ev * ev)
        ang = torch.atan2(ev, eu)
        iris_r = 0.45
        streak = 1 + 0.2 * torch.sin(ang * 23 + 4 * rad) * torch.sin(ang * 7)
        sclera = self._vec(0.93, 0.9, 0.86) * (1 - 0.15 * _smoothstep(0.6, 1.0, rad)[..., None])
        iris = per_head(a.iris) * (streak * (1 - 0.5 * _smoothstep(iris_r - 0.08, iris_r, rad)))[..., None]
        eye_col = torch.where((rad < iris_r)[..., None], iris, sclera)
        eye_col = torch.where((rad < 0.18)[..., None], torch.full_like(eye_col, 0.02), eye_col)
        albedo = torch.lerp(albedo, eye_col, col("eyes")[..., None])
        # inside: sockets, mouth (teeth at its front), tongue
        dark = self._vec(0.35, 0.12, 0.12)
        albedo = torch.lerp(albedo, (per_head(a.skin) * 0.45 + dark * 0.2).expand_as(albedo), col("sockets")[..., None])
        mouth_col = torch.lerp(dark * 0.6, self._vec(0.88, 0.85, 0.76), col("teeth")[..., None])
        albedo = torch.lerp(albedo, mouth_col, col("mouth")[..., None])
        albedo = torch.lerp(albedo, self._vec(0.72, 0.36, 0.36).expand_as(albedo), col("tongue")[..., None])
        # flat discs in the tangent plane, random in-plane orientation
        jit = rng.uniform("face.discs", M, 5)
        tang = torch.linalg.cross(nrm, _gaussian(jit[..., 2:]), dim=-1)
        s_t = spacing * (0.9 + 0.2 * jit[..., 0])  # σ ≈ the spacing: no gaps where a triangle got one point less
        scales = torch.stack([s_t, s_t * (0.8 + 0.2 * jit[..., 1]), 0.08 * s_t], -1)
        return _Splats.make(pos, tang, nrm, scales, 0.97, albedo, col("occlusion"), skin=True)

    def _brows(self, a: HeadAttributes, canon: Tensor) -> Tensor:
        """[B, M] brow mask at canonical positions: an arched band above each eye, thinning outward."""
        thickness, arch, height = (x[:, None] for x in a.brow_shape.unbind(-1))
        u = (canon[..., 0].abs() - 0.035) / 0.25  # 0 at the inner end, 1 at the outer end
        yc = 0.1 + height + arch * 0.035 * torch.sin(math.pi * (u * 1.15).clamp(0, 1)) - 0.015 * u
        half = (0.016 + 0.02 * thickness) * (1 - 0.55 * u.clamp(0, 1))
        m = _smoothstep(half + 0.006, half - 0.006, (canon[..., 1] - yc).abs())
        return m * _smoothstep(-0.06, 0.02, u) * _smoothstep(1.05, 0.9, u) * (canon[..., 2] > 0.28)

    def _strands(self, rng, name, a, p, nrm, flow, spacing, layer, length, opacity) -> _Splats:
        """Hair Gaussians at ``p`` [B, M, 3]: needles along ``flow``, darker in the inner ``layer`` (0)
        than the outer (1)."""
        B, M = p.shape[:2]
        u = rng.uniform(name + ".strand", M, 2)
        strand = 0.75 + 0.25 * _Noises(rng, name + ".strands", (90.0,))(p) + 0.12 * _gaussian(u[..., :1])
        albedo = a.hair[:, None] * strand * (0.55 + 0.45 * layer[..., None])
        s_across = (0.45 * spacing).clamp(max=0.01).expand(B, M)
        lengths = length * (0.6 + 0.8 * u[..., 1])
        return _Splats.make(p, flow, nrm, torch.stack([lengths, s_across, 0.6 * s_across], -1), opacity, albedo)

    def _shell(self, rng, a, mesh, geo, n, M) -> _Splats:
        """Hair as a volume over the scalp: needles offset along the normals, along a flow field."""
        scalp = self._scalp_mask(a)
        weight = scalp[:, self.basis.faces].mean(-1)  # [B, F]
        weight = torch.where(weight > 0.3, weight, 0.0)
        c = self._canon_centroid
        under_hat = c[:, 1] < self._hat_band(a, c) + 0.05  # no need to spend hair under the hat's crown
        weight = torch.where((a.hat > 0)[:, None], weight * under_hat, weight) + 1e-6 * (c[:, 1] > 0)  # never all 0
        bary, tri, pos, nrm, spacing = self._sample_mesh(rng, "shell", mesh, weight, n, M)
        scal = (_gather_rows(scalp, tri) * bary).sum(-1)
        thick = a.hair_thickness.clamp(min=0.004)[:, None]
        u = rng.uniform("shell.depth", M, 4)
        curly = (a.hair_style == _STYLE["curly"])[:, None]
        # curly hair: a cloud of tight curls, in clumps (the depth varies over the scalp), every
        # needle turned its own way
        clumps = (0.75 + 0.35 * _Noises(rng, "shell.clumps", (18.0,))(pos)[..., 0]).clamp(0.4, 1.2)
        depth = u[..., 0] ** 0.7 * thick * (0.35 + 0.65 * _smoothstep(0.3, 0.9, scal)) * torch.where(curly, clumps, 1.0)
        p = pos + nrm * (depth + 0.002)[..., None]
        p = p + torch.where(curly, 0.012, 0.0)[..., None] * _gaussian(u[..., 1:])
        style = a.hair_style[:, None, None]
        # pulled back toward the tie (bun, ponytail); away from a whorl at the crown (short, buzz) or
        # a parting on top (longer styles)
        tie = geo["lm"][:, self._lm["crown"], None] + self._vec(0.0, -0.2, -0.5)
        whorl = torch.where((style == 1) | (style == 2), self._vec(0.0, 0.45, -0.3), self._vec(0.0, 0.7, 0.15))
        centre = torch.where((style == 5) | (style == 6), tie, whorl)
        flow = p - centre + self._vec(0.0, -0.3, 0.0)
        flow = torch.where(curly[..., None], _gaussian(u[..., 1:]), flow)
        buzz = (a.hair_style == 1)[:, None]
        length = torch.where(buzz, 0.012, torch.where(curly, 0.022, 0.035))
        opacity = torch.where(buzz, 0.8, 0.9)
        # flyaways: a few long, faint hairs standing out of the outer layer, so the silhouette is soft
        v = rng.uniform("shell.flyaway", M, 2)
        fly = (v[..., 0] < 0.06) & ~buzz
        p = p + nrm * (fly * (0.008 + 0.03 * v[..., 1]))[..., None]
        flow = torch.where(fly[..., None], flow + 0.8 * flow.norm(dim=-1, keepdim=True) * nrm, flow)
        g = self._strands(rng, "shell", a, p, nrm, flow, spacing, (depth / thick).clamp(max=1),
                          length=torch.where(fly, 0.07, length), opacity=torch.where(fly, 0.45, opacity))
        g.scales = torch.where(fly[..., None], g.scales * self._vec(1.0, 0.5, 0.5), g.scales)  # thinner
        return g

    def _curtain(self, rng, a, mesh, geo, n, M) -> _Splats:
        """Long hair hanging from the sides and the back of the head down to ``hair_length``."""
        prof = geo["prof_curtain"]
        y_top, y_end, front = 0.2, a.hair_length[:, None], a.curtain_front[:, None]
        thick = a.hair_thickness.clamp(min=0.004)[:, None]
        u = rng.uniform("curtain", M, 4)
        phi = torch.sign(u[..., 0] - 0.5) * (front + (math.pi - front) * (2 * (u[..., 0] - 0.5)).abs())
        k = ((phi + math.pi) / (2 * math.pi) * _BINS).long().clamp(0, _BINS - 1)
        ragged = 0.04 * torch.sin(phi * 9 + 1.3) + 0.05 * u[..., 2] \
            + 0.1 * (1 - (phi.abs() - front) / (math.pi - front))
        ring = torch.stack([torch.sin(phi), torch.zeros_like(phi), torch.cos(phi)], -1)
        # under a hat the hair comes out under its edge
        top = torch.where((a.hat > 0)[:, None], (self._hat_band(a, ring) - 0.03).clamp(max=y_top), y_top)
        y = top - u[..., 1] * (top - (y_end + ragged))
        depth = u[..., 3] * (thick + 0.02)
        radius = prof.gather(1, k) + thick + 0.01 - depth + 0.04 * (y_top - y).clamp(min=0)
        # waves down the length, and shoulder-length hair flicking out where it meets the shoulders
        radius = radius + a.hair_wave[:, None] * torch.sin(y * 28 + phi * 2 + 6 * a.curtain_front[:, None])
        flick = (a.hair_style == _STYLE["shoulder"])[:, None] * _smoothstep(y_end + 0.18, y_end, y)
        radius = radius + 0.09 * flick
        p = torch.stack([radius * torch.sin(phi), y, radius * torch.cos(phi)], -1)
        nrm = torch.stack([torch.sin(phi), torch.full_like(phi, 0.15), torch.cos(phi)], -1)
        area = 2 * (math.pi - front) * prof.mean(1, keepdim=True) * (y_top - y_end)
        spacing = torch.sqrt(area * 2.5 / n.clamp(min=1)[:, None])
        flow = nrm * 0.1 + self._vec(0.0, -1.0, 0.0)
        g = self._strands(rng, "curtain", a, p, nrm, flow, spacing, 1 - depth / (thick + 0.02), length=0.05,
                          opacity=0.85)
        end_fade = _smoothstep(y_end - 0.02, y_end + 0.12, y)
        g.opacities = (g.opacities * (0.3 + 0.7 * end_fade)).clamp(0.05, 0.99)
        return g

    def _fringe(self, rng, a, mesh, geo, n, M) -> _Splats:
        """Bangs: hair hanging over the forehead from the hairline, swept a little to one side."""
        c = self._canon_centroid
        end, half_width, sweep = (x[:, None] for x in a.fringe_shape.unbind(-1))
        top = 0.3 + 0.15 * a.hairline[:, None]
        # under a hat the fringe comes out below its edge
        top = torch.where((a.hat > 0)[:, None], torch.minimum(top, self._hat_bands[a.hat, :1] - 0.01), top)
        weight = ((c[:, 0].abs() < half_width) & (c[:, 1] > end) & (c[:, 1] < top) & (c[:, 2] > 0.15)).float()
        weight = weight + 1e-6 * (c[:, 1] > 0)
        bary, tri, pos, nrm, spacing = self._sample_mesh(rng, "fringe", mesh, weight, n, M)
        u = rng.uniform("fringe.depth", M)
        thick = a.hair_thickness.clamp(0.01, 0.04)[:, None]
        p = pos + nrm * (0.004 + u * thick)[..., None]
        zero = torch.zeros_like(sweep)
        flow = torch.stack([sweep, -torch.ones_like(sweep), zero], -1) + 0.2 * nrm
        return self._strands(rng, "fringe", a, p, nrm, flow, spacing, u, length=0.04, opacity=0.9)

    def _bun(self, rng, a, mesh, geo, n, M) -> _Splats:
        rad = a.bun[:, 1, None]  # [B, 1]
        lift = torch.stack([torch.zeros_like(rad), torch.full_like(rad, 0.02), -0.6 * rad], -1)
        centre = geo["back_bun"][:, None] + lift
        u = rng.uniform("bun", M, 4)
        d = F.normalize(_gaussian(u[..., :3]), dim=-1)
        rr = rad * (1 - 0.35 * u[..., 3] ** 2)
        p = centre + d * rr[..., None] * self._vec(1.1, 0.9, 0.8)
        flow = torch.linalg.cross(d, self._vec(0.0, 0.0, 1.0).expand_as(d), dim=-1) + 0.2 * d
        spacing = torch.sqrt(4 * math.pi * rad * rad * 1.5 / n.clamp(min=1)[:, None])
        return self._strands(rng, "bun", a, p, d, flow, spacing, rr / rad, length=0.03, opacity=0.9)

    def _ponytail(self, rng, a, mesh, geo, n, M) -> _Splats:
        length, r0 = a.ponytail[:, 1, None], a.ponytail[:, 2, None]
        u = rng.uniform("ponytail", M, 3)
        s = u[..., 0]
        # a curve from the attachment falling down and slightly back
        centre = geo["back_tail"][:, None] + torch.stack([torch.zeros_like(s), -length * s ** 1.3 + 0.05 * s,
                                                          -0.05 - 0.18 * torch.sin(s * math.pi * 0.7)], -1)
        tang = F.normalize(torch.stack([torch.zeros_like(s), -1.3 * length * s.clamp(min=0.05) ** 0.3 + 0.05,
                                        -0.18 * 0.7 * math.pi * torch.cos(s * math.pi * 0.7)], -1), dim=-1)
        th = u[..., 1] * 2 * math.pi
        ex = self._vec(1.0, 0.0, 0.0).expand_as(tang)
        side = F.normalize(torch.linalg.cross(tang, ex, dim=-1), dim=-1)
        radial = torch.cos(th)[..., None] * ex + torch.sin(th)[..., None] * side
        rr = r0 * (1 - 0.6 * s) * u[..., 2].sqrt()
        p = centre + radial * rr[..., None]
        spacing = torch.sqrt(2 * math.pi * r0 * length / n.clamp(min=1)[:, None])
        return self._strands(rng, "ponytail", a, p, radial, tang, spacing, rr / r0, length=0.05, opacity=0.9)

    def _discs(self, rng, name, p, nrm, spacing, albedo, opacity) -> _Splats:
        """Flat discs at ``p`` [B, M, 3] facing ``nrm``, σ = 0.75 ``spacing``."""
        B, M = p.shape[:2]
        tang = torch.linalg.cross(nrm.expand(B, M, 3), rng.normal(name + ".tangent", M, 3), dim=-1)
        s = (0.75 * spacing).expand(B, M)
        return _Splats.make(p, tang, nrm, torch.stack([s, s, 0.08 * s], -1), opacity, albedo)

    def _tube(self, rng, name, start, end, radius, n, M, colour, opacity) -> _Splats:
        """Gaussians along the segments start → end [B, S, 3] (a frame, an arm, a hoop), filling tubes of
        ``radius`` [B, S]; segments are picked in proportion to their length."""
        seg = end - start
        cdf = torch.cumsum(seg.norm(dim=-1), 1)
        total = cdf[:, -1:]
        u = rng.uniform(name, M, 6)
        si = torch.searchsorted(cdf, (u[..., 0] * total).contiguous(), right=True).clamp(max=seg.shape[1] - 1)
        s = _gather_rows(seg, si)
        centre = _gather_rows(start, si) + s * u[..., 1:2]
        tang = F.normalize(s, dim=-1)
        off = F.normalize(torch.linalg.cross(tang, _gaussian(u[..., 3:]), dim=-1), dim=-1)
        r = radius.gather(1, si)
        p = centre + off * (r * u[..., 2].sqrt())[..., None]
        along = torch.maximum(2 * total / n.clamp(min=1)[:, None], r)
        scales = torch.stack([along, 0.5 * r, 0.5 * r], -1)
        return _Splats.make(p, tang, off, scales, opacity, colour[:, None] * (1 + 0.08 * off[..., 1:2]))

    # hats --------------------------------------------------------------------------------------------
    def _hat_shell(self, rng, a, mesh, geo, n, M) -> _Splats:
        """A beanie (with a folded cuff) or the crown of a cap: a shell over the head and its hair."""
        c = self._canon_centroid
        weight = (c[:, 1] > self._hat_band(a, c)).float() * self._not_ears
        hair_t = (a.hair_thickness + 0.025)[:, None]
        bary, tri, pos, nrm, spacing = self._sample_mesh(rng, "hat", mesh, weight, n, M)
        canon = (self.basis.mean[tri] * bary[..., None]).sum(-2)
        cuff = (canon[..., 1] < self._hat_band(a, canon) + 0.08).float()
        p = pos + nrm * (hair_t + 0.012 * cuff)[..., None]
        colour = a.hat_colours[:, None, 0]
        rib = 1 + 0.12 * torch.sin(torch.atan2(p[..., 0], p[..., 2]) * 90)
        beanie = colour * torch.where(cuff > 0, 1.0, rib * 0.92)[..., None]
        cap = colour * (1 + 0.04 * rng.normal("hat.shade", M, 1))
        albedo = torch.where((a.hat == 1)[:, None, None], beanie, cap)
        return self._discs(rng, "hat", p, nrm, spacing * 1.1, albedo, 0.98)

    def _visor(self, rng, a, mesh, geo, n, M) -> _Splats:
        """A cap's visor, drooping about 24°."""
        prof = geo["prof_hat"]
        band = self._hat_bands[a.hat, 0][:, None]
        hair_t = (a.hair_thickness + 0.025)[:, None]
        u = rng.uniform("visor", M, 2)
        ang = (u[..., 0] * 2 - 1) * 1.2
        k = ((ang + math.pi) / (2 * math.pi) * _BINS).long().clamp(0, _BINS - 1)
        out = u[..., 1] * 0.28 * torch.cos(ang * 0.9)  # the visor's length, shorter at its sides
        rr = prof.gather(1, k) + hair_t + out
        y = band + 0.02 - 0.45 * out
        p = torch.stack([rr * torch.sin(ang), y, rr * torch.cos(ang)], -1)
        nrm = F.normalize(torch.stack([0.3 * torch.sin(ang), torch.ones_like(ang), 0.3 * torch.cos(ang)], -1), dim=-1)
        sp = torch.sqrt(0.28 * 2.4 * 0.5 / n.clamp(min=1)[:, None])
        return self._discs(rng, "visor", p, nrm, sp * 1.3, a.hat_colours[:, None, 1], 0.98)

    def _brimmed(self, a: HeadAttributes, geo: dict) -> tuple[Tensor, ...]:
        """A brimmed hat's half axes rx, rz, the height of its top and of its band, its brim width: [B, 1]."""
        prof = geo["prof_hat"]
        hair_t = (a.hair_thickness + 0.025)[:, None]
        rx = (prof[:, _BINS // 4] + prof[:, 3 * _BINS // 4])[:, None] / 2 + hair_t + 0.03  # azimuth ±90°
        rz = (prof[:, 0] + prof[:, _BINS // 2] + prof[:, _BINS - 1])[:, None] / 3 + hair_t + 0.03
        top = geo["lm"][:, self._lm["crown"], 1:2] + hair_t + a.hat_size[:, :1]
        y_band = self._hat_bands[a.hat, 0][:, None] - 0.06
        return rx, rz, top, y_band, a.hat_size[:, 1:]

    def _brim_crown(self, rng, a, mesh, geo, n, M) -> _Splats:
        """A brimmed hat's crown: an elliptic surface of revolution with a ribbon at its band."""
        rx, rz, top, y_band, _ = self._brimmed(a, geo)
        u = rng.uniform("brim_crown", M, 2)
        th = u[..., 0] * 2 * math.pi
        y = y_band + (top - y_band) * u[..., 1]
        taper = 1 - 0.12 * (y - y_band) / (top - y_band)
        p = torch.stack([rx * taper * torch.sin(th), y, rz * taper * torch.cos(th)], -1)
        nrm = torch.stack([torch.sin(th) / rx, torch.zeros_like(th), torch.cos(th) / rz], -1)
        ribbon = (y < y_band + 0.05).float()[..., None]
        albedo = a.hat_colours[:, None, 0] * (1 - ribbon) + a.hat_colours[:, None, 1] * ribbon
        area = 2 * math.pi * 0.5 * (rx + rz) * (top - y_band)
        return self._felt(rng, "brim_crown", p, nrm, area, n, albedo)

    def _brim_top(self, rng, a, mesh, geo, n, M) -> _Splats:
        rx, rz, top, _, _ = self._brimmed(a, geo)
        u = rng.uniform("brim_top", M, 2)
        rt, tt = u[..., 0].sqrt() * 0.88, u[..., 1] * 2 * math.pi
        p = torch.stack([rx * rt * torch.sin(tt), top.expand_as(tt), rz * rt * torch.cos(tt)], -1)
        return self._felt(rng, "brim_top", p, self._vec(0.0, 1.0, 0.0), math.pi * rx * rz, n,
                          a.hat_colours[:, None, 0])

    def _brim(self, rng, a, mesh, geo, n, M) -> _Splats:
        rx, rz, _, y_band, width = self._brimmed(a, geo)
        u = rng.uniform("brim", M, 2)
        tb = u[..., 0] * 2 * math.pi
        rb = 1 + (width / torch.minimum(rx, rz)) * u[..., 1].sqrt()
        p = torch.stack([rx * rb * torch.sin(tb), y_band - 0.04 * (rb - 1), rz * rb * torch.cos(tb)], -1)
        area = math.pi * ((rx + width) * (rz + width) - rx * rz)
        return self._felt(rng, "brim", p, self._vec(0.0, 1.0, 0.0), area, n, a.hat_colours[:, None, 0])

    def _felt(self, rng, name, p, nrm, area, n, albedo) -> _Splats:
        """Discs covering ``area`` [B, 1] with n [B] points, with a little colour noise."""
        sp = torch.sqrt(area / n.clamp(min=1)[:, None])
        albedo = albedo * (1 + 0.05 * _Noises(rng, name + ".noise", (60.0,))(p))
        return self._discs(rng, name, p, nrm, sp * 1.2, albedo, 0.98)

    # glasses and earrings ------------------------------------------------------------------------------
    def _glasses_layout(self, a: HeadAttributes, geo: dict) -> dict:
        """The glasses' frame, per head [B, 1]: lens centre offsets xc, height yc, depth z_lens, half
        width and height, superellipse exponent, frame thickness."""
        lm = geo["lm"]
        re_, le = lm[:, self._lm["right_eye"]], lm[:, self._lm["left_eye"]]
        dz, dy, dx, half_h, expo, thick = (x[:, None] for x in a.glasses_shape.unbind(-1))
        xc = (le[:, :1] - re_[:, :1]) / 2 + dx
        half_w = (geo["half_width"][:, None] + 0.02 - xc).clamp(0.09, 0.15)
        return {"z_lens": (re_[:, 2:] + le[:, 2:]) / 2 + dz, "yc": (re_[:, 1:2] + le[:, 1:2]) / 2 + dy, "xc": xc,
                "half_w": half_w, "half_h": half_h, "expo": expo, "thick": thick}

    @staticmethod
    def _lens_z(g: dict, x: Tensor, sign: float | Tensor) -> Tensor:
        """Depth of the lens plane at x: wrapping a little toward the temples."""
        return g["z_lens"] - 0.02 * (x - sign * g["xc"]) * sign / g["half_w"] - 0.03 * x ** 2

    def _frame(self, rng, a, mesh, geo, n, M) -> _Splats:
        """Rims, bridge and temple arms as tubes."""
        g = self._glasses_layout(a, geo)
        B, dev = len(a), self.device
        xc, yc, half_w, half_h = g["xc"], g["yc"], g["half_w"], g["half_h"]
        th = torch.linspace(0, 2 * math.pi, 65, device=dev)
        ex = torch.cos(th).abs() ** (2 / g["expo"]) * torch.sign(torch.cos(th))
        ey = torch.sin(th).abs() ** (2 / g["expo"]) * torch.sign(torch.sin(th))
        lines = []
        for sign in (-1.0, 1.0):
            x = sign * xc + half_w * ex
            lines.append(torch.stack([x, (yc + half_h * ey).expand_as(x), self._lens_z(g, x, sign)], -1))
        inner = xc - half_w + 0.002
        t9 = torch.linspace(-1, 1, 9, device=dev)
        bridge_x = inner * t9
        lines.append(torch.stack([bridge_x, yc + 0.3 * half_h + 0.012 * torch.cos(1.5 * t9),
                                  (g["z_lens"] + 0.005).expand_as(bridge_x)], -1))
        lm = geo["lm"]
        for sign, ear in ((-1.0, lm[:, self._lm["right_ear"]]), (1.0, lm[:, self._lm["left_ear"]])):
            x0 = sign * (xc + half_w)
            hinge = torch.cat([x0, yc + 0.3 * half_h, self._lens_z(g, x0, sign)], -1)
            tip = torch.stack([sign * (ear[:, 0].abs() - 0.02), ear[:, 1] + 0.1, ear[:, 2] - 0.03], -1)
            lines.append(torch.stack([hinge, tip, tip + self._vec(0.0, -0.08, -0.06)], 1))
        start = torch.cat([q[:, :-1] for q in lines], 1)
        end = torch.cat([q[:, 1:] for q in lines], 1)
        radius = torch.cat([g["thick"].expand(B, 128), 0.8 * g["thick"].expand(B, start.shape[1] - 128)], 1)
        return self._tube(rng, "frame", start, end, radius, n, M, a.frame_colour, 0.95)

    def _lens(self, rng, a, mesh, geo, n, M) -> _Splats:
        """Lenses: faint (or, for sunglasses, dark) discs on an R2 low-discrepancy sequence over the lens's
        box, randomly shifted, keeping the points inside the superellipse: even coverage, so a dark lens has
        no see-through blotches. Overlapping faint discs compose like an absorbing layer: 1 − T ≈ 1 − exp(−Σ α).
        A disc of opacity o and std σ adds o·2πσ² to Σα per unit area, and there are 1/sp² discs per unit
        area, so o = −ln(1 − target)·sp² / (2πσ²) gives the lens the target opacity."""
        g = self._glasses_layout(a, geo)
        dev = self.device
        first = (n // 2)[:, None]  # the right lens's points, then the left's
        count = int((M + 1) // 2 * 1.45) + 16
        j = torch.arange(count, device=dev)
        uv = 2 * torch.frac(a.lens_shift[:, None] + j[:, None] * _on(dev, _R2)) - 1  # [B, count, 2]
        expo = g["expo"]
        inside = (uv.abs() ** expo[..., None]).sum(-1) <= 0.97 ** expo
        order = torch.argsort(torch.where(inside, j, j + count), 1)  # the inside points first, in sequence order
        uv = _gather_rows(uv, order)
        s = torch.arange(M, device=dev)[None]
        left = s >= first
        local = (s - first * left).clamp(max=count - 1)
        uvs = _gather_rows(uv, local)
        sign = torch.where(left, 1.0, -1.0)
        x = sign * g["xc"] + g["half_w"] * uvs[..., 0]
        p = torch.stack([x, g["yc"] + g["half_h"] * uvs[..., 1], self._lens_z(g, x, sign)], -1)
        per_lens = torch.where(left, n[:, None] - first, first).clamp(min=1)
        sp = torch.sqrt(4 * g["half_w"] * g["half_h"] * inside.float().mean(1, keepdim=True) / per_lens)
        sigma_over_sp = 0.975
        opacity = (-torch.log(1 - a.lens_opacity) / (2 * math.pi * sigma_over_sp ** 2)).clamp(max=0.95)[:, None]
        return self._discs(rng, "lens", p, self._vec(0.0, 0.0, 1.0), sp * sigma_over_sp / 0.75,
                           a.lens_tint[:, None], opacity)

    def _earring(self, rng, a, mesh, geo, n, M) -> _Splats:
        """Studs (small metal balls) or hoops hanging from the ear lobes, sideways."""
        dev = self.device
        first = (n // 2)[:, None]
        left = torch.arange(M, device=dev)[None] >= first
        sign = torch.where(left, 1.0, -1.0)
        lm = geo["lm"]
        lobe = torch.where(left[..., None], lm[:, None, self._lm["left_earlobe"]],
                           lm[:, None, self._lm["right_earlobe"]])
        lobe = lobe + torch.stack([sign * 0.012, torch.full_like(sign, -0.01), torch.zeros_like(sign)], -1)
        per_ear = torch.where(left, n[:, None] - first, first).clamp(min=1)
        metal = a.earring_metal[:, None]
        u = rng.uniform("earring", M, 9)
        rad = 0.012
        d = F.normalize(_gaussian(u[..., 3:6]), dim=-1)
        p = lobe + d * rad * u[..., :1] ** 0.3
        sp = torch.sqrt(4 * math.pi * rad * rad / per_ear)
        studs = self._discs(rng, "earring", p, d, sp * 1.5, metal * (0.8 + 0.3 * d[..., 1:2]), 0.98)
        rad = 0.045  # a hoop in the plane facing sideways
        th = u[..., 1] * 2 * math.pi
        zero = torch.zeros_like(th)
        centre = lobe + torch.stack([zero, -rad + rad * torch.cos(th), rad * torch.sin(th)], -1)
        tang = torch.stack([zero, -torch.sin(th), torch.cos(th)], -1)
        off = F.normalize(torch.linalg.cross(tang, _gaussian(u[..., 6:9]), dim=-1), dim=-1)
        p = centre + off * (0.004 * u[..., 2].sqrt())[..., None]
        along = (4 * math.pi * rad / per_ear).clamp(min=0.004)
        scales = torch.stack([along, torch.full_like(along, 0.002), torch.full_like(along, 0.002)], -1)
        hoops = _Splats.make(p, tang, off, scales, 0.98, metal * (1 + 0.08 * off[..., 1:2]))
        return studs.where(a.earrings == 1, hoops)


# =================================================================================================
# Rendering
# =================================================================================================
def render_views(sample: HeadSample, views: Sequence[int] | Tensor | None = None,
                 background: Sequence[float] | Tensor | None = framing.BACKGROUND):
    """Render views of every head of ``sample``: :func:`a3d.core.rendering.render` of its Gaussians from
    ``sample.cameras`` (all views, or the indices ``views``) over ``background`` (default the
    framing's model background; None renders over black, i.e. premultiplied colour).

    Returns:
        :class:`a3d.core.rendering.RenderOutput` with rgb [B, C', H, W, 3], alpha and depth [B, C', H, W, 1].
    """
    from ..core.rendering import render

    cams = sample.cameras
    if views is not None:
        idx = torch.as_tensor(views, dtype=torch.long).reshape(-1)
        if len(idx) == 0 or int(idx.min()) < 0 or int(idx.max()) >= len(cams):
            raise ValueError(f"views: expected indices in [0, {len(cams)}), got {idx.tolist()}")
        idx = idx.to(cams.viewmats.device)
        cams = Cameras(cams.viewmats.index_select(-3, idx), cams.Ks.index_select(-3, idx), cams.width, cams.height)
    return render(sample.gaussians, cams, background)
