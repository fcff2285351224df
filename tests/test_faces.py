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


# ---- choosing by evidence ------------------------------------------------------------------------------

def _keypoints(roll_deg: float = 0.0, side: float = 100.0, mouth: float = 0.45, nose: float = 0.25) -> pp.Face:
    """A face box of ``side`` at the origin whose keypoints sit where a frontal face has them, rolled by
    ``roll_deg`` about the box centre (mouth and nose drops in units of the side)."""
    e = 0.2 * side
    pts = np.array([[-e, 0.0], [e, 0.0], [0.0, nose * side], [0.0, mouth * side], [-0.45 * side, 0.05 * side],
                    [0.45 * side, 0.05 * side]])
    t = np.radians(roll_deg)
    R = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    kp = pts @ R.T + side / 2
    return pp.Face(0.9, (0.0, 0.0, side, side), kp)


def test_geometry_of_a_face_holds_under_roll_and_fails_for_other_patterns():
    from a3d.inference.faces import geometry_problem

    for roll in (-35.0, -30.0, 0.0, 30.0, 35.0):
        assert geometry_problem(_keypoints(roll)) == "", roll
    assert geometry_problem(_keypoints(180.0)) == ""  # a whole face upside down is still a face (framing turns it)
    flipped = _keypoints()
    flipped.keypoints[:, 1] = 100 - flipped.keypoints[:, 1]  # mirrored top to bottom: the mouth above the eyes
    assert "below" in geometry_problem(flipped)
    assert "too close" in geometry_problem(_keypoints(mouth=0.1, nose=0.05))
    assert "nose" in geometry_problem(_keypoints(nose=0.6))  # the nose below the mouth
    wide = _keypoints()
    wide.keypoints[[0, 1], 0] += [-30, 30]  # eyes 100 px apart in a 100 px box
    assert "far apart" in geometry_problem(wide)


@needs_models
def test_candidates_are_judged_and_listed():
    """The two-face canvas: both faces plausible, confirmed by both detectors with a person around them; the
    metadata form of a candidate carries its verdict."""
    faces = pp.find_faces(two_faces())
    plausible = [f for f in faces if f.plausible]
    assert len(plausible) == 2
    for f in plausible:
        assert min(f.scores) >= 0.5 and f.person >= 0.5 and f.why == ""
    d = plausible[0].to_dict()
    assert d["plausible"] is True and len(d["scores"]) == 2 and d["detector"] in ("short-range", "full-range")


@needs_models
def test_no_plausible_face_lists_the_candidates_and_what_to_do():
    """The Hubble deep field: its galaxies make the short-range detector propose faces that the full-range one
    does not confirm; the error lists them and names every way out."""
    from skimage import data

    sky = data.hubble_deep_field()
    faces = pp.find_faces(np.asarray(sky, np.float32) / 255)
    assert faces and not any(f.plausible for f in faces)
    with pytest.raises(pp.NoFaceError) as e:
        pp.preprocess(sky, 64)
    msg = str(e.value)
    assert "no plausible face" in msg and "[0]" in msg and "face=i" in msg and "preprocess=False" in msg
    assert "crop the photo" in msg


@needs_models
def test_a_face_without_a_person_is_never_a_blank_input():
    """The photo's own alpha says nothing is there: the face is implausible (no person around it), and asking for
    it anyway (face=0) is an EmptyMatteError, not a blank white input."""
    rgb = np.asarray(Image.open(FIXTURE).convert("RGB"))
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    rgba[40:200, 60:200, 3] = 0  # the head cut out of the matte
    with pytest.raises(pp.NoFaceError, match="no person around it"):
        pp.preprocess(rgba, 64)
    with pytest.raises(pp.EmptyMatteError, match="nearly empty"):
        pp.preprocess(rgba, 64, face=0)


@needs_models
def test_cli_exit_code_2_with_the_reason(tmp_path, capsys):
    from a3d.cli import main

    path = tmp_path / "sky.png"
    from skimage import data

    Image.fromarray(data.hubble_deep_field()).save(path)
    rc = main(["reconstruct", str(path), "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2 and "no plausible face" in err and "--no-preprocess" in err
