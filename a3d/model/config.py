"""The network's configuration: :class:`ModelConfig`, the presets, and reading ``config.json``.

A preset is a model a3d ships or builds: ``get_config("tiny")`` is, field for field, the
``config.json`` of the bundled model (a3d/assets/models/tiny; tests/test_model.py checks it), and
``"paper"`` is the same architecture at the paper's scale (§4.1). A config file carries
``config_version``; a file of an older version is brought to this one by :func:`migrate`, one step a
version, or refused with an error that names its version.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields
from typing import Union

from ..core import framing
from ..core.files import read_json
from ..errors import InputError, check_int, check_number

__all__ = ["ModelConfig", "PRESETS", "get_config", "migrate", "CONFIG_VERSION", "DECODERS", "MAX_PARAMETERS",
           "MAX_ACTIVATION_BYTES", "NUM_VIEWS", "RAW_CHANNELS"]

NUM_VIEWS = len(framing.CANONICAL_VIEWS)
RAW_CHANNELS = 12  # per Gaussian: depth 1, scales 3, quaternion 4, opacity 1, colour 3
CONFIG_VERSION = 3
"""The version of the config layout this a3d writes and reads (see :func:`migrate`)."""
DECODERS = ("patch", "upsampler")
"""How the Gaussian decoder turns a view's tokens into per-pixel features (:class:`ModelConfig`.decoder)."""
MAX_PARAMETERS = 4_000_000_000
"""Largest model a config may describe (parameters with the AVAS decoder; the paper's is ~0.3 B)."""
MAX_ACTIVATION_BYTES = 32 * 2**30
"""Largest float32 working set of one image through the network a config may imply (the paper's ~3 GiB)."""
_MAX_CONFIG_BYTES = 2**20


@dataclass
class ModelConfig:
    """Architecture of :class:`a3d.model.network.A3DModel`; flat and JSON-serialisable (``config.json``).
    The defaults are the bundled model's.

    Attributes:
        image_size: H = W of the portrait and of each canonical view, pixels (a multiple of patch_size).
        patch_size: p, pixels a token side.
        width: D, token width.
        depth: number of DiT blocks.
        heads: attention heads (width must divide into heads of an even size).
        mlp_ratio: hidden width of the blocks' MLPs as a multiple of ``width``.
        decoder: how a view's Gaussian tokens become per-pixel features. ``"patch"``: each token is
            expanded linearly into its own p × p pixels, then ``decoder_conv`` 3 × 3 convolutions let
            neighbouring tokens' pixels meet. ``"upsampler"``: the view's token map is upsampled ×2 at a
            time (bilinear, then convolutions) up to the pixel grid, so every pixel's features mix the
            tokens around it and no p-pixel pattern is built in.
        decoder_width: per-pixel feature width of the Gaussian decoder.
        decoder_conv: with ``decoder="patch"``, the 3 × 3 convolutions (SiLU between them) over the
            expanded features, added as a residual whose last layer starts at zero.
        upsampler_width: with ``decoder="upsampler"``, the channels of its first stage (halved each
            stage, never below ``decoder_width``).
        avas_width: hidden channels of the AVAS image decoder (built for training only).
        camera_radius: distance of the canonical cameras from the head centre, head units.
        camera_fov_deg: their field of view, degrees.
        depth_range: Gaussians lie at ``camera_radius ± depth_range`` along each pixel's ray.
        scale_min, scale_max: bounds of the Gaussians' standard deviations, head units.
        input_width: channels of the light full-resolution conv over each given photo
            (:class:`a3d.model.given.InputDecoder`).
        given_footprint: σ of a given view's Gaussians (flat discs on the surface its pixels see), as a
            fraction of its pixel's width at their depth.
        carve_depth: a Gaussian of another view's set that projects into a given view's foreground and
            lies in front of that view's surface, or less than ``carve_depth`` head units behind it, is
            made transparent (the photo sees the surface there, so nothing else may cover it). 0: off.
        carve_window: the carve tests a Gaussian against the farthest foreground surface in a window of
            this many pixels (odd) around where it projects: on a surface the photo sees at a slant the
            depth changes by several hundredths of a head unit a pixel, so a Gaussian that passes at its
            own pixel can still cover the photo a pixel away. 1: the pixel alone.
        given_fit: iterations that fit a given view's colours so that its own Gaussians, rendered from
            its camera, give the photo back (a Jacobi step on the rendering, which is linear in the
            colours): a sub-pixel footprint otherwise blurs the photo by its neighbours' tails. 0: off.
        given_erode: pixels by which the matte used as a given view's opacity is eroded: the photo's
            Gaussians on the silhouette's edge have the least certain depth and colour, and the other
            sets draw the edge. 0: off.
        given_grazing: a given pixel whose surface the photo sees at a cosine (between the surface's normal
            and the pixel's ray) below this is transparent, fading in to its matte at twice this cosine; the
            carve leaves the other sets there, so they draw that surface. What a photo shows edge-on is
            squeezed into a pixel's width: from the side its discs stand apart as dashes where they meet the
            guessed sets (:func:`a3d.model.given.facing`). 0: off, every pixel keeps its matte.
    """

    image_size: int = 128
    patch_size: int = 8
    width: int = 256
    depth: int = 8
    heads: int = 4
    mlp_ratio: float = 4.0
    decoder: str = "patch"
    decoder_width: int = 32
    decoder_conv: int = 2
    upsampler_width: int = 128
    avas_width: int = 32
    camera_radius: float = framing.CANONICAL_RADIUS
    camera_fov_deg: float = framing.CANONICAL_FOV_DEG
    depth_range: float = 1.0
    scale_min: float = 1e-4
    scale_max: float = 0.05
    input_width: int = 16
    given_footprint: float = 0.45
    carve_depth: float = 0.1
    carve_window: int = 3
    given_fit: int = 1
    given_erode: int = 1
    given_grazing: float = 0.0

    def __post_init__(self) -> None:
        if self.decoder not in DECODERS:
            raise InputError(f"ModelConfig.decoder: expected one of {DECODERS}, got {self.decoder!r}")
        self.given_footprint = check_number(self.given_footprint, "ModelConfig.given_footprint", hi=4.0, positive=True)
        self.carve_depth = check_number(self.carve_depth, "ModelConfig.carve_depth", lo=0.0, hi=1.0)
        self.given_grazing = check_number(self.given_grazing, "ModelConfig.given_grazing", lo=0.0, hi=0.5)
        for name in ("image_size", "patch_size", "width", "depth", "heads", "decoder_width", "avas_width",
                     "input_width", "upsampler_width"):
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
        if self.decoder == "upsampler" and self.patch_size & (self.patch_size - 1):
            raise InputError(f"ModelConfig: the upsampler doubles the token map until it reaches the pixels, so "
                             f"patch_size must be a power of two, got {self.patch_size}")
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

    def upsampler_channels(self) -> list[int]:
        """Output channels of the upsampler's stages, one ×2 stage per halving of the patch (the last is
        ``decoder_width``)."""
        stages = self.patch_size.bit_length() - 1
        halved = [max(self.decoder_width, self.upsampler_width >> (i + 1)) for i in range(stages - 1)]
        return halved + [self.decoder_width] if stages else []

    def estimated_parameters(self) -> int:
        """The parameter count (with AVAS) from the matrices of the tokenizers, the DiT blocks, the time
        embedding and the decoders, and the blocks' biases (the decoders' biases and norms left out). Within
        a few percent of the built model's count (tests/test_errors.py); it exists to refuse a config before
        anything is allocated -- the exact count is :meth:`a3d.model.network.A3DModel.num_parameters`."""
        return sum(n for n, _ in self._parameter_parts().values())

    def _parameter_parts(self) -> dict[str, tuple[int, tuple[str, ...]]]:
        D, p, c, w = self.width, self.patch_size, self.decoder_width, self.input_width
        hidden = int(D * self.mlp_ratio)
        if self.decoder == "patch":
            decoder = D * p * p * c + self.decoder_conv * 9 * c * c
        else:
            chans = [self.upsampler_width, *self.upsampler_channels()]
            decoder = D * chans[0] + sum(9 * i * o + 9 * o * o + i * o for i, o in zip(chans, chans[1:]))
        return {
            "tokenizers and embeddings": (2 * (9 * p * p * D + D * D) + 7 * D * D + 256 * D, ("width", "patch_size")),
            "DiT blocks": (self.depth * (4 * D * D + 2 * D * hidden + hidden + 12 * D),
                           ("depth", "width", "mlp_ratio")),
            "Gaussian decoder": (2 * D * D + decoder, ("decoder_width", "width", "patch_size", "upsampler_width")),
            "per-pixel heads and photo convs": ((c + 6 + w) * c + 12 * c + 45 * w + 9 * w * w
                                                + (c + 6 + w + 4 * NUM_VIEWS) * c + 7 * c, ("input_width",)),
            "AVAS decoder": (D * p * p * self.avas_width + 9 * self.avas_width ** 2, ("avas_width", "patch_size")),
        }

    def activation_bytes(self) -> int:
        """An estimate of the float32 working set of one image through the network at inference: the
        tokens of a DiT block (its input, attention and MLP intermediates) plus the per-pixel features
        of the decoders."""
        return sum(n for n, _ in self._activation_parts().values())

    def _activation_parts(self) -> dict[str, tuple[int, tuple[str, ...]]]:
        tokens = (1 + NUM_VIEWS) * (self.image_size // self.patch_size) ** 2
        c, w = self.decoder_width, self.input_width
        # per pixel: features, MLP hidden layers, raw outputs and activations, the input decoder's conv
        # features and gathered colours (twice), and the convolutions at full resolution (input and output)
        per_pixel = 4 * c + 60 + 3 * w + 8 * NUM_VIEWS + 2 * c + 2 * c
        return {
            f"{tokens:,} tokens": (int(4 * tokens * self.width * (8 + 2 * self.mlp_ratio)),
                                   ("image_size", "patch_size", "width")),
            "per-pixel decoder features": (4 * NUM_VIEWS * self.image_size ** 2 * per_pixel,
                                           ("image_size", "decoder_width", "input_width")),
        }

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
                                 f"(a3d.model.config.{constant})")

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        """Build from a config dict of any supported version (see :func:`migrate`); after migration the
        keys must be exactly the fields of ModelConfig (an unknown or missing key fails)."""
        d = migrate(d)
        names = {f.name for f in fields(cls)}
        unknown, missing = sorted(set(d) - names), sorted(names - set(d))
        if unknown or missing:
            raise InputError(f"config: keys do not match ModelConfig version {CONFIG_VERSION} "
                             f"(unknown: {unknown}, missing: {missing})")
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
        """The fields and ``config_version`` (what ``config.json`` holds)."""
        return {"config_version": CONFIG_VERSION, **asdict(self)}


# Version 1 (no "config_version" key) named three switches that a3d now always takes, and had no
# "decoder" / "upsampler_width" fields (every version-1 model has the patch decoder). Version 2 had no
# "given_grazing" (its models keep every given pixel: 0).
_V1_FIXED = {"input_decoder": True, "given_exact": True, "given_surfel": True}


def migrate(d: dict) -> dict:
    """A config dict of any supported version as a dict of this version's fields (without
    ``config_version``): one step a version. A version-1 config that sets a switch to the architecture
    a3d no longer builds, or a config of an unknown version, is refused with an InputError that names
    its version."""
    if not isinstance(d, dict):
        raise InputError(f"config: expected a JSON object, got {type(d).__name__}")
    d = dict(d)
    version = d.pop("config_version", 1)
    if version == 1:
        if "input_decoder" not in d:
            raise InputError("config: a version-1 config without 'input_decoder' describes the paper's literal "
                             "decoder, which this a3d does not build")
        off = sorted(k for k, v in _V1_FIXED.items() if d.get(k, v) != v)
        if off:
            raise InputError(f"config: this version-1 config sets {', '.join(f'{k}={d[k]}' for k in off)}, an "
                             f"architecture this a3d (config version {CONFIG_VERSION}) does not build")
        for k in _V1_FIXED:
            d.pop(k, None)
        d.setdefault("decoder", "patch")
        d.setdefault("upsampler_width", ModelConfig.upsampler_width)
        version = 2
    if version == 2:
        d.setdefault("given_grazing", 0.0)
        version = 3
    if version != CONFIG_VERSION or isinstance(version, bool):
        raise InputError(f"config: config_version {version!r} is not one this a3d reads "
                         f"(1 to {CONFIG_VERSION})")
    return d


PRESETS: dict[str, ModelConfig] = {
    # the bundled model: 128², 1,280 tokens, ~7.9 M parameters (fp16 weights under 16 MiB)
    "tiny": ModelConfig(),
    # the same architecture at the paper's scale (§4.1): 512², p = 8, width 1024, 24 blocks, 20,480 tokens
    "paper": ModelConfig(image_size=512, patch_size=8, width=1024, depth=24, heads=16, decoder_width=64,
                         avas_width=64),
}


def get_config(name: str, **overrides) -> ModelConfig:
    """A copy of the preset ``name`` ('tiny' or 'paper') with fields replaced by ``overrides``."""
    if name not in PRESETS:
        raise InputError(f"name: unknown preset {name!r}; expected one of {sorted(PRESETS)}")
    d = asdict(PRESETS[name])
    bad = sorted(set(overrides) - set(d))
    if bad:
        raise InputError(f"overrides: unknown ModelConfig fields {bad}")
    d.update(overrides)
    return ModelConfig(**d)
