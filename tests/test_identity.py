"""The dlib face-recognition ResNet port: the .dat parser, agreement with dlib's own descriptors, alignment."""
import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from a3d.core import framing
from a3d.core.cameras import canonical_cameras
from a3d.perception.identity import (CHIP_ANCHORS, CHIP_SIZE, LAYERS, FaceEmbedder, _Reader, crop_faces,
                                     face_crop_affines, has_identity_model, identity_distance, model_path,
                                     read_dlib_resnet, ViewIdentity)

ROOT = Path(__file__).resolve().parent.parent
PORTRAITS = [ROOT / "demo" / "examples" / "astronaut.jpg", ROOT / "examples" / "photos" / "grace_hopper.jpg"]
needs_model = pytest.mark.skipif(not has_identity_model(), reason="face-recognition-models is not installed "
                                 "(pip install a3d[eval])")


@pytest.fixture(scope="module")
def embedder():
    if not has_identity_model():
        pytest.skip("face-recognition-models is not installed")
    return FaceEmbedder()


def test_reader_decodes_dlib_primitives():
    """Integers (control byte: count | sign), strings, bools and dlib's mantissa/exponent floats."""
    ints = bytes([0x01, 0x02, 0x81, 0x05, 0x02, 0x00, 0x01])
    data = ints + bytes([0x01, 0x03]) + b"abc" + b"10" + bytes([0x01, 0x03, 0x81, 0x01])
    r = _Reader(io.BytesIO(data), "mem")
    assert [r.int(), r.int(), r.int()] == [2, -5, 256]
    assert r.string() == "abc" and r.bool() is True and r.bool() is False
    assert r.float() == 1.5  # 3 · 2**-1
    with pytest.raises(ValueError, match="mem: .*end of file"):
        r.int()


@needs_model
def test_parser_reads_the_whole_network():
    state = read_dlib_resnet(model_path())
    convs = [i for i, layer in enumerate(LAYERS) if layer[0] == "con"]
    assert len(convs) == 29
    assert state[f"{convs[0]}.weight"].shape == (32, 3, 7, 7)
    assert state[f"{convs[-1]}.weight"].shape == (256, 256, 3, 3)
    fc = len(LAYERS) - 1
    assert state[f"{fc}.weight"].shape == (128, 256)
    torch.testing.assert_close(state["input_mean"], torch.tensor([122.782, 117.001, 104.298]))
    total = sum(v.numel() for k, v in state.items() if k != "input_mean")
    assert total == 5_614_592  # 29 convs with biases, 29 affines, the 256 -> 128 projection


@needs_model
def test_parser_rejects_damaged_files(tmp_path):
    raw = model_path().read_bytes()
    short = tmp_path / "short.dat"
    short.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="short.dat"):
        read_dlib_resnet(short)
    junk = tmp_path / "junk.dat"
    junk.write_bytes(b"\x01\x01" + b"\x09not a network" * 10)
    with pytest.raises(ValueError, match="junk.dat: not dlib's face-recognition ResNet"):
        read_dlib_resnet(junk)
    longer = tmp_path / "longer.dat"
    longer.write_bytes(raw + b"\x00")
    with pytest.raises(ValueError, match="trailing bytes"):
        read_dlib_resnet(longer)


def _dlib_chips():
    dlib = pytest.importorskip("dlib")
    folder = model_path().parent
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(folder / "shape_predictor_5_face_landmarks.dat"))  # CC0; not the 68-point
    recognizer = dlib.face_recognition_model_v1(str(folder / "dlib_face_recognition_resnet_model_v1.dat"))
    chips, descriptors = [], []
    for path in PORTRAITS:
        img = np.asarray(Image.open(path).convert("RGB"))
        box = detector(img, 1)[0]
        chip = dlib.get_face_chip(img, predictor(img, box), size=CHIP_SIZE, padding=0.25)
        chips.append(chip)
        descriptors.append(np.array(recognizer.compute_face_descriptor(chip)))
        # a jittered chip too: other pixels, same network
        jit = dlib.jitter_image(chip, 1)[0]
        chips.append(jit)
        descriptors.append(np.array(recognizer.compute_face_descriptor(jit)))
    return np.stack(chips), np.stack(descriptors)


@needs_model
def test_port_matches_dlib(embedder):
    """On the same aligned crops, the port's descriptors equal dlib's to 1e-4."""
    chips, ref = _dlib_chips()
    x = torch.from_numpy(chips).permute(0, 3, 1, 2).float() / 255.0
    with torch.no_grad():
        ours = embedder(x).numpy()
    assert np.abs(ours - ref).max() <= 1e-4, np.abs(ours - ref).max()
    # the two people are apart, each person's jittered chip is close
    d = np.linalg.norm(ref[:, None] - ref[None], axis=-1)
    assert d[0, 1] < 0.6 and d[2, 3] < 0.6 and d[0, 2] > 0.5


@needs_model
def test_camera_alignment_matches_dlib_chips(embedder):
    """A portrait framed by a3d.inference.preprocess and cropped from the camera (no landmark detector) gives a
    descriptor close to the one of dlib's own chip of the original photo."""
    pytest.importorskip("ai_edge_litert", reason="needs ai-edge-litert: pip install a3d[preprocess]")
    from a3d.inference.preprocess import preprocess

    chips, ref = _dlib_chips()
    size = 256
    front = canonical_cameras(size)[0:1]
    A = face_crop_affines(front.viewmats, front.Ks)
    for k, path in enumerate(PORTRAITS):
        framed = preprocess(str(path), size).image[None]
        with torch.no_grad():
            d = embedder(crop_faces(framed, A))[0].numpy()
        assert np.linalg.norm(d - ref[2 * k]) < 0.35


def test_crop_affines_put_the_anchors_on_the_chip():
    size = 200
    front = canonical_cameras(size)[0:1]
    A = face_crop_affines(front.viewmats, front.Ks)[0]
    uv = framing.face_anchors_uv(size)
    for name, (u, v) in CHIP_ANCHORS.items():
        img = A[:, :2] @ torch.tensor([u, v]) + A[:, 2]
        assert torch.dist(img, torch.tensor(uv[name])) < 0.03 * size, name
    # a side camera at the same distance: the same scale, only the shift differs
    side = canonical_cameras(size)[1:2]
    B = face_crop_affines(side.viewmats, side.Ks)[0]
    torch.testing.assert_close(B[:, :2], A[:, :2])


def test_crop_faces_samples_pixel_centres():
    """The identity affine on a 150² image returns the image itself; a shift by whole pixels shifts it."""
    img = torch.rand(1, 3, CHIP_SIZE, CHIP_SIZE, dtype=torch.float64)
    eye = torch.tensor([[[1.0, 0, 0], [0, 1.0, 0]]], dtype=torch.float64)
    torch.testing.assert_close(crop_faces(img, eye), img)
    shifted = eye.clone()
    shifted[0, 0, 2] = 3.0  # chip u -> image u + 3
    out = crop_faces(img, shifted)
    torch.testing.assert_close(out[..., :-3], img[..., 3:])
    assert torch.allclose(out[..., -3:], torch.ones(1, dtype=out.dtype), atol=1e-12)  # outside the image: white


@needs_model
def test_embedding_is_differentiable_and_resizes(embedder):
    x = torch.rand(2, 3, CHIP_SIZE, CHIP_SIZE, requires_grad=True)
    d = embedder.distance(x, x.detach().flip(-1))
    d.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(not p.requires_grad for p in embedder.parameters())
    assert embedder(torch.rand(1, 3, 100, 120)).shape == (1, 128)
    with pytest.raises(ValueError, match="crops"):
        embedder(torch.rand(3, 150, 150))


@needs_model
def test_identity_distance_is_a_loss(embedder):
    """A render identical to the framed input at the front camera is at distance 0; other views are not;
    the distance back-propagates into the renders."""
    image = torch.from_numpy(np.array(Image.open(ROOT / "tests" / "fixtures" / "astronaut_256.jpg"))).permute(2, 0, 1)
    image = image.float().div(255)[:, :128, 64:192]
    image = torch.nn.functional.interpolate(image[None], size=(96, 96), mode="area")[0]
    cams = canonical_cameras(96)
    renders = torch.stack([image, image.flip(-1), image, image]).requires_grad_(True)
    d = identity_distance(image, renders, cams.viewmats, cams.Ks, embedder)
    assert d.shape == (4,) and float(d[0].detach()) < 1e-4 and (d[1:] > 1e-3).all()
    d[1:].sum().backward()
    assert torch.isfinite(renders.grad).all() and renders.grad[1:].abs().sum() > 0
    with pytest.raises(ValueError, match="image, renders"):
        identity_distance(image[None], renders, cams.viewmats, cams.Ks, embedder)
    # the same distances from the reusable term (the portrait's descriptor computed once)
    term = ViewIdentity(image, cams.viewmats, cams.Ks, embedder)
    torch.testing.assert_close(term(renders.detach()), d.detach())
    with pytest.raises(ValueError, match="renders"):
        term(renders[:2])
