"""a3d.inference.preprocess: every input mode, bad inputs refused early and clearly, face framing, matting."""
import io
import math
import struct
import time
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile

from a3d.core import framing
from a3d.inference import preprocess as pp
from a3d.inference.preprocess import ImageError, NoFaceError, load_image, preprocess

PORTRAIT = Path(__file__).parent / "fixtures" / "astronaut_256.jpg"


def _rgb(seed: int, h: int = 48, w: int = 40) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


# ---- input modes --------------------------------------------------------------------------------------

def test_rgb_from_path_pil_numpy_tensor_agree(seed, tmp_path):
    a = _rgb(seed)
    path = tmp_path / "x.png"
    Image.fromarray(a).save(path)
    ref = a.astype(np.float32) / 255
    for src in (path, str(path), Image.fromarray(a), a, torch.from_numpy(a).permute(2, 0, 1),
                torch.from_numpy(ref).permute(2, 0, 1), torch.from_numpy(ref).permute(2, 0, 1)[None],
                ref.astype(np.float64)):
        rgb, alpha = load_image(src)
        assert rgb.shape == (48, 40, 3) and rgb.dtype == np.float32 and alpha is None, type(src)
        assert np.allclose(rgb, ref, atol=1e-6), type(src)


def test_grayscale_bool_and_one_bit(seed, tmp_path):
    g = _rgb(seed)[..., 0]
    for src in (Image.fromarray(g), g, g[..., None], torch.from_numpy(g)[None]):
        rgb, alpha = load_image(src)
        assert alpha is None and np.allclose(rgb, np.repeat(g[..., None] / 255.0, 3, -1), atol=1e-6)
    mask = g > 128
    rgb, _ = load_image(mask)
    assert np.array_equal(rgb[..., 0], mask.astype(np.float32))
    Image.fromarray(mask).convert("1").save(tmp_path / "bits.png")
    rgb, _ = load_image(tmp_path / "bits.png")
    assert np.array_equal(rgb[..., 1] > 0.5, mask)


def test_sixteen_bit_png_keeps_its_range(tmp_path):
    a = np.zeros((40, 36), dtype=np.uint16)
    a[:, :12], a[:, 12:24], a[:, 24:] = 0, 32768, 65535
    Image.fromarray(a).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")
    for src in (tmp_path / "deep.png", a):
        rgb, _ = load_image(src)
        assert np.allclose(rgb[0, [0, 12, 24], 0], [0.0, 32768 / 65535, 1.0], atol=1e-5)


def test_rgba_la_and_palette_transparency(seed, tmp_path):
    a = _rgb(seed)
    alpha = np.zeros((48, 40), dtype=np.uint8)
    alpha[:, 20:] = 255
    rgba = np.dstack([a, alpha])
    for src in (Image.fromarray(rgba), rgba, torch.from_numpy(rgba).permute(2, 0, 1)):
        rgb, al = load_image(src)
        assert np.array_equal(al, alpha / 255.0) and np.allclose(rgb, a / 255.0, atol=1e-6)
    la = Image.fromarray(np.dstack([a[..., 0], alpha]), "LA")
    rgb, al = load_image(la)
    assert np.array_equal(al, alpha / 255.0) and np.allclose(rgb[..., 2], a[..., 0] / 255.0, atol=1e-6)
    opaque = np.dstack([a, np.full((48, 40), 255, np.uint8)])
    assert load_image(opaque)[1] is None  # an all-opaque alpha is no matte
    pal = Image.fromarray(a).quantize(8)
    pal.info["transparency"] = 0
    pal.save(tmp_path / "pal.png", transparency=0)
    img = Image.open(tmp_path / "pal.png")
    assert img.mode == "P"
    rgb, al = load_image(tmp_path / "pal.png")
    idx = np.asarray(Image.open(tmp_path / "pal.png"))
    assert al is not None and np.array_equal(al == 0, idx == 0)
    # preprocess composites transparency over the model background
    out = preprocess(rgba, 32, align=False)
    assert out.mode == "as-is" and out.image.shape == (3, 32, 32)
    assert torch.allclose(out.image[:, :, :4], torch.ones(3, 32, 4), atol=1e-6)  # transparent left → white


def test_cmyk_jpeg_and_exif_orientation(seed, tmp_path):
    a = _rgb(seed, 40, 64)
    Image.fromarray(a).convert("CMYK").save(tmp_path / "cmyk.jpg")
    rgb, _ = load_image(tmp_path / "cmyk.jpg")
    assert rgb.shape == (40, 64, 3)
    y, x = np.mgrid[0:40, 0:64]
    smooth = np.dstack([x * 4, y * 6, 255 - x * 2]).astype(np.uint8)  # JPEG keeps a smooth image
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    Image.fromarray(smooth).save(tmp_path / "rot.jpg", exif=exif, quality=95)
    rgb, _ = load_image(tmp_path / "rot.jpg")
    assert rgb.shape == (64, 40, 3)
    for turn, ok in ((Image.Transpose.ROTATE_270, True), (Image.Transpose.ROTATE_90, False)):
        expect = np.asarray(Image.fromarray(smooth).transpose(turn), dtype=np.float32) / 255
        assert (np.abs(rgb - expect).mean() < 0.03) == ok


def test_as_is_is_the_centred_square_resized(seed):
    a = _rgb(seed, 96, 64)
    out = preprocess(a, 32, align=False)
    square = torch.from_numpy(a[16:80].astype(np.float32) / 255).permute(2, 0, 1)
    expect = torch.nn.functional.interpolate(square[None], size=(32, 32), mode="area")[0]
    assert out.mask is None and out.face is None
    assert torch.allclose(out.image, expect, atol=1e-6)
    up = preprocess(a, 128, align=False).image  # enlarging stays in range
    assert up.shape == (3, 128, 128) and up.min() >= 0 and up.max() <= 1


# ---- bad inputs ---------------------------------------------------------------------------------------

def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims width × height RGB pixels, followed by a tiny IDAT and IEND."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
            + chunk(b"IEND", b""))


@pytest.mark.parametrize("w, h, match", [(30000, 30000, "too large|megapixels"), (7000, 7000, "megapixels")])
def test_huge_header_refused_before_decoding(tmp_path, monkeypatch, w, h, match):
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_header_only(w, h))
    assert path.stat().st_size < 200

    def no_decode(self):
        raise AssertionError("pixel data must not be decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decode)
    start = time.perf_counter()
    with pytest.raises(ImageError, match=match):
        load_image(path)
    assert time.perf_counter() - start < 1.0


def test_bad_files_give_clear_errors(seed, tmp_path, monkeypatch):
    (tmp_path / "notes.png").write_text("this is not an image\n")
    with pytest.raises(ImageError, match="not an image"):
        load_image(tmp_path / "notes.png")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageError, match="empty"):
        load_image(tmp_path / "empty.png")
    with pytest.raises(ImageError, match="cannot read"):
        load_image(tmp_path / "missing.png")
    buf = io.BytesIO()
    Image.fromarray(_rgb(seed, 64, 64)).save(buf, "PNG")  # noise: the pixel data is most of the file
    (tmp_path / "cut.png").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(ImageError, match="truncated or corrupt"):
        load_image(tmp_path / "cut.png")
    Image.new("RGB", (1, 1)).save(tmp_path / "dot.png")
    with pytest.raises(ImageError, match="too small"):
        load_image(tmp_path / "dot.png")
    with pytest.raises(ImageError, match="too small"):
        load_image(np.zeros((1, 1, 3), np.uint8))
    monkeypatch.setattr(pp, "MAX_FILE_BYTES", 1000)
    Image.fromarray(_rgb(seed, 64, 64)).save(tmp_path / "big.png")
    with pytest.raises(ImageError, match="MiB limit"):
        load_image(tmp_path / "big.png")


@pytest.mark.parametrize("bad, match", [
    (np.zeros((40, 40, 5), np.uint8), "C in 1..4"),
    (np.zeros((40, 40, 3), np.int64), "uint8, uint16"),
    (np.full((40, 40, 3), np.nan, np.float32), "NaN"),
    (torch.zeros(2, 3, 40, 40), "tensor"),
    (b"\x89PNG", "path, PIL image"),
])
def test_bad_arrays(bad, match):
    with pytest.raises(ImageError, match=match):
        load_image(bad)


def test_size_argument_checked():
    with pytest.raises(ValueError, match="size"):
        preprocess(np.zeros((40, 40, 3), np.uint8), 8, align=False)


# ---- face framing (needs ai-edge-litert, installed by the `preprocess` extra) ---------------------------

def _face_models():
    pytest.importorskip("ai_edge_litert", reason="needs ai-edge-litert: pip install a3d[preprocess]")
    assert pp.has_face_models(), "ai-edge-litert is installed but the bundled .tflite files are missing"


def _anchor_error(img: torch.Tensor) -> float:
    """Largest distance (fraction of the image) between detected eyes/mouth and the framing anchors."""
    S = img.shape[-1]
    face = pp.detect_face(img.permute(1, 2, 0).contiguous().numpy())
    assert face is not None
    anchors = framing.face_anchors_uv(S)
    want = np.array([anchors["right_eye"], anchors["left_eye"], anchors["mouth"]])
    return float(np.abs(face.keypoints[[0, 1, 3]] - want).max() / S)


def test_portrait_is_framed_and_matted():
    _face_models()
    rgb, _ = load_image(PORTRAIT)
    face = pp.detect_face(rgb)
    assert face is not None and face.score > 0.5
    assert face.keypoints[0, 0] < face.keypoints[1, 0]  # the subject's right eye is on the image's left
    u0, v0, u1, v1 = face.box
    assert 0 <= u0 < face.keypoints[2, 0] < u1 <= 256 and 0 <= v0 < face.keypoints[2, 1] < v1 <= 256
    out = preprocess(PORTRAIT, 128)
    assert out.mode == "aligned" and out.image.shape == (3, 128, 128) and out.mask.shape == (128, 128)
    assert _anchor_error(out.image) < 0.04  # BlazeFace keypoints are good to a few %
    # background removed: the top corners are empty and white, the face is kept
    assert out.mask[:12, :12].max() < 0.05 and out.mask[:12, -12:].max() < 0.05
    assert torch.allclose(out.image[:, :6, :6], torch.ones(3, 6, 6), atol=0.03)
    assert out.mask[50:90, 50:78].min() > 0.95
    assert 0 < out.seconds < 30


def test_rotated_and_offset_portrait_is_straightened():
    _face_models()
    img = Image.open(PORTRAIT).convert("RGB")
    canvas = Image.new("RGB", (420, 360), (90, 120, 90))
    canvas.paste(img.rotate(20, resample=Image.BICUBIC, fillcolor=(90, 120, 90)), (140, 20))
    out = preprocess(canvas, 128)
    face = pp.detect_face(out.image.permute(1, 2, 0).contiguous().numpy())
    (ru, rv), (lu, lv) = face.keypoints[0], face.keypoints[1]
    assert abs(math.degrees(math.atan2(lv - rv, lu - ru))) < 5  # eyes level again
    assert _anchor_error(out.image) < 0.06


def test_turned_face_is_measured_and_warned_about(tmp_path):
    """Face.yaw_deg on synthetic heads turned by known yaws (a3d.data.augment.turn_heads) is right within a few
    degrees and has the sign of the turn; preprocessing warns about a face turned past TURNED_FACE_DEG (the
    bundled model reconstructs those much worse), and not about the portrait, which faces the camera."""
    _face_models()
    from a3d.data.augment import turn_heads
    from a3d.core.cameras import canonical_cameras
    from a3d.core.rendering import render
    from a3d.data.synth import SyntheticHeads

    S = 256
    heads = SyntheticHeads("cpu", seed=77, num_gaussians=40_000, image_size=S).sample(2).gaussians
    front = canonical_cameras(S)[0:1]
    est = {}
    for yaw in (-30.0, 0.0, 30.0, 55.0):
        with torch.no_grad():
            imgs = render(turn_heads(heads, front, yaw), front, framing.BACKGROUND).rgb[:, 0].clamp(0, 1)
        est[yaw] = [pp.detect_face(im.contiguous().numpy()).yaw_deg for im in imgs]
    # one head's estimate is good to about ±10° (the detector's keypoints, the head's own nose)
    assert all(abs(e) < 12 for e in est[0.0]), est
    assert all(18 < e < 42 for e in est[30.0]) and all(-42 < e < -18 for e in est[-30.0]), est
    path = tmp_path / "turned.png"
    assert all(e > pp.TURNED_FACE_DEG for e in est[55.0]), est
    Image.fromarray((imgs[0].numpy() * 255).astype(np.uint8)).save(path)  # the last yaw: +55°
    with pytest.warns(RuntimeWarning, match="turned about"):
        out = preprocess(path, 128)
    assert out.face.to_dict()["yaw_deg"] > pp.TURNED_FACE_DEG
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        assert abs(preprocess(PORTRAIT, 128).face.yaw_deg) < pp.TURNED_FACE_DEG


def test_alpha_channel_is_used_as_the_matte():
    _face_models()
    a = np.asarray(Image.open(PORTRAIT).convert("RGB"))
    alpha = np.full(a.shape[:2], 255, np.uint8)
    alpha[:, :95] = 0  # cut away everything left of the right eye (at u ≈ 101)
    out = preprocess(np.dstack([a, alpha]), 128)
    assert out.mode == "aligned"
    # what was transparent is background in the framed image, however it was warped
    left = out.image[:, 40:90, :24]
    assert torch.allclose(left, torch.ones_like(left), atol=0.02)


def test_no_face_says_what_to_do():
    _face_models()
    y, x = np.mgrid[0:160, 0:160] / 160.0
    smooth = np.dstack([x, y, 0.5 * np.ones_like(x)]).astype(np.float32)
    with pytest.raises(NoFaceError, match="preprocess=False"):
        preprocess(smooth, 64)


def test_without_litert_framing_is_a_setup_error_and_framed_inputs_still_work(monkeypatch, seed):
    """No silent centre crop: without ai-edge-litert preprocessing says what to install (SetupError, exit code 3 in
    the CLI), and ``align=False`` (framed inputs) needs nothing; a missing model file names the file."""
    import sys

    from a3d.errors import SetupError
    from a3d.inference import mediapipe

    a = _rgb(seed, 80, 64)
    monkeypatch.setitem(sys.modules, "ai_edge_litert", None)  # find_spec then reports it missing
    assert not pp.has_face_models()
    with pytest.raises(SetupError, match="pip install ai-edge-litert.*preprocess=False"):
        preprocess(a, 32)
    out = preprocess(a, 32, align=False)
    assert out.mode == "as-is" and out.image.shape == (3, 32, 32)
    monkeypatch.delitem(sys.modules, "ai_edge_litert")
    monkeypatch.setattr(mediapipe, "FULL_RANGE", mediapipe.FULL_RANGE.with_name("missing.tflite"))
    with pytest.raises(SetupError, match="missing.tflite"):
        preprocess(a, 32)
