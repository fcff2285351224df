"""Helpers several test files use (not tests themselves): a synthetic blob head, a small model with
random weights, and the bit-for-bit comparison of two training checkpoints."""
from __future__ import annotations

from pathlib import Path

import torch

from a3d.core.gaussians import Gaussians
from a3d.model.config import get_config
from a3d.model.network import A3DModel


def blob_head(n: int, seed: int) -> Gaussians:
    """A head-sized ellipsoid shell of ``n`` coloured blobs (fast to render, not a face)."""
    g = torch.Generator().manual_seed(seed)
    d = torch.nn.functional.normalize(torch.randn(n, 3, generator=g), dim=-1)
    colors = (torch.rand(1, 3, generator=g) * 0.6 + 0.2 + 0.2 * d).clamp(0, 1)
    return Gaussians(d * torch.tensor([0.45, 0.55, 0.5]), torch.tensor([1.0, 0, 0, 0]).expand(n, 4).clone(),
                     torch.full((n, 3), 0.09), torch.full((n,), 0.9), colors)


def assert_same_checkpoints(path_a: Path, path_b: Path, step: int) -> None:
    """Both checkpoints are at ``step`` and hold the same model, EMA, optimizer state and RNG, bit for bit."""
    a = torch.load(path_a, map_location="cpu", weights_only=True)
    b = torch.load(path_b, map_location="cpu", weights_only=True)
    assert a["step"] == b["step"] == step
    for key in ("model", "ema"):
        assert a[key].keys() == b[key].keys()
        for k in a[key]:
            assert torch.equal(a[key][k], b[key][k]), (key, k)
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        for k in sa:
            assert torch.equal(sa[k], sb[k]), k
    assert torch.equal(a["rng"][0]["torch"], b["rng"][0]["torch"])


def random_model(seed: int, with_avas: bool = False, **overrides) -> A3DModel:
    """A tiny-preset model (with ``overrides``) whose every weight is random (the DiT init zeroes gates and
    output layers, which would make the output independent of the input), in eval mode."""
    torch.manual_seed(seed)
    model = A3DModel(get_config("tiny", **overrides), with_avas=with_avas)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model.eval()
