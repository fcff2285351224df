"""a3d.inference.refinement and a3d.refine: per-subject fitting lowers the photo loss, keeps unseen views close
to the feed-forward prediction, is deterministic, and runs through reconstruct(refine=); the identity term is
differentiable down to the colours, lowers the identity distance, and is skipped with a reason."""
import pytest
import torch

import a3d
from a3d.core.cameras import canonical_cameras, orbit_cameras
from a3d.core.gaussians import Gaussians
from a3d.inference.refinement import IDENTITY_AZIMUTHS, RefineSettings, refine_gaussians, settings_from
from a3d.perception.identity import ViewIdentity, has_identity_model
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


needs_identity = pytest.mark.skipif(not has_identity_model(), reason="face-recognition-models is not installed "
                                    "(pip install a3d[eval])")


@needs_identity
def test_identity_term_reaches_the_colours(scene):
    """The identity distance of renders at the term's yaws back-propagates through the crops and the rasterizer
    into every Gaussian colour that the views see."""
    truth, noisy, cams, photos = scene
    id_cams = orbit_cameras(len(IDENTITY_AZIMUTHS), size=S, azimuths=IDENTITY_AZIMUTHS)
    term = ViewIdentity(photos[0], id_cams.viewmats, id_cams.Ks)
    colors = noisy.colors.clone().requires_grad_(True)
    g = Gaussians(means=noisy.means, quats=noisy.quats, scales=noisy.scales, opacities=noisy.opacities, colors=colors)
    d = term(render(g, id_cams, (1, 1, 1)).rgb.permute(0, 3, 1, 2))
    assert d.shape == (4,) and (d > 0).all()
    d.mean().backward()
    assert torch.isfinite(colors.grad).all() and (colors.grad.abs().sum(-1) > 0).float().mean() > 0.05


@needs_identity
def test_identity_term_lowers_the_identity_distance(scene):
    truth, noisy, cams, photos = scene
    given = torch.tensor([True, False, False, False])
    s = RefineSettings(steps=3, lambda_identity=1.0, lambda_anchor=0.0, lambda_symmetry=0.0)
    g, report = refine_gaussians(noisy, cams, photos, given, settings=s)
    ident = report["identity"]
    assert ident["azimuths"] == list(IDENTITY_AZIMUTHS) and len(ident["before"]) == len(ident["after"]) == 4
    assert sum(ident["after"]) < sum(ident["before"]) - 0.01
    assert report["settings"]["lambda_identity"] == 1.0
    off = RefineSettings(steps=0, lambda_identity=0.0)
    assert "identity" not in refine_gaussians(noisy, cams, photos, given, settings=off)[1]  # off: no term, no report


def test_identity_term_skipped_with_a_reason(scene, monkeypatch):
    import a3d.perception.identity as identity

    truth, noisy, cams, photos = scene
    s = RefineSettings(steps=1, lambda_identity=0.5)
    with pytest.warns(RuntimeWarning, match="identity term .* skipped: .*front photo"):
        _, report = refine_gaussians(noisy, cams, photos, torch.tensor([False, True, False, False]), settings=s)
    assert "front photo" in report["identity"]["skipped"]

    def missing():
        raise identity.IdentityModelMissing("not installed here")

    monkeypatch.setattr(identity, "has_identity_model", lambda: False)
    monkeypatch.setattr(identity, "model_path", missing)
    with pytest.warns(RuntimeWarning, match="skipped: not installed here"):
        g, report = refine_gaussians(noisy, cams, photos, torch.tensor([True, False, False, False]), settings=s)
    assert report["identity"] == {"skipped": "not installed here"} and report["photo_l2_after"] > 0
    for bad in (-0.1, float("nan"), "x"):
        with pytest.raises(ValueError, match="lambda_identity"):
            RefineSettings(lambda_identity=bad)
