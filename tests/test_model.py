"""a3d.model.network: shapes per preset, bounds of the Gaussian decoder, the flow-matching sampler, AVAS,
and strict save/load."""
import json
import math

import pytest
import torch
from safetensors.torch import load_file, save_file

from a3d.core.cameras import canonical_cameras
from a3d.model.config import ModelConfig, PRESETS, get_config
from a3d.model.flow import images_to_state, interpolate, sample_t, state_to_images, velocity
from a3d.model.network import A3DModel
from shared import random_model


SMALL = dict(image_size=32, width=64, depth=2, heads=2, decoder_width=8, avas_width=8)


def test_tiny_preset_shapes_and_bounds(seed):
    model = random_model(seed)
    cfg = model.config
    S = cfg.image_size
    image = torch.rand(2, 3, S, S)
    with torch.no_grad():
        out = model(image, model.noise(2, torch.Generator().manual_seed(seed)), torch.zeros(2))
    g = out.gaussians
    N = 4 * S * S
    assert g.means.shape == (2, N, 3) and g.quats.shape == (2, N, 4) and g.scales.shape == (2, N, 3)
    assert g.opacities.shape == (2, N) and g.colors.shape == (2, N, 3) and out.state.shape == (2, 4, 3, S, S)
    assert out.views is None  # no AVAS at inference
    for t in (g.means, g.quats, g.scales, g.opacities, g.colors):
        assert torch.isfinite(t).all() and t.dtype == torch.float32
    assert (g.scales >= cfg.scale_min).all() and (g.scales <= cfg.scale_max).all()
    assert torch.allclose(g.quats.norm(dim=-1), torch.ones(2, N), atol=1e-5)
    assert ((g.opacities >= 0) & (g.opacities <= 1)).all() and ((g.colors >= 0) & (g.colors <= 1)).all()
    # Pixel-aligned: Gaussian v·H·W + i·W + j lies on the ray of pixel (i, j) of canonical view v,
    # at a distance from that camera within camera_radius ± depth_range.
    cams = canonical_cameras(S)
    origins = cams.centers.repeat_interleave(S * S, 0)  # [N, 3]
    rel = g.means - origins
    dist = rel.norm(dim=-1)
    assert (dist >= cfg.camera_radius - cfg.depth_range - 1e-4).all()
    assert (dist <= cfg.camera_radius + cfg.depth_range + 1e-4).all()
    v, i, j = 2, 5, 27  # the right view, row 5, column 27: project the Gaussian into that camera
    p = g.means[0, v * S * S + i * S + j]
    cam = cams.viewmats[v] @ torch.cat([p, torch.ones(1)])
    uv = (cams.Ks[v] @ cam[:3]) / cam[2]
    assert torch.allclose(uv[:2], torch.tensor([j + 0.5, i + 0.5]), atol=1e-3)
    # The state is the Gaussians' colours as 4 images in [-1, 1].
    assert torch.allclose(state_to_images(out.state)[0, v, :, i, j], g.colors[0, v * S * S + i * S + j])


def test_paper_preset_shapes_on_meta():
    cfg = get_config("paper")
    assert (cfg.image_size, cfg.patch_size, cfg.width, cfg.depth, cfg.heads) == (512, 8, 1024, 24, 16)
    with torch.device("meta"):
        model = A3DModel(cfg)
        out = model(torch.rand(1, 3, 512, 512), torch.randn(1, 4, 3, 512, 512), torch.zeros(1))
    assert out.gaussians.means.shape == (1, 4 * 512 * 512, 3)
    assert out.gaussians.scales.shape == (1, 4 * 512 * 512, 3)
    assert out.state.shape == (1, 4, 3, 512, 512)
    assert 250e6 < model.num_parameters() < 400e6


def test_tiny_preset_ships_under_16_mib(tmp_path):
    model = A3DModel(get_config("tiny"))
    model.half().save_pretrained(tmp_path)
    size = (tmp_path / "model.safetensors").stat().st_size
    assert size < 16 * 2**20, f"tiny fp16 weights are {size / 2**20:.2f} MiB"
    loaded = A3DModel.from_pretrained(tmp_path)  # fp16 file into a float32 model
    assert next(loaded.parameters()).dtype == torch.float32


def test_one_step_equals_sampler_with_one_step(seed):
    model = random_model(seed, **SMALL)
    image = torch.rand(2, 3, 32, 32)
    g0 = model.noise(2, torch.Generator().manual_seed(seed))
    with torch.no_grad():
        a = model.one_step(image, g0)
        b = model.sample(image, g0, steps=1)
        c = model.sample(image, g0, steps=3)
    for name in ("means", "quats", "scales", "opacities", "colors"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert not torch.allclose(a.colors, c.colors)  # more steps feed the predicted state back
    with torch.no_grad():  # the output depends on the portrait and on the noise
        assert not torch.allclose(model.one_step(torch.rand(2, 3, 32, 32), g0).means, a.means)
        assert not torch.allclose(model.one_step(image, torch.randn_like(g0)).means, a.means)
    assert torch.isfinite(c.means).all()


def test_sampler_follows_eq3(seed):
    """Replay Eq. 3 by hand from the network's own predictions: t_k = k/N and
    g_{k+1} = g_k + (1/N)(ĝ1 − g_k)/(1 − t_k); the sampler returns the last call's Gaussians."""
    model = random_model(seed, **SMALL)
    image = torch.rand(1, 3, 32, 32)
    g = model.noise(1, torch.Generator().manual_seed(seed))
    N = 4
    with torch.no_grad():
        result = model.sample(image, g, steps=N)
        for k in range(N):
            out = model(image, g, torch.tensor([k / N]))
            g = g + (out.state - g) / (N * (1 - k / N))
    assert torch.allclose(result.means, out.gaussians.means)
    assert torch.allclose(g, out.state, atol=1e-6)  # the last update lands exactly on the prediction


def test_flow_helpers(seed):
    gen = torch.Generator().manual_seed(seed)
    g0, g1 = torch.randn(3, 4, 3, 8, 8, generator=gen), torch.rand(3, 4, 3, 8, 8, generator=gen)
    assert torch.equal(interpolate(g0, g1, torch.zeros(3)), g0)
    assert torch.allclose(interpolate(g0, g1, torch.ones(3)), g1)
    t = torch.tensor([0.0, 0.25, 0.9])
    gt = interpolate(g0, g1, t)
    assert torch.allclose(gt[1], 0.75 * g0[1] + 0.25 * g1[1])
    # with a perfect prediction the velocity points from g_t to g1 and reaches it at t = 1
    v = velocity(g1, gt, t)
    assert torch.allclose(gt + (1 - t)[:, None, None, None, None] * v, g1, atol=1e-5)
    assert torch.allclose(v, g1 - g0, atol=1e-4)  # straight path: v = g1 − g0
    img = torch.rand(2, 4, 3, 8, 8, generator=gen)
    assert torch.allclose(state_to_images(images_to_state(img)), img)
    ts = sample_t(10_000, generator=gen)
    assert ts.min() >= 0 and ts.max() < 1 and abs(ts.mean().item() - 0.5) < 0.02
    ts = sample_t(10_000, one_step_prob=0.3, generator=gen)
    assert abs((ts == 0).float().mean().item() - 0.3) < 0.03
    with pytest.raises(ValueError, match="one_step_prob"):
        sample_t(4, one_step_prob=1.5)


def test_activations_stay_float32_under_bf16_autocast(seed):
    model = random_model(seed, **SMALL)
    image, g0 = torch.rand(1, 3, 32, 32), model.noise(1, torch.Generator().manual_seed(seed))
    with torch.no_grad():
        ref = model.one_step(image, g0)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model.one_step(image, g0)
    assert low.means.dtype == torch.float32
    # the trunk runs in bf16, but positions stay exactly on their rays (decoded in float32)
    cams = canonical_cameras(32)
    d = torch.nn.functional.normalize(low.means[0] - cams.centers.repeat_interleave(32 * 32, 0), dim=-1)
    d_ref = torch.nn.functional.normalize(ref.means[0] - cams.centers.repeat_interleave(32 * 32, 0), dim=-1)
    assert torch.allclose(d, d_ref, atol=1e-5)
    assert (low.means - ref.means).abs().max() < 0.1


def test_avas_training_branch(seed, tmp_path):
    model = random_model(seed, with_avas=True, **SMALL).train()
    out = model(torch.rand(2, 3, 32, 32), torch.randn(2, 4, 3, 32, 32), sample_t(2))
    assert out.views.shape == (2, 4, 3, 32, 32) and ((out.views > 0) & (out.views < 1)).all()
    loss = out.views.square().mean() + out.gaussians.colors.mean() + out.gaussians.means.square().mean()
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    # The sampling paths never run AVAS, even on a training model.
    def no_avas(*args):
        raise AssertionError("AVAS ran at inference")

    model.avas.forward = no_avas
    with torch.no_grad():
        model.one_step(torch.rand(1, 3, 32, 32), torch.randn(1, 4, 3, 32, 32))
        model.sample(torch.rand(1, 3, 32, 32), torch.randn(1, 4, 3, 32, 32), steps=2)
    del model.avas.forward
    # A training checkpoint loads for inference without its AVAS weights ...
    model.save_pretrained(tmp_path / "train")
    inf = A3DModel.from_pretrained(tmp_path / "train")
    assert inf.avas is None and not any(k.startswith("avas.") for k in inf.state_dict())
    assert inf.num_parameters() == model.num_parameters(inference=True)
    # ... but an inference checkpoint cannot become a training model without them.
    inf.save_pretrained(tmp_path / "inf")
    with pytest.raises(ValueError, match="missing.*avas"):
        A3DModel.from_pretrained(tmp_path / "inf", with_avas=True)


def test_save_load_round_trip_is_exact(seed, tmp_path):
    model = random_model(seed, **SMALL)
    model.save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg == model.config.to_dict()
    loaded = A3DModel.from_pretrained(tmp_path)
    assert isinstance(loaded.config, ModelConfig) and loaded.config == model.config
    sd, sd2 = model.state_dict(), loaded.state_dict()
    assert sd.keys() == sd2.keys() and all(torch.equal(sd[k], sd2[k]) for k in sd)
    image, g0 = torch.rand(1, 3, 32, 32), model.noise(1, torch.Generator().manual_seed(seed))
    with torch.no_grad():
        assert torch.equal(model.one_step(image, g0).means, loaded.one_step(image, g0).means)


def test_loading_is_strict(seed, tmp_path):
    model = random_model(seed, **SMALL)
    model.save_pretrained(tmp_path)
    weights = tmp_path / "model.safetensors"
    good = load_file(weights)

    missing = dict(good)
    missing.pop("blocks.0.qkv.weight")
    save_file(missing, weights)
    with pytest.raises(ValueError, match=r"missing: \['blocks.0.qkv.weight'\]"):
        A3DModel.from_pretrained(tmp_path)

    extra = dict(good, **{"blocks.9.qkv.weight": torch.zeros(3)})
    save_file(extra, weights)
    with pytest.raises(ValueError, match=r"unexpected: \['blocks.9.qkv.weight'\]"):
        A3DModel.from_pretrained(tmp_path)

    wrong = dict(good, **{"view_embed": torch.zeros(5, 32)})
    save_file(wrong, weights)
    with pytest.raises(ValueError, match="wrong shape"):
        A3DModel.from_pretrained(tmp_path)

    save_file(good, weights)
    cfg = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps(dict(cfg, dropout=0.1)))
    with pytest.raises(ValueError, match="unknown: \\['dropout'\\]"):
        A3DModel.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({k: v for k, v in cfg.items() if k != "depth"}))
    with pytest.raises(ValueError, match="missing: \\['depth'\\]"):
        A3DModel.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="strict"):
        A3DModel.from_pretrained(tmp_path, strict=False)
    assert A3DModel.from_pretrained(tmp_path).config == model.config


@pytest.mark.parametrize("bad, match", [
    (dict(image_size=100), "multiple of patch_size"),
    (dict(width=250), "heads"),
    (dict(depth=0), "depth"),
    (dict(depth_range=3.0), "depth_range"),
    (dict(scale_min=0.1), "scale_min"),
    (dict(mlp_ratio=float("nan")), "mlp_ratio"),
])
def test_config_validation(bad, match):
    with pytest.raises(ValueError, match=match):
        get_config("tiny", **bad)


def test_every_bundled_model_is_its_preset():
    """Presets are the shipped models: each model folder in a3d/assets/models has the config of the preset of
    its name, field for field (its config.json is what get_config(name) builds)."""
    from a3d.core.assets import ASSET_DIR

    folders = sorted(p for p in (ASSET_DIR / "models").iterdir() if (p / "config.json").is_file())
    assert folders
    for folder in folders:
        assert folder.name in PRESETS, folder
        shipped = json.loads((folder / "config.json").read_text())
        assert shipped == get_config(folder.name).to_dict(), folder


def test_upsampler_config():
    cfg = get_config("tiny", decoder="upsampler")
    assert cfg.upsampler_channels() == [64, 32, 32]  # 16 → 32 → 64 → 128 pixels, the last at decoder_width
    with pytest.raises(ValueError, match="power of two"):
        get_config("tiny", decoder="upsampler", patch_size=12, image_size=120)
    with pytest.raises(ValueError, match="decoder"):
        get_config("tiny", decoder="unet")


def test_presets_and_input_checks():
    assert set(PRESETS) >= {"tiny", "paper"}
    with pytest.raises(ValueError, match="unknown preset"):
        get_config("huge")
    with pytest.raises(ValueError, match="unknown ModelConfig fields"):
        get_config("tiny", dropout=0.1)
    model = A3DModel(get_config("tiny", **SMALL))
    with pytest.raises(ValueError, match=r"image: expected \[B, 3, 32, 32\]"):
        model(torch.rand(1, 3, 64, 64), torch.randn(1, 4, 3, 32, 32), torch.zeros(1))
    with pytest.raises(ValueError, match="g_t"):
        model(torch.rand(1, 3, 32, 32), torch.randn(1, 3, 3, 32, 32), torch.zeros(1))
    with pytest.raises(ValueError, match="steps"):
        model.sample(torch.rand(1, 3, 32, 32), torch.randn(1, 4, 3, 32, 32), steps=0)
    assert math.isclose(model.config.camera_radius, 2.7)


@pytest.mark.cuda
def test_cuda_bf16_matches_cpu(seed):
    model = random_model(seed, **SMALL)
    image, g0 = torch.rand(1, 3, 32, 32), model.noise(1, torch.Generator().manual_seed(seed))
    with torch.no_grad():
        ref = model.one_step(image, g0)
        gpu = model.cuda()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = gpu.one_step(image.cuda(), g0.cuda())
    assert out.means.dtype == torch.float32 and torch.isfinite(out.means).all()
    assert (out.means.cpu() - ref.means).abs().max() < 0.05
    assert (out.colors.cpu() - ref.colors).abs().max() < 0.05
