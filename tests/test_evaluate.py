"""a3d.eval.evaluate: metrics against independent computations, view-angle bins, the three test sets, the report."""
import inspect
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from a3d.eval import evaluate as ev
from a3d.core.cameras import Cameras, canonical_cameras, orbit_cameras, save_cameras_json
from a3d.cli import main
from a3d.data.dataset import CAMERA_FILE
from a3d.perception.identity import has_identity_model
from a3d.model.config import get_config
from a3d.model.network import A3DModel
from a3d.core.rendering import render
from shared import blob_head

PORTRAIT = Path(__file__).parent / "fixtures" / "astronaut_256.jpg"
TINY = dict(image_size=32, width=64, depth=2, heads=2, decoder_width=16, avas_width=8)


@pytest.fixture(scope="module")
def model() -> A3DModel:
    torch.manual_seed(0)
    return A3DModel(get_config("tiny", **TINY)).eval()


def _ssim_numpy(x: np.ndarray, y: np.ndarray, win: int = 11, sigma: float = 1.5) -> np.ndarray:
    """SSIM written out per window position with numpy (2D window, no separable filtering)."""
    r = np.arange(win) - (win - 1) / 2
    g = np.exp(-r ** 2 / (2 * sigma ** 2))
    w = np.outer(g, g) / g.sum() ** 2
    B, C, H, W = x.shape
    out = np.zeros(B)
    for b in range(B):
        vals = []
        for c in range(C):
            for i in range(H - win + 1):
                for j in range(W - win + 1):
                    a, d = x[b, c, i:i + win, j:j + win], y[b, c, i:i + win, j:j + win]
                    ma, md = (a * w).sum(), (d * w).sum()
                    va, vd = (a * a * w).sum() - ma ** 2, (d * d * w).sum() - md ** 2
                    cov = (a * d * w).sum() - ma * md
                    num = (2 * ma * md + 1e-4) * (2 * cov + 9e-4)
                    vals.append(num / ((ma ** 2 + md ** 2 + 1e-4) * (va + vd + 9e-4)))
        out[b] = np.mean(vals)
    return out


def test_ssim_against_numpy(seed):
    rng = np.random.default_rng(seed)
    x = rng.random((2, 3, 14, 17))
    y = np.clip(x + 0.15 * rng.standard_normal(x.shape), 0, 1)
    got = ev.ssim(torch.from_numpy(x), torch.from_numpy(y)).numpy()
    np.testing.assert_allclose(got, _ssim_numpy(x, y), atol=1e-5)  # float32 against float64
    assert ev.ssim(torch.from_numpy(x).float(), torch.from_numpy(x).float()).allclose(torch.ones(2))


def test_psnr_identities(seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(3, 3, 16, 16, generator=g) * 0.8
    for delta in (0.1, 0.01):
        torch.testing.assert_close(ev.psnr(x, x + delta), torch.full((3,), -20 * np.log10(delta), dtype=torch.float32),
                                   atol=1e-3, rtol=0)
    y = torch.rand(3, 3, 16, 16, generator=g)
    torch.testing.assert_close(ev.psnr(x, y), ev.psnr(y, x))
    # halving the error adds 20·log10(2) dB
    torch.testing.assert_close(ev.psnr(x, x + (y - x) / 2), ev.psnr(x, y) + 20 * np.log10(2), atol=1e-3, rtol=0)
    assert (ev.psnr(x, x) == 100).all()


def test_view_angle_bins():
    az = ev.eval_azimuths(16)
    assert sorted(ev.yaw_bin(a) for a in az) == sorted(az)  # the synthetic azimuths are the bin centres
    assert ev.yaw_bin(0.0) == 11.25 and ev.yaw_bin(-0.1) == -11.25 and ev.yaw_bin(180.0) == -168.75
    assert ev.yaw_bin(190.0) == ev.yaw_bin(-170.0)
    assert [ev.bucket(a) for a in (0, 45, 46, 134, 135, -180, 330)] == ["front", "front", "side", "side", "back",
                                                                        "back", "front"]
    cams = orbit_cameras(5, azimuths=[0.0, 30.0, -60.0, 90.0, 179.0], elevation=20.0)
    np.testing.assert_allclose(ev._azimuths_of(cams.viewmats), [0, 30, -60, 90, 179], atol=1e-4)


def test_summarize_counts_and_means():
    m = {"psnr": torch.tensor([[10.0, 20.0, 30.0, 40.0], [12.0, 22.0, 32.0, 42.0]])}
    s = ev.summarize(m, [0.0, 100.0, -100.0, 170.0])
    assert s["all"] == {"psnr": 26.0, "count": 8}
    assert s["front"] == {"psnr": 11.0, "count": 2} and s["back"] == {"psnr": 41.0, "count": 2}
    assert s["side"]["psnr"] == 26.0
    assert set(s["per_yaw"]) == {"11.25", "101.25", "-101.25", "168.75"}
    assert s["per_yaw"]["-101.25"] == {"psnr": 31.0, "count": 2}


def test_evaluate_synthetic(model):
    es = ev.synthetic_eval_set(2, 4, 32, "cpu", seed=5, num_gaussians=4000)
    r = ev.evaluate(model, es, seed=1, chunk=1)
    assert (r["heads"], r["views"]) == (2, 4) and r["all"]["count"] == 8
    assert len(r["per_yaw"]) == 4 and all(v["count"] == 2 for v in r["per_yaw"].values())
    # one chunk or several: the same numbers (the noise of all heads is drawn at once)
    assert ev.evaluate(model, es, seed=1, chunk=2)["all"] == pytest.approx(r["all"], rel=1e-5)
    # a perfect reconstruction scores PSNR 100 / SSIM 1 / LPIPS 0: check through the metric helper
    views = es["views"].reshape(-1, 3, 32, 32)
    same = ev._image_metrics(views, views, "alex")
    assert (same["psnr"] == 100).all() and torch.allclose(same["ssim"], torch.ones(8))
    assert same["lpips"].abs().max() < 1e-6
    # the silhouette figures come with a synthetic set (it has the true alphas), per bucket
    assert es["views_alpha"].shape == (2, 4, 32, 32)
    for name in ("all", "back"):
        assert 0 <= r[name]["silhouette_iou"] <= 1 and r[name]["psnr_silhouette_right"] >= r[name]["psnr"] - 1e-4
    # the back view's grid index, per head and summarised
    grid = r["grid"]
    per_head = [h["grid_index"] for h in grid["per_head"]]
    assert len(per_head) == 2 and all(math.isfinite(v) and v > 0 for v in per_head)
    assert grid["max"] == max(per_head) and grid["mean"] == pytest.approx(sum(per_head) / 2)
    assert grid["period_at_max"] == grid["per_head"][per_head.index(max(per_head))]["grid_period"]
    # beside each head its ground truth's index (the generator's strands are axis-aligned too)
    assert es["grid_truth"].shape == (2, 2) and (es["grid_truth"][:, 1] >= 4).all()
    assert [h["truth_grid_index"] for h in grid["per_head"]] == es["grid_truth"][:, 0].tolist()
    assert r["grid_truth"]["max"] == float(es["grid_truth"][:, 0].max())


def test_silhouette_metrics():
    torch.manual_seed(0)
    gt = torch.rand(3, 3, 8, 8)
    pred = gt.clone()
    gt_alpha = torch.zeros(3, 8, 8)
    gt_alpha[:, :, :4] = 1.0  # the left half
    pred_alpha = gt_alpha.clone()
    # head 0 exact; head 1 covers 6 of 8 columns, its image wrong only there; head 2 empty against empty
    pred_alpha[1, :, 4:6] = 0.9
    pred[1, :, :, 4:6] = 1 - gt[1, :, :, 4:6]
    gt_alpha[2], pred_alpha[2] = 0.0, 0.2
    m = ev.silhouette_metrics(pred, pred_alpha, gt, gt_alpha)
    assert m["silhouette_iou"].tolist() == pytest.approx([1.0, 4 / 6, 1.0])
    # where only the outline is wrong, a right outline gives the exact image (PSNR capped at 100)
    assert m["psnr_silhouette_right"].tolist() == pytest.approx([100.0, 100.0, 100.0])
    assert ev.psnr(pred, gt)[1] < 20
    # an error inside the silhouette stays in both PSNRs
    pred[0, :, 1, 1] = 0.0 if gt[0, 0, 1, 1] > 0.5 else 1.0
    m = ev.silhouette_metrics(pred, pred_alpha, gt, gt_alpha)
    assert m["psnr_silhouette_right"][0] == pytest.approx(ev.psnr(pred, gt)[0]) and m["psnr_silhouette_right"][0] < 100


def test_evaluate_folder(model, tmp_path):
    for h in range(2):
        cams = Cameras.cat([canonical_cameras(32), orbit_cameras(3, size=32, azimuth_start=30.0)])
        rgb = render(blob_head(150, h), cams, (1.0, 1.0, 1.0)).rgb
        folder = tmp_path / f"head{h}"
        folder.mkdir()
        save_cameras_json(folder / CAMERA_FILE, cams)
        for i, im in enumerate(rgb):
            Image.fromarray((im.clamp(0, 1) * 255 + 0.5).byte().numpy()).save(folder / f"{i:03d}.png")
    (tmp_path / "head1" / "004.png").write_bytes(b"not a png")  # skipped, counted
    r = ev.evaluate_folder(model, tmp_path)
    assert r["captures"] == 2 and r["views"] == 2 * 6 - 1 and r["skipped"] == 1
    assert r["all"]["count"] == 11 and r["back"]["count"] == 4  # 180° and 150° of each head
    assert sum(v["count"] for v in r["per_yaw"].values()) == 11
    with pytest.raises(ValueError, match="not a directory"):
        ev.evaluate_folder(model, tmp_path / "head0" / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no capture"):
        ev.evaluate_folder(model, tmp_path / "empty")


def test_refine_goes_through_reconstruct(model, tmp_path):
    """--refine N: reconstruct(refine=N) where this a3d has it (the refined heads score differently),
    a clear error where it has not."""
    from a3d.api import reconstruct

    es = ev.synthetic_eval_set(1, 4, 32, "cpu", seed=5, num_gaussians=4000)
    if "refine" not in inspect.signature(reconstruct).parameters:
        with pytest.raises(ValueError, match="refine"):
            ev.run_eval(tmp_path, synthetic=True, model=model, refine=3)
        return
    plain = ev.evaluate(model, es, seed=1)["all"]
    refined = ev.evaluate(model, es, seed=1, refine=3)["all"]
    assert refined["count"] == plain["count"] == 4 and refined["psnr"] != plain["psnr"]


def test_refine_path_sees_the_eval_input():
    """The refine path hands reconstruct() an RGBA image that preprocessing composites again: what the
    network then sees must be the eval set's input itself (composited twice, the outline darkens: held-out PSNR
    with 0 refinement steps would fall about 0.4 dB below the one-step path's)."""
    from a3d.data.augment import uncomposite
    from a3d.inference.preprocess import preprocess

    es = ev.synthetic_eval_set(1, 2, 32, "cpu", seed=5, num_gaussians=4000)
    image, alpha = es["input"][0], es["canonical_alpha"][0, 0]
    assert ((alpha > 0.05) & (alpha < 0.95)).any()  # a soft outline, where compositing twice shows
    rgba = torch.cat([uncomposite(image, alpha[None]), alpha[None]])
    seen = preprocess(rgba, 32, align=False)
    assert torch.allclose(seen.image, image, atol=1e-5) and torch.equal(seen.mask, alpha)
    twice = preprocess(torch.cat([image, alpha[None]]), 32, align=False).image
    assert (twice - image).abs().max() > 1e-2  # the test would see a double composite


def test_held_out_heads_turned(model, tmp_path):
    """--synthetic-turn: the same heads turned ±yaw (alternating) and framed again by their faces
    (a3d.data.augment.turn_heads, tested in test_augment.py): the inputs change, the views' cameras do not, the
    report says so; bad turns fail."""
    plain = ev.synthetic_eval_set(2, 4, 32, "cpu", seed=5, num_gaussians=4000)
    turned = ev.synthetic_eval_set(2, 4, 32, "cpu", seed=5, num_gaussians=4000, turn=30.0)
    assert turned["input"].shape == plain["input"].shape
    assert (turned["input"] - plain["input"]).abs().mean() > 0.01  # both heads turned (+30° and −30°)
    assert (turned["input"][1] - plain["input"][1]).abs().mean() > 0.01
    assert torch.equal(turned["viewmats"], plain["viewmats"])
    assert ev.synthetic_eval_set(2, 4, 32, "cpu", seed=5, num_gaussians=4000, turn=0.0)["input"].equal(plain["input"])
    with pytest.raises(ValueError, match="turn"):
        ev.synthetic_eval_set(1, 4, 32, "cpu", seed=5, num_gaussians=4000, turn=120.0)
    rep = ev.run_eval(tmp_path, synthetic=True, model=model, heads=1, views=4, synth_gaussians=4000,
                      synthetic_turn=20.0, progress=False)
    assert rep["settings"]["synthetic_turn"] == 20.0
    assert "turned ±20° of yaw" in (tmp_path / "report.md").read_text()
    assert main(["eval", "--synthetic", "--synthetic-turn", "100", "-o", str(tmp_path / "x")]) != 0


def test_held_out_views_at_a_display_size(model):
    """view_size renders the novel views larger than the model's input (what a turntable shows); the
    same heads and inputs, and the same cameras up to the pixel scale."""
    small = ev.synthetic_eval_set(1, 4, 32, "cpu", seed=5, num_gaussians=4000)
    big = ev.synthetic_eval_set(1, 4, 32, "cpu", seed=5, num_gaussians=4000, view_size=64)
    assert big["views"].shape == (1, 4, 3, 64, 64) and big["input"].shape == (1, 3, 32, 32)
    assert torch.equal(big["input"], small["input"]) and torch.equal(big["viewmats"], small["viewmats"])
    assert torch.allclose(big["Ks"][:, :2], 2 * small["Ks"][:, :2])
    r = ev.evaluate(model, big, seed=1)
    assert r["all"]["count"] == 4 and 0 < r["all"]["psnr"] < 100


def test_cli_eval_errors(capsys, tmp_path):
    assert main(["eval", "-o", str(tmp_path)]) == 2
    assert "nothing to evaluate" in capsys.readouterr().err
    assert main(["eval", str(tmp_path / "missing.jpg"), "-o", str(tmp_path)]) == 2
    assert main(["eval", "--synthetic", "--heads", "0", "-o", str(tmp_path)]) == 2
    assert main(["eval", "--synthetic", "--synthetic-size", "8", "-o", str(tmp_path)]) == 2


@pytest.mark.skipif(not has_identity_model(), reason="face-recognition-models is not installed (pip install a3d[eval])")
def test_report_on_a_tiny_model(model, tmp_path, capsys):
    """Photos and the synthetic set on a tiny model: eval.json holds every number, report.md a table and a
    picture a photo; a photo without a face is reported on stderr and in the exit status, and the rest is
    still evaluated and written."""
    pytest.importorskip("ai_edge_litert", reason="needs ai-edge-litert: pip install a3d[preprocess]")
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "astronaut.jpg").write_bytes(PORTRAIT.read_bytes())
    Image.new("RGB", (64, 64), (200, 30, 30)).save(photos / "flat.png")  # no face
    model_dir = tmp_path / "model"
    model.save_pretrained(model_dir)
    out = tmp_path / "out"
    code = main(["eval", str(photos), "--synthetic", "--heads", "1", "--views", "4", "--synth-gaussians", "4000",
                 "--size", "96", "--model", str(model_dir), "-o", str(out), "--no-progress"])
    assert code == 2
    rep = json.loads((out / "eval.json").read_text())
    assert rep["synthetic"]["all"]["count"] == 4
    byname = {p["name"]: p for p in rep["photos"]}
    assert "error" in byname["flat"]
    a = byname["astronaut"]
    names = [ev._view_name(az, el) for az, el in ev.IDENTITY_VIEWS]
    assert list(a["distances"]) == names and all(0 < v < 3 for v in a["distances"].values())
    assert 0 < a["calibration"]["blur_sigma2"] < 0.6  # the same face, blurred, stays the same person
    sheet = Image.open(out / a["image"])
    assert sheet.size[0] == 128 * (1 + len(names))
    md = (out / "report.md").read_text()
    assert "| astronaut |" in md and f"]({a['image']})" in md and "yaw 56.25°" in md
    assert set(a["input_view"]) == {"full", "front_set"} and all(math.isfinite(v) for v in a["input_view"].values())
    assert "input view dB" in md
    assert math.isfinite(a["grid_index"]) and 4 <= a["grid_period"] <= 32
    assert f"| {a['grid_index']:.1f} ({a['grid_period']:.1f}) |" in md and "Grid index of the back view" in md
    console = capsys.readouterr()
    printed = console.out
    assert "flat.png" in console.err and "1 of 2 photos could not be evaluated" in console.err
    assert rep["failed"] == [str(photos / "flat.png")]
    assert "astronaut: identity distance" in printed and f"grid index {a['grid_index']:.1f}" in printed
    assert f"grid index mean {rep['synthetic']['grid']['mean']:.1f}" in printed and "their truth's" in printed
    sil = rep["synthetic"]["all"]["silhouette_iou"]
    assert f"silhouette IoU {sil:.3f}" in printed  # the console summary names the outline's figures too


def test_identity_skipped_without_weights(model, tmp_path, monkeypatch):
    import a3d.perception.identity as identity

    def missing():
        raise identity.IdentityModelMissing("not installed here")

    monkeypatch.setattr(identity, "model_path", missing)
    rep = ev.run_eval(tmp_path, photos=[PORTRAIT], model=model, progress=False)
    assert rep["identity_skipped"] == "not installed here" and "photos" not in rep
    assert "Identity metrics skipped" in (tmp_path / "report.md").read_text()


def test_input_view_psnr_sees_what_covers_the_photo():
    """A front set of opaque pixel-sized Gaussians of the photo's colours gives the photo back (high PSNR); a
    layer of another colour in front of it lowers the full render's figure, not the front set's."""
    from a3d.api import Avatar
    from a3d.core.gaussians import Gaussians

    S = 32
    cams = canonical_cameras(S)
    ys, xs = torch.meshgrid(torch.arange(S) + 0.5, torch.arange(S) + 0.5, indexing="ij")
    pix = torch.stack([xs, ys, torch.ones_like(xs)], -1).reshape(-1, 3)
    c2w = torch.linalg.inv(cams.viewmats[0])
    rays = pix @ torch.linalg.inv(cams.Ks[0]).T  # camera z = 1
    depth = float(cams.viewmats[0, :3, 3].norm())
    pts_front = (rays * depth) @ c2w[:3, :3].T + c2w[:3, 3]
    pts_cover = (rays * (depth - 0.3)) @ c2w[:3, :3].T + c2w[:3, 3]
    image = torch.rand(3, 1, 1) * 0.6 + 0.2 + torch.zeros(3, S, S)
    width = depth * float(torch.linalg.inv(cams.Ks[0])[0, 0])  # a pixel's width at the surface

    def layer(points, colours, opacity):
        n = len(points)
        return dict(means=points, quats=torch.tensor([1.0, 0, 0, 0]).expand(n, 4), scales=torch.full((n, 3), width),
                    opacities=torch.full((n,), opacity), colors=colours)

    front = layer(pts_front, image.reshape(3, -1).T, 0.99)
    far = [layer(pts_front + 5.0, torch.zeros(S * S, 3), 0.01) for _ in range(3)]  # three sets out of sight
    cover = layer(pts_cover, torch.zeros(S * S, 3), 0.9)
    masks = torch.zeros(4, S, S)
    masks[0, 8:24, 8:24] = 1.0

    def avatar(sets):
        g = Gaussians(**{k: torch.cat([d[k] for d in sets]) for k in sets[0]})
        return Avatar(gaussians=g, cameras=cams, input_image=image, masks=masks)

    clean = ev.input_view_psnr(avatar([front] + far))
    covered = ev.input_view_psnr(avatar([front, cover] + far[1:]))
    assert clean["full"] > 30 and clean["front_set"] > 30
    assert covered["full"] < 15 and covered["front_set"] == pytest.approx(clean["front_set"])
