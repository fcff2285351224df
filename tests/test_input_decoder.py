"""The input decoder (a3d.model.InputDecoder): given photos are wired into the Gaussians, extra views
enter as clean states, old configs keep the paper decoder, warm start keeps what a model computed,
and the trainer's objective with view dropout runs on CPU."""
import math

import pytest
import torch

from a3d.cameras import canonical_cameras
from a3d.model import A3DModel, ModelConfig, get_config

SMALL = dict(image_size=32, width=64, depth=2, heads=2, decoder_width=8, avas_width=8, input_width=4)


def random_model(seed: int, **overrides) -> A3DModel:
    torch.manual_seed(seed)
    model = A3DModel(get_config("tiny", **{**SMALL, **overrides}))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model.eval()


def test_given_views_take_their_pixels_at_initialisation(seed):
    torch.manual_seed(seed)
    model = A3DModel(get_config("tiny", **SMALL)).eval()  # fresh init: the residual head is zero
    S = 32
    image, photos = torch.rand(2, 3, S, S), torch.rand(2, 4, 3, S, S)
    given = torch.tensor([[True, False, True, False], [False, True, True, True]])  # front forced on
    with torch.no_grad():
        g = model(image, model.noise(2), torch.zeros(2), photos=photos, given=given).gaussians
    colors = g.colors.view(2, 4, S, S, 3)
    pix = lambda x: x.permute(1, 2, 0).clamp(1e-3, 1 - 1e-3)  # noqa: E731
    assert torch.allclose(colors[0, 0], pix(image[0]), atol=1e-5)  # front = the image, not photos[:, 0]
    assert torch.allclose(colors[0, 2], pix(photos[0, 2]), atol=1e-5)
    assert torch.allclose(colors[1, 3], pix(photos[1, 3]), atol=1e-5)
    assert not torch.allclose(colors[0, 1], pix(photos[0, 1]), atol=1e-2)  # not given: not copied
    # a given view's Gaussians are about a pixel wide at their depth
    cfg = model.config
    dist = (g.means.view(2, 4, S * S, 3)[0, 0] - canonical_cameras(S).centers[0]).norm(dim=-1)
    pixel = dist * 2 * math.tan(math.radians(cfg.camera_fov_deg) / 2) / S
    assert torch.allclose(g.scales.view(2, 4, S * S, 3)[0, 0], 0.6 * pixel[:, None].expand(-1, 3), rtol=1e-4)


def test_photos_reach_every_view_through_the_gather(seed):
    model = random_model(seed)
    S = 32
    image, photos = torch.rand(1, 3, S, S), torch.rand(1, 4, 3, S, S)
    given = torch.tensor([[True, True, False, False]])
    g0 = model.noise(1, torch.Generator().manual_seed(seed))
    with torch.no_grad():
        a = model(image, g0, torch.zeros(1), photos=photos, given=given).gaussians
        photos2 = photos.clone()
        photos2[:, 1] = torch.rand(1, 3, S, S)
        b = model(image, g0, torch.zeros(1), photos=photos2, given=given).gaussians
        photos3 = photos.clone()
        photos3[:, 2] = torch.rand(1, 3, S, S)  # not given: must change nothing
        c = model(image, g0, torch.zeros(1), photos=photos3, given=given).gaussians
    assert not torch.allclose(a.colors.view(4, -1, 3)[3], b.colors.view(4, -1, 3)[3])  # the back view sees it
    assert torch.equal(a.colors, c.colors) and torch.equal(a.means, c.means)


def test_checks_and_legacy_configs(seed):
    model = random_model(seed)
    S = 32
    with pytest.raises(ValueError, match="given"):
        model(torch.rand(1, 3, S, S), model.noise(1), torch.zeros(1), given=torch.ones(1, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="photos"):
        model(torch.rand(1, 3, S, S), model.noise(1), torch.zeros(1), given=torch.ones(1, 4, dtype=torch.bool))
    old = {k: v for k, v in get_config("tiny").to_dict().items() if k not in ("input_decoder", "input_width")}
    cfg = ModelConfig.from_dict(old)  # a config.json written before the input decoder
    assert cfg.input_decoder is False
    legacy = A3DModel(ModelConfig.from_dict({**old, **SMALL, "input_decoder": False}))
    assert legacy.input_decoder is None
    with pytest.raises(ValueError, match="front photo only"):
        legacy(torch.rand(1, 3, S, S), legacy.noise(1), torch.zeros(1), photos=torch.rand(1, 4, 3, S, S),
               given=torch.ones(1, 4, dtype=torch.bool))


def test_warm_start_from_the_paper_decoder_computes_the_same_first_pass(seed, tmp_path):
    from a3d.checkpoint import warm_start

    legacy = random_model(seed, input_decoder=False)
    legacy.save_pretrained(tmp_path)
    new = A3DModel(get_config("tiny", **SMALL))
    counts = warm_start(new, tmp_path)
    assert counts["extended"] == 1 and counts["copied"] >= len(legacy.state_dict()) - 1
    S = 32
    image = torch.rand(1, 3, S, S)
    with torch.no_grad():
        g_old = legacy(image, legacy.noise(1), torch.zeros(1)).gaussians
        g_new = new(image, legacy.noise(1), torch.zeros(1)).gaussians
    # the non-given views (left, right, back) decode as before; the front now enters clean and takes its pixels
    # so its tokens differ, and through attention everything may; but with the new parts at zero the per-pixel
    # MLP's extended input changes nothing: compare the decoder's first pass on the same tokens
    tokens = torch.randn(1, 4 * (S // 8) ** 2, 64)
    temb = torch.randn(1, 64)
    feats = torch.randn(1, 4, S, S, 4)
    raw_old, _ = legacy.decoder.raw(tokens, temb, legacy.rays)
    raw_new, _ = new.decoder.raw(tokens, temb, new.rays, feats)
    assert torch.allclose(raw_old, raw_new, atol=1e-6)
    assert g_old.means.shape == g_new.means.shape


def test_objective_with_view_dropout_runs_and_reaches_every_part(seed):
    from a3d.batches import render_batch
    from a3d.objective import compute_loss
    from a3d.synth import SyntheticHeads
    from a3d.train_config import TrainConfig

    torch.manual_seed(seed)
    cfg = TrainConfig(num_views=2, batch_size=2, multiview_prob=0.5, device="cpu")
    model = A3DModel(get_config("tiny", **SMALL), with_avas=True)
    S = 32
    heads = SyntheticHeads("cpu", seed=seed % 1000, num_gaussians=3000, image_size=S).sample(2)
    cams = heads.cameras
    from a3d.cameras import Cameras

    batch = render_batch(heads.gaussians, canonical_cameras(S), Cameras(cams.viewmats[:, :2], cams.Ks[:, :2], S, S))
    loss, parts = compute_loss(model, batch, cfg, model.config, autocast=False)
    loss.backward()
    for k in ("l2", "lpips", "own_l2", "own_alpha", "own_depth", "avas_l2"):
        assert torch.isfinite(parts[k]) and parts[k] >= 0, k
    assert parts["own_depth"] > 0  # the surface term sees the Gaussians' depths
    assert model.input_decoder.mlp[-1].weight.grad.abs().sum() > 0  # the residual head learns
    assert model.given_embed.grad is not None
