"""Photos with several faces: all are found, the largest is the default (with a warning), face=i
picks another, an out-of-range index or a too-small face is a clear error; side photos are framed
like the front one."""
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from a3d.inference import preprocess as pp

FIXTURE = Path(__file__).parent / "fixtures" / "astronaut_256.jpg"
needs_models = pytest.mark.skipif(not pp.has_face_models(), reason="needs ai-edge-litert (the preprocess extra)")


def two_faces() -> np.ndarray:
    """The astronaut at full size on the left and at 60% on the right of one white canvas."""
    big = Image.open(FIXTURE).convert("RGB")
    small = big.resize((154, 154), Image.LANCZOS)
    canvas = Image.new("RGB", (256 + 180, 256), (255, 255, 255))
    canvas.paste(big, (0, 0))
    canvas.paste(small, (270, 60))
    return np.asarray(canvas, np.float32) / 255


@needs_models
def test_every_face_is_found_largest_first():
    faces = pp.detect_faces(two_faces())
    assert len(faces) == 2
    sides = [f.box[2] - f.box[0] for f in faces]
    assert sides[0] > sides[1] * 1.3
    assert faces[0].box[0] < 256 <= faces[1].box[0]  # the big one is on the left


@needs_models
def test_largest_by_default_with_a_warning_and_face_index_picks_another():
    img = two_faces()
    with pytest.warns(RuntimeWarning, match="2 faces"):
        a = pp.preprocess(img, 64)
    assert a.faces == 2 and a.face_index == 0 and a.face.box[0] < 256
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        b = pp.preprocess(img, 64, face=1)
    assert b.face_index == 1 and b.face.box[0] >= 256
    with pytest.raises(pp.NoFaceError, match="index 2"):
        pp.preprocess(img, 64, face=2)
    with pytest.raises(ValueError, match="face"):
        pp.preprocess(img, 64, face=-1)


@needs_models
def test_too_small_face_names_its_size(monkeypatch):
    monkeypatch.setattr(pp, "MIN_FACE_SIDE", 10_000)
    with pytest.raises(pp.FaceTooSmallError, match="pixels across"):
        pp.preprocess(str(FIXTURE), 64)


@needs_models
def test_side_photo_framed_like_the_front():
    front = pp.preprocess(str(FIXTURE), 64)
    assert front.scale is not None and front.scale > 0
    # the same photo shifted by 30 px and padded: framed like the front, the crown lands on the same row
    src = np.asarray(Image.open(FIXTURE).convert("RGB"), np.float32) / 255
    shifted = np.ones((300, 300, 3), np.float32)
    shifted[30:286, 20:276] = src
    side = pp.frame_like(shifted, 64, front)
    crown = lambda m: int(np.nonzero(m.numpy().max(1) > 0.5)[0][0])  # noqa: E731
    assert abs(crown(side.mask) - crown(front.mask)) <= 1
    assert side.image.shape == (3, 64, 64) and side.mode == "framed-like-front"
