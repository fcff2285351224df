"""The Any3DAvatar network: one portrait in, 4·H·W pixel-aligned 3D Gaussians out.

Paper §3.1, §3.3, §3.4 and Algorithm 1, read as follows (shapes for batch B, image H × W, patch p,
Nh = H/p, Nw = W/p, N = Nh·Nw tokens a view, D the token width):

1. Image branch: the portrait (the front canonical view) ⊕ its Plücker rays, 9 × H × W, cut into
   p × p patches, each patch → MLP → one context token: [B, N, D].
2. Gaussian branch: for each of the 4 canonical views (front, left, right, back), the noisy state
   g_t (3 channels, the image part of that view) ⊕ that view's Plücker rays → the same kind of
   tokenizer (its own weights) → [B, 4N, D].
3. Position embeddings (fixed 2D sin-cos over the Nh × Nw grid) and a learned view embedding
   (context, front, left, right, back) are added; the sequence [context; Gaussian] of 5N tokens goes
   through DiT blocks with joint self-attention (``F.scaled_dot_product_attention``) and adaLN
   conditioned on the flow time t.
4. Gaussian decoder: each output Gaussian token → linear "upsampling" into its p × p pixels → a
   per-pixel MLP (which also sees the pixel's Plücker ray) → 12 raw numbers → activations in
   :meth:`GaussianDecoder.activate`, the one place where raw outputs become Gaussians: a depth along
   the pixel's ray (position = camera centre + depth · unit ray direction), scales, rotation,
   opacity and colour. 4·H·W Gaussians a portrait.
5. AVAS (§3.4): a light image decoder on the same Gaussian tokens predicts the 4 canonical views.
   It exists only when the model is built with ``with_avas=True`` (training); inference never
   builds or runs it.

Flow matching, the paper's convention (Eq. 1-5), which is the reverse of the rectified-flow habit:
**t = 0 is pure noise, t = 1 is clean**; g_t = (1 − t)·g0 + t·g1, the network predicts the clean
target ĝ1 = f(g_t, t, x̃), the velocity is v_t = (ĝ1 − g_t) / (1 − t), and the N-step sampler walks
t_k = k/N, g_{t_{k+1}} = g_{t_k} + (1/N)·v_{t_k} (Eq. 3). One step (t = 0, Eq. 5) gives ĝ1 directly.

What the state g is: the paper builds g0 from "3-channel image noise" per canonical view and
decodes ĝ1 as Gaussian parameters without saying how the two spaces meet in Eq. 3. Here the state
is the 3-channel image of each canonical view, scaled to [-1, 1]: for training its clean value g1 is
the ground-truth canonical view (:func:`images_to_state`), and the network's prediction of it is the
colour of the view's pixel-aligned Gaussians (each canonical pixel owns one Gaussian). So the
sampler's state update uses the predicted Gaussian colours, and the returned Gaussians are those of
the last network call. With one step (the default) the state is only the input noise.

Two deliberate departures from a literal DiT: the adaLN modulation is computed once from t and
shared by all blocks plus a learned per-block table ("adaLN-single" of PixArt-α; the gates start at
zero as in adaLN-Zero), which saves a quarter of the parameters so the tiny preset ships under
16 MiB; and queries/keys are RMS-normalised per head, which keeps bf16 attention stable.
"""
import json
import math
import os
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import NamedTuple, Optional, Union

import torch
import torch.nn.functional as F
from einops import rearrange
from huggingface_hub import PyTorchModelHubMixin
from torch import Tensor, nn

from ..core import framing
from ..core.cameras import Cameras, canonical_cameras
from ..errors import InputError, check_int, check_number
from ..core.files import read_json
from ..core.gaussians import Gaussians
from ..core.rotations import rotmat_to_quat
from ..core.ops import plucker_rays

__all__ = [
    "ModelConfig", "PRESETS", "get_config", "MAX_PARAMETERS", "MAX_ACTIVATION_BYTES", "A3DModel", "ModelOutput",
    "sample_t", "interpolate",
    "velocity", "images_to_state", "state_to_images", "load_weights",
]

NUM_VIEWS = len(framing.CANONICAL_VIEWS)
_RAW_CHANNELS = 12  # depth 1, scales 3, quaternion 4, opacity 1, colour 3
MAX_PARAMETERS = 4_000_000_000
"""Largest model a config may describe (parameters with the AVAS decoder; the paper's is ~0.3 B)."""
MAX_ACTIVATION_BYTES = 32 * 2**30
"""Largest float32 working set of one image through the network a config may imply (the paper's ~3 GiB)."""
_MAX_CONFIG_BYTES = 2**20


@dataclass
class ModelConfig:
    """Architecture of :class:`A3DModel`; flat and JSON-serialisable (``config.json``).

    Attributes:
        image_size: H = W of the portrait and of each canonical view, pixels (a multiple of patch_size).
        patch_size: p, pixels a token side.
        width: D, token width.
        depth: number of DiT blocks.
        heads: attention heads (width must divide into heads of an even size).
        mlp_ratio: hidden width of the blocks' MLPs as a multiple of ``width``.
        decoder_width: per-pixel feature width of the Gaussian decoder.
        avas_width: hidden channels of the AVAS image decoder (built for training only).
        camera_radius: distance of the canonical cameras from the head centre, head units.
        camera_fov_deg: their field of view, degrees.
        depth_range: Gaussians lie at ``camera_radius ± depth_range`` along each pixel's ray.
        scale_min, scale_max: bounds of the Gaussians' standard deviations, head units.
        input_decoder: wire the given photos into the output (see :class:`InputDecoder`): given views
            enter the DiT as clean states, their Gaussians take their colour from their pixel plus a
            learned residual and are about a pixel wide, and every Gaussian sees the given photos
            sampled where its 3D position projects. False is the literal paper decoder (the bundled
            model before 0.3 and the ablation's baseline).
        input_width: channels of the light full-resolution conv over each given photo.
        given_exact: a given view's Gaussians are its pixels, nothing learned but their depth: the
            pixel's colour, the photo's matte as opacity (where a matte is passed) and an isotropic
            scale of ``given_footprint`` pixels. False: colour, opacity and scale take learned residuals
            (the round-2 model; on real photos those residuals came out as a speckle over the face).
        given_footprint: σ of a given view's Gaussians, as a fraction of its pixel's width at their depth.
        carve_depth: where > 0, a Gaussian of another view's set that projects into a given view's
            foreground and lies in front of that view's surface, or less than ``carve_depth`` head units
            behind it, is made transparent (the photo sees the surface there, so nothing else may cover
            it). 0 turns it off.
        carve_window: the carve tests a Gaussian against the farthest foreground surface in a window of
            this many pixels (odd) around where it projects, not only the surface at that pixel: on a
            surface the photo sees at a slant the depth changes by several hundredths of a head unit a
            pixel, so a Gaussian that passes at its centre still covers the photo a pixel away (the
            input view of a turned face lost dB to it). 1: the pixel alone.
        given_fit: with ``given_exact``, iterations that fit a given view's colours so that its own
            Gaussians, rendered from its camera, give the photo back: each Gaussian of a pixel inside the
            matte moves its colour by the pixel's residual (a Jacobi step on the rendering, which is
            linear in the colours). A 0.45-pixel footprint otherwise blurs the photo by the neighbours'
            tails (the input view of a detailed photo lost 4-8 dB to it). 0 turns it off.
        given_erode: pixels by which the matte used as a given view's opacity is eroded (a min filter):
            the photo's Gaussians on the silhouette's edge have the least certain depth (and colour, from
            un-compositing) and showed as light specks from other views; the other sets draw the edge. 0
            turns it off.
        given_surfel: with ``given_exact``, a given view's Gaussians are flat discs tangent to the surface
            its pixels see (normals from the steps to the neighbouring pixels), σ in the surface
            ``given_footprint`` of the spacing to the neighbours (at least the isotropic footprint, at most
            3 times it), half the footprint across it: seen from another view they meet where isotropic
            ones, a pixel apart on a surface the photo sees at a slant, leave gaps and streaks.
        decoder_conv: 3 × 3 convolutions (SiLU between them) over each canonical view's upsampled per-pixel
            features, added to them as a residual whose last layer starts at zero (so weights trained without
            it compute the same). The upsampling gives each token its own p × p block of pixels and nothing
            else mixes neighbouring tokens: the back of the head shows a p-pixel grid. 0 turns it off.
    """

    image_size: int = 128
    patch_size: int = 8
    width: int = 256
    depth: int = 8
    heads: int = 4
    mlp_ratio: float = 4.0
    decoder_width: int = 32
    avas_width: int = 32
    camera_radius: float = framing.CANONICAL_RADIUS
    camera_fov_deg: float = framing.CANONICAL_FOV_DEG
    depth_range: float = 1.0
    scale_min: float = 1e-4
    scale_max: float = 0.05
    input_decoder: bool = True
    input_width: int = 16
    given_exact: bool = True
    given_footprint: float = 0.45
    carve_depth: float = 0.1
    carve_window: int = 1
    given_fit: int = 0
    given_erode: int = 0
    given_surfel: bool = False
    decoder_conv: int = 0

    def __post_init__(self) -> None:
        for name in ("input_decoder", "given_exact", "given_surfel"):
            if not isinstance(getattr(self, name), bool):
                raise InputError(f"ModelConfig.{name}: expected a bool, got {getattr(self, name)!r}")
        self.given_footprint = check_number(self.given_footprint, "ModelConfig.given_footprint", hi=4.0, positive=True)
        self.carve_depth = check_number(self.carve_depth, "ModelConfig.carve_depth", lo=0.0, hi=1.0)
        for name in ("image_size", "patch_size", "width", "depth", "heads", "decoder_width", "avas_width",
                     "input_width"):
            check_int(getattr(self, name), f"ModelConfig.{name}", 1)
        check_int(self.given_fit, "ModelConfig.given_fit", 0, 8)
        check_int(self.given_erode, "ModelConfig.given_erode", 0, 4)
        check_int(self.decoder_conv, "ModelConfig.decoder_conv", 0, 4)
        check_int(self.carve_window, "ModelConfig.carve_window", 1, 9)
        if self.carve_window % 2 == 0:
            raise InputError(f"ModelConfig.carve_window: expected an odd number of pixels, got {self.carve_window}")
        for name in ("mlp_ratio", "camera_radius", "camera_fov_deg", "depth_range", "scale_min", "scale_max"):
            hi = {"mlp_ratio": 64.0, "camera_fov_deg": 179.0}.get(name)
            setattr(self, name, check_number(getattr(self, name), f"ModelConfig.{name}", hi=hi, positive=True))
        if self.image_size % self.patch_size:
            raise InputError(f"ModelConfig: image_size {self.image_size} must be a multiple of patch_size "
                             f"{self.patch_size}")
        if self.width % self.heads or (self.width // self.heads) % 2:
            raise InputError(f"ModelConfig: width {self.width} must split into {self.heads} heads of an even size")
        if self.width % 4:
            raise InputError(f"ModelConfig.width: expected a multiple of 4 (2D sin-cos embedding), got {self.width}")
        if self.depth_range >= self.camera_radius:
            raise InputError(f"ModelConfig.depth_range {self.depth_range} must be below camera_radius "
                             f"{self.camera_radius} so that Gaussians stay in front of the cameras")
        if self.scale_min >= self.scale_max:
            raise InputError(f"ModelConfig: scale_min {self.scale_min} must be below scale_max {self.scale_max}")
        self._check_size()

    def num_parameters(self, with_avas: bool = True) -> int:
        """Parameters of :class:`A3DModel` built from this config, counted from the config alone."""
        return sum(n for part, (n, _) in self._parameter_parts().items() if with_avas or part != "AVAS decoder")

    def _parameter_parts(self) -> dict[str, tuple[int, tuple[str, ...]]]:
        """Parameter count of each part of the network and the fields that size it."""
        D, p, c, a = self.width, self.patch_size, self.decoder_width, self.avas_width
        w = self.input_width if self.input_decoder else 0
        hidden = int(D * self.mlp_ratio)
        block = 3 * D * D + 3 * D + 2 * (D // self.heads) + D * D + D + D * hidden + hidden + hidden * D + D + 6 * D
        gathered = 4 * NUM_VIEWS  # InputDecoder's _GATHER_CHANNELS (defined below the presets, which need this)
        inputs = (D + 4 * w * 9 + w + w * w * 9 + w + (c + 6 + w + gathered) * c + c + c * 7 + 7) if w else 0
        return {
            "tokenizers and embeddings": (2 * (9 * p * p * D + D + D * D + D) + (1 + NUM_VIEWS) * D + 256 * D + D
                                          + D * D + D + 6 * D * D + 6 * D, ("width", "patch_size")),
            "DiT blocks": (self.depth * block, ("depth", "width", "mlp_ratio")),
            "Gaussian decoder": (2 * D * D + 2 * D + D * p * p * c + p * p * c + (c + 6 + w) * c + c
                                 + c * _RAW_CHANNELS + _RAW_CHANNELS + self.decoder_conv * (9 * c * c + c),
                                 ("decoder_width", "width", "patch_size", "decoder_conv")),
            "input decoder": (inputs, ("input_width", "decoder_width")),
            "AVAS decoder": (2 * D + D * p * p * a + p * p * a + 9 * a * a + a + 9 * a * 3 + 3,
                             ("avas_width", "width", "patch_size")),
        }

    def activation_bytes(self) -> int:
        """An estimate of the float32 working set of one image through the network at inference:
        the tokens of a DiT block (its input, attention and MLP intermediates) plus the per-pixel
        features of the Gaussian decoder."""
        return sum(n for n, _ in self._activation_parts().values())

    def _activation_parts(self) -> dict[str, tuple[int, tuple[str, ...]]]:
        tokens = (1 + NUM_VIEWS) * (self.image_size // self.patch_size) ** 2
        return {
            f"{tokens:,} tokens": (int(4 * tokens * self.width * (8 + 2 * self.mlp_ratio)),
                                   ("image_size", "patch_size", "width")),
            "per-pixel decoder features": (4 * NUM_VIEWS * self.image_size ** 2 * self._per_pixel_floats(),
                                           ("image_size", "decoder_width", "input_width")),
        }

    def _per_pixel_floats(self) -> int:
        """Floats a pixel of a canonical view holds at once in the decoders (features, MLP hidden
        layers, raw outputs, activations; with the input decoder its conv features and gathered colours)."""
        c, w = self.decoder_width, (self.input_width if self.input_decoder else 0)
        conv = 2 * c if self.decoder_conv else 0  # the convolutions' input layout and output
        return 4 * c + 60 + conv + ((3 * w + 8 * NUM_VIEWS + 2 * c) if w else 0)  # 8·NUM_VIEWS: gathered, twice

    def _check_size(self) -> None:
        """Refuse a config that no machine a3d targets could hold, before anything is allocated; the
        message names the fields of the part that is too large."""
        for parts, limit, what, unit in ((self._parameter_parts(), MAX_PARAMETERS, "parameters", 1),
                                         (self._activation_parts(), MAX_ACTIVATION_BYTES, "GiB for one image", 2**30)):
            total = sum(n for n, _ in parts.values())
            if total > limit:
                name, (n, names) = max(parts.items(), key=lambda kv: kv[1][0])
                given = ", ".join(f"{k}={getattr(self, k)}" for k in names)
                constant = "MAX_PARAMETERS" if unit == 1 else "MAX_ACTIVATION_BYTES"
                raise InputError(f"ModelConfig: {given} make the model need {total / unit:.3g} {what} "
                                 f"({n / unit:.3g} in its {name}); at most {limit / unit:.3g} are accepted "
                                 f"(a3d.model.network.{constant})")

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        """Build from a dict with exactly the fields of ModelConfig (an unknown or missing key fails),
        except that a config written before the input decoder existed (no ``input_decoder`` key)
        describes that older architecture."""
        if not isinstance(d, dict):
            raise InputError(f"config: expected a JSON object, got {type(d).__name__}")
        names = {f.name for f in fields(cls)}
        d = {**{k: v for k, v in _LEGACY_FIELDS.items() if k not in d}, **d}
        unknown, missing = sorted(set(d) - names), sorted(names - set(d))
        if unknown or missing:
            raise InputError(f"config: keys do not match ModelConfig (unknown: {unknown}, missing: {missing})")
        return cls(**d)

    @classmethod
    def from_json(cls, path: Union[str, os.PathLike]) -> "ModelConfig":
        """Read a model's ``config.json`` (bounded, :func:`a3d.core.files.read_json`); InputError naming the file."""
        doc = read_json(path, _MAX_CONFIG_BYTES, what="model config")
        try:
            return cls.from_dict(doc)
        except ValueError as e:
            raise InputError(f"{path}: {e}") from None

    def to_dict(self) -> dict:
        return asdict(self)


# Fields added after the first release, with the values that describe a config.json written before them
# (one without "input_decoder" is the paper decoder; one without "given_exact" is the round-2 input decoder).
_LEGACY_FIELDS = {"input_decoder": False, "input_width": 16, "given_exact": False, "given_footprint": 0.6,
                  "carve_depth": 0.0, "given_fit": 0, "given_erode": 0,
                  "given_surfel": False, "decoder_conv": 0, "carve_window": 1}

PRESETS: dict[str, ModelConfig] = {
    # 128², 1,280 tokens, ~7.9 M parameters: fp16 weights < 16 MiB, well under 3 s on a laptop CPU.
    "tiny": ModelConfig(),
    # The paper's scale (§4.1): 512², p = 8, width 1024, 24 blocks, 20,480 tokens.
    "paper": ModelConfig(image_size=512, patch_size=8, width=1024, depth=24, heads=16, decoder_width=64,
                         avas_width=64),
}


def get_config(name: str, **overrides) -> ModelConfig:
    """A copy of the preset ``name`` ('tiny' or 'paper') with fields replaced by ``overrides``."""
    if name not in PRESETS:
        raise InputError(f"name: unknown preset {name!r}; expected one of {sorted(PRESETS)}")
    d = PRESETS[name].to_dict()
    bad = sorted(set(overrides) - set(d))
    if bad:
        raise InputError(f"overrides: unknown ModelConfig fields {bad}")
    d.update(overrides)
    return ModelConfig(**d)


# ---- flow matching (paper convention: t = 0 noise, t = 1 clean) ------------------------------------

def sample_t(batch: int, *, one_step_prob: float = 0.0, device: Union[torch.device, str, None] = None,
             generator: Optional[torch.Generator] = None) -> Tensor:
    """Training times t [batch]: U(0, 1) (the multi-step objective, Eq. 1), except that a fraction
    ``one_step_prob`` of the samples gets exactly t = 0 (the one-step objective, Eq. 4)."""
    if not 0.0 <= one_step_prob <= 1.0:
        raise ValueError(f"one_step_prob: expected a probability in [0, 1], got {one_step_prob}")
    gen_device = generator.device if generator is not None else device
    t = torch.rand(batch, generator=generator, device=gen_device)
    zero = torch.rand(batch, generator=generator, device=gen_device) < one_step_prob
    return torch.where(zero, torch.zeros_like(t), t).to(device)


def interpolate(g0: Tensor, g1: Tensor, t: Tensor) -> Tensor:
    """g_t = (1 − t)·g0 + t·g1 with t [B] broadcast over the other dims of g0, g1 [B, ...]."""
    t = t.reshape(t.shape + (1,) * (g0.dim() - t.dim())).to(g0.dtype)
    return (1 - t) * g0 + t * g1


def velocity(g1_hat: Tensor, g_t: Tensor, t: Tensor) -> Tensor:
    """v_t = (ĝ1 − g_t) / (1 − t) (Eq. 2); t [B] in [0, 1)."""
    t = t.reshape(t.shape + (1,) * (g_t.dim() - t.dim())).to(g_t.dtype)
    return (g1_hat - g_t) / (1 - t)


def images_to_state(images: Tensor) -> Tensor:
    """Canonical view images [B, 4, 3, H, W] in [0, 1] → the flow state (same shape, in [-1, 1])."""
    return images * 2 - 1


def state_to_images(state: Tensor) -> Tensor:
    """Inverse of :func:`images_to_state`."""
    return (state + 1) / 2


# ---- building blocks --------------------------------------------------------------------------------

def _sincos_2d(grid: int, width: int) -> Tensor:
    """Fixed 2D sin-cos position embedding [grid², width] (half the channels for y, half for x)."""
    quarter = width // 4
    omega = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float64) / quarter)
    ys, xs = torch.meshgrid(torch.arange(grid, dtype=torch.float64), torch.arange(grid, dtype=torch.float64),
                            indexing="ij")
    out = []
    for pos in (ys.reshape(-1), xs.reshape(-1)):
        ang = pos[:, None] * omega[None]
        out += [ang.sin(), ang.cos()]
    return torch.cat(out, 1).float()


def _surface_steps(means: Tensor) -> tuple[Tensor, Tensor]:
    """The surface's steps between neighbouring pixels: [..., H, W, 3] centres of a view's pixel grid ->
    (du, dv), each [..., H, W, 3], to the neighbour along a row and along a column, whichever of the two
    (before, after) is shorter, so a step never crosses a depth edge that the other side does not; at the
    image's border the one neighbour there is."""
    def shorter(dim: int) -> Tensor:
        fwd = torch.diff(means, dim=dim, append=means.narrow(dim, means.shape[dim] - 1, 1))
        bwd = torch.diff(means, dim=dim, prepend=means.narrow(dim, 0, 1))
        n = means.shape[dim]
        idx = torch.arange(n, device=means.device).reshape((n,) + (1,) * (-dim - 2))
        inf = torch.tensor(float("inf"), device=means.device)
        fwd_len = torch.where(idx == n - 1, inf, fwd.norm(dim=-1))[..., None]  # no neighbour after the last
        bwd_len = torch.where(idx == 0, inf, bwd.norm(dim=-1))[..., None]
        return torch.where(fwd_len <= bwd_len, fwd, bwd)

    return shorter(-2), shorter(-3)


def _surfels(means: Tensor, footprint: Tensor, fraction: float, max_stretch: float = 3.0) -> tuple[Tensor, Tensor]:
    """Flat Gaussians tangent to the surface that a view's pixels see: [..., H, W, 3] centres (a view's
    pixel grid) and each pixel's isotropic footprint [..., H, W, 1] -> (quats [..., H, W, 4], scales
    [..., H, W, 3]). The tangents are the smaller one-sided differences to the neighbours (a depth edge
    is not bridged); in the tangent plane σ is ``fraction`` of the spacing to the neighbours, between
    the footprint and ``max_stretch`` times it (a surface seen edge-on spreads its pixels apart: from
    other views the discs now meet instead of streaking); across it σ is half the footprint."""
    du, dv = _surface_steps(means)
    t1 = F.normalize(du, dim=-1)
    normal = F.normalize(torch.cross(du, dv, dim=-1), dim=-1)
    t2 = torch.cross(normal, t1, dim=-1)
    ok = (normal.norm(dim=-1, keepdim=True) > 0.5) & (t1.norm(dim=-1, keepdim=True) > 0.5)
    R = torch.stack([t1, t2, normal], -1)  # columns: the Gaussian's axes in the world
    quats = torch.where(ok, rotmat_to_quat(torch.where(ok[..., None], R, torch.eye(3, device=R.device))),
                        means.new_tensor([1.0, 0.0, 0.0, 0.0]))
    along = lambda d: (fraction * d.norm(dim=-1, keepdim=True)).clamp(footprint, max_stretch * footprint)  # noqa: E731
    dv_across = dv - (dv * t1).sum(-1, keepdim=True) * t1
    scales = torch.cat([along(du), along(dv_across), 0.5 * footprint], -1)
    return quats, torch.where(ok, scales, footprint.expand_as(scales))


def _facing(means: Tensor, origin: Tensor) -> Tensor:
    """How squarely a view sees the surface through each pixel: [B, H, W, 3] Gaussian centres of a view's
    pixels and its camera centre [3] -> [B, H, W] in [0, 1], 1 where the surface's normal (from the smaller
    one-sided difference to a neighbour in each image direction, so that a depth edge is not bridged) is
    within 37° of the ray, 0 beyond 60° (the surface is seen edge-on there: what the photo shows of it
    is squeezed into a pixel, and another view sees those Gaussians spread apart)."""
    du, dv = _surface_steps(means)
    normal = F.normalize(torch.cross(du, dv, dim=-1), dim=-1)
    ray = F.normalize(means - origin, dim=-1)
    cos = (normal * ray).sum(-1).abs()
    return ((cos - 0.5) / 0.3).clamp(0, 1)


def _timestep_features(t: Tensor, dim: int = 256) -> Tensor:
    """Sinusoidal features [B, dim] of t [B] in [0, 1] (scaled by 1000, as DiT does with integer steps)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    ang = (t.float() * 1000.0)[:, None] * freqs[None]
    return torch.cat([ang.cos(), ang.sin()], -1)


def _rms(norm: nn.RMSNorm, x: Tensor) -> Tensor:
    """RMSNorm in the input's dtype (under bf16 autocast a float32 weight would force the slow path)."""
    return F.rms_norm(x, norm.normalized_shape, norm.weight.to(x.dtype), norm.eps)


def _modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    """x · (1 + scale) + shift, per sample (one fused kernel over x)."""
    return torch.addcmul(shift[:, None], x, 1 + scale[:, None])


class PatchTokenizer(nn.Module):
    """p × p patches of a [B, V, 9, H, W] input → MLP → tokens [B, V·Nh·Nw, D] (view-major)."""

    def __init__(self, channels: int, patch: int, width: int):
        super().__init__()
        self.patch = patch
        self.mlp = nn.Sequential(nn.Linear(channels * patch * patch, width), nn.SiLU(), nn.Linear(width, width))

    def forward(self, x: Tensor) -> Tensor:
        p = self.patch
        x = rearrange(x, "b v c (h p) (w q) -> b (v h w) (c p q)", p=p, q=p)
        return self.mlp(x)


class Block(nn.Module):
    """DiT block: adaLN-modulated joint self-attention and MLP, gated residuals."""

    def __init__(self, width: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.qkv = nn.Linear(width, 3 * width)
        self.q_norm = nn.RMSNorm(width // heads, eps=1e-6)
        self.k_norm = nn.RMSNorm(width // heads, eps=1e-6)
        self.proj = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        hidden = int(width * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, width))
        # per-block offsets of the shared modulation (shift, scale, gate) × (attention, MLP)
        self.modulation = nn.Parameter(torch.zeros(6, width))

    def forward(self, x: Tensor, mod: Tensor) -> Tensor:  # x [B, T, D], mod [B, 6, D]
        shift1, scale1, gate1, shift2, scale2, gate2 = (mod + self.modulation).unbind(1)
        h = _modulate(self.norm1(x), shift1, scale1)
        q, k, v = rearrange(self.qkv(h), "b t (three h d) -> three b h t d", three=3, h=self.heads)
        q, k = _rms(self.q_norm, q), _rms(self.k_norm, k)
        h = F.scaled_dot_product_attention(q, k, v)  # [B, heads, T, D/heads]
        x = torch.addcmul(x, gate1[:, None], self.proj(rearrange(h, "b h t d -> b t (h d)")))
        h = _modulate(self.norm2(x), shift2, scale2)
        return torch.addcmul(x, gate2[:, None], self.mlp(h))


class GaussianDecoder(nn.Module):
    """Gaussian tokens [B, 4N, D] → 4·H·W pixel-aligned Gaussians (the paper's D_gs)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        p, c = cfg.patch_size, cfg.decoder_width
        self.norm = nn.LayerNorm(cfg.width, elementwise_affine=False, eps=1e-6)
        self.modulation = nn.Linear(cfg.width, 2 * cfg.width)  # adaLN shift, scale from t
        self.upsample = nn.Linear(cfg.width, p * p * c)  # one token → its p × p pixels
        extra = cfg.input_width if cfg.input_decoder else 0  # the given photos' conv features
        self.pixel_mlp = nn.Sequential(nn.Linear(c + 6 + extra, c), nn.SiLU(), nn.Linear(c, _RAW_CHANNELS))
        layers: list[nn.Module] = []
        for i in range(cfg.decoder_conv):
            layers += [nn.SiLU()] if i else []
            layers.append(nn.Conv2d(c, c, 3, padding=1))
        self.conv = nn.Sequential(*layers) if layers else None

    def raw(self, tokens: Tensor, temb: Tensor, rays: Tensor, photo_features: Optional[Tensor] = None
            ) -> tuple[Tensor, Tensor]:
        """Raw per-pixel outputs [B, 4, H, W, 12] and the per-pixel input of the MLP [B, 4, H, W, c + 6 (+ w)]
        from tokens [B, 4N, D], t features [B, D], rays [4, H, W, 6] and, with the input decoder,
        the given photos' conv features [B, 4, H, W, w]."""
        cfg = self.cfg
        n = cfg.image_size // cfg.patch_size
        shift, scale = self.modulation(F.silu(temb)).chunk(2, -1)
        h = self.upsample(_modulate(self.norm(tokens), shift, scale))
        h = rearrange(h, "b (v h w) (p q c) -> b v (h p) (w q) c", v=NUM_VIEWS, h=n, w=n,
                      p=cfg.patch_size, q=cfg.patch_size)
        if self.conv is not None:  # neighbouring tokens' pixels meet (ModelConfig.decoder_conv)
            mixed = self.conv(rearrange(h, "b v y x c -> (b v) c y x"))
            h = h + rearrange(mixed, "(b v) c y x -> b v y x c", v=NUM_VIEWS)
        # The last MLP and the activations run in float32: a bf16 depth (8-bit mantissa) would put
        # Gaussians a centimetre off their ray at the paper's resolution.
        with torch.autocast(device_type="cuda" if h.is_cuda else "cpu", enabled=False):
            parts = [h.float(), rays.expand(h.shape[0], *rays.shape)]
            if photo_features is not None:
                parts.append(photo_features.float())
            h = torch.cat(parts, -1)
            return self.pixel_mlp(h), h

    def depth(self, raw: Tensor) -> Tensor:
        """Distance along each pixel's unit ray [B, 4, H, W, 1], in camera_radius ± depth_range."""
        cfg = self.cfg
        return cfg.camera_radius + cfg.depth_range * torch.tanh(raw[..., 0:1].float())

    def activate(self, raw: Tensor, origins: Tensor, dirs: Tensor, residual: Optional[Tensor] = None,
                 photos: Optional[Tensor] = None, given: Optional[Tensor] = None,
                 masks: Optional[Tensor] = None) -> Gaussians:
        """The only place where raw network outputs become Gaussians.

        Args:
            raw: [B, 4, H, W, 12] raw outputs.
            origins: [4, 3] camera centres of the canonical views.
            dirs: [4, H, W, 3] unit ray directions of their pixels (world).
            residual: [B, 4, H, W, 7] the input decoder's residuals (colour 3, opacity 1, log-scale 3), or None.
            photos: [B, 4, 3, H, W] the given photos in [0, 1] (read where ``given``), with the input decoder.
            given: [B, 4] bool, which canonical views have a photo, with the input decoder.
            masks: [B, 4, H, W] the given photos' mattes in [0, 1], or None (unknown: the opacity is learned).
        Returns:
            Gaussians [B, 4·H·W] (view-major, then row-major pixels), all values bounded:
            depth along the ray in camera_radius ± depth_range, scales in (scale_min, scale_max),
            unit quaternions, opacities and colours in (0, 1).
        """
        cfg = self.cfg
        raw = raw.float()
        depth = self.depth(raw)
        means = origins[:, None, None, :] + depth * dirs  # [B, 4, H, W, 3]
        scales = cfg.scale_min + (cfg.scale_max - cfg.scale_min) * torch.sigmoid(raw[..., 1:4])
        quats = raw[..., 4:8] + raw.new_tensor([1.0, 0.0, 0.0, 0.0])  # identity rotation at zero output
        quats = quats / quats.norm(dim=-1, keepdim=True).clamp_min(1e-6)
        opacity_logit, color_logit = raw[..., 8], raw[..., 9:12]
        if residual is not None:
            residual = residual.float()
            g = given[:, :, None, None, None]  # [B, 4, 1, 1, 1]
            pixel = rearrange(photos.float(), "b v c h w -> b v h w c").clamp(1e-3, 1 - 1e-3)
            color_logit = torch.where(g, torch.logit(pixel), color_logit) + residual[..., 0:3]
            opacity_logit = opacity_logit + residual[..., 3]
            # a given view's Gaussian is about a pixel wide: its pixel's footprint at its depth
            pixel_angle = 2 * math.tan(math.radians(cfg.camera_fov_deg) / 2) / cfg.image_size
            footprint = (cfg.given_footprint * pixel_angle) * depth
            factor = torch.exp(1.5 * torch.tanh(residual[..., 4:7]))
            # given_exact: only the depth is the network's (a learned residual on the pixel's colour,
            # opacity or size generalised badly off the synthetic heads: a speckle over real faces)
            bounded = lambda x: x.clamp(cfg.scale_min, cfg.scale_max)  # noqa: E731
            given_scale = footprint if cfg.given_exact else bounded(footprint * factor)
            scales = torch.where(g, given_scale.expand_as(scales), bounded(scales * factor))
            if cfg.given_exact and cfg.given_surfel:
                surfel_quats, surfel_scales = _surfels(means.detach(), footprint.detach(), cfg.given_footprint)
                quats = torch.where(g, surfel_quats, quats)
                scales = torch.where(g, surfel_scales, scales)
        opacities = torch.sigmoid(opacity_logit)
        colors = torch.sigmoid(color_logit)
        if residual is not None and cfg.given_exact:
            if masks is not None:
                matte = masks.float()[..., None].clamp(0.0, 1.0)  # [B, 4, H, W, 1]
                if cfg.given_erode > 0:
                    k = 2 * cfg.given_erode + 1
                    flat = matte.reshape(-1, 1, *matte.shape[2:4])
                    matte = (-F.max_pool2d(-flat, k, 1, cfg.given_erode)).reshape(matte.shape)
                opacities = torch.where(g[..., 0], matte[..., 0].clamp(max=_MAX_OPACITY), opacities)
                # the photo is composited over the background: an edge pixel's colour is part
                # background, which its Gaussian (opacity = the matte) must not carry to other views
                bg = pixel.new_tensor(framing.BACKGROUND)
                pixel = ((pixel - bg * (1 - matte)) / matte.clamp_min(_MIN_MATTE)).clamp(0, 1)
            colors = torch.where(g, pixel, colors)
        flat = lambda x: x.reshape(raw.shape[0], -1, *x.shape[4:])  # noqa: E731  [B, 4·H·W, ...]
        return Gaussians(means=flat(means), quats=flat(quats), scales=flat(scales), opacities=flat(opacities),
                         colors=flat(colors))

    def init_output(self) -> None:
        """Zero output weights; biases give a sensible start: Gaussians at the head's distance,
        one pixel wide, faint and grey."""
        cfg = self.cfg
        last = self.pixel_mlp[-1]
        nn.init.zeros_(last.weight)
        pixel = 2 * cfg.camera_radius * math.tan(math.radians(cfg.camera_fov_deg) / 2) / cfg.image_size
        s = min(max((pixel - cfg.scale_min) / (cfg.scale_max - cfg.scale_min), 1e-3), 1 - 1e-3)
        bias = torch.zeros(_RAW_CHANNELS)
        bias[1:4] = math.log(s / (1 - s))
        bias[8] = math.log(0.1 / 0.9)
        with torch.no_grad():
            last.bias.copy_(bias)
        nn.init.zeros_(self.modulation.weight)
        nn.init.zeros_(self.modulation.bias)
        if self.conv is not None:  # the residual starts at zero: weights trained without it compute the same
            nn.init.zeros_(self.conv[-1].weight)
            nn.init.zeros_(self.conv[-1].bias)


_MAX_OPACITY = 0.99  # a matte's 1 as an opacity (the rasterizer's alpha stays below 1)
_MIN_MATTE = 0.05  # below this matte a pixel's foreground colour is noise: it is divided by no less
_CARVE_TAU = 0.02  # head units: how soft the carve's "in front of the given surface" edge is
_GATHER_TAU = 0.05  # head units: how far a point may sit off a given view's surface and still count as seen
_GATHER_CHANNELS = 4 * NUM_VIEWS  # per canonical view: visibility-weighted colour (3) and the weight (1)


def _seen_from_canonical(means: Tensor, src: Tensor, viewmats: Tensor, Ks: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Every Gaussian seen from every canonical camera u: the maps ``src`` [B, 4, C, H, W] sampled
    (bilinear) where it projects [B, u, C, 4·H·W], its distance from u's centre [B, u, 4·H·W], and whether
    it projects inside u's image [B, u, 4·H·W] (bool), for positions ``means`` [B, 4, H, W, 3] and the
    canonical cameras viewmats [4, 4, 4], Ks [4, 3, 3]."""
    B, V, H, W, _ = means.shape
    pts = means.reshape(B, 1, -1, 3).expand(B, V, -1, 3)
    cam = torch.einsum("uij,bunj->buni", viewmats[:, :3, :3], pts) + viewmats[:, None, :3, 3]
    z = cam[..., 2:3].clamp_min(1e-3)
    uv = torch.einsum("uij,bunj->buni", Ks[:, :2, :2], cam[..., :2] / z) + Ks[:, None, :2, 2]  # pixels
    grid = torch.stack([uv[..., 0] / W, uv[..., 1] / H], -1) * 2 - 1  # align_corners=False coordinates
    C = src.shape[2]
    seen = F.grid_sample(src.flatten(0, 1), grid.reshape(B * V, 1, -1, 2), mode="bilinear", padding_mode="border",
                         align_corners=False).reshape(B, V, C, -1)
    return seen, cam.norm(dim=-1), (grid.abs() <= 1).all(-1)


class InputDecoder(nn.Module):
    """What carries the given photos into the Gaussians (``ModelConfig.input_decoder``).

    The paper's decoder sees only token features and rays, so a photo reaches the Gaussians only
    through 8×8-pixel tokens and comes out blurred and generic. This module wires it in:

    1. Features: a light full-resolution conv over each canonical view's photo (zeros and a 0 flag
       where that view is not given) → [B, 4, H, W, w], appended to the per-pixel MLP's input.
    2. Gather: each Gaussian's 3D position (from the first pass's depth) is projected into every
       canonical camera. Where that view is given, its photo's colour there and a visibility weight
       exp(−|distance − that view's own depth there| / τ) — 1 where the point is the surface the view
       sees, near 0 where it is hidden behind it — are the input of a second per-pixel MLP, whose
       output (zero at initialisation) adds residuals to the colour, opacity and scale logits. This is
       what carries the photo's detail to the side views' Gaussians where the photo sees their surface.
    3. Construction for the given views, in :meth:`GaussianDecoder.activate`: with
       ``given_exact`` (default) colour = the pixel's foreground colour, opacity = the photo's matte,
       scale = ``given_footprint`` of the pixel's width; only their depth is learned (the trainer's
       loss makes it the visible surface, a3d.train.objective). Round-2 configs: pixel plus a learned
       residual, opacity learned.
    4. Carve (``carve_depth`` > 0): the other views' Gaussians that would cover a given photo's
       surface are made transparent (:meth:`carve`), so the photo comes back in its own view.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        w, c = cfg.input_width, cfg.decoder_width
        self.conv = nn.Sequential(nn.Conv2d(4, w, 3, padding=1), nn.SiLU(), nn.Conv2d(w, w, 3, padding=1))
        self.mlp = nn.Sequential(nn.Linear(c + 6 + w + _GATHER_CHANNELS, c), nn.SiLU(), nn.Linear(c, 7))

    def features(self, photos: Tensor, given: Tensor) -> Tensor:
        """Conv features [B, 4, H, W, w] of the photos [B, 4, 3, H, W] where ``given`` [B, 4]."""
        flag = given[:, :, None, None, None].to(photos.dtype)
        x = torch.cat([photos * flag, flag.expand(-1, -1, 1, *photos.shape[-2:])], 2)
        f = self.conv(x.flatten(0, 1))
        return rearrange(f, "(b v) c h w -> b v h w c", v=NUM_VIEWS)

    def gather(self, means: Tensor, depth: Tensor, photos: Tensor, given: Tensor, viewmats: Tensor, Ks: Tensor
               ) -> Tensor:
        """What the given photos see at each Gaussian: [B, 4, H, W, 16].

        Args:
            means: [B, 4, H, W, 3] positions; depth: [B, 4, H, W, 1] each view's distances along its rays.
            photos: [B, 4, 3, H, W]; given: [B, 4] bool; viewmats [4, 4, 4], Ks [4, 3, 3]: the canonical cameras.
        """
        B, V, H, W, _ = means.shape
        src = torch.cat([photos, rearrange(depth, "b v h w c -> b v c h w")], 2)  # [B, 4, 4, H, W]
        seen, dist, inside = _seen_from_canonical(means, src, viewmats, Ks)
        weight = torch.exp(-(dist - seen[:, :, 3]).abs() / _GATHER_TAU) * inside * given[:, :, None]
        out = torch.cat([seen[:, :, :3] * weight[:, :, None], weight[:, :, None]], 2)  # [B, u, 4, 4·H·W]
        return rearrange(out, "b u c (v h w) -> b v h w (u c)", v=V, h=H, w=W)

    @staticmethod
    def carve(means: Tensor, depth: Tensor, alpha: Tensor, given: Tensor, viewmats: Tensor, Ks: Tensor,
              margin: float, window: int = 1) -> Tensor:
        """How much of each Gaussian's opacity survives the given views: [B, 4, H, W] in [0, 1].

        A Gaussian of a view v without a photo that projects where a given view u sees its foreground,
        and lies in front of u's surface or less than ``margin`` behind it, would cover what the photo
        shows there; its opacity is scaled by 1 − alpha_u · sigmoid((depth_u + margin − distance) / τ),
        the product over the given views. The given views' own Gaussians are never carved (they are
        their photos' pixels). The given surface (depth, alpha) is read detached: the carve moves
        the other sets' Gaussians (through their positions), never the photo's own surface.

        Args:
            means: [B, 4, H, W, 3] positions; depth: [B, 4, H, W, 1] each view's distances along its rays.
            alpha: [B, 4, H, W] each view's own opacities (read where ``given`` [B, 4]).
            viewmats [4, 4, 4], Ks [4, 3, 3]: the canonical cameras.
            window: the surface a Gaussian is tested against is the farthest one among the foreground
                (alpha > 0.5) pixels of a ``window`` × ``window`` neighbourhood (``ModelConfig.carve_window``).
        """
        B, V, H, W, _ = means.shape
        surface = depth[..., 0]
        if window > 1:
            # background pixels must not lend their depth (a ray past the silhouette may end anywhere)
            fg = torch.where(alpha > 0.5, surface, torch.full_like(surface, -1e4))
            pooled = F.max_pool2d(fg, window, stride=1, padding=window // 2)
            surface = torch.maximum(surface, pooled)
        src = torch.stack([surface, alpha], 2).detach()  # [B, 4, 2, H, W]
        seen, dist, inside = _seen_from_canonical(means, src, viewmats, Ks)
        in_front = torch.sigmoid((seen[:, :, 0] + margin - dist) / _CARVE_TAU)
        unseen = (~given).repeat_interleave(H * W, 1)[:, None]  # [B, 1, 4·H·W]: Gaussian n's view has no photo
        cover = seen[:, :, 1].clamp(0, 1) * in_front * inside * unseen * given[:, :, None]  # [B, u, 4·H·W]
        return (1 - cover).prod(1).reshape(B, V, H, W)

    def residual(self, pixel_input: Tensor, gathered: Tensor) -> Tensor:
        """Residual logits [B, 4, H, W, 7] from the first MLP's input and the gathered colours."""
        return self.mlp(torch.cat([pixel_input, gathered], -1))

    def init_output(self) -> None:
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)


class AVASDecoder(nn.Module):
    """Auxiliary view-conditioned appearance supervision (§3.4): Gaussian tokens → the 4 canonical
    views [B, 4, 3, H, W] in (0, 1). Training only."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        c = cfg.avas_width
        self.norm = nn.LayerNorm(cfg.width, eps=1e-6)
        self.upsample = nn.Linear(cfg.width, cfg.patch_size * cfg.patch_size * c)
        self.refine = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.SiLU(), nn.Conv2d(c, 3, 3, padding=1))

    def forward(self, tokens: Tensor) -> Tensor:
        cfg = self.cfg
        n = cfg.image_size // cfg.patch_size
        h = self.upsample(self.norm(tokens))
        h = rearrange(h, "b (v h w) (p q c) -> (b v) c (h p) (w q)", v=NUM_VIEWS, h=n, w=n,
                      p=cfg.patch_size, q=cfg.patch_size)
        img = torch.sigmoid(self.refine(h))
        return rearrange(img, "(b v) c h w -> b v c h w", v=NUM_VIEWS)


class ModelOutput(NamedTuple):
    """What one network call returns.

    gaussians: Gaussians [B, 4·H·W] (float32).
    state: [B, 4, 3, H, W] the predicted clean state ĝ1 (the Gaussians' colours as 4 images, in [-1, 1]).
    views: [B, 4, 3, H, W] AVAS images in (0, 1), or None (no AVAS decoder, or called with views=False).
    """

    gaussians: Gaussians
    state: Tensor
    views: Optional[Tensor]


class A3DModel(nn.Module, PyTorchModelHubMixin, library_name="a3d", license="apache-2.0", pipeline_tag="image-to-3d",
               tags=["gaussian-splatting", "3d", "avatar", "head"]):
    """The Any3DAvatar denoiser with its Gaussian decoder (and, for training, its AVAS decoder).

    ``A3DModel(get_config("tiny"))``; ``A3DModel.from_pretrained(folder)`` loads ``config.json`` +
    ``model.safetensors`` strictly (a missing or unexpected weight fails, and so does an unknown
    config key), except that AVAS weights in the file are dropped when the model is built without
    AVAS (inference). ``save_pretrained(folder)`` writes both files, the weights in the dtype they were
    loaded from (fp16 stays fp16, int8 stays int8; a model built in code saves its own dtype, and one
    whose ``stored_dtype`` is set to ``torch.int8`` saves int8 weights with per-channel scales,
    :mod:`a3d.model.quantize`), plus ``metrics.json`` when the weights came with one and the model card
    README.md (:mod:`a3d.model.card`); weights saved from a ``.half()`` model load into a float32 model.

    Args:
        config: the architecture.
        with_avas: build the AVAS image decoder (training only).
    """

    def __init__(self, config: ModelConfig, with_avas: bool = False):
        super().__init__()
        if not isinstance(config, ModelConfig):
            raise InputError(f"config: expected a ModelConfig, got {type(config).__name__}")
        self.config = config
        cfg = config
        n = cfg.image_size // cfg.patch_size
        self.image_tokenizer = PatchTokenizer(9, cfg.patch_size, cfg.width)
        self.gaussian_tokenizer = PatchTokenizer(9, cfg.patch_size, cfg.width)
        self.view_embed = nn.Parameter(torch.zeros(1 + NUM_VIEWS, cfg.width))  # context, front, left, right, back
        self.t_embed = nn.Sequential(nn.Linear(256, cfg.width), nn.SiLU(), nn.Linear(cfg.width, cfg.width))
        self.t_modulation = nn.Linear(cfg.width, 6 * cfg.width)  # shared by all blocks (adaLN-single)
        self.blocks = nn.ModuleList(Block(cfg.width, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.depth))
        self.decoder = GaussianDecoder(cfg)
        if cfg.input_decoder:
            self.input_decoder = InputDecoder(cfg)
            self.given_embed = nn.Parameter(torch.zeros(cfg.width))  # added to the tokens of views with a photo
        else:
            self.input_decoder, self.given_embed = None, None
        self.avas = AVASDecoder(cfg) if with_avas else None

        # Fixed tensors derived from the config, not saved with the weights; computed on the CPU
        # and then moved to the ambient default device (which may be 'meta' for shape checks).
        here = torch.empty(0).device
        with torch.device("cpu"):
            cams = canonical_cameras(cfg.image_size, radius=cfg.camera_radius, fov=cfg.camera_fov_deg)
            rays = plucker_rays(cams.viewmats, cams.Ks, cfg.image_size, cfg.image_size)  # [4, H, W, 6]
            pos = _sincos_2d(n, cfg.width)
        self.register_buffer("rays", rays.to(here), persistent=False)
        self.register_buffer("ray_origins", cams.centers.to(here), persistent=False)  # [4, 3]
        self.register_buffer("canonical_viewmats", cams.viewmats.to(here), persistent=False)  # [4, 4, 4]
        self.register_buffer("canonical_Ks", cams.Ks.to(here), persistent=False)  # [4, 3, 3]
        self.register_buffer("pos_embed", pos.to(here), persistent=False)  # [N, D]
        self.initialize_weights()

    def initialize_weights(self) -> None:
        """DiT initialisation in one place: xavier linears, zeroed modulation (adaLN-Zero gates) and
        zeroed output layers."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.view_embed, std=0.02)
        for m in self.t_embed:
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.02)
        nn.init.zeros_(self.t_modulation.weight)
        nn.init.zeros_(self.t_modulation.bias)
        for b in self.blocks:
            nn.init.zeros_(b.modulation)
        self.decoder.init_output()
        if self.input_decoder is not None:
            self.input_decoder.init_output()
        if self.avas is not None:
            nn.init.zeros_(self.avas.refine[-1].weight)
            nn.init.zeros_(self.avas.refine[-1].bias)

    # ---- the network ------------------------------------------------------------------------------
    def forward(self, image: Tensor, g_t: Tensor, t: Tensor, views: bool = True, photos: Optional[Tensor] = None,
                given: Optional[Tensor] = None, masks: Optional[Tensor] = None) -> ModelOutput:
        """One denoising call ĝ1 = f(g_t, t, x̃) (Eq. 1).

        Args:
            image: [B, 3, H, W] the framed portrait, RGB in [0, 1] (the front canonical view).
            g_t: [B, 4, 3, H, W] the noisy state of the 4 canonical views (front, left, right, back).
            t: [B] flow time in [0, 1) (0 = noise).
            views: run the AVAS decoder when the model has one (the sampling paths pass False:
                AVAS never runs at inference).
            photos: [B, 4, 3, H, W] photos of the canonical views in [0, 1], read where ``given``
                (multi-view input; the front one is ``image`` whatever this holds). Input decoder only.
            given: [B, 4] bool, which views have a photo (the front always does); default front only.
                With the input decoder a given view enters the DiT as its clean state.
            masks: [B, 4, H, W] the photos' foreground mattes in [0, 1] (the front one belongs to ``image``),
                or None. With ``config.given_exact`` a given view's opacities are its matte; without
                mattes they are learned.
        """
        cfg = self.config
        S = cfg.image_size
        B = image.shape[0]
        if image.dim() != 4 or image.shape[1:] != (3, S, S):
            raise ValueError(f"image: expected [B, 3, {S}, {S}] in [0, 1], got {tuple(image.shape)}")
        if g_t.shape != (B, NUM_VIEWS, 3, S, S):
            raise ValueError(f"g_t: expected [{B}, {NUM_VIEWS}, 3, {S}, {S}], got {tuple(g_t.shape)}")
        if t.shape != (B,):
            raise ValueError(f"t: expected [{B}], got {tuple(t.shape)}")
        photos, given = self._photos(image, photos, given)
        if masks is not None and masks.shape != (B, NUM_VIEWS, S, S):
            raise ValueError(f"masks: expected [{B}, {NUM_VIEWS}, {S}, {S}] in [0, 1], got {tuple(masks.shape)}")
        if given is not None:  # a view with a photo enters as its clean state
            g_t = torch.where(given[:, :, None, None, None], images_to_state(photos).to(g_t.dtype), g_t)
        rays = rearrange(self.rays, "v h w c -> v c h w")  # [4, 6, H, W]
        x = torch.cat([image * 2 - 1, rays[:1].expand(B, -1, -1, -1)], 1)[:, None]  # [B, 1, 9, H, W]
        g = torch.cat([g_t, rays.expand(B, -1, -1, -1, -1).to(g_t.dtype)], 2)  # [B, 4, 9, H, W]
        ctx = self.image_tokenizer(x.to(g.dtype)) + self.pos_embed + self.view_embed[0]  # [B, N, D]
        gs = self.gaussian_tokenizer(g)  # [B, 4N, D]
        gs = rearrange(gs, "b (v n) d -> b v n d", v=NUM_VIEWS) + self.pos_embed + self.view_embed[1:, None]
        if given is not None:
            gs = gs + given[:, :, None, None].to(gs.dtype) * self.given_embed.to(gs.dtype)
        s = torch.cat([ctx, rearrange(gs, "b v n d -> b (v n) d")], 1)  # [B, 5N, D] = [ĉ; ĝ]
        temb = self.t_embed(_timestep_features(t))  # [B, D]
        mod = rearrange(self.t_modulation(F.silu(temb)), "b (six d) -> b six d", six=6)
        for block in self.blocks:
            s = block(s, mod)
        z = s[:, ctx.shape[1]:]  # denoised Gaussian tokens z̃_g [B, 4N, D]
        if self.input_decoder is None:
            raw, _ = self.decoder.raw(z, temb, self.rays)
            gaussians = self.decoder.activate(raw, self.ray_origins, self.rays[..., 3:])
        else:
            feats = self.input_decoder.features(photos.to(z.dtype), given)
            raw, pixel_input = self.decoder.raw(z, temb, self.rays, feats)
            with torch.autocast(device_type="cuda" if z.is_cuda else "cpu", enabled=False):  # float32, as in raw()
                photos = photos.float()
                depth = self.decoder.depth(raw)
                means = self.ray_origins[:, None, None, :] + depth * self.rays[..., 3:]
                # geometry is detached here: the gather reads colours, the losses on depth teach geometry
                seen = self.input_decoder.gather(means.detach(), depth.detach(), photos, given,
                                                 self.canonical_viewmats, self.canonical_Ks)
                residual = self.input_decoder.residual(pixel_input, seen)
                gaussians = self.decoder.activate(raw, self.ray_origins, self.rays[..., 3:], residual, photos, given,
                                                  masks)
                if cfg.carve_depth > 0:
                    alpha = gaussians.opacities.reshape(B, NUM_VIEWS, S, S)
                    keep = self.input_decoder.carve(means, depth, alpha, given, self.canonical_viewmats,
                                                    self.canonical_Ks, cfg.carve_depth, cfg.carve_window)
                    gaussians = replace(gaussians, opacities=gaussians.opacities * keep.reshape(B, -1))
                if cfg.given_exact and cfg.given_fit > 0 and masks is not None and z.device.type != "meta":
                    # a constant added (zero outside the given views, whose colours keep their gradients)
                    fit = self._given_colour_fit(gaussians, photos, given, masks)
                    gaussians = replace(gaussians, colors=gaussians.colors + fit)
        state = images_to_state(rearrange(gaussians.colors, "b (v h w) c -> b v c h w", v=NUM_VIEWS, h=S, w=S))
        avas = self.avas(z) if views and self.avas is not None else None
        return ModelOutput(gaussians, state, avas)

    @torch.no_grad()
    def _given_colour_fit(self, gaussians: Gaussians, photos: Tensor, given: Tensor, masks: Tensor) -> Tensor:
        """The change [B, 4·S², 3] that ``given_fit`` Jacobi steps make to each given view's colours (see
        :class:`ModelConfig`): its own set [B, S²] rendered from its camera, the residual against the photo
        added to the colour of each pixel's Gaussian inside the matte (> 0.5), weighted by how squarely the
        view sees the surface; zero for the other views. Computed without autograd: the caller adds it as a
        constant (a given view's colours are its pixels', which have no parameters)."""
        from ..core.rendering import render

        cfg = self.config
        B, S = photos.shape[0], cfg.image_size
        colors = gaussians.colors.reshape(B, NUM_VIEWS, S * S, 3).clone()
        fields = ("means", "quats", "scales", "opacities")
        own = {k: getattr(gaussians, k).reshape(B, NUM_VIEWS, S * S, *getattr(gaussians, k).shape[2:])
               for k in fields}
        any_given = given.any(0).tolist()  # one device sync for the four views
        views = [v for v in range(NUM_VIEWS) if v == 0 or any_given[v]]  # the front is always given
        for v in views:
            cam = Cameras(self.canonical_viewmats[v].expand(B, 1, 4, 4), self.canonical_Ks[v].expand(B, 1, 3, 3), S, S)
            inside = ((masks[:, v] > 0.5) & given[:, v, None, None]).reshape(B, S * S, 1)
            step = inside * _facing(own["means"][:, v].reshape(B, S, S, 3), self.ray_origins[v]).reshape(B, S * S, 1)
            target = rearrange(photos[:, v].float(), "b c h w -> b (h w) c")
            for _ in range(cfg.given_fit):
                g = Gaussians(**{k: own[k][:, v] for k in fields}, colors=colors[:, v])
                rgb = render(g, cam, framing.BACKGROUND).rgb[:, 0].reshape(B, S * S, 3)
                colors[:, v] = (colors[:, v] + step * (target - rgb)).clamp(0, 1)
        return (colors.reshape(B, -1, 3) - gaussians.colors).to(gaussians.colors.dtype)

    def _photos(self, image: Tensor, photos: Optional[Tensor], given: Optional[Tensor]
                ) -> tuple[Optional[Tensor], Optional[Tensor]]:
        """Checked (photos [B, 4, 3, H, W] with the front = image, given [B, 4] bool), or (None, None)
        for the paper decoder (which takes the front photo only)."""
        B, S = image.shape[0], self.config.image_size
        if self.input_decoder is None:
            if given is not None and bool(given[:, 1:].any()):
                raise ValueError("given: this model (input_decoder=False) takes the front photo only")
            return None, None
        if given is None:  # the front photo only (no data-dependent check: shapes run on 'meta' too)
            given = torch.zeros(B, NUM_VIEWS, dtype=torch.bool, device=image.device)
        elif given.shape != (B, NUM_VIEWS) or given.dtype != torch.bool:
            raise ValueError(f"given: expected a bool tensor [{B}, {NUM_VIEWS}], "
                             f"got {given.dtype} {tuple(given.shape)}")
        elif photos is None and bool(given[:, 1:].any()):
            raise ValueError("photos: views are marked given but no photos were passed")
        given = given.clone()
        given[:, 0] = True
        if photos is None:
            photos = image.new_zeros(B, NUM_VIEWS, 3, S, S)
        elif photos.shape != (B, NUM_VIEWS, 3, S, S):
            raise ValueError(f"photos: expected [{B}, {NUM_VIEWS}, 3, {S}, {S}], got {tuple(photos.shape)}")
        photos = torch.cat([image[:, None].to(photos.dtype), photos[:, 1:]], 1)
        return photos, given

    # ---- sampling ---------------------------------------------------------------------------------
    def noise(self, batch: int, generator: Optional[torch.Generator] = None) -> Tensor:
        """g0 [batch, 4, 3, H, W] ~ N(0, 1), drawn on the generator's device (CPU without one) and
        moved to the model's device. A seeded generator gives the same noise on every device of its
        type (a CPU generator: everywhere; a CUDA one: on any CUDA device)."""
        S = self.config.image_size
        dev = generator.device if generator is not None else torch.device("cpu")
        g0 = torch.randn(batch, NUM_VIEWS, 3, S, S, generator=generator, device=dev)
        return g0.to(self.rays.device)

    def one_step(self, image: Tensor, g0: Tensor, photos: Optional[Tensor] = None,
                 given: Optional[Tensor] = None, masks: Optional[Tensor] = None) -> Gaussians:
        """The default inference path (Eq. 4-5): one call at t = 0 from the noise g0 [B, 4, 3, H, W];
        ``photos``/``given``/``masks``: extra canonical views and the mattes, as in :meth:`forward`."""
        t = torch.zeros(image.shape[0], device=image.device)
        return self(image, g0, t, views=False, photos=photos, given=given, masks=masks).gaussians

    def sample(self, image: Tensor, g0: Tensor, steps: int = 1, photos: Optional[Tensor] = None,
               given: Optional[Tensor] = None, masks: Optional[Tensor] = None) -> Gaussians:
        """The N-step sampler of Eq. 3 from the noise g0; returns the Gaussians of the last call.

        t_k = k/N; each call predicts ĝ1 and the state moves by (1/N)·(ĝ1 − g_{t_k})/(1 − t_k).
        ``steps=1`` computes exactly :meth:`one_step`.
        """
        check_int(steps, "steps", 1, 1000)
        g = g0
        out = None
        for k in range(steps):
            t = torch.full((image.shape[0],), k / steps, device=image.device)
            out = self(image, g, t, views=False, photos=photos, given=given, masks=masks)
            if k + 1 < steps:
                g = g + velocity(out.state.to(g.dtype), g, t) / steps
        return out.gaussians

    # ---- loading ----------------------------------------------------------------------------------
    @classmethod
    def _decode_arg(cls, expected_type, value):
        if expected_type is ModelConfig:
            return ModelConfig.from_dict(value)
        return super()._decode_arg(expected_type, value)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: Union[str, os.PathLike], *, map_location: str = "cpu",
                        strict: bool = True, with_avas: bool = False, **hub_kwargs) -> "A3DModel":
        """Load ``config.json`` + ``model.safetensors`` from a folder or a Hub repo id (``hub_kwargs``:
        revision, cache_dir, force_download, local_files_only, token). The config is read with
        :meth:`ModelConfig.from_json` (bounded) and the weights strictly (see the class docstring);
        a missing file, a malformed config, weights that do not fit it or hold NaN/inf raise
        :class:`a3d.errors.InputError` naming the file."""
        source = os.fspath(pretrained_model_name_or_path)
        hub = {k: hub_kwargs.pop(k, None) for k in ("revision", "cache_dir", "token")}
        hub.update(force_download=hub_kwargs.pop("force_download", False),
                   local_files_only=hub_kwargs.pop("local_files_only", False))
        if hub_kwargs:
            raise InputError(f"from_pretrained: unexpected arguments {sorted(hub_kwargs)}")
        if Path(source).is_dir():
            config_file = Path(source) / "config.json"
            if not config_file.is_file():
                raise InputError(f"{source}: no config.json in this folder (a model folder holds config.json and "
                                 f"model.safetensors, as save_pretrained and the trainer write them)")
        else:
            from huggingface_hub import hf_hub_download
            config_file = hf_hub_download(repo_id=source, filename="config.json", **hub)
        config = ModelConfig.from_json(config_file)
        return cls._from_pretrained(model_id=source, **hub, map_location=map_location, strict=strict,
                                    config=config, with_avas=with_avas)

    @classmethod
    def _from_pretrained(cls, *, model_id: str, revision, cache_dir, force_download, local_files_only, token,
                         map_location: str = "cpu", strict: bool = True, **model_kwargs):
        if not strict:
            raise InputError("strict: a3d loads weights strictly; strict=False is not supported")
        if Path(model_id).is_dir():
            model_file = Path(model_id) / "model.safetensors"
            if not model_file.is_file():
                raise InputError(f"{model_id}: no model.safetensors in this folder")
        else:
            from huggingface_hub import hf_hub_download
            model_file = hf_hub_download(repo_id=model_id, filename="model.safetensors", revision=revision,
                                         cache_dir=cache_dir, force_download=force_download, token=token,
                                         local_files_only=local_files_only)
        model = cls(**model_kwargs)
        state, quantization = _load_weights(model_file)
        if model.avas is None:  # training-only weights are not needed for inference
            state = {k: v for k, v in state.items() if not k.startswith("avas.")}
        expected = model.state_dict()
        missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
        if missing or unexpected:
            raise InputError(f"{model_file}: weights do not match the config "
                             f"(missing: {missing[:8]}{' ...' if len(missing) > 8 else ''}, "
                             f"unexpected: {unexpected[:8]}{' ...' if len(unexpected) > 8 else ''})")
        bad = [k for k in expected if expected[k].shape != state[k].shape]
        if bad:
            raise InputError(f"{model_file}: weights of the wrong shape for the config: {bad[:8]}")
        model.load_state_dict(state, strict=True)
        model.to(map_location)
        model.eval()
        dtypes = {v.dtype for v in state.values() if v.is_floating_point()}
        model.stored_dtype = dtypes.pop() if len(dtypes) == 1 else None
        if quantization is not None:  # int8 (a3d.model.quantize): saved as int8 again
            model.stored_dtype = torch.int8
        if Path(model_id).is_dir():
            from .card import read_metrics
            model.evaluation = read_metrics(model_id)
        return model

    def _save_pretrained(self, save_directory: Path) -> None:
        """The weights in the dtype they were loaded from (see :meth:`_from_pretrained`; ``stored_dtype``
        torch.int8: :mod:`a3d.model.quantize`'s int8 with per-channel scales), and metrics.json."""
        from safetensors.torch import save_file

        from .quantize import INT8_FORMAT, METADATA_KEY, quantize_state

        dtype = getattr(self, "stored_dtype", None)
        metadata = {"format": "pt"}
        if dtype == torch.int8:
            state = quantize_state(self.state_dict())
            metadata[METADATA_KEY] = INT8_FORMAT
        else:
            state = {k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v).detach().contiguous().cpu()
                     for k, v in self.state_dict().items()}
        save_file(state, str(Path(save_directory) / "model.safetensors"), metadata=metadata)
        if getattr(self, "evaluation", None) is not None:
            from .card import METRICS_FILE
            (Path(save_directory) / METRICS_FILE).write_text(json.dumps(self.evaluation, indent=1))

    def generate_model_card(self, *args, **kwargs):
        """The Hub model card: see :mod:`a3d.model.card`."""
        from .card import build_model_card

        dtype = getattr(self, "stored_dtype", None) or next(self.parameters()).dtype
        return build_model_card(self.config.to_dict(), self.num_parameters(), str(dtype).replace("torch.", ""),
                                getattr(self, "evaluation", None), kwargs.get("repo_id"))

    def compile_blocks(self) -> "A3DModel":
        """torch.compile each DiT block (one compiled code shared by all blocks: a few seconds on
        the first call). Worth it at the paper's scale on a GPU (about 17% faster on an H100, see
        BENCHMARKS.md); the small preset gains nothing. Returns self."""
        for block in self.blocks:
            block.compile()
        return self

    def num_parameters(self, inference: bool = True) -> int:
        """Parameter count (without the AVAS decoder when ``inference``)."""
        return sum(p.numel() for n, p in self.named_parameters() if not (inference and n.startswith("avas.")))


def load_weights(path: Union[str, os.PathLike]) -> dict[str, Tensor]:
    """The tensors of a ``model.safetensors`` file (on the CPU; an int8 file, :mod:`a3d.model.quantize`,
    dequantised to float32), refused with an InputError naming the file when it is not a readable
    safetensors file or holds tensors that are not floating point or not finite (a model with NaN
    weights would reconstruct NaN Gaussians without a word)."""
    return _load_weights(path)[0]


def _load_weights(path: Union[str, os.PathLike]) -> tuple[dict[str, Tensor], Optional[str]]:
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
