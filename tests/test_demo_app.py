"""demo/app.py without a browser: result sweeping, the no-weights page, refusing what is not an image.
(tests/test_demo_browser.py drives the whole app in Chromium.)"""
from __future__ import annotations

import importlib.util
import os
import sys
import time
from pathlib import Path

import pytest
import torch

gr = pytest.importorskip("gradio", reason="the demo needs gradio (`bash demo/ci_setup.sh` installs it)")

import a3d.api  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "demo" / "examples" / "astronaut.jpg"


@pytest.fixture(scope="module")
def app():
    spec = importlib.util.spec_from_file_location("a3d_demo_app", REPO / "demo" / "app.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # gradio looks its component classes up by module
    spec.loader.exec_module(module)
    return module


def _no_progress(*args, **kwargs):
    pass


def test_sweep_removes_only_folders_past_their_age(app, tmp_path):
    root = tmp_path / "results"
    folders = [app.new_request_folder(root, ttl_s=3600) for _ in range(3)]
    assert len(set(folders)) == 3 and all(f.parent == root for f in folders)
    (folders[0] / "head.ply").write_bytes(b"x")
    old = time.time() - 7200
    os.utime(folders[0], (old, old))
    os.utime(folders[1], (old, old))
    assert app.sweep_results(root, ttl_s=3600) == 2
    assert [p for p in root.iterdir()] == [folders[2]]
    assert app.sweep_results(tmp_path / "absent", ttl_s=3600) == 0


def test_without_weights_the_page_says_so_and_requests_are_refused(app, tmp_path, monkeypatch):
    monkeypatch.setattr(a3d.api, "DEFAULT_MODEL_DIR", tmp_path / "no_model_here")
    monkeypatch.delenv(app.RANDOM_INIT_ENV, raising=False)
    slot = app.ModelSlot(torch.device("cpu"), random_init=False)
    assert slot.status == "missing" and slot.model is None
    banner = app._banner(slot)
    assert "No trained weights are installed" in banner and "no_model_here" in banner
    with pytest.raises(gr.Error, match="no trained weights"):
        app.make_handler(slot)(_upload(EXAMPLE), 1, 10.0, progress=_no_progress)
    demo = app.build_demo("cpu")
    buttons = [c for c in demo.config["components"] if c.get("props", {}).get("value") == "Reconstruct"]
    assert len(buttons) == 1 and buttons[0]["props"]["interactive"] is False
    assert any("No trained weights" in str(c.get("props", {}).get("value")) for c in demo.config["components"])


def test_random_init_only_when_asked(app, tmp_path, monkeypatch):
    monkeypatch.setattr(a3d.api, "DEFAULT_MODEL_DIR", tmp_path / "no_model_here")
    slot = app.ModelSlot(torch.device("cpu"), random_init=True)
    assert slot.status == "random" and isinstance(slot.get(), a3d.api.A3DModel)
    assert "Test mode" in app._banner(slot)


def _upload(path: Path, name: str | None = None) -> dict:
    """The image input's raw value, as Gradio hands it to the handler (preprocess=False)."""
    return {"path": str(path), "orig_name": name or path.name, "meta": {"_type": "gradio.FileData"}}


def test_upload_that_is_not_an_image_gets_the_readable_message(app, tmp_path, monkeypatch):
    monkeypatch.setattr(a3d.api, "DEFAULT_MODEL_DIR", tmp_path / "no_model_here")
    monkeypatch.setattr(app, "RESULTS_ROOT", tmp_path / "results")
    run = app.make_handler(app.ModelSlot(torch.device("cpu"), random_init=True))
    fake = tmp_path / "upload_3f9a.png"
    fake.write_text("not pixels\n")
    with pytest.raises(gr.Error, match="not an image a3d can read") as info:
        run(_upload(fake, "holiday.png"), 1, 10.0, progress=_no_progress)
    assert "holiday.png" in info.value.message and str(tmp_path) not in info.value.message
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(gr.Error, match="not an image a3d can read"):
        run(_upload(empty), 1, 10.0, progress=_no_progress)


def test_bad_inputs_are_refused(app, tmp_path, monkeypatch):
    monkeypatch.setattr(a3d.api, "DEFAULT_MODEL_DIR", tmp_path / "no_model_here")
    run = app.make_handler(app.ModelSlot(torch.device("cpu"), random_init=True))
    with pytest.raises(gr.Error, match="Steps must be between"):
        run(_upload(EXAMPLE), 0, 10.0, progress=_no_progress)
    with pytest.raises(gr.Error, match="Elevation"):
        run(_upload(EXAMPLE), 1, 90.0, progress=_no_progress)
    with pytest.raises(gr.Error, match="must be numbers"):
        run(_upload(EXAMPLE), "many", 10.0, progress=_no_progress)
    for nothing in (None, {}, {"path": None}, "a string"):
        with pytest.raises(gr.Error, match="Upload a portrait"):
            run(nothing, 1, 10.0, progress=_no_progress)
