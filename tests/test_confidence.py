"""Confidence per Gaussian (a3d.inference.confidence): seen by a given photo vs guessed, stored as an extra
PLY property that a3d reads back and other readers ignore, Avatar.confidence, and the demo's tint."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from a3d.core.cameras import canonical_cameras
from a3d.core.gaussians import Gaussians
from a3d.inference.confidence import gaussian_confidence, tint_guessed
from a3d.io.ply import load_confidence, load_ply, save_ply

REPO = Path(__file__).resolve().parents[1]
EXAMPLE_HEAD = REPO / "a3d" / "assets" / "example_head.ply"


def two_layers() -> Gaussians:
    """A front sheet at z = +0.3 (facing the front camera) and a hidden sheet behind it at z = -0.3."""
    xy = torch.stack(torch.meshgrid(torch.linspace(-0.3, 0.3, 20), torch.linspace(-0.3, 0.3, 20), indexing="ij"),
                     -1).reshape(-1, 2)
    n = len(xy)
    means = torch.cat([torch.cat([xy, torch.full((n, 1), 0.3)], -1), torch.cat([xy, torch.full((n, 1), -0.3)], -1)])
    return Gaussians(means, torch.tensor([1.0, 0, 0, 0]).expand(2 * n, 4).clone(), torch.full((2 * n, 3), 0.03),
                     torch.full((2 * n,), 0.99), torch.full((2 * n, 3), 0.5))


def test_front_sheet_seen_hidden_sheet_guessed():
    g = two_layers()
    cams = canonical_cameras(64)
    n = g.num_gaussians // 2
    front_only = gaussian_confidence(g, cams)  # the front photo only
    assert front_only[:n].mean() > 0.9 and front_only[n:].max() < 0.05
    with_back = gaussian_confidence(g, cams, given=torch.tensor([True, False, False, True]))
    assert with_back[n:].mean() > 0.9  # a back photo shows the back sheet
    masked = gaussian_confidence(g, cams, masks=torch.zeros(4, 64, 64))
    assert masked.max() == 0  # a matte of background everywhere: nothing of the head was shown


def test_example_head_front_seen_back_guessed():
    g = load_ply(EXAMPLE_HEAD)
    c = gaussian_confidence(g, canonical_cameras(128))
    front, back = g.means[:, 2] > 0.3, g.means[:, 2] < -0.3
    assert c[front].mean() > 0.6 and c[back].mean() < 0.05
    assert ((c >= 0) & (c <= 1)).all()


def test_confidence_property_round_trips_and_other_readers_ignore_it(tmp_path):
    plyfile = pytest.importorskip("plyfile")
    g = load_ply(EXAMPLE_HEAD)
    conf = torch.rand(g.num_gaussians)
    save_ply(g, tmp_path / "c.ply", confidence=conf)
    assert torch.allclose(load_confidence(tmp_path / "c.ply"), conf)
    assert torch.equal(load_ply(tmp_path / "c.ply").means, g.means)
    v = plyfile.PlyData.read(str(tmp_path / "c.ply"))["vertex"]  # an independent reader sees one more column
    assert v.properties[-1].name == "confidence" and np.allclose(v["confidence"], conf.numpy())
    save_ply(g, tmp_path / "n.ply")
    assert load_confidence(tmp_path / "n.ply") is None
    with pytest.raises(ValueError, match="confidence"):
        save_ply(g, tmp_path / "bad.ply", confidence=torch.rand(3))


def test_avatar_confidence_is_saved_with_the_ply(tmp_path):
    from a3d.api import Avatar

    g = load_ply(EXAMPLE_HEAD)
    avatar = Avatar(g, canonical_cameras(64), torch.zeros(3, 64, 64))
    conf = avatar.confidence
    assert conf.shape == (g.num_gaussians,) and avatar.confidence is conf  # cached
    avatar.save(tmp_path / "out", splat=False, video=False, grid=False)
    assert torch.allclose(load_confidence(tmp_path / "out" / "head.ply"), conf)


def test_tint_turns_guessed_gaussians_magenta():
    g = two_layers()
    conf = torch.cat([torch.ones(400), torch.zeros(400)])
    t = tint_guessed(g, conf)
    assert torch.equal(t.colors[:400], g.colors[:400])
    assert (t.colors[400:, 1] < 0.2).all() and (t.colors[400:, 0] > 0.8).all()


def test_demo_tints_the_3d_view(tmp_path, monkeypatch):
    pytest.importorskip("gradio", reason="the demo needs gradio")
    import a3d.api
    from a3d.io.ply import load_splat

    spec = importlib.util.spec_from_file_location("a3d_demo_app_confidence", REPO / "demo" / "app.py")
    app = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = app
    spec.loader.exec_module(app)
    monkeypatch.setattr(a3d.api, "DEFAULT_MODEL_DIR", tmp_path / "no_model_here")
    monkeypatch.setattr(app, "RESULTS_ROOT", tmp_path / "results")
    run = app.make_handler(app.ModelSlot(torch.device("cpu"), random_init=True))
    upload = {"path": str(REPO / "demo" / "examples" / "astronaut.jpg"), "orig_name": "astronaut.jpg",
              "meta": {"_type": "gradio.FileData"}}
    plain = load_splat(run(upload, 1, 10.0, tint=False, progress=lambda *a, **k: None)[2], up="+y")
    tinted = load_splat(run(upload, 1, 10.0, tint=True, progress=lambda *a, **k: None)[2], up="+y")
    magenta = lambda c: ((c[:, 0] > 0.6) & (c[:, 1] < 0.3) & (c[:, 2] > 0.45)).float().mean()  # noqa: E731
    assert magenta(tinted.colors) > magenta(plain.colors) + 0.2
