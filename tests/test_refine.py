"""a3d.inference.refinement and a3d.refine: per-subject fitting lowers the photo loss, keeps unseen views close
to the feed-forward prediction, is deterministic, and runs through reconstruct(refine=)."""
import pytest
import torch

import a3d
from a3d.core.cameras import canonical_cameras
from a3d.core.gaussians import Gaussians
from a3d.inference.refinement import RefineSettings, refine_gaussians, settings_from
from a3d.core.rendering import render
from a3d.data.synth import SyntheticHeads

S = 32


@pytest.fixture(scope="module")
def scene():
    """A synthetic head (the truth, whose canonical views are the photos) and a perturbed copy (the
    'feed-forward prediction' to refine)."""
    truth = SyntheticHeads("cpu", seed=3, num_gaussians=3000, image_size=S).sample(1).gaussians.scene(0)
    gen = torch.Generator().manual_seed(0)
    noisy = Gaussians(means=truth.means, quats=truth.quats, scales=truth.scales * 1.3,
                      opacities=(truth.opacities * 0.8).clamp(0, 1),
                      colors=(truth.colors + 0.15 * torch.randn(truth.colors.shape, generator=gen)).clamp(0, 1))
    cams = canonical_cameras(S)
    photos = render(truth, cams, (1, 1, 1)).rgb.permute(0, 3, 1, 2).clamp(0, 1)
    return truth, noisy, cams, photos


def _psnr(a, b):
    return float(-10 * torch.log10(((a - b) ** 2).mean()))


def test_refinement_fits_the_photo_and_keeps_unseen_views(scene):
    truth, noisy, cams, photos = scene
    given = torch.tensor([True, False, False, False])
    g, report = refine_gaussians(noisy, cams, photos, given, settings=RefineSettings(steps=30, lambda_lpips=0.0))
    assert report["photo_l2_after"] < 0.5 * report["photo_l2_before"]
    front = lambda x: render(x, cams[[0]], (1, 1, 1)).rgb[0].permute(2, 0, 1)  # noqa: E731
    assert _psnr(front(g), photos[0]) > _psnr(front(noisy), photos[0]) + 3
    # the back view, which no photo sees, stays close to the prediction
    back = lambda x: render(x, cams[[3]], (1, 1, 1)).rgb  # noqa: E731
    assert _psnr(back(g), back(noisy)) > 25
    # bounded offsets, same count, same rotations
    assert (g.means - noisy.means).abs().max() <= RefineSettings().max_offset + 1e-6
    assert torch.equal(g.quats, noisy.quats) and g.means.shape == noisy.means.shape


def test_every_given_view_is_fitted_and_runs_are_deterministic(scene):
    truth, noisy, cams, photos = scene
    given = torch.ones(4, dtype=torch.bool)
    s = RefineSettings(steps=15, lambda_lpips=0.0)
    a, rep = refine_gaussians(noisy, cams, photos, given, settings=s)
    b, _ = refine_gaussians(noisy, cams, photos, given, settings=s)
    assert torch.equal(a.colors, b.colors) and torch.equal(a.means, b.means)
    assert rep["views"] == ["front", "left", "right", "back"]
    all4 = lambda x: render(x, cams, (1, 1, 1)).rgb.permute(0, 3, 1, 2)  # noqa: E731
    assert _psnr(all4(a), photos) > _psnr(all4(noisy), photos) + 2


def test_settings_and_argument_checks(scene):
    truth, noisy, cams, photos = scene
    assert settings_from(False) is None and settings_from(0) is None and settings_from(None) is None
    assert settings_from(True) == RefineSettings() and settings_from(7).steps == 7  # a GPU's defaults
    cpu = settings_from(True, "cpu")
    assert cpu.lambda_lpips == 0 and cpu.anchor_every == 4 and settings_from(9, "cpu").anchor_every == 4
    for bad in (-1, 2.5, "x"):
        with pytest.raises(ValueError):
            settings_from(bad)
    with pytest.raises(ValueError, match="given"):
        refine_gaussians(noisy, cams, photos, torch.zeros(4, dtype=torch.bool))
    with pytest.raises(ValueError, match="photos"):
        refine_gaussians(noisy, cams, photos[:, :, :16], torch.ones(4, dtype=torch.bool))
    with pytest.raises(ValueError, match="lr"):
        RefineSettings(lr=0)


def test_reconstruct_with_refinement_and_multiview(scene, tmp_path):
    from a3d.model.config import get_config
    from a3d.model.network import A3DModel

    truth, noisy, cams, photos = scene
    torch.manual_seed(0)
    model = A3DModel(get_config("tiny", image_size=S, width=64, depth=2, heads=2, decoder_width=8, avas_width=8,
                                input_width=4))
    views = {"front": photos[0], "left": photos[1], "back": photos[3]}
    plain = a3d.reconstruct(views, model, preprocess=False, seed=1)
    assert plain.metadata["views"] == ["front", "left", "back"]
    assert plain.given.tolist() == [True, True, False, True]
    refined = a3d.reconstruct(views, model, preprocess=False, seed=1, refine=10)
    rep = refined.metadata["refine"]
    assert rep["steps"] == 10 and rep["photo_l2_after"] < rep["photo_l2_before"]
    assert refined.metadata["timings_s"]["refine"] > 0
    again = a3d.refine(plain, 10, progress=False)
    assert torch.equal(again.gaussians.colors, refined.gaussians.colors)
    with pytest.raises(ValueError, match="front"):
        a3d.reconstruct({"left": photos[1]}, model, preprocess=False)
