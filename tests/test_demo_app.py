"""demo/app.py without a browser: result sweeping, the no-weights page, refusing bad input, and the
Hugging Face Space folder (metadata, requirements, the a3d copy that make_space.sh puts beside app.py).
(tests/test_demo_browser.py drives the whole app in Chromium.)"""
from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

gr = pytest.importorskip("gradio", reason="the demo needs gradio (`bash demo/ci_setup.sh` installs it)")

import a3d.api  # noqa: E402
import a3d.model.network  # noqa: E402

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


def test_queue_bounds_concurrency_and_waiting(app, monkeypatch):
    monkeypatch.delenv("A3D_DEMO_CONCURRENCY", raising=False)
    demo = app.build_demo("cpu")
    assert demo._queue.default_concurrency_limit == 1 and demo._queue.max_size == app.QUEUE_SIZE
    (run,) = [fn for fn in demo.fns.values() if fn.name == "run"]
    assert run.concurrency_limit == "default"  # i.e. the queue's bound above
    assert demo.delete_cache[1] == app.RESULTS_TTL_S
    monkeypatch.setenv("A3D_DEMO_CONCURRENCY", "3")
    assert app.build_demo("cpu")._queue.default_concurrency_limit == 3


def test_installed_weights_are_used_and_no_banner_shown(app, tmp_path, monkeypatch):
    folder = tmp_path / "tiny"
    a3d.api.A3DModel(a3d.model.config.get_config("tiny")).save_pretrained(folder)
    monkeypatch.setattr(a3d.api, "DEFAULT_MODEL_DIR", folder)
    slot = app.ModelSlot(torch.device("cpu"), random_init=True)  # weights win over the test switch
    assert slot.status == "trained" and app._banner(slot) == ""
    assert slot.get().weights_sha256 is not None


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


def _front_matter(readme: Path) -> dict[str, str]:
    text = readme.read_text(encoding="utf-8")
    assert text.startswith("---\n"), "demo/README.md must open with the Space's YAML front matter"
    block = text[4:text.index("\n---\n", 4)]
    return {k.strip(): v.strip().strip('"') for k, v in (line.split(":", 1) for line in block.splitlines()
                                                           if ":" in line and not line.startswith(" "))}


def test_space_metadata_and_requirements_agree_with_the_repo():
    meta = _front_matter(REPO / "demo" / "README.md")
    assert meta["sdk"] == "gradio" and meta["license"] == "apache-2.0"
    assert (REPO / "demo" / meta["app_file"]).is_file()
    assert len(meta["short_description"]) <= 60  # the Hub's limit
    reqs = {}
    for line in (REPO / "demo" / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name = re.split(r"[<>=!~\[ ]", line, maxsplit=1)[0].lower()
            reqs[name] = line
    assert reqs["gradio"] == f"gradio=={meta['sdk_version']}"  # the Space's gradio is the tested one
    assert "ai-edge-litert" in reqs
    setup = (REPO / "setup.py").read_text()
    install_requires = re.search(r"install_requires=\[(.*?)\]", setup, re.S).group(1)
    for spec in re.findall(r'"([^"]+)"', install_requires):
        name = re.split(r"[<>=!~\[ ]", spec, maxsplit=1)[0].lower()
        assert name in reqs, f"demo/requirements.txt lacks {name!r}, a runtime dependency of a3d"


def test_space_folder_runs_its_own_copy_of_a3d(tmp_path):
    out = tmp_path / "space"
    subprocess.run(["bash", str(REPO / "demo" / "make_space.sh"), str(out)], check=True, capture_output=True)
    assert {"app.py", "README.md", "requirements.txt", "LICENSE", "examples", "a3d"} <= {p.name for p in out.iterdir()}
    assert (out / "examples" / "astronaut.jpg").is_file() and not list(out.rglob("*.so"))
    # As on the Space: no editable install of the repository, the package beside app.py, no extension
    # (A3D_JIT=0: here the first-use build is not wanted; tests/test_space.py runs the Space with it).
    code = ("import sys; "
            "sys.meta_path[:] = [f for f in sys.meta_path if '__editable__' not in getattr(f, '__module__', '')]; "
            "import app, a3d, a3d.core.ops; print(a3d.__file__); print(a3d.core.ops.backend('cpu', 'rasterize_fwd'))")
    r = subprocess.run([sys.executable, "-c", code], cwd=out, capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, PYTHONPATH="", A3D_JIT="0"))
    assert r.returncode == 0, r.stderr[-3000:]
    where, backend = r.stdout.split()[-2:]
    assert Path(where).parent == out / "a3d" and backend == "torch"
    assert not (out / "app.pyi").exists()  # importing the app writes nothing beside it


def test_reconstruction_shows_and_offers_the_mesh(app, tmp_path, monkeypatch):
    import trimesh  # a runtime dependency of a3d: missing is a broken install, not a skip
    monkeypatch.setattr(a3d.api, "DEFAULT_MODEL_DIR", tmp_path / "no_model_here")
    monkeypatch.setattr(app, "RESULTS_ROOT", tmp_path / "results")
    run = app.make_handler(app.ModelSlot(torch.device("cpu"), random_init=True))
    inp, video, splat, glb, grid, files, stages, summary = run(_upload(EXAMPLE), 1, 10.0, progress=_no_progress)
    assert "extract mesh" in [name for name, _ in stages]
    if glb is None:  # random weights may leave nothing solid; the page says so and the rest still shows
        assert "No mesh" in summary
    else:
        assert glb.endswith("head.glb") and glb in files and "faces" in summary
        mesh = trimesh.load(glb, force="mesh", process=False)
        mesh.merge_vertices(merge_tex=True, merge_norm=True)  # textured: a vertex per face corner in the file
        assert len(mesh.faces) > 0 and mesh.is_watertight
    assert Path(splat).is_file() and any(f.endswith("head.splat") for f in files) and Path(video).is_file()
    demo = app.build_demo("cpu")
    assert any(c.get("props", {}).get("elem_id") == "mesh-view" for c in demo.config["components"])


def test_page_notes_a_turned_face_and_several_faces(app):
    """The summary's notes come from the request's own metadata: a face turned past TURNED_FACE_DEG and a
    photo of several faces are said; a frontal single face says nothing. And on a real turned photo (the
    cameraman, about 67°) the metadata carries what the note reads."""
    from a3d.inference.preprocess import TURNED_FACE_DEG

    def meta(yaw, faces=1):
        return {"preprocess": {"face": {"yaw_deg": yaw}, "faces_found": faces}}

    assert app.photo_notes(meta(0.0)) == "" and app.photo_notes(meta(-TURNED_FACE_DEG + 1)) == ""
    assert app.photo_notes({"preprocess": {"face": None, "faces_found": 0}}) == ""  # preprocess=False
    turned = app.photo_notes(meta(-(TURNED_FACE_DEG + 10)))
    assert f"turned about {TURNED_FACE_DEG + 10:.0f}°" in turned and "holds" not in turned
    assert "3 faces" in app.photo_notes(meta(0.0, faces=3))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pre = a3d.inference.preprocess.preprocess(REPO / "examples" / "photos" / "cameraman.jpg", 128)
    assert "turned about" in app.photo_notes({"preprocess": {"face": pre.face.to_dict(), "faces_found": pre.faces}})


def test_several_faces_are_numbered_on_the_photo_for_the_user_to_pick(app, tmp_path):
    """Two plausible faces: the preview shows the photo with numbered boxes and the radio offers both (value =
    the library's face index); one face or no upload: both stay hidden; the handler passes the pick on."""
    pytest.importorskip("ai_edge_litert", reason="needs ai-edge-litert")
    import numpy as np
    from PIL import Image

    big = Image.open(REPO / "tests" / "fixtures" / "astronaut_256.jpg").convert("RGB")
    canvas = Image.new("RGB", (256 + 180, 256), (255, 255, 255))
    canvas.paste(big, (0, 0))
    canvas.paste(big.resize((154, 154), Image.LANCZOS), (270, 60))
    canvas.save(tmp_path / "two.png")
    view, pick = app.numbered_faces({"path": str(tmp_path / "two.png")})
    assert view["visible"] and pick["visible"]
    assert [value for _, value in pick["choices"]] == [0, 1] and pick["value"] == 0
    shown = np.asarray(view["value"], np.int16)
    assert shown.shape[:2] == (256, 436)
    assert (np.abs(shown - np.asarray(canvas, np.int16)).sum(-1) > 60).mean() > 0.005  # the boxes are drawn
    for payload in ({"path": str(EXAMPLE)}, None):
        view, pick = app.numbered_faces(payload)
        assert not view["visible"] and not pick["visible"]


def test_animate_tab_makes_a_video_from_a_preset(app, tmp_path, monkeypatch):
    monkeypatch.setattr(a3d.api, "DEFAULT_MODEL_DIR", tmp_path / "no_model_here")
    monkeypatch.setattr(app, "RESULTS_ROOT", tmp_path / "results")
    monkeypatch.setitem(app.ANIMATE_SETTINGS, "cpu", {"frames": 4, "size": 64, "clip_s": 1.0})
    run = app.make_animate_handler(app.ModelSlot(torch.device("cpu"), random_init=True))
    video, files, summary = run(_upload(EXAMPLE), "smile", None, progress=_no_progress)
    assert Path(video).is_file() and video.endswith("smile.mp4") and files == [] and "smile" in summary
    with pytest.raises(gr.Error):
        run(None, "smile", None, progress=_no_progress)
    demo = app.build_demo("cpu")
    assert any(c.get("props", {}).get("elem_id") == "animated" for c in demo.config["components"])
