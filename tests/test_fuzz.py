"""Fuzzing every reader of user files with structured mutations of valid files.

Families: PNG and JPEG images (header fields with their CRCs fixed, so the mutation reaches the
decoder, plus byte flips and truncation), PLY (header lines replaced, duplicated, dropped; body
bytes flipped; truncation), .splat, camera JSON (values replaced by other JSON values, keys dropped,
deep nesting, bytes that are not UTF-8), a model's config.json, and a model's safetensors header
(its length field, dtypes, shapes and offsets). Each case must end in a valid result or an
:class:`a3d.errors.InputError` naming the file: never another exception, a crash or a hang.

A few hundred cases a family with a fixed seed run in CI (under a minute on two cores);
``A3D_FUZZ_CASES=20000 A3D_FUZZ_SEED=7 pytest tests/test_fuzz.py`` runs a longer or another campaign.
A failure prints the family, seed and case index, which replay it.
"""
import io
import json
import math
import os
import struct
import zlib
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file

from a3d.core.cameras import Cameras, load_cameras_json, orbit_cameras, save_cameras_json
from a3d.data.dataset import CAMERA_FILE, find_captures
from a3d.errors import InputError
from a3d.core.gaussians import Gaussians
from a3d.io.ply import load_ply, load_splat, save_ply, save_splat
from a3d.model.config import ModelConfig, get_config
from a3d.model.network import A3DModel
from a3d.inference.preprocess import load_image

CASES = int(os.environ.get("A3D_FUZZ_CASES", "250"))
SEED = int(os.environ.get("A3D_FUZZ_SEED", "20261130"))
SMALL = dict(image_size=16, patch_size=8, width=32, depth=1, heads=2, decoder_width=8, avas_width=8)


# ---- generic mutations ------------------------------------------------------------------------------

def flip(data: bytes, rng: np.random.Generator, lo: int = 0, hi: int | None = None) -> bytes:
    """1-8 random bytes in [lo, hi) replaced by random values."""
    b = bytearray(data)
    hi = len(b) if hi is None else min(hi, len(b))
    if hi <= lo:
        return bytes(b)
    for _ in range(int(rng.integers(1, 9))):
        b[int(rng.integers(lo, hi))] = int(rng.integers(0, 256))
    return bytes(b)


def truncate(data: bytes, rng: np.random.Generator) -> bytes:
    return data[:int(rng.integers(0, len(data)))]


def splice(data: bytes, rng: np.random.Generator) -> bytes:
    """A random chunk deleted, duplicated or replaced by junk (including bytes that are not UTF-8)."""
    i, j = sorted(int(x) for x in rng.integers(0, len(data) + 1, 2))
    op = int(rng.integers(3))
    if op == 0:
        return data[:i] + data[j:]
    if op == 1:
        return data[:j] + data[i:j] + data[j:]
    junk = bytes(rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8))
    return data[:i] + junk + data[j:]


def generic(data: bytes, rng: np.random.Generator) -> bytes:
    return [flip, truncate, splice][int(rng.integers(3))](data, rng)


def pick(rng: np.random.Generator, options: list) -> Any:
    """One of ``options`` (Python objects as they are: numpy's choice would turn big ints into floats)."""
    return options[int(rng.integers(len(options)))]


def odd_int(rng: np.random.Generator) -> int:
    return pick(rng, [0, 1, 2, 3, 7, 31, 32, 255, 256, 4096, 16384, 65535, 2**31 - 1, 2**32 - 1])


# ---- checking one case --------------------------------------------------------------------------------

def check_case(family: str, index: int, path: Path, run: Callable[[], Any], valid: Callable[[Any], None]) -> bool:
    """Run one case: a valid result (checked by ``valid``) or an InputError naming ``path``. Returns
    whether the result was valid."""
    where = f"family={family} seed={SEED} case={index} (A3D_FUZZ_SEED={SEED} replays it)"
    try:
        out = run()
    except InputError as e:
        assert str(path) in str(e), f"{where}: the error does not name the file: {e}"
        assert "\n" not in str(e).strip(), f"{where}: a message of several lines: {e!r}"
        return False
    except Exception as e:  # noqa: BLE001 - any other exception is the failure this test looks for
        raise AssertionError(f"{where}: {type(e).__name__}: {e}") from e
    valid(out)
    return True


def campaign(tmp_path: Path, family: str, base: bytes, mutate: Callable, read: Callable[[Path], Any],
             valid: Callable[[Any], None], name: str = "case", index_offset: int = 0) -> int:
    """CASES mutations of ``base`` read by ``read``; returns how many were valid (all must pass)."""
    rng = np.random.default_rng([SEED, zlib.crc32(family.encode())])
    n_valid = 0
    for i in range(CASES):
        data = mutate(base, rng)
        path = tmp_path / name
        path.write_bytes(data)
        n_valid += check_case(family, i, path, lambda: read(path), valid)
    return n_valid


# ---- images -----------------------------------------------------------------------------------------

def _image_bytes(fmt: str, mode: str, **kw) -> bytes:
    y, x = np.mgrid[0:40, 0:48]
    a = np.stack([x * 5, y * 6, (x + y) * 3, 255 - x], -1).astype(np.uint8)
    img = Image.fromarray(a, "RGBA").convert(mode)
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _valid_image(out) -> None:
    rgb, alpha = out
    assert rgb.dtype == np.float32 and rgb.ndim == 3 and rgb.shape[2] == 3 and min(rgb.shape[:2]) >= 32
    assert np.isfinite(rgb).all() and rgb.min() >= 0 and rgb.max() <= 1
    assert alpha is None or (alpha.shape == rgb.shape[:2] and np.isfinite(alpha).all())


def _png_chunk(data: bytes, rng: np.random.Generator) -> bytes:
    """Rewrite IHDR's fields (size, bit depth, colour type, interlace) and fix its CRC, so PIL reads
    the mutated header instead of rejecting a bad checksum."""
    b = bytearray(data)
    field = int(rng.integers(4))
    if field == 0:
        b[16:20] = struct.pack(">I", odd_int(rng))
    elif field == 1:
        b[20:24] = struct.pack(">I", odd_int(rng))
    elif field == 2:
        b[24] = pick(rng, [0, 1, 2, 4, 8, 16, 3, 255])
    else:
        b[25 + int(rng.integers(4))] = int(rng.integers(0, 8))
    b[29:33] = struct.pack(">I", zlib.crc32(bytes(b[12:29])))
    return bytes(b)


def test_fuzz_png(tmp_path):
    bases = [_image_bytes("PNG", m) for m in ("RGB", "RGBA", "L", "P")]

    def mutate(_, rng):
        data = bases[int(rng.integers(len(bases)))]
        return _png_chunk(data, rng) if rng.random() < 0.5 else generic(data, rng)

    valid = campaign(tmp_path, "png", b"", mutate, load_image, _valid_image, "img.png")
    assert valid < CASES  # the mutations do reach the errors


def _jpeg_sof(data: bytes, rng: np.random.Generator) -> bytes:
    """Rewrite a field of the JPEG frame header (SOF0: precision, height, width, components) or flip
    bytes inside the quantisation/Huffman tables."""
    b = bytearray(data)
    sof = b.find(b"\xff\xc0")
    if sof < 0 or rng.random() < 0.3:
        return flip(data, rng, 2, min(len(data), 700))  # the tables sit in the first few hundred bytes
    field = int(rng.integers(4))
    if field == 0:
        b[sof + 4] = pick(rng, [0, 8, 12, 16, 255])
    elif field in (1, 2):  # height, width: up to a 65,535-pixel side (a bomb) or 0
        v = pick(rng, [0, 1, 31, 5000, 9000, 12000, 30000, 65535])
        b[sof + 5 + 2 * (field - 1):sof + 7 + 2 * (field - 1)] = struct.pack(">H", v)
    else:
        b[sof + 9] = pick(rng, [0, 1, 2, 3, 4, 5, 255])
    return bytes(b)


def test_fuzz_jpeg(tmp_path):
    bases = [_image_bytes("JPEG", "RGB", quality=80), _image_bytes("JPEG", "L"),
             _image_bytes("JPEG", "RGB", progressive=True), _image_bytes("JPEG", "CMYK")]

    def mutate(_, rng):
        data = bases[int(rng.integers(len(bases)))]
        return _jpeg_sof(data, rng) if rng.random() < 0.6 else generic(data, rng)

    valid = campaign(tmp_path, "jpeg", b"", mutate, load_image, _valid_image, "img.jpg")
    assert valid < CASES


# ---- PLY and .splat -----------------------------------------------------------------------------------

def _gaussians(n: int, sh: int) -> Gaussians:
    g = torch.Generator().manual_seed(n)
    return Gaussians(torch.randn(n, 3, generator=g), torch.randn(n, 4, generator=g),
                     torch.rand(n, 3, generator=g) * 0.1 + 1e-3, torch.rand(n, generator=g),
                     torch.rand(n, 3, generator=g), torch.randn(n, sh, 3, generator=g) if sh else None)


def _valid_gaussians(g: Gaussians) -> None:
    assert isinstance(g, Gaussians) and g.means.dim() == 2
    for name in ("means", "quats", "scales", "opacities", "colors"):
        t = getattr(g, name)
        assert t.dtype == torch.float32 and torch.isfinite(t).all(), name
    assert (g.scales > 0).all() and ((g.opacities >= 0) & (g.opacities <= 1)).all()


_PLY_LINES = ["element vertex {n}", "element face 3", "property float {p}", "property double x", "property uchar red",
              "property list uchar int vertex_indices", "format ascii 1.0", "format binary_big_endian 1.0",
              "format binary_little_endian 1.0", "comment {p}", "end_header", "", "property float", "element vertex"]


def _ply_header(data: bytes, rng: np.random.Generator) -> bytes:
    end = data.index(b"end_header\n") + len(b"end_header\n")
    lines = data[:end].decode().splitlines()
    body = data[end:]
    i = int(rng.integers(1, len(lines)))
    op = int(rng.integers(4))
    if op == 0:  # replace a line
        n = pick(rng, [-1, 0, 1, 15, 17, 2**31, 2**64, 10**30])
        p = pick(rng, ["x", "f_rest_0", "opacity", "scale_9", "rot_4", "nx", "é", "f_dc_0 extra"])
        lines[i] = str(pick(rng, _PLY_LINES)).format(n=n, p=p)
    elif op == 1:
        del lines[i]
    elif op == 2:
        lines.insert(i, lines[int(rng.integers(1, len(lines)))])
    else:
        j = int(rng.integers(1, len(lines)))
        lines[i], lines[j] = lines[j], lines[i]
    return ("\n".join(lines) + "\n").encode("utf-8") + body


def test_fuzz_ply(tmp_path):
    bases = []
    for n, sh in ((16, 0), (16, 3), (0, 0)):
        save_ply(_gaussians(n, sh), tmp_path / "base.ply")
        bases.append((tmp_path / "base.ply").read_bytes())

    def mutate(_, rng):
        data = bases[int(rng.integers(len(bases)))]
        r = rng.random()
        if r < 0.5:
            return _ply_header(data, rng)
        if r < 0.8:  # body bytes: NaN/inf, huge scales, or plain garbage that is still a valid file
            return flip(data, rng, data.index(b"end_header\n") + 11)
        return generic(data, rng)

    valid = campaign(tmp_path, "ply", b"", mutate, load_ply, _valid_gaussians, "case.ply")
    assert 0 < valid < CASES


def test_fuzz_splat(tmp_path):
    save_splat(_gaussians(16, 0), tmp_path / "base.splat")
    base = (tmp_path / "base.splat").read_bytes()
    campaign(tmp_path, "splat", base, generic, load_splat, _valid_gaussians, "case.splat")


# ---- JSON files -------------------------------------------------------------------------------------------

def _odd_value(rng: np.random.Generator, depth: int = 0) -> Any:
    k = int(rng.integers(12))
    if k == 0:
        return None
    if k == 1:
        return bool(rng.integers(2))
    if k == 2:
        return pick(rng, [-1, 0, 1, 3, 4, 2**31, 2**63, 10**40])
    if k == 3:
        return pick(rng, [-1.5, 0.0, 1e-300, 0.5, 2.7, 1e300])
    if k == 4:
        return pick(rng, ["", "x", "a3d-cameras", "opencv", "../../etc/passwd", "é" * 3])
    if k == 5 and depth < 3:
        return [_odd_value(rng, depth + 1) for _ in range(int(rng.integers(0, 5)))]
    if k == 6 and depth < 3:
        return {pick(rng, ["K", "width", "name", "frames", "x"]): _odd_value(rng, depth + 1)}
    if k == 7:  # a matrix of the wrong size or with odd entries
        n = int(rng.integers(0, 5))
        return [[float(rng.normal()) for _ in range(n)] for _ in range(int(rng.integers(0, 5)))]
    if k == 8:
        v: Any = 0
        for _ in range(pick(rng, [10, 40, 200, 600])):  # deeper: see _json_case
            v = [v]
        return v
    return float(rng.normal() * 10)


def _mutate_json(doc: Any, rng: np.random.Generator) -> Any:
    """A copy of ``doc`` with one node (picked by a random walk from the root) replaced, dropped or perturbed."""
    doc = json.loads(json.dumps(doc))
    parent, key, node = None, None, doc
    while isinstance(node, (dict, list)) and node and rng.random() < 0.75:
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        parent, key = node, keys[int(rng.integers(len(keys)))]
        node = node[key]
    op = int(rng.integers(3))
    if parent is None:
        return _odd_value(rng)
    if op == 0:
        parent[key] = _odd_value(rng)
    elif op == 1:
        del parent[key]
    elif isinstance(node, (int, float)) and not isinstance(node, bool):
        parent[key] = node * pick(rng, [-1.0, 0.0, 1.0001, 1e6])
    else:
        parent[key] = _odd_value(rng)
    return doc


def _json_case(doc: Any, rng: np.random.Generator) -> bytes:
    r = rng.random()
    if r < 0.7:
        text = json.dumps(_mutate_json(doc, rng))
        if rng.random() < 0.2:  # a literal JSON does not have, or an integer too long to parse
            text = text.replace("0", pick(rng, ["NaN", "Infinity", "-Infinity", "1e999", "9" * 5000]), 1)
        return text.encode()
    if r < 0.8:  # nesting that would exhaust a recursive parser's stack
        return ("[" * pick(rng, [33, 1000, 100000]) + "]" * int(rng.integers(0, 3))).encode()
    data = json.dumps(doc, indent=1).encode()
    if r < 0.9:
        return generic(data, rng)
    return data[:10] + b"\xff\xfe\xc3(" + data[10:]  # not UTF-8


def test_fuzz_camera_json(tmp_path):
    cams = orbit_cameras(3, size=64)
    save_cameras_json(tmp_path / "base.json", cams)
    doc = json.loads((tmp_path / "base.json").read_text())

    def valid(out):
        c, names = out
        assert isinstance(c, Cameras) and len(c) == len(names) and torch.isfinite(c.viewmats).all()

    n_valid = campaign(tmp_path, "camera-json", b"", lambda _, rng: _json_case(doc, rng), load_cameras_json, valid,
                       "cams.json")
    assert 0 < n_valid < CASES


def test_fuzz_dataset_scan_never_raises(tmp_path):
    """A dataset scan skips every bad capture and keeps the good one, whatever the bad camera files hold."""
    cams = orbit_cameras(3, size=32)
    rng = np.random.default_rng([SEED, 1])
    save_cameras_json(tmp_path / "base.json", cams)
    doc = json.loads((tmp_path / "base.json").read_text())
    root = tmp_path / "root"
    n = max(8, CASES // 10)
    for i in range(n):
        folder = root / f"head{i:03d}"
        folder.mkdir(parents=True)
        (folder / CAMERA_FILE).write_bytes(_json_case(doc, rng) if i else json.dumps(doc).encode())
        for k in range(3):
            Image.new("RGB", (32, 32), (k * 40, 90, 200)).save(folder / f"{k:03d}.png")
    captures, skips = find_captures(root)
    assert captures and captures[0].folder.endswith("head000")
    assert len(captures) + skips["bad_camera_file"] + skips["too_few_views"] == n


def test_fuzz_model_config_json(tmp_path):
    doc = get_config("tiny", **SMALL).to_dict()

    def valid(cfg):
        assert isinstance(cfg, ModelConfig) and cfg.estimated_parameters() > 0
        assert all(math.isfinite(v) for v in cfg.to_dict().values() if not isinstance(v, str))

    n_valid = campaign(tmp_path, "config-json", b"", lambda _, rng: _json_case(doc, rng), ModelConfig.from_json,
                       valid, "config.json")
    assert n_valid < CASES


# ---- safetensors ------------------------------------------------------------------------------------------

def _safetensors_header(data: bytes, rng: np.random.Generator) -> bytes:
    """Mutate the header of a safetensors file: its length field, or one tensor's dtype, shape or
    offsets (the JSON re-serialised with the length fixed), or raw bytes of the JSON."""
    (n,) = struct.unpack("<Q", data[:8])
    header, body = json.loads(data[8:8 + n]), data[8 + n:]
    r = rng.random()
    if r < 0.2:
        return struct.pack("<Q", pick(rng, [0, 1, n - 1, n + 1, len(data), 2**40, 2**64 - 1])) + data[8:]
    if r < 0.35:
        return flip(data, rng, 8, 8 + n)
    if r < 0.45:  # weights become NaN/inf or garbage (float16 bits)
        return flip(data, rng, 8 + n)
    name = pick(rng, [k for k in header if k != "__metadata__"])
    t = header[name]
    field = int(rng.integers(4))
    if field == 0:
        t["dtype"] = pick(rng, ["F16", "F32", "F64", "BF16", "I32", "I64", "U8", "BOOL", "F8_E4M3", "X"])
    elif field == 1:
        t["shape"] = [odd_int(rng) for _ in range(int(rng.integers(0, 4)))]
    elif field == 2:
        t["data_offsets"] = [int(x) for x in sorted(rng.integers(0, len(body) * 2 + 2, 2))]
    else:
        header = _mutate_json(header, rng)
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + body


def test_fuzz_safetensors(tmp_path):
    cfg = get_config("tiny", **SMALL)
    torch.manual_seed(0)
    model = A3DModel(cfg)
    folder = tmp_path / "model"
    model.save_pretrained(folder)
    weights = folder / "model.safetensors"
    save_file({k: v.half() for k, v in model.state_dict().items()}, weights)  # float16, as exported
    base = weights.read_bytes()
    rng = np.random.default_rng([SEED, 2])
    n_valid = 0

    def valid(m):
        assert isinstance(m, A3DModel) and all(torch.isfinite(p).all() for p in m.parameters())

    for i in range(CASES):
        weights.write_bytes(_safetensors_header(base, rng) if rng.random() < 0.85 else generic(base, rng))
        n_valid += check_case("safetensors", i, weights, lambda: A3DModel.from_pretrained(folder), valid)
    assert 0 < n_valid < CASES
