"""What is random about a synthetic head but its Gaussians' positions: the generator's knobs
(:class:`SynthConfig`), the names of its styles, expressions and accessories, the palettes, and the
per-head draws (:class:`HeadAttributes`, :func:`draw_attributes`).
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import Tensor

from ..device_constants import on_device
from ..head_basis import HeadBasis
from ...errors import check_int, check_number
from .draws import Draws, HeadRandom

__all__ = [
    "SynthConfig", "HeadAttributes", "draw_attributes", "expression_table", "check_overrides", "HAIR_STYLES",
    "STYLE_INDEX", "HATS", "EARRINGS", "EXPRESSIONS", "ACCESSORIES",
]


HAIR_STYLES: tuple[str, ...] = ("bald", "buzz", "short", "bob", "long", "bun", "ponytail", "curly", "shoulder")
STYLE_INDEX = {name: i for i, name in enumerate(HAIR_STYLES)}
HATS: tuple[str, ...] = ("none", "beanie", "cap", "brimmed")
EARRINGS: tuple[str, ...] = ("none", "studs", "hoops")

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


def check_overrides(overrides: dict | None) -> None:
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


def draw_attributes(rng: HeadRandom, cfg: SynthConfig, basis: HeadBasis, presets: Tensor,
                     overrides: dict | None) -> HeadAttributes:
    """Everything random about a batch of heads but their Gaussians' positions, with ``overrides``
    applied and the rules that tie attributes together. ``presets``: :func:`expression_table`."""
    dev = rng.device
    B = len(rng.keys)
    K, E = basis.shape_basis.shape[0], basis.expr_basis.shape[0]
    d = Draws(rng, "attributes", 96 + 2 * E, 24 + K)
    t = lambda x: on_device(dev, tuple(x))  # noqa: E731
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
    tones = on_device(dev, _SKIN_TONES)
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
    dyed_colour = on_device(dev, _DYED_HAIR)[d.choice([1.0] * len(_DYED_HAIR))]
    hi = d.choice(_HAIR_COLOUR_P)
    hi = torch.where((age > 0.8) & d.bernoulli(0.6), 9 + d.choice([0.6, 0.4]), hi)  # grey or white
    natural = on_device(dev, _HAIR_COLOURS)[hi]
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
    iris = (on_device(dev, _IRIS_COLOURS)[d.choice(_IRIS_P)] * (1 + 0.1 * d.z(3))).clamp(0, 1)
    lipstick_colour = (t([0.6, 0.08, 0.15]) * (1 + 0.25 * d.z(3))).clamp(0.02, 0.9)
    lipstick = ~masculine & d.bernoulli(0.25)
    lips = torch.where(lipstick[:, None], lipstick_colour, skin * t([0.86, 0.6, 0.6]))
    # accessories
    glasses = d.bernoulli(cfg.glasses_p)
    sunglasses = d.bernoulli(0.25)  # if glasses
    glasses_shape = torch.stack([d.u(0.07, 0.1), d.u(-0.01, 0.02), d.u(-0.005, 0.015), d.u(0.06, 0.1),
                                 d.u(2.0, 5.0), d.u(0.004, 0.012)], -1)
    frame_colour = on_device(dev, _FRAME_COLOURS)[d.choice([1.0] * len(_FRAME_COLOURS))]
    dark_tint, dark_opacity = t([0.05, 0.05, 0.06]) + 0.1 * d.u(k=3), d.u(0.8, 0.92)
    clear_opacity = d.u(0.04, 0.1)
    lens_shift = d.u(k=2)
    hat = torch.where(d.bernoulli(cfg.hat_p), 1 + d.choice([1.0] * (len(HATS) - 1)), 0)
    short_thickness = d.u(0.02, 0.04)  # for buns and ponytails under a hat
    fabric = on_device(dev, _FABRIC)
    hat_colours = torch.stack([fabric[d.choice([1.0] * len(_FABRIC))], fabric[d.choice([1.0] * len(_FABRIC))]], 1)
    hat_size = torch.stack([d.u(0.03, 0.1), d.u(0.15, 0.35)], -1)
    earrings_p = cfg.earrings_p * torch.where(masculine, 0.4, 1.6)
    earrings = torch.where(d.bernoulli(earrings_p), 1 + d.choice([1.0] * (len(EARRINGS) - 1)), 0)
    earring_metal = on_device(dev, _METALS)[d.choice([1.0] * len(_METALS))]
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
    eyes = on_device(dev, tuple(float(x in ("eyeWideLeft", "eyeWideRight")) for x in basis.expressions))
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


def expression_table(basis: HeadBasis, device: torch.device) -> Tensor:
    """[len(EXPRESSIONS), E] action weights of each preset at intensity 1."""
    table = torch.zeros(len(EXPRESSIONS), len(basis.expressions))
    for i, name in enumerate(EXPRESSIONS):
        for act, w in _EXPRESSIONS[name].items():
            table[i, basis.expressions.index(act)] = w
    return table.to(device)
