"""Nothing lost, nothing silent (docs/errors.md): the writing rule under failures and signals, one table of
limits for the API and the CLI, ``a3d eval`` failing loudly, errors that name their object, the multi-view
sanity warnings, and a bounded property test for each of these families.

The interruption tests run a writer in a child Python (``sys.executable -c``), wait until it is mid-write,
send it SIGINT or SIGTERM (or SIGKILL) and check that the file that was at the target is byte for byte what
it was, that no temporary is left and that no encoder outlives it.
"""
import argparse
import math
import os
import select
import signal
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import a3d
from a3d import limits
from a3d.cli import build_parser, main
from a3d.core.cameras import canonical_cameras
from a3d.core.files import atomic_path, atomic_write
from a3d.errors import EXIT_INPUT, InputError
from a3d.inference.preprocess import Preprocessed
from a3d.inference.refinement import RefineSettings, refine_gaussians
from tests.shared import blob_head

ROOT = Path(__file__).resolve().parents[1]
OLD = b"the complete file that was here before\n"
LINUX = sys.platform.startswith("linux")


def _left_behind(folder: Path, target: str) -> list[str]:
    return sorted(n for n in os.listdir(folder) if n != target)


# ---- 1. the writing rule ----------------------------------------------------------------------------------

def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "head.ply"
    target.write_bytes(OLD)
    os.chmod(target, 0o640)
    for opener in (lambda: atomic_write(target), lambda: atomic_path(target)):
        with pytest.raises(OSError, match="disk full"):
            with opener() as f:
                if not isinstance(f, str):
                    f.write(b"half a file")
                raise OSError("disk full")
        assert target.read_bytes() == OLD and _left_behind(tmp_path, "head.ply") == []
    with atomic_write(target) as f:
        f.write(b"new")
    assert target.read_bytes() == b"new" and (target.stat().st_mode & 0o777) == 0o640  # its permissions kept
    assert _left_behind(tmp_path, "head.ply") == []


def test_two_writers_of_one_target_never_share_a_temporary(tmp_path):
    target = tmp_path / "orbit.gif"
    with atomic_path(target) as a, atomic_path(target) as b:
        assert a != b and Path(a).parent == tmp_path and a.endswith(".gif") and Path(a).name.startswith(".")
        Path(a).write_bytes(b"a")
        Path(b).write_bytes(b"b")
    assert target.read_bytes() == b"a"  # the outer block ends last
    assert _left_behind(tmp_path, "orbit.gif") == []


def test_a_folder_at_the_target_is_refused_before_anything_is_written(tmp_path):
    (tmp_path / "x.glb").mkdir()
    with pytest.raises(InputError, match="folder"):
        with atomic_write(tmp_path / "x.glb"):
            pass
    assert os.listdir(tmp_path) == ["x.glb"] and os.listdir(tmp_path / "x.glb") == []


# Each writer, in a child process: ``stall()`` is where the test interrupts it.
_PRELUDE = """
import os, sys, time, torch
import a3d
import a3d.core.files as files
def stall(*_):
    print("ready", flush=True)
    time.sleep(60)
files._commit = stall  # the complete temporary, about to be moved into place
def head():
    from tests.shared import blob_head
    return blob_head(200, 0)
T = sys.argv[1]
"""
_WRITERS = {
    "ply": "a3d.save_ply(head(), T)",
    "splat": "from a3d.io.ply import save_splat; save_splat(head(), T)",
    "json": "from a3d.core.cameras import orbit_cameras, save_cameras_json; save_cameras_json(T, orbit_cameras(3))",
    "glb": ("from a3d.io.mesh import Mesh; import numpy as np; "
            "m = Mesh(np.eye(3, dtype=np.float32), np.array([[0, 1, 2]]), np.full((3, 3), .5, np.float32)); "
            "m.save(T)"),
    "pt": "from a3d.train.checkpoint import save_checkpoint; save_checkpoint({'w': torch.ones(1000)}, T)",
    "obj": ("from a3d.io.mesh import Mesh; import numpy as np; "  # three files, moved into place together
            "m = Mesh(np.eye(3, dtype=np.float32), np.array([[0, 1, 2]]), np.full((3, 3), .5, np.float32)); "
            "m.save(T)"),
    "spz": "from a3d.io.spz import save_spz; save_spz(head(), T)",
    "sog": "from a3d.io.sog import save_sog; save_sog(head(), T)",
    "compressed.ply": "from a3d.io.compressed_ply import save_compressed_ply; save_compressed_ply(head(), T)",
    "png": "from a3d.data.dataset import _write_png; from PIL import Image; _write_png(Image.new('RGB', (8, 8)), T)",
    # videos: interrupted while frames are still going to the encoder
    "mp4": ("from a3d.io.video import encode_frames; import numpy as np\n"
            "def frames():\n"
            "    for i in range(10_000):\n"
            "        if i == 5:\n"
            "            pids = [c.pid for c in files._live_children.values()]\n"
            "            print('ready', *pids, flush=True)\n"
            "        time.sleep(0.02)\n"
            "        yield np.full((32, 32, 3), i % 255, np.uint8)\n"
            "encode_frames(frames(), T, fps=10)"),
}
_WRITERS["webm"] = _WRITERS["mp4"]
_WRITERS["gif"] = _WRITERS["mp4"]


def _run_and_interrupt(tmp_path: Path, kind: str, sig: int) -> tuple[int, list[int]]:
    """Start the ``kind`` writer on tmp_path/target.<kind> (holding OLD), signal it when it says ready; returns
    (its exit status, the pids of its encoders)."""
    target = tmp_path / f"target.{kind}"
    target.write_bytes(OLD)
    child = subprocess.Popen([sys.executable, "-c", _PRELUDE + _WRITERS[kind], str(target)], cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        ready, _, _ = select.select([child.stdout], [], [], 60)
        assert ready, f"the {kind} writer never got going"
        line = child.stdout.readline().decode().split()
        assert line and line[0] == "ready", (line, child.stderr.read().decode()[-2000:])
        child.send_signal(sig)
        status = child.wait(30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    return status, [int(p) for p in line[1:]]


def _gone(pid: int, within: float = 5.0) -> bool:
    """Whether process ``pid`` has ended (a zombie waiting for its new parent counts as ended)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.05)
    return False


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
@pytest.mark.parametrize("kind,sig", [("ply", signal.SIGTERM), ("splat", signal.SIGINT), ("json", signal.SIGTERM),
                                      ("glb", signal.SIGINT), ("pt", signal.SIGTERM), ("png", signal.SIGINT),
                                      ("obj", signal.SIGINT), ("spz", signal.SIGTERM), ("sog", signal.SIGINT),
                                      ("compressed.ply", signal.SIGTERM),
                                      ("mp4", signal.SIGINT), ("mp4", signal.SIGTERM), ("webm", signal.SIGTERM),
                                      ("gif", signal.SIGINT)])
def test_an_interrupted_writer_leaves_the_old_file_and_no_temporary(tmp_path, kind, sig):
    status, encoders = _run_and_interrupt(tmp_path, kind, sig)
    assert status == -sig, f"the writer should end by its signal, not {status}"
    assert (tmp_path / f"target.{kind}").read_bytes() == OLD
    assert _left_behind(tmp_path, f"target.{kind}") == []
    if kind in ("mp4", "webm"):
        assert encoders and all(_gone(p) for p in encoders), "the encoder outlived the writer"


@pytest.mark.skipif(not LINUX, reason="the encoder's death with its parent is prctl(PR_SET_PDEATHSIG), Linux")
def test_an_encoder_dies_with_a_killed_writer(tmp_path):
    status, encoders = _run_and_interrupt(tmp_path, "mp4", signal.SIGKILL)
    assert status == -signal.SIGKILL and encoders and all(_gone(p) for p in encoders)
    assert (tmp_path / "target.mp4").read_bytes() == OLD
    # what no program can clean after kill -9: its hidden temporary (never anything under the real name)
    assert all(n.startswith(".target.") for n in _left_behind(tmp_path, "target.mp4"))


def test_refused_commands_leave_the_file_at_the_target(tmp_path, capsys):
    ply = tmp_path / "head.ply"
    a3d.save_ply(blob_head(200, 0), ply)
    gif = tmp_path / "orbit.gif"
    gif.write_bytes(OLD)
    for bad in (["--elevation", "inf"], ["--background", "nan", "nan", "nan"], ["--frames", "0"]):
        assert main(["render", str(ply), "-o", str(gif), *bad]) == EXIT_INPUT
        assert gif.read_bytes() == OLD
        lines = capsys.readouterr().err.strip().splitlines()  # docs/errors.md: one line, naming the flag
        assert len(lines) == 1 and lines[0].startswith(f"a3d render: error: argument {bad[0]}: expected"), lines
    (tmp_path / "x.glb").mkdir()
    assert main(["mesh", str(ply), "-o", str(tmp_path / "x.glb")]) == EXIT_INPUT
    assert "folder" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["head.ply", "orbit.gif", "x.glb"]


def test_a_failing_frame_source_leaves_no_video(tmp_path):
    from a3d.io.video import encode_frames

    def frames():
        yield np.zeros((16, 16, 3), np.uint8)
        yield np.zeros((16, 16, 3), np.uint8)
        raise RuntimeError("the renderer failed")

    for ext in (".mp4", ".gif"):
        target = tmp_path / f"o{ext}"
        target.write_bytes(OLD)
        with pytest.raises(RuntimeError, match="renderer"):
            encode_frames(frames(), target)
        assert target.read_bytes() == OLD
    with pytest.raises(InputError, match="frame 1"):
        encode_frames([np.zeros((16, 16, 3), np.uint8), np.zeros((8, 8, 3), np.uint8)], tmp_path / "o.mp4")
    assert sorted(os.listdir(tmp_path)) == ["o.gif", "o.mp4"]


# ---- 2. one table of limits -------------------------------------------------------------------------------

# (command, the flag's arguments before its value, quantity, a call of the API the command uses with the value)
_G = blob_head(200, 0)


def _api_eval(name):
    from a3d.eval.evaluate import run_eval
    return lambda v, tmp: run_eval(tmp / "eval", synthetic=True, **{name: v})


_PAIRS = [
    ("reconstruct", ["x.jpg", "-o", "o", "--seed"], "seed", lambda v, t: a3d.reconstruct_many(["x.jpg"], seed=v)),
    ("reconstruct", ["x.jpg", "-o", "o", "--steps"], "denoise_steps",
     lambda v, t: a3d.reconstruct_many(["x.jpg"], steps=v)),
    ("reconstruct", ["x.jpg", "-o", "o", "--batch-size"], "batch_size",
     lambda v, t: a3d.reconstruct_many(["x.jpg"], batch_size=v)),
    ("reconstruct", ["x.jpg", "-o", "o", "--face"], "face_index", lambda v, t: a3d.reconstruct_many(["x.jpg"], face=v)),
    ("reconstruct", ["x.jpg", "-o", "o", "--refine"], "refine_steps",
     lambda v, t: a3d.reconstruct_many(["x.jpg"], refine=v)),
    ("render", ["h.ply", "--frames"], "video_frames", lambda v, t: a3d.orbit_video(_G, t / "o.gif", frames=v)),
    ("render", ["h.ply", "--fps"], "video_fps", lambda v, t: a3d.orbit_video(_G, t / "o.gif", fps=v)),
    ("render", ["h.ply", "--size"], "video_size", lambda v, t: a3d.orbit_video(_G, t / "o.gif", size=v)),
    ("render", ["h.ply", "--elevation"], "elevation", lambda v, t: a3d.orbit_video(_G, t / "o.gif", elevation=v)),
    ("mesh", ["h.ply", "--resolution"], "mesh_resolution", lambda v, t: _extract(resolution=v)),
    ("mesh", ["h.ply", "--faces"], "mesh_faces", lambda v, t: _extract(faces=v)),
    ("mesh", ["h.ply", "--views"], "mesh_views", lambda v, t: _extract(views=v)),
    ("mesh", ["h.ply", "--texture-size"], "texture_size", lambda v, t: _extract(texture_size=v)),
    ("eval", ["--synthetic", "--heads"], "eval_heads", _api_eval("heads")),
    ("eval", ["--synthetic", "--views"], "eval_views", _api_eval("views")),
    ("eval", ["--synthetic", "--size"], "eval_size", _api_eval("size")),
    ("eval", ["--synthetic", "--synthetic-size"], "eval_size", _api_eval("synthetic_size")),
    ("eval", ["--synthetic", "--synth-gaussians"], "synth_gaussians", _api_eval("synth_gaussians")),
    ("eval", ["--synthetic", "--synthetic-seed"], "seed", _api_eval("synthetic_seed")),
    ("eval", ["--synthetic", "--seed"], "seed", _api_eval("seed")),
    ("eval", ["--synthetic", "--max-captures"], "max_captures", _api_eval("max_captures")),
    ("eval", ["--synthetic", "--synthetic-turn"], "synthetic_turn", _api_eval("synthetic_turn")),
    ("eval", ["--synthetic", "--refine"], "refine_steps", _api_eval("refine")),
    ("train", ["--seed"], "seed", lambda v, t: a3d.train.config.TrainConfig(seed=v)),
    ("synth", ["--out", "o", "--heads"], "synth_heads", lambda v, t: _synth(t, num_heads=v)),
    ("synth", ["--out", "o", "--views"], "synth_views", lambda v, t: _synth(t, views=v)),
    ("synth", ["--out", "o", "--size"], "synth_size", lambda v, t: _synth(t, size=v)),
    ("synth", ["--out", "o", "--seed"], "seed", lambda v, t: _synth(t, seed=v)),
    ("synth", ["--out", "o", "--gaussians"], "synth_gaussians", lambda v, t: _synth(t, num_gaussians=v)),
    ("synth", ["--out", "o", "--batch"], "synth_batch", lambda v, t: _synth(t, batch=v)),
]


def _synth(tmp: Path, **kw):
    from a3d.data.dataset import export_dataset
    return export_dataset(tmp / "o.gif", **{"num_heads": 1, **kw})  # a name the final check sees untouched


def _extract(**kw):
    from a3d.io.mesh import extract
    return extract(_G, **kw)


def _outside(quantity: str) -> list:
    lim = limits.LIMITS[quantity]
    step = 1 if lim.kind is int else 1e-3 * max(1.0, abs(lim.hi - lim.lo))
    out = [lim.lo - step, lim.hi + step]
    return out + ([math.nan, math.inf] if lim.kind is float else [])


def _cli_accepts(command: str, argv: list[str]) -> bool:
    try:
        build_parser(command).parse_args([command, *argv])
        return True
    except SystemExit:
        return False


@pytest.mark.parametrize("command,flag,quantity,api", _PAIRS, ids=[f"{c} {f[-1]}" for c, f, _, _ in _PAIRS])
def test_the_cli_and_the_api_refuse_the_same_values(command, flag, quantity, api, tmp_path, capsys):
    import a3d.train.config  # noqa: F401  (the train row's API)

    lim = limits.LIMITS[quantity]
    for v in (lim.lo, lim.hi):  # both ends are in range, for both
        assert limits.check(quantity, lim.kind(v)) == v and _cli_accepts(command, [*flag, str(lim.kind(v))])
    name = flag[-1].lstrip("-").replace("-", "_")
    for v in _outside(quantity):
        assert not _cli_accepts(command, [*flag, str(v)]), f"{command} {flag[-1]} {v} was accepted"
        assert "error: argument" in capsys.readouterr().err
        with pytest.raises(InputError) as e:
            api(v, tmp_path)
        assert name.split("_")[-1] in str(e.value), f"the API's error does not name its argument: {e.value}"
    assert not (tmp_path / "eval").exists() and not (tmp_path / "o.gif").exists()  # refused before any work


def test_refine_without_a_number_is_the_default_and_minus_one_is_refused(capsys):
    p = build_parser("reconstruct")
    assert p.parse_args(["reconstruct", "x.jpg", "-o", "o", "--refine"]).refine is True
    assert p.parse_args(["reconstruct", "x.jpg", "-o", "o", "--refine", "7"]).refine == 7
    assert main(["reconstruct", "x.jpg", "-o", "o", "--refine", "-1"]) == EXIT_INPUT
    assert "argument --refine: expected an int in [0, 10000], got -1" in capsys.readouterr().err


def test_settings_changed_after_construction_are_checked_where_used():
    s = RefineSettings(steps=2)
    s.lr = math.nan
    g = blob_head(50, 0)
    cams = canonical_cameras(16)
    with pytest.raises(InputError, match="RefineSettings.lr"):
        refine_gaussians(g, cams, torch.rand(4, 3, 16, 16), torch.tensor([True, False, False, False]), settings=s)
    s.lr, s.steps = 0.1, -3
    with pytest.raises(InputError, match="RefineSettings.steps"):
        a3d.inference.refinement.settings_from(s)


# ---- 3. a3d eval fails loudly -----------------------------------------------------------------------------

def test_eval_refuses_bad_arguments_before_any_work(tmp_path, capsys):
    from a3d.eval.evaluate import run_eval

    assert main(["eval", "--synthetic", "--refine", "100000", "-o", str(tmp_path / "a")]) == EXIT_INPUT
    assert main(["eval", "--data", str(tmp_path / "missing"), "-o", str(tmp_path / "b")]) == EXIT_INPUT
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="out_dir"):
        run_eval(tmp_path / "file", synthetic=True)
    assert sorted(os.listdir(tmp_path)) == ["file"]
    assert "argument --refine: expected an int in [0, 10000], got 100000" in capsys.readouterr().err


# ---- 4. errors name their object --------------------------------------------------------------------------

def test_errors_name_the_view_the_file_and_the_field(tmp_path, capsys):
    from a3d.api import _prepare
    from a3d.io.mesh import extract

    front = np.full((64, 64, 3), 0.5, np.float32)
    with pytest.raises(InputError, match="'front', 3"):
        _prepare({"front": front, 3: front}, 32, False, None, "head")
    with pytest.raises(InputError, match=r"the left view \(.*nothing.png\)"):
        _prepare({"front": front, "left": str(tmp_path / "nothing.png")}, 32, False, None, "head")
    assert main(["reconstruct", "--view", "front=", "-o", str(tmp_path / "o")]) == EXIT_INPUT
    assert "no file after '='" in capsys.readouterr().err
    avatar = a3d.Avatar(blob_head(50, 0), canonical_cameras(16), None)
    with pytest.raises(InputError, match="no photo"):
        a3d.refine(avatar)
    nan = blob_head(50, 0)
    nan.means[3] = math.nan
    with pytest.raises(InputError, match="gaussians: means"):
        extract(nan, resolution=32, views=8)


# ---- 5. multi-view sanity ---------------------------------------------------------------------------------

def _rgba(radius: float, seed: int) -> np.ndarray:
    """A 64² RGBA photo: noise, opaque inside a disc of ``radius`` (fraction of the side)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:64, :64] / 64 - 0.5
    alpha = (np.hypot(yy, xx) < radius).astype(np.float32)
    return np.concatenate([rng.random((64, 64, 3), dtype=np.float32), alpha[..., None]], -1)


def test_multi_view_warnings_name_the_view_and_leave_it_out():
    from a3d.api import _prepare

    front, side = _rgba(0.35, 0), _rgba(0.33, 1)
    cases = [({"front": front, "left": front.copy(), "right": side}, "left", "same image as the front view"),
             ({"front": front, "back": _rgba(0.05, 2), "right": side}, "back", "little or no head")]
    for views, bad, why in cases:
        with pytest.warns(UserWarning, match=f"the {bad} view .*{why}.*leaves this view out"):
            _, _, _, given, _ = _prepare(views, 32, False, None, "head")
        kept = [v for v, ok in zip(("front", "left", "right", "back"), given.tolist()) if ok]
        assert kept == [v for v in ("front", "left", "right", "back") if v in views and v != bad]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # distinct photos of one head: not a word
        assert _prepare({"front": front, "right": side}, 32, False, None, "head")[3].tolist() == [1, 0, 1, 0]


def test_a_side_view_of_another_person_is_left_out(monkeypatch):
    from a3d.inference import view_checks

    def framed(radius):
        return Preprocessed(torch.zeros(3, 32, 32), torch.from_numpy(_rgba(radius, 0)[::2, ::2, 3].copy()), "x", None,
                            0.0)

    views = {"front": "front.jpg", "left": "someone_else.jpg", "right": "turned.jpg"}
    distances = {"someone_else.jpg": 0.95, "turned.jpg": 0.5}
    monkeypatch.setattr(view_checks, "side_face_distance", lambda image, front, size: distances[image])
    with pytest.warns(UserWarning, match=r"the left view \(someone_else.jpg\) shows a face that is not the front"):
        out = view_checks.unusable_views(views, {v: framed(0.35) for v in views}, 32)
    assert list(out) == ["left"]
    assert view_checks.unusable_views(views, {v: framed(0.35) for v in views}, 32, faces=False) == {}


def test_the_face_descriptor_keeps_the_same_person():
    from a3d.perception.identity import has_identity_model

    if not has_identity_model():
        pytest.skip("face-recognition-models is not installed (pip install a3d[eval])")
    pytest.importorskip("ai_edge_litert", reason="needs ai-edge-litert: pip install a3d[preprocess]")
    from PIL import Image

    from a3d.inference.preprocess import preprocess
    from a3d.inference.view_checks import DIFFERENT_PERSON_DISTANCE, side_face_distance

    photo = Image.open(ROOT / "tests" / "fixtures" / "astronaut_256.jpg").convert("RGB")
    front = preprocess(photo, 64)
    mirrored = side_face_distance(photo.transpose(Image.FLIP_LEFT_RIGHT), front, 64)
    assert mirrored is not None and mirrored < DIFFERENT_PERSON_DISTANCE
    assert side_face_distance(Image.new("RGB", (128, 128), (90, 120, 200)), front, 64) is None  # no face: unknown


# ---- 6. properties over random inputs, one family each (bounded: a fixed number of cases) -------------------

CASES = int(os.environ.get("A3D_FUZZ_CASES", "200"))


def test_property_a_write_is_all_or_nothing(tmp_path, seed):
    """Writes that fail at a random chunk (or not at all) leave the old file or the whole new one, never a part."""
    rng = np.random.default_rng(seed)
    target = tmp_path / "f.bin"
    target.write_bytes(OLD)
    for case in range(CASES):
        before = target.read_bytes()
        chunks = [rng.bytes(int(rng.integers(0, 300))) for _ in range(int(rng.integers(1, 6)))]
        fail_at = int(rng.integers(0, len(chunks) + 1))  # == len(chunks): no failure
        try:
            with atomic_write(target) as f:
                for i, c in enumerate(chunks):
                    if i == fail_at:
                        raise KeyboardInterrupt if case % 2 else OSError("no space left")
                    f.write(c)
        except (OSError, KeyboardInterrupt):
            assert target.read_bytes() == before, f"case {case}"
        else:
            assert target.read_bytes() == b"".join(chunks), f"case {case}"
        assert os.listdir(tmp_path) == ["f.bin"], f"case {case}"


def test_property_every_limit_agrees_with_the_cli(seed):
    """Random values of every kind for every quantity: the API's check and the CLI's type agree, and a
    refusal is always an InputError naming the argument."""
    rng = np.random.default_rng(seed)
    odd = [math.nan, math.inf, -math.inf, True, None, "3", [1], 1e308, -0.0, 2**70]
    for case in range(CASES):
        quantity = list(limits.LIMITS)[case % len(limits.LIMITS)]
        lim = limits.LIMITS[quantity]
        span = (lim.hi - lim.lo) if lim.hi is not None else 1e6
        value = odd[int(rng.integers(len(odd)))] if rng.random() < 0.3 else \
            lim.kind(lim.lo + span * float(rng.uniform(-0.2, 1.2)))
        try:
            ok = limits.check(quantity, value, "x") == value
        except InputError as e:
            ok = False
            assert str(e).startswith("x: expected"), (quantity, value, e)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                parsed, cli_ok = limits.arg(quantity)(repr(value)), True
            except argparse.ArgumentTypeError:
                cli_ok = False
            assert cli_ok == ok, (quantity, value)
            assert not cli_ok or parsed == value, (quantity, value, parsed)


def test_property_view_dicts_are_refused_with_a3ds_error(seed):
    """Random keys (of any type) and values: an InputError naming the keys, never a TypeError."""
    from a3d.api import _prepare

    rng = np.random.default_rng(seed)
    keys = ["front", "left", "right", "back", "Front", "", 0, 1.5, None, ("front",), b"left", "top"]
    photo = np.full((64, 64, 3), 0.5, np.float32)
    for case in range(CASES // 4):
        chosen = [keys[i] for i in rng.choice(len(keys), int(rng.integers(0, 5)), replace=False)]
        views = {k: photo for k in chosen}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # one array as several views: the same-image warning
                _prepare(views, 16, False, None, "head")
        except InputError as e:
            assert "head: expected photos keyed by" in str(e)
            assert not ("front" in chosen and set(chosen) <= {"front", "left", "right", "back"}), case
        else:
            assert "front" in chosen and set(chosen) <= {"front", "left", "right", "back"}, case


def test_property_refine_settings_stay_in_range(seed):
    """Any field of RefineSettings set to a random value: validate() passes only values in the table's range."""
    import dataclasses

    rng = np.random.default_rng(seed)
    fields = [f.name for f in dataclasses.fields(RefineSettings)]
    values = [math.nan, math.inf, -1, 0, 0.5, 1, 3, 1e9, True, "x", None, 10_001]
    for case in range(CASES):
        s = RefineSettings()
        name, value = fields[case % len(fields)], values[int(rng.integers(len(values)))]
        setattr(s, name, value)
        try:
            s.validate()
        except InputError as e:
            assert f"RefineSettings.{name}" in str(e)
        else:
            assert isinstance(value, (int, float)) and math.isfinite(value) and value >= 0, (name, value)


def test_signal_handlers_are_restored_after_a_write(tmp_path):
    before = signal.getsignal(signal.SIGTERM)
    with atomic_write(tmp_path / "a") as f:
        f.write(b"x")
        if threading.current_thread() is threading.main_thread() and before is signal.SIG_DFL:
            assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL  # the cleanup handler, while writing
    assert signal.getsignal(signal.SIGTERM) is before


def test_docs_errors_md_lists_every_limit_as_the_table_has_it():
    text = (ROOT / "docs" / "errors.md").read_text()
    for quantity, lim in limits.LIMITS.items():
        lo, hi = (f"{lim.lo:,}", f"{lim.hi:,}") if lim.kind is int else (f"{lim.lo:g}", f"{lim.hi:g}")
        assert f"| `{quantity}` | {lim.kind.__name__} in [{lo}, {hi}] |" in text, quantity


def test_a_failed_model_save_leaves_the_folder_as_it_was(tmp_path, monkeypatch):
    import safetensors.torch

    from a3d.model.config import get_config
    from a3d.model.network import A3DModel

    small = dict(image_size=16, patch_size=8, width=32, depth=1, heads=2, decoder_width=8, avas_width=8)
    A3DModel(get_config("tiny", **small)).save_pretrained(tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert {"config.json", "model.safetensors"} <= set(before)

    def full_disk(state, path, metadata=None):
        Path(path).write_bytes(b"partial")
        raise OSError("no space left on device")

    monkeypatch.setattr(safetensors.torch, "save_file", full_disk)
    with pytest.raises(OSError, match="no space"):
        A3DModel(get_config("tiny", **{**small, "width": 64})).save_pretrained(tmp_path)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # config.json too, and no temporary


def test_property_eval_refuses_any_bad_argument_before_work(tmp_path, seed):
    """One random argument of run_eval out of its range (or of the wrong type): an InputError naming it, and no
    output folder."""
    from a3d.eval.evaluate import run_eval

    rng = np.random.default_rng(seed)
    args = {"heads": "eval_heads", "views": "eval_views", "size": "eval_size", "synthetic_size": "eval_size",
            "synth_gaussians": "synth_gaussians", "seed": "seed", "synthetic_seed": "seed",
            "max_captures": "max_captures", "synthetic_turn": "synthetic_turn", "refine": "refine_steps"}
    for case in range(CASES // 4):
        name = list(args)[case % len(args)]
        bad = _outside(args[name]) + ["3", 2.5 if limits.LIMITS[args[name]].kind is int else "x"]
        bad += [] if name == "synthetic_size" else [None]  # None is synthetic_size's "the model's size"
        value = bad[int(rng.integers(len(bad)))]
        with pytest.raises(InputError, match=name.split("_")[-1]):
            run_eval(tmp_path / "out", synthetic=True, **{name: value})
        assert not (tmp_path / "out").exists()


def test_property_repeated_photos_are_left_out_and_the_others_kept(seed):
    """Views drawn at random from a few distinct photos: every view repeating an earlier one is warned about
    and left out, every first occurrence kept."""
    from a3d.api import _prepare

    rng = np.random.default_rng(seed)
    photos = [_rgba(0.3 + 0.02 * i, i) for i in range(3)]
    names = ["front", "left", "right", "back"]
    for case in range(12):
        chosen = [names[0]] + [n for n in names[1:] if rng.random() < 0.7]
        which = {n: int(rng.integers(len(photos))) for n in chosen}
        firsts = {n for n in chosen if which[n] not in [which[m] for m in chosen[:chosen.index(n)]]}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            given = _prepare({n: photos[which[n]] for n in chosen}, 32, False, None, "head")[3].tolist()
        assert {n for n, ok in zip(names, given) if ok} == firsts, case
        assert len([w for w in caught if "same image" in str(w.message)]) == len(chosen) - len(firsts), case


def test_cameras_with_nan_are_refused_at_the_api_and_never_written(tmp_path):
    from a3d.core.cameras import save_cameras_json

    cams = canonical_cameras(16)
    cams.viewmats[1, 0, 3] = math.nan
    target = tmp_path / "cameras.json"
    target.write_bytes(OLD)
    with pytest.raises(InputError, match="NaN"):
        save_cameras_json(target, cams)
    assert target.read_bytes() == OLD and os.listdir(tmp_path) == ["cameras.json"]
    avatar = a3d.Avatar(blob_head(50, 0), canonical_cameras(16), torch.rand(3, 16, 16))
    with pytest.raises(InputError, match="cameras"):
        avatar.render(cams)


def test_a_side_photo_without_a_person_is_left_out_with_a_warning(monkeypatch):
    import a3d.api as api
    from a3d.inference import view_checks
    from a3d.inference.preprocess import EmptyMatteError

    def framed(image, size, *args, **kwargs):
        if image == "mug.jpg":
            raise EmptyMatteError("no person was found in the side/back photo (its matte is empty)")
        return Preprocessed(torch.rand(3, size, size), torch.from_numpy(_rgba(0.35, 0)[::2, ::2, 3].copy()), "x",
                            None, 0.0, scale=1.0)

    monkeypatch.setattr(api, "_preprocess", framed)
    monkeypatch.setattr(api, "frame_like", framed)
    monkeypatch.setattr(view_checks, "side_face_distance", lambda *a: None)
    with pytest.warns(UserWarning, match=r"the left view \(mug.jpg\) shows no person .* leaves this view out"):
        given = api._prepare({"front": "me.jpg", "left": "mug.jpg", "back": "hair.jpg"}, 32, True, None, "x")[3]
    assert given.tolist() == [True, False, False, True]
    with pytest.raises(EmptyMatteError, match=r"^mug.jpg: no person"):  # the front: an error naming the file
        api._prepare({"front": "mug.jpg"}, 32, True, None, "mug.jpg")
