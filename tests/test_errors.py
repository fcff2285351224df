"""The error policy of docs/errors.md, case by case: a corpus of bad and odd inputs on every surface
that reads user data (images, arrays, camera JSON, dataset folders, model configs and folders, the
CLI), each answered by an a3d error naming the culprit (or, where the policy says so, a valid
result), and the CLI's one-line messages and exit codes. The fuzz test (tests/test_fuzz.py) covers
the same readers with random mutations."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

import a3d
from a3d import errors
from a3d.core.cameras import load_cameras_json, orbit_cameras, save_cameras_json
from a3d.cli import main
from a3d.data.dataset import CAMERA_FILE, find_captures
from a3d.errors import EXIT_INPUT, EXIT_INTERNAL, EXIT_SETUP, InputError, SetupError, check_device, check_int
from a3d.core.files import atomic_write, read_json
from a3d.model.config import MAX_ACTIVATION_BYTES, MAX_PARAMETERS, get_config
from a3d.model.network import A3DModel
from a3d.inference.preprocess import DRAFT_PIXELS, ImageError, NoFaceError, load_image, preprocess

ROOT = Path(__file__).resolve().parents[1]
PORTRAIT = ROOT / "demo" / "examples" / "astronaut.jpg"
SMALL = dict(image_size=16, patch_size=8, width=32, depth=1, heads=2, decoder_width=8, avas_width=8)


# ---- the classes and validators ------------------------------------------------------------------------

def test_error_classes_are_value_and_os_errors():
    assert issubclass(InputError, ValueError) and issubclass(SetupError, OSError)
    assert issubclass(ImageError, InputError) and issubclass(NoFaceError, InputError)
    assert issubclass(a3d.api.NoWeightsError, SetupError) and issubclass(a3d.api.NoWeightsError, FileNotFoundError)
    assert errors.exit_code(InputError("x")) == errors.exit_code(FileNotFoundError("x")) == EXIT_INPUT
    assert errors.exit_code(SetupError("x")) == errors.exit_code(PermissionError("x")) == EXIT_SETUP
    assert errors.exit_code(MemoryError()) == EXIT_SETUP and errors.exit_code(TypeError()) == EXIT_INTERNAL
    assert errors.exit_code(KeyboardInterrupt()) == errors.EXIT_INTERRUPTED


@pytest.mark.parametrize("value, lo, hi, match", [
    (True, 1, None, "positive int, got True"), (1.0, 1, None, "positive int"), ("3", 0, None, "non-negative"),
    (0, 1, 10, r"in \[1, 10\], got 0"), (11, 1, 10, r"in \[1, 10\]"), (-1, 0, None, "non-negative"),
    (None, None, None, "an int, got None"),
])
def test_check_int_names_the_argument(value, lo, hi, match):
    with pytest.raises(InputError, match=f"^steps: expected .*{match}"):
        check_int(value, "steps", lo, hi)
    assert check_int(5, "steps", 1, 10) == 5


def test_check_device():
    assert check_device("cpu") == torch.device("cpu")
    with pytest.raises(InputError, match="expected a torch device"):
        check_device("gpu")
    with pytest.raises(InputError, match="'cpu', 'cuda'"):
        check_device("meta")
    if not torch.cuda.is_available():
        with pytest.raises(SetupError, match="CUDA is not available.*use 'cpu'"):
            check_device("cuda")


def test_atomic_write_leaves_the_old_file_on_error(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_write(path, "w") as f:
            f.write("half")
            raise RuntimeError("disk full")
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["out.txt"]
    with atomic_write(path, "w") as f:
        f.write("new")
    assert path.read_text() == "new" and os.listdir(tmp_path) == ["out.txt"]


# ---- images and arrays ---------------------------------------------------------------------------------

def test_float_images_in_0_255_are_rescaled_with_a_warning():
    a = (np.random.default_rng(0).random((40, 40, 3)) * 255).astype(np.uint8)
    with pytest.warns(UserWarning, match=r"taken as 0\.\.255"):
        rgb, _ = load_image(a.astype(np.float32))
    np.testing.assert_allclose(rgb, load_image(a)[0], atol=1e-6)
    with pytest.warns(UserWarning):
        load_image(torch.from_numpy(a.astype(np.float64)).permute(2, 0, 1))
    rgb, _ = load_image(np.full((40, 40, 3), 1.02, np.float32))  # resampling overshoot: clipped silently
    assert rgb.max() == 1.0


@pytest.mark.parametrize("a, match", [
    (np.full((40, 40, 3), -0.5, np.float32), r"\[-1, 1\] pass \(x \+ 1\) / 2"),
    (np.full((40, 40, 3), 300.0, np.float32), r"expected \[0, 1\] \(or 0\.\.255"),
    (np.full((40, 40, 3), np.inf, np.float32), "NaN or infinite"),
    (np.zeros((40, 40, 3), np.int64), "astype"),
    (np.zeros((40, 40, 3), np.complex64), "uint8, uint16"),
    (np.zeros((0, 40, 3), np.uint8), "too small"),
])
def test_arrays_out_of_range_are_refused(a, match):
    with pytest.raises(ImageError, match=match):
        load_image(a)


def test_image_paths_that_are_not_images(tmp_path):
    with pytest.raises(ImageError, match="is a folder"):
        load_image(tmp_path)
    (tmp_path / "photo.jpg").write_bytes(b"\x00\x00\x00\x18ftypheic" + bytes(64))
    with pytest.raises(ImageError, match="HEIC"):
        load_image(tmp_path / "photo.jpg")


def _jpeg_claiming(width: int, height: int) -> bytes:
    """A small JPEG whose frame header is rewritten to claim width × height."""
    import io

    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (120, 80, 40)).save(buf, "JPEG")
    b = bytearray(buf.getvalue())
    sof = b.find(b"\xff\xc0")
    b[sof + 5:sof + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return bytes(b)


def test_a_jpeg_bomb_is_refused_before_decoding(tmp_path):
    (tmp_path / "bomb.jpg").write_bytes(_jpeg_claiming(65000, 65000))
    start = time.perf_counter()
    with pytest.raises(ImageError, match="too large to decode safely|megapixels"):
        load_image(tmp_path / "bomb.jpg")
    assert time.perf_counter() - start < 1.0
    (tmp_path / "lie.jpg").write_bytes(_jpeg_claiming(8000, 6000))  # a phone's size, but no data behind it:
    rgb, _ = load_image(tmp_path / "lie.jpg")  # libjpeg fills in what is missing, at the reduced size
    assert rgb.shape == (1500, 2000, 3)


def test_phone_jpegs_with_extra_pictures_are_drafted_too(tmp_path, monkeypatch):
    """Many phones write MPO (a JPEG followed by more pictures); it is decoded at reduced size like a JPEG."""
    Image.new("RGB", (400, 300), (10, 200, 30)).save(tmp_path / "p.jpg", "MPO", save_all=True,
                                                      append_images=[Image.new("RGB", (40, 30))])
    assert Image.open(tmp_path / "p.jpg").format == "MPO"
    monkeypatch.setattr(a3d.inference.preprocess, "DRAFT_PIXELS", 40_000)
    rgb, _ = load_image(tmp_path / "p.jpg")
    assert rgb.shape == (150, 200, 3) and abs(rgb[0, 0, 1] - 200 / 255) < 0.02
    assert load_image(tmp_path / "p.jpg", draft=False)[0].shape == (300, 400, 3)


_MEASURE = """
import sys
from a3d.inference.preprocess import load_image
def peak_mib():
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM")) // 1024
open("/proc/self/clear_refs", "w").write("5")  # Linux: restart the peak RSS count (the imports' peak is not ours)
before = peak_mib()
rgb, alpha = load_image(sys.argv[1])
print(rgb.shape[0], rgb.shape[1], peak_mib() - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the peak RSS from /proc")
def test_a_50_megapixel_phone_photo_works_in_a_small_memory_budget(tmp_path):
    """An 8160 × 6120 JPEG (a 50 MP phone's full resolution) with the portrait in the middle: decoded
    at 1/4 size by the JPEG decoder (under 120 MiB more memory, measured in a fresh process), and the
    face is found and framed."""
    W, H = 8160, 6120
    face = Image.open(PORTRAIT).convert("RGB").resize((H // 2, H // 2), Image.Resampling.BILINEAR)
    photo = Image.new("RGB", (W, H), (90, 110, 130))
    photo.paste(face, ((W - H // 2) // 2, H // 4))
    photo.save(tmp_path / "phone.jpg", quality=85)
    del photo
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-c", _MEASURE, str(tmp_path / "phone.jpg")], env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    h, w, grown_mib = map(int, r.stdout.split())
    assert (w, h) == (W // 4, H // 4) and w * h <= DRAFT_PIXELS
    assert 0 < grown_mib < 120, grown_mib  # the full-size float image alone would be 570 MiB
    pytest.importorskip("ai_edge_litert", reason="needs ai-edge-litert: pip install a3d[preprocess]")
    pre = preprocess(tmp_path / "phone.jpg", 128)
    assert pre.mode == "aligned" and pre.face.score > 0.5


# ---- JSON files and dataset folders ------------------------------------------------------------------------

@pytest.mark.parametrize("content, match", [
    (b'{"format": "a3d-cameras", "frames": [\xff]}', "not UTF-8"),
    (b"[" * 100_000, "nests arrays/objects 100000 levels"),
    (b'{"format": "a3d-cameras", "frames": [{"K": ', "not valid JSON"),
    (b'{"format": "a3d-cameras", "frames": [{"K": NaN}]}', "NaN is not a JSON number"),
    (b'{"format": "a3d-cameras", "frames": [{"width": 1' + b"0" * 5000 + b"}]}", "does not accept"),
    (b"", "not valid JSON"),
])
def test_hostile_camera_files_name_the_file(tmp_path, content, match):
    path = tmp_path / CAMERA_FILE
    path.write_bytes(content)
    with pytest.raises(InputError, match=match) as e:
        load_cameras_json(path)
    assert str(path) in str(e.value)


def test_a_dataset_scan_skips_hostile_camera_files(tmp_path):
    for i, content in enumerate([None, b"[" * 100_000, b"\xff\xfe", b'{"frames": [[[]]]}', b'{"format": "a3d-c']):
        folder = tmp_path / f"head{i}"
        folder.mkdir()
        if content is None:
            save_cameras_json(folder / CAMERA_FILE, orbit_cameras(2, size=32))
        else:
            (folder / CAMERA_FILE).write_bytes(content)
        for k in range(2):
            Image.new("RGB", (32, 32)).save(folder / f"{k:03d}.png")
    captures, skips = find_captures(tmp_path)
    assert [Path(c.folder).name for c in captures] == ["head0"] and skips["bad_camera_file"] == 4


def test_read_json_size_limit(tmp_path):
    (tmp_path / "a.json").write_text("[" + "1," * 1000 + "1]")
    with pytest.raises(InputError, match="at most 100 are accepted"):
        read_json(tmp_path / "a.json", 100)
    with pytest.raises(InputError, match="found a folder"):
        read_json(tmp_path, 100)


# ---- model configs and folders ----------------------------------------------------------------------

@pytest.mark.parametrize("overrides, names", [
    (dict(width=100_000), "width=100000"),
    (dict(depth=1_000_000), "depth=1000000"),
    (dict(image_size=16384), "image_size=16384"),
    (dict(image_size=8 * 10**9), "image_size=8000000000"),
    (dict(decoder_width=10**6), "decoder_width=1000000"),
    (dict(avas_width=10**6), "avas_width=1000000"),
    (dict(patch_size=1, image_size=1024), "patch_size=1"),
    (dict(mlp_ratio=1e300), "mlp_ratio"),
    (dict(camera_fov_deg=400.0), "camera_fov_deg"),
])
def test_absurd_model_configs_are_refused_before_allocating(overrides, names):
    start = time.perf_counter()
    with pytest.raises(InputError, match=names):
        get_config("tiny", **overrides)
    assert time.perf_counter() - start < 0.5


def test_the_size_estimate_is_close_to_the_built_model():
    """ModelConfig's parameter estimate (what refuses a config before allocation) is within 3% of the built
    model's count (toy sizes, whose biases weigh most) and 2% at real sizes, for both decoders and the
    paper's scale (built on the meta device: no memory)."""
    for overrides in (SMALL, dict(SMALL, mlp_ratio=2.5, heads=4, patch_size=4, input_width=5),
                      dict(SMALL, decoder="upsampler"), {}, dict(decoder="upsampler")):
        cfg = get_config("tiny", **overrides)
        built = A3DModel(cfg, with_avas=True).num_parameters(inference=False)
        assert abs(cfg.estimated_parameters() / built - 1) < 0.03, overrides
    paper = get_config("paper")
    with torch.device("meta"):
        built = A3DModel(paper, with_avas=True).num_parameters(inference=False)
    assert abs(paper.estimated_parameters() / built - 1) < 0.02
    assert paper.estimated_parameters() < MAX_PARAMETERS / 10 and paper.activation_bytes() < MAX_ACTIVATION_BYTES / 8


@pytest.fixture
def model_dir(tmp_path):
    torch.manual_seed(0)
    A3DModel(get_config("tiny", **SMALL)).save_pretrained(tmp_path / "model")
    return tmp_path / "model"


def test_bad_model_folders(model_dir, tmp_path):
    (model_dir / "config.json").rename(tmp_path / "config.json")
    with pytest.raises(InputError, match="no config.json in this folder"):
        A3DModel.from_pretrained(model_dir)
    (tmp_path / "config.json").rename(model_dir / "config.json")
    cfg = json.loads((model_dir / "config.json").read_text())
    for bad, match in ((b"{\xff}", "not UTF-8"), (b"[1, 2]", "expected a JSON object"),
                       (json.dumps(dict(cfg, width=10**6)).encode(), "width=1000000")):
        (model_dir / "config.json").write_bytes(bad)
        with pytest.raises(InputError, match=match) as e:
            A3DModel.from_pretrained(model_dir)
        assert str(model_dir / "config.json") in str(e.value)
    (model_dir / "config.json").write_text(json.dumps(cfg))
    weights = {k: v.clone() for k, v in load_file(model_dir / "model.safetensors").items()}  # not the mmap
    (model_dir / "model.safetensors").write_bytes(b"garbage" * 10)
    with pytest.raises(InputError, match="not a readable safetensors file"):
        A3DModel.from_pretrained(model_dir)
    weights["blocks.0.qkv.weight"][3, 1] = float("nan")
    save_file(weights, model_dir / "model.safetensors")
    with pytest.raises(InputError, match=r"NaN or inf: \['blocks.0.qkv.weight'\]"):
        A3DModel.from_pretrained(model_dir)
    weights["blocks.0.qkv.weight"] = weights["blocks.0.qkv.weight"].nan_to_num().int()
    save_file(weights, model_dir / "model.safetensors")
    with pytest.raises(InputError, match="not floating point"):
        A3DModel.from_pretrained(model_dir)
    (model_dir / "model.safetensors").unlink()
    with pytest.raises(InputError, match="no model.safetensors"):
        A3DModel.from_pretrained(model_dir)


def test_a_model_that_produces_nan_is_stopped():
    model = A3DModel(get_config("tiny", **SMALL))
    with torch.no_grad():
        model.decoder.pixel_mlp[-1].bias.fill_(float("nan"))
    with pytest.raises(InputError, match="NaN or inf Gaussians"):
        a3d.reconstruct(np.full((32, 32, 3), 128, np.uint8), model, preprocess=False, seed=0)


# ---- the command line -----------------------------------------------------------------------------------

def _cli(capsys, *argv) -> tuple[int, str]:
    rc = main(list(argv))
    err = capsys.readouterr().err
    return rc, err


def _one_line(err: str) -> str:
    """The error line, checked to be the only line of stderr besides progress bars (which use \\r)."""
    lines = [line for line in err.splitlines() if line and "\r" not in line]
    assert len(lines) == 1 and lines[0].startswith("a3d ") and "Traceback" not in err, err
    return lines[0]


@pytest.fixture
def ply(tmp_path):
    g = a3d.Gaussians(torch.zeros(4, 3), torch.tensor([[1.0, 0, 0, 0]]).repeat(4, 1), torch.full((4, 3), 0.1),
                      torch.full((4,), 0.5), torch.full((4, 3), 0.5))
    a3d.save_ply(g, tmp_path / "head.ply")
    return tmp_path / "head.ply"


def test_cli_bad_input_is_one_line_and_exit_2(capsys, tmp_path, ply, model_dir):
    rc, err = _cli(capsys, "render", str(tmp_path / "missing.ply"))
    assert rc == EXIT_INPUT and "missing.ply" in _one_line(err)
    (tmp_path / "bad.ply").write_bytes(b"ply\nformat ascii 1.0\nend_header\n")
    rc, err = _cli(capsys, "render", str(tmp_path / "bad.ply"))
    assert rc == EXIT_INPUT and "not supported" in _one_line(err)
    (tmp_path / "orbit.gif").mkdir()
    rc, err = _cli(capsys, "render", str(ply), "-o", str(tmp_path / "orbit.gif"), "--frames", "2")  # a folder
    assert rc == EXIT_INPUT and "is a folder" in _one_line(err)
    rc, err = _cli(capsys, "render", str(ply), "-o", str(ply / "orbit.gif"), "--frames", "2")  # below a file
    assert rc == EXIT_INPUT and _one_line(err).startswith("a3d render: error:")
    rc, err = _cli(capsys, "render", str(ply), "--frames", "0")
    assert rc == EXIT_INPUT and "frames" in _one_line(err)
    img = tmp_path / "face.png"
    Image.new("RGB", (32, 32), (128, 100, 90)).save(img)
    rc, err = _cli(capsys, "reconstruct", str(img), "-o", str(ply), "--model", str(model_dir), "--no-preprocess")
    assert rc == EXIT_INPUT and "is a file" in _one_line(err)
    (model_dir / "model.safetensors").rename(tmp_path / "model.safetensors")  # a folder without config.json
    rc, err = _cli(capsys, "reconstruct", str(img), "-o", str(tmp_path / "o"), "--model", str(tmp_path))
    assert rc == EXIT_INPUT and "no config.json" in _one_line(err)
    (tmp_path / "t.json").write_text('{"config_version": 2, "lr": "fast"}')
    rc, err = _cli(capsys, "train", "--config", str(tmp_path / "t.json"))
    assert rc == EXIT_INPUT and "t.json" in _one_line(err) and "TrainConfig.lr" in err


def test_cli_bad_environment_is_exit_3(capsys, ply, tmp_path):
    if not torch.cuda.is_available():
        rc, err = _cli(capsys, "render", str(ply), "--device", "cuda")
        assert rc == EXIT_SETUP and "CUDA is not available" in _one_line(err)
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        rc, err = _cli(capsys, "render", str(ply), "-o", str(locked / "orbit.gif"), "--frames", "2")
        assert rc == EXIT_SETUP and "Permission denied" in _one_line(err)


def test_cli_internal_error_and_debug(capsys, monkeypatch, ply):
    def broken(args):
        raise TypeError("unsupported operand")

    monkeypatch.setattr(a3d.cli, "cmd_render", broken)
    rc, err = _cli(capsys, "render", str(ply))
    assert rc == EXIT_INTERNAL and "internal error: TypeError: unsupported operand" in _one_line(err)
    assert "--debug" in err
    with pytest.raises(TypeError):
        main(["render", str(ply), "--debug"])
    with pytest.raises(TypeError):
        main(["--debug", "render", str(ply)])

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(a3d.cli, "cmd_render", interrupted)
    assert _cli(capsys, "render", str(ply))[0] == errors.EXIT_INTERRUPTED
