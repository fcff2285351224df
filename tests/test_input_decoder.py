"""The given photos in the Gaussians (a3d.model.given) and the decoders (a3d.model.decoder): given photos are
wired into the Gaussians, extra views enter as clean states, config files migrate by version, warm start keeps
what a model computed, the upsampler mixes neighbouring tokens, and the trainer's objective with view dropout
runs on CPU."""
import dataclasses
import math

import pytest
import torch

from a3d.core import framing
from a3d.core.cameras import canonical_cameras
from a3d.errors import InputError
from a3d.model.config import CONFIG_VERSION, ModelConfig, get_config
from a3d.model.network import A3DModel

import shared

SMALL = dict(image_size=32, width=64, depth=2, heads=2, decoder_width=8, avas_width=8, input_width=4)


def random_model(seed: int, **overrides) -> A3DModel:
    return shared.random_model(seed, **{**SMALL, **overrides})


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
    # a given view's Gaussians are discs about a pixel wide at their depth, half as thick across the surface
    cfg = model.config
    dist = (g.means.view(2, 4, S * S, 3)[0, 0] - canonical_cameras(S).centers[0]).norm(dim=-1)
    pixel = dist * 2 * math.tan(math.radians(cfg.camera_fov_deg) / 2) / S
    footprint = cfg.given_footprint * pixel[:, None] * torch.tensor([1.0, 1.0, 0.5])
    assert torch.allclose(g.scales.view(2, 4, S * S, 3)[0, 0], footprint, rtol=1e-3)


def test_given_views_are_their_pixels_with_the_matte_as_opacity(seed):
    model = random_model(seed, given_erode=0, given_fit=0)  # random weights: residuals are not zero
    S = 32
    image, photos = torch.rand(1, 3, S, S), torch.rand(1, 4, 3, S, S)
    masks = torch.rand(1, 4, S, S)
    masks[:, :, :8] = 1.0  # fully covered rows: colour is the pixel itself
    given = torch.tensor([[True, False, True, False]])
    with torch.no_grad():
        g = model(image, model.noise(1), torch.zeros(1), photos=photos, given=given, masks=masks).gaussians
        free = model(image, model.noise(1), torch.zeros(1), photos=photos, given=given).gaussians
    op, col = g.opacities.view(4, S, S), g.colors.view(4, S, S, 3)
    # own sets are never carved: their opacity is the matte (up to the rasterizer's bound)
    assert torch.allclose(op[0], masks[0, 0].clamp(max=0.99), atol=1e-6)
    assert torch.allclose(op[2], masks[0, 2].clamp(max=0.99), atol=1e-6)
    assert not torch.allclose(op[1], masks[0, 1].clamp(max=0.99), atol=1e-2)  # not given: learned
    assert not torch.allclose(free.opacities.view(4, S, S)[0], op[0], atol=1e-2)  # no matte: learned
    pix = image[0].permute(1, 2, 0).clamp(1e-3, 1 - 1e-3)
    assert torch.allclose(col[0, :8], pix[:8], atol=1e-5)
    # a partly covered pixel carries its foreground colour, not the background it was composited over
    bg = torch.tensor(framing.BACKGROUND)
    m = masks[0, 0, 8:, :, None]
    expect = ((pix[8:] - bg * (1 - m)) / m.clamp_min(0.05)).clamp(0, 1)
    assert torch.allclose(col[0, 8:], expect, atol=1e-5)
    with pytest.raises(ValueError, match="masks"):
        model(image, model.noise(1), torch.zeros(1), masks=torch.rand(1, 4, S, S + 1))


def test_config_files_migrate_by_version():
    shipped = get_config("tiny").to_dict()
    assert shipped["config_version"] == CONFIG_VERSION
    v1 = {k: v for k, v in shipped.items() if k not in ("config_version", "decoder", "upsampler_width",
                                                         "given_grazing")}
    v1.update(input_decoder=True, given_exact=True, given_surfel=True)  # version 1: no version key
    assert ModelConfig.from_dict(v1) == get_config("tiny", given_grazing=0.0)
    for switch in ("input_decoder", "given_exact", "given_surfel"):
        with pytest.raises(InputError, match=f"version-1 config sets {switch}=False"):
            ModelConfig.from_dict({**v1, switch: False})
    with pytest.raises(InputError, match="paper's literal decoder"):
        ModelConfig.from_dict({k: v for k, v in v1.items() if k != "input_decoder"})
    v2 = {k: v for k, v in shipped.items() if k != "given_grazing"} | {"config_version": 2}
    assert ModelConfig.from_dict(v2) == get_config("tiny", given_grazing=0.0)  # version 2 kept every given pixel
    with pytest.raises(InputError, match="config_version 7"):
        ModelConfig.from_dict({**shipped, "config_version": 7})
    with pytest.raises(InputError, match="unknown: .'given_exact'"):
        ModelConfig.from_dict({**shipped, "given_exact": True})  # version 2 has no such field
    with pytest.raises(InputError, match="carve_depth"):
        ModelConfig.from_dict({**shipped, "carve_depth": -0.1})


def test_carve_clears_what_covers_a_given_surface():
    model = random_model(0)
    S = 32
    dirs = model.rays[..., 3:]  # [4, S, S, 3] unit ray directions
    front = model.ray_origins[0]
    surface = 2.5  # the front view sees its surface at this distance everywhere
    depth = torch.full((1, 4, S, S, 1), surface)
    # every set's Gaussians placed on the front view's rays (sets 1-3 borrow the front rays)
    offsets = torch.tensor([0.0, -0.3, 0.02, 0.4])  # own set, far in front, just behind, far behind
    means = front + (surface + offsets[:, None, None, None]) * dirs[0][None]  # [4, S, S, 3]
    alpha = torch.ones(1, 4, S, S)
    given = torch.tensor([[True, False, False, False]])
    keep = model.input_decoder.carve(means[None], depth, alpha, given, model.canonical_viewmats,
                                     model.canonical_Ks, margin=0.05)  # [1, 4, S, S]
    inner = keep[0, :, 2:-2, 2:-2]  # away from the image border
    assert torch.equal(inner[0], torch.ones_like(inner[0]))  # the photo's own Gaussians stay
    assert inner[1].max() < 1e-3  # in front of the surface: gone
    assert inner[2].max() < 0.2  # within the margin behind it: mostly gone
    assert inner[3].min() > 0.99  # well behind: kept
    none_given = model.input_decoder.carve(means[None], depth, alpha, torch.zeros(1, 4, dtype=torch.bool),
                                           model.canonical_viewmats, model.canonical_Ks, margin=0.05)
    assert torch.equal(none_given, torch.ones_like(none_given))
    transparent = model.input_decoder.carve(means[None], depth, torch.zeros_like(alpha), given,
                                            model.canonical_viewmats, model.canonical_Ks, margin=0.05)
    assert torch.equal(transparent, torch.ones_like(transparent))  # where the photo sees nothing, nothing goes


def test_carve_window_tests_against_the_farthest_surface_nearby():
    """A slanted surface: the front view sees it at 2.5 head units in the left half of the image and 2.8 in
    the right half. A Gaussian 0.1 behind the near half's surface, on the pixel column next to the step,
    passes a carve at its own pixel (it is behind the surface there) but lies in front of the surface one
    pixel away: a 3-pixel window carves it, and a 1-pixel window keeps it. Background
    pixels lend no depth, and an even window is refused."""
    model = random_model(0)
    S = 32
    dirs, front = model.rays[..., 3:], model.ray_origins[0]
    depth = torch.full((1, 4, S, S, 1), 2.5)
    depth[:, 0, :, S // 2:] = 2.8
    offsets = torch.tensor([0.0, 0.1, 0.1, 0.1])  # every other set 0.1 behind the near surface
    means = (front + (2.5 + offsets[:, None, None, None]) * dirs[0][None])[None]  # [1, 4, S, S, 3]
    alpha = torch.ones(1, 4, S, S)
    given = torch.tensor([[True, False, False, False]])
    cams = model.canonical_viewmats, model.canonical_Ks
    one = model.input_decoder.carve(means, depth, alpha, given, *cams, margin=0.05)
    three = model.input_decoder.carve(means, depth, alpha, given, *cams, margin=0.05, window=3)
    edge, inner = S // 2 - 1, slice(4, -4)  # the last near column, next to the far half
    assert one[0, 1, inner, edge].min() > 0.9  # behind its own pixel's surface: kept
    assert three[0, 1, inner, edge].max() < 0.1  # in front of its neighbour's: carved
    assert torch.allclose(three[0, 1, inner, 4:edge - 2], one[0, 1, inner, 4:edge - 2])  # flat: the same
    # the far half seen as background (alpha 0) must not carve the near half's edge
    bg = alpha.clone()
    bg[:, 0, :, S // 2:] = 0
    masked = model.input_decoder.carve(means, depth, bg, given, *cams, margin=0.05, window=3)
    assert masked[0, 1, inner, edge].min() > 0.9
    with pytest.raises(InputError, match="odd"):
        ModelConfig(carve_window=2)


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


def test_inputs_are_checked(seed):
    model = random_model(seed)
    S = 32
    with pytest.raises(ValueError, match="given"):
        model(torch.rand(1, 3, S, S), model.noise(1), torch.zeros(1), given=torch.ones(1, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="photos"):
        model(torch.rand(1, 3, S, S), model.noise(1), torch.zeros(1), given=torch.ones(1, 4, dtype=torch.bool))


def test_warm_start_into_the_upsampler_keeps_everything_but_the_token_to_pixel_step(seed, tmp_path):
    from a3d.train.checkpoint import warm_start

    old = random_model(seed)
    old.save_pretrained(tmp_path)
    new = A3DModel(get_config("tiny", **SMALL, decoder="upsampler"))
    counts = warm_start(new, tmp_path)
    fresh = [k for k in new.state_dict() if k.startswith("decoder.upsampler.")]
    assert counts["fresh"] == len(fresh) > 0 and counts["extended"] == 0
    assert counts["copied"] == len(new.state_dict()) - len(fresh)
    for name, p in new.state_dict().items():
        if name in old.state_dict():
            assert torch.equal(p, old.state_dict()[name]), name


def test_warm_start_to_a_finer_model_gives_the_same_tokens_and_upsampled_features(seed, tmp_path):
    """patch_size and image_size doubled (the same 4 × 4 tokens, 4× the Gaussians): the tokenizers give an image
    twice as fine (every pixel repeated 2 × 2) the tokens the old model gave the image, the new upsampler stage
    starts as a plain bilinear step, and the patch expansions give each old pixel's value to its 2 × 2 pixels."""
    import torch.nn.functional as F

    from a3d.train.checkpoint import warm_start

    up = dict(decoder="upsampler", upsampler_width=32)  # stages 16, 8, 8 channels, then one more of 8 (as tiny's)
    old = random_model(seed, **up)  # 32², p = 8
    old.save_pretrained(tmp_path)
    new = A3DModel(get_config("tiny", **{**SMALL, **up, "image_size": 64, "patch_size": 16}))
    counts = warm_start(new, tmp_path)
    assert counts["refined"] == 2 and counts["bilinear_stages"] == 1  # the two tokenizers; one stage more
    x = torch.rand(2, 4, 9, 32, 32)
    fine = x.repeat_interleave(2, -1).repeat_interleave(2, -2)
    with torch.no_grad():
        for name in ("image_tokenizer", "gaussian_tokenizer"):
            torch.testing.assert_close(getattr(new, name)(fine), getattr(old, name)(x), atol=1e-5, rtol=1e-5)
        tokens, temb = torch.randn(1, 4 * 16, 64), torch.randn(1, 64)
        a = old.decoder.features(tokens, temb).flatten(0, 1).permute(0, 3, 1, 2)  # [4, c, 32, 32]
        b = new.decoder.features(tokens, temb).flatten(0, 1).permute(0, 3, 1, 2)  # [4, c, 64, 64]
    torch.testing.assert_close(b, F.interpolate(a, scale_factor=2, mode="bilinear", align_corners=False),
                               atol=1e-5, rtol=1e-5)
    # the patch decoder's expansion (and AVAS's, laid out the same way): old pixel (i, j) → new (2i.., 2j..)
    old_patch = random_model(seed, with_avas=True)
    old_patch.save_pretrained(tmp_path / "patch")
    new_patch = A3DModel(get_config("tiny", **{**SMALL, "image_size": 64, "patch_size": 16}), with_avas=True)
    assert warm_start(new_patch, tmp_path / "patch")["refined"] == 6  # tokenizers, decoder and AVAS expansions
    with torch.no_grad():
        for mod in ("decoder", "avas"):
            c = getattr(old_patch, mod).upsample.out_features // 64
            a = getattr(old_patch, mod).upsample(tokens[0]).reshape(-1, 8, 8, c)
            b = getattr(new_patch, mod).upsample(tokens[0]).reshape(-1, 16, 16, c)
            torch.testing.assert_close(b, a.repeat_interleave(2, 1).repeat_interleave(2, 2))


def test_upsampler_mixes_the_tokens_around_every_pixel_and_has_no_patch_grid(seed):
    """A token's change reaches pixels beyond its own p × p block (bilinear stages), and a smooth token map
    (every token the same) gives features with no p-pixel pattern: the same at every pixel away from the border."""
    torch.manual_seed(seed)
    model = random_model(seed, decoder="upsampler")
    dec, cfg = model.decoder, model.config
    S, p, D = cfg.image_size, cfg.patch_size, cfg.width
    n = S // p
    tokens = torch.randn(1, 4 * n * n, D)
    temb = torch.randn(1, D)
    moved = tokens.clone()
    moved[0, n + 1] += torch.randn(D)  # front view, token row 1, column 1: pixels p..2p-1
    with torch.no_grad():
        diff = (dec.features(moved, temb) - dec.features(tokens, temb)).abs()[0, 0].amax(-1)
    changed = diff > 1e-6
    assert changed[p:2 * p, p:2 * p].all()
    assert changed[2 * p:2 * p + 3, p:2 * p].any() and changed[p:2 * p, p - 3:p].any()  # beyond its block
    same = tokens[:, :1].expand(1, 4 * n * n, D)
    with torch.no_grad():
        f = dec.features(same, temb)[0, 0]  # [S, S, c]
    inner = f[p:-p, p:-p]
    assert (inner - inner[:1, :1]).abs().max() < 1e-4


def test_objective_with_view_dropout_runs_and_reaches_every_part(seed):
    from a3d.train.batches import render_batch
    from a3d.train.objective import compute_loss
    from a3d.data.synth import SyntheticHeads
    from a3d.train.config import TrainConfig

    torch.manual_seed(seed)
    cfg = TrainConfig(num_views=2, batch_size=2, multiview_prob=0.5, device="cpu")
    model = A3DModel(get_config("tiny", **SMALL), with_avas=True)
    S = 32
    heads = SyntheticHeads("cpu", seed=seed % 1000, num_gaussians=3000, image_size=S).sample(2)
    cams = heads.cameras
    from a3d.core.cameras import Cameras

    batch = render_batch(heads.gaussians, canonical_cameras(S), Cameras(cams.viewmats[:, :2], cams.Ks[:, :2], S, S))
    loss, parts = compute_loss(model, batch, cfg, model.config, autocast=False)
    loss.backward()
    for k in ("l2", "lpips", "own_l2", "own_alpha", "own_depth", "avas_l2"):
        assert torch.isfinite(parts[k]) and parts[k] >= 0, k
    assert parts["own_depth"] > 0  # the surface term sees the Gaussians' depths
    assert model.given_embed.grad is not None
    # the residual head acts on the views without a photo; view dropout may give a batch photos in every view,
    # so it is checked on the front photo alone
    model.zero_grad()
    loss, _ = compute_loss(model, batch, dataclasses.replace(cfg, multiview_prob=0.0), model.config, autocast=False)
    loss.backward()
    assert model.input_decoder.mlp[-1].weight.grad.abs().sum() > 0  # the residual head learns


def test_alpha_loss_adds_its_weighted_term_where_mattes_are_exact(seed):
    """lambda_alpha: the loss grows by exactly lambda_alpha x the logged silhouette term (same noise and
    times), the term is a mean L1 of alphas (in [0, 1]), and samples without exact mattes add nothing."""
    from dataclasses import replace as dc_replace

    from a3d.train.batches import render_batch
    from a3d.core.cameras import Cameras
    from a3d.train.objective import compute_loss
    from a3d.data.synth import SyntheticHeads
    from a3d.train.config import TrainConfig

    S = 32
    model = A3DModel(get_config("tiny", **SMALL), with_avas=False)
    heads = SyntheticHeads("cpu", seed=seed % 1000, num_gaussians=3000, image_size=S).sample(2)
    cams = heads.cameras
    batch = render_batch(heads.gaussians, canonical_cameras(S), Cameras(cams.viewmats[:, :2], cams.Ks[:, :2], S, S))

    def loss_of(lambda_alpha, b):
        torch.manual_seed(seed)
        cfg = TrainConfig(num_views=2, batch_size=2, device="cpu", lambda_alpha=lambda_alpha)
        with torch.no_grad():
            loss, parts = compute_loss(model, b, cfg, model.config, autocast=False)
        return loss.item(), {k: v.item() for k, v in parts.items()}

    base, parts0 = loss_of(0.0, batch)
    with_alpha, parts = loss_of(0.7, batch)
    assert "alpha" not in parts0 and 0 < parts["alpha"] <= 1
    assert with_alpha == pytest.approx(base + 0.7 * parts["alpha"], rel=1e-5)
    no_mattes = dc_replace(batch, geometry_valid=torch.zeros_like(batch.geometry_valid))
    assert loss_of(0.7, no_mattes)[0] == pytest.approx(loss_of(0.0, no_mattes)[0], rel=1e-6)
    with pytest.raises(ValueError, match="lambda_alpha"):
        TrainConfig(lambda_alpha=-1.0)


def _warm_started_computes_the_same(seed: int, folder, base: dict | None = None, **overrides
                                    ) -> tuple[A3DModel, dict[str, int]]:
    """A random model saved to ``folder``, and a model with ``overrides`` warm-started from it; asserts that
    both compute the same Gaussians, then backpropagates the new model's colours once. Returns (the new model,
    warm_start's counts)."""
    from a3d.train.checkpoint import warm_start

    base = base or {}
    old = random_model(seed, **base)
    old.save_pretrained(folder)
    new = A3DModel(get_config("tiny", **{**SMALL, **base, **overrides}))
    counts = warm_start(new, folder)
    assert counts["copied"] == len(old.state_dict())
    image, g0 = torch.rand(2, 3, 32, 32), old.noise(2, torch.Generator().manual_seed(seed))
    with torch.no_grad():
        a, b = old(image, g0, torch.zeros(2)).gaussians, new(image, g0, torch.zeros(2)).gaussians
    for name in ("means", "scales", "opacities", "colors"):
        torch.testing.assert_close(getattr(a, name), getattr(b, name), atol=1e-5, rtol=1e-5)
    new(image, g0, torch.zeros(2)).gaussians.colors.sum().backward()
    return new, counts


def test_warm_start_to_a_deeper_model_computes_the_same(seed, tmp_path):
    """Blocks the old weights lack start as the identity: the deeper model's output equals the old one's,
    and the new blocks still get gradients."""
    deeper, counts = _warm_started_computes_the_same(seed, tmp_path, depth=SMALL["depth"] + 2)
    assert counts["identity_blocks"] == 2
    new_block = deeper.blocks[-1]
    assert new_block.proj.weight.grad.abs().sum() > 0 and new_block.mlp[-1].weight.grad.abs().sum() > 0


def test_decoder_conv_starts_as_nothing_and_mixes_neighbouring_tokens(seed, tmp_path):
    """decoder_conv: weights trained without it compute the same (its last layer starts at zero); it then
    learns, and once it is not zero a token's change reaches the pixels of the tokens beside it."""
    new, counts = _warm_started_computes_the_same(seed, tmp_path, {"decoder_conv": 0}, decoder_conv=2)
    assert counts["fresh"] == 4  # 2 convs: weight and bias
    assert new.decoder.conv[-1].weight.grad.abs().sum() > 0

    # one token changed: without the convolutions only its own 8 × 8 pixels move; with them, their neighbours too
    dec = new.decoder
    with torch.no_grad():
        for m in dec.conv:
            if isinstance(m, torch.nn.Conv2d):
                m.weight.normal_(0, 0.1)
    S, p = new.config.image_size, new.config.patch_size
    tokens = torch.randn(1, 4 * (S // p) ** 2, new.config.width)
    temb, feats = torch.randn(1, new.config.width), torch.randn(1, 4, S, S, new.config.input_width)
    n = S // p
    moved = tokens.clone()
    moved[0, n + 1] += torch.randn(new.config.width)  # front view, token row 1, column 1: pixels p..2p-1
    own = (slice(p, 2 * p), slice(p, 2 * p))
    with torch.no_grad():
        diff = (dec.raw(moved, temb, new.rays, feats)[0] - dec.raw(tokens, temb, new.rays, feats)[0]).abs()
    changed = diff[0, 0].amax(-1) > 1e-6  # [S, S] of the front view
    assert changed[own].all() and changed[2 * p, p:2 * p].any() and changed[p:2 * p, p - 1].any()
    # two convolutions reach 2 pixels beyond the token's block, no further
    reach = torch.zeros_like(changed)
    reach[p - 2:2 * p + 2, p - 2:2 * p + 2] = True
    assert not (changed & ~reach).any()
    dec.conv = None
    with torch.no_grad():
        diff = (dec.raw(moved, temb, new.rays, feats)[0] - dec.raw(tokens, temb, new.rays, feats)[0]).abs()
    changed = diff[0, 0].amax(-1) > 1e-6
    assert changed[own].all() and changed.sum() == p * p


def test_facing_weight_follows_the_angle_to_the_surface():
    from a3d.model.given import facing

    S = 16
    ys, xs = torch.meshgrid(torch.linspace(-0.3, 0.3, S), torch.linspace(-0.3, 0.3, S), indexing="ij")
    origin = torch.tensor([0.0, 0.0, 3.0])
    w = {}
    for deg in (0, 30, 50, 75):  # a plane through the origin turned by deg about y, seen from +z
        t = math.radians(deg)
        plane = torch.stack([xs * math.cos(t), ys, -xs * math.sin(t)], -1)[None]
        w[deg] = facing(plane, origin)[0, 4:-4, 4:-4]  # away from the image border
    assert (w[0] == 1).all() and (w[30] > 0.8).all() and (w[75] == 0).all()
    assert (w[50] > 0).all() and (w[50] < 1).all()
    # a depth edge is not bridged: the pixels on either side of a step keep their own plane's normal
    step = torch.stack([xs, ys, torch.where(xs > 0, 0.5, 0.0)], -1)[None]
    assert (facing(step, origin)[0, 2:-2, 2:-2] == 1).all()


def _with_and_without(seed: int, box: tuple[int, int], without: dict, **setting):
    """One random 32² model with ``without`` and with ``setting``, run on the same portrait, photos and noise with a
    square matte over rows and columns ``box``: (the portrait, its inputs as keyword arguments, the model
    with the setting, the Gaussians without it, the Gaussians with it)."""
    model, changed = random_model(seed, **without), random_model(seed, **setting)
    S = 32
    image = torch.rand(1, 3, S, S)
    masks = torch.zeros(1, 4, S, S)
    masks[:, :, box[0]:box[1], box[0]:box[1]] = 1.0
    inputs = dict(g_t=model.noise(1, torch.Generator().manual_seed(seed)), t=torch.zeros(1),
                  photos=torch.rand(1, 4, 3, S, S), masks=masks)
    with torch.no_grad():
        return image, inputs, changed, model(image, **inputs).gaussians, changed(image, **inputs).gaussians


def test_given_fit_gives_the_photo_back_and_leaves_other_views(seed):
    from a3d.core.rendering import render

    S = 32
    image, inputs, fitted, a, b = _with_and_without(seed, (6, 26), {"given_fit": 0}, given_fit=2)
    front = canonical_cameras(S)[0:1]
    inside = inputs["masks"][0, 0] > 0.5

    def own_error(g):
        own = type(g)(**{k: getattr(g, k)[0, : S * S] for k in ("means", "quats", "scales", "opacities", "colors")})
        rgb = render(own, front, framing.BACKGROUND).rgb[0].permute(2, 0, 1)
        return float(((rgb - image[0]) ** 2).mean(0)[inside].mean())

    assert own_error(b) < own_error(a)
    assert torch.equal(a.means, b.means) and torch.equal(a.opacities, b.opacities)
    assert torch.equal(a.colors[0, S * S:], b.colors[0, S * S:])  # views without a photo keep their colours
    assert (b.colors >= 0).all() and (b.colors <= 1).all()
    # the fit is a constant: the views without a photo still train their colours
    fitted.zero_grad()
    out = fitted(image, **inputs).gaussians
    out.colors[0, S * S:].sum().backward()
    assert sum(float(p.grad.abs().sum()) for p in fitted.parameters() if p.grad is not None) > 0
    with pytest.raises(InputError, match="given_fit"):
        get_config("tiny", given_fit=-1)


def test_given_erode_shrinks_the_matte_used_as_opacity(seed):
    S = 32
    _, inputs, _, a, b = _with_and_without(seed, (8, 24), {"given_erode": 0}, given_erode=1)
    a, b = a.opacities.view(4, S, S), b.opacities.view(4, S, S)
    expect = torch.zeros(S, S)
    expect[9:23, 9:23] = 0.99  # one pixel in from every edge, at the rasterizer's bound
    assert torch.allclose(a[0], inputs["masks"][0, 0].clamp(max=0.99)) and torch.allclose(b[0], expect)
    with pytest.raises(InputError, match="given_erode"):
        get_config("tiny", given_erode=9)


def test_given_grazing_leaves_what_the_photo_sees_edge_on_to_the_other_sets(seed):
    from a3d.model.given import facing

    S = 32
    _, inputs, model, a, b = _with_and_without(seed, (4, 28), {"given_grazing": 0.0}, given_grazing=0.3)
    assert torch.equal(a.means, b.means)  # the setting moves nothing
    means = b.means.view(1, 4, S, S, 3)
    a, b = a.opacities.view(4, S, S), b.opacities.view(4, S, S)
    # the front set: its matte times the facing weight of its own surface, 0 at cos 0.3 and 1 from cos 0.6
    weight = facing(means[:, 0], model.ray_origins[0], 0.3, 0.6)[0]
    assert torch.allclose(b[0], a[0] * weight, atol=1e-6)
    assert (weight < 1).any()  # a random model's surface turns away somewhere: the test sees the fade
    # the other sets are carved less (the photo's faded pixels no longer claim their surface), never more
    assert (b[1:] >= a[1:] - 1e-6).all() and (b[1:] > a[1:] + 1e-4).any()
    with pytest.raises(InputError, match="given_grazing"):
        get_config("tiny", given_grazing=0.7)


def test_surfels_lie_in_the_surface_and_stretch_where_it_turns_away():
    from a3d.model.given import surfels
    from a3d.core.rotations import quat_to_rotmat

    S, step = 16, 0.6 / 15
    ys, xs = torch.meshgrid(torch.linspace(-0.3, 0.3, S), torch.linspace(-0.3, 0.3, S), indexing="ij")
    footprint = torch.full((S, S, 1), 0.45 * step)  # the isotropic σ of a pixel seen square-on
    for deg, stretch in ((0, 1.0), (60, 2.0), (85, 3.0)):  # 1/cos, capped at 3
        t = math.radians(deg)
        plane = torch.stack([xs / math.cos(t) * math.cos(t), ys, -xs / math.cos(t) * math.sin(t)], -1)
        quats, scales = surfels(plane, footprint, 0.45)
        axes = quat_to_rotmat(quats[8, 8])
        normal = torch.tensor([math.sin(t), 0.0, math.cos(t)])
        assert torch.allclose(axes[:, 2].abs(), normal.abs(), atol=1e-4)  # flat across the surface
        assert torch.allclose(scales[8, 8], torch.tensor([stretch, 1.0, 0.5]) * 0.45 * step, rtol=1e-3), deg
    # a degenerate grid (all centres in one point) keeps the isotropic footprint
    quats, scales = surfels(torch.zeros(S, S, 3), footprint, 0.45)
    assert torch.equal(scales, footprint.expand(S, S, 3)) and torch.equal(quats[0, 0], torch.tensor([1.0, 0, 0, 0]))
