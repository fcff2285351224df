"""Finding the face to frame: candidates from two detectors, each judged by its evidence.

Candidates come from MediaPipe's two BlazeFace detectors (:mod:`a3d.inference.mediapipe`): short range
(128² input, faces that fill much of the frame) and full range (192², small and distant faces), each run
on the whole image letterboxed to a square and on overlapping half-size tiles (3 × 3, where a small face
beside a large one, or in a wide shot, becomes visible). Every candidate is zoomed on (:func:`refine_face`:
the short-range detector on a window of 2.8 face boxes, where it is most accurate) and judged
(:func:`find_faces`):

* its score after the zoom (:data:`PLAUSIBLE_SCORE`);
* the geometry of its keypoints, in the frame of the eyes (so a rolled head is judged like an upright one):
  the mouth below the eyes by about their distance, the nose between them, the eyes a sensible part of the
  box (:func:`geometry_problem`);
* the person matte around it (:data:`MIN_PERSON`): a face belongs to a person, so the selfie segmenter (or
  the image's own alpha) must see one there. This is what rejects crossed arms, a patterned cushion or a
  cat's face that a detector scores above 0.5.

Boxes and keypoints are in source pixels (u right, v down, pixel centres at +0.5).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .matte import person_probability
from .mediapipe import FULL_RANGE, SHORT_RANGE, run_model

__all__ = ["Face", "detect_face", "detect_faces", "find_faces", "refine_face", "geometry_problem",
           "PLAUSIBLE_SCORE", "MIN_PERSON", "TRAINED_TURN_DEG", "TURNED_FACE_DEG"]

_MIN_SCORE = 0.5  # a detection above this is a candidate
PLAUSIBLE_SCORE = 0.5
"""Both detectors' scores on a window around a candidate must reach this for it to count as a face."""
MIN_PERSON = 0.5
"""Mean person probability over the middle of a candidate's box that a plausible face needs."""
MIN_SIDE = 32  # the smallest window worth running a detector on, pixels (as the loader's smallest image)


@dataclass
class Face:
    """A detected face in source pixels (u right, v down), and what :func:`find_faces` made of it.

    score: detector confidence in (0, 1) (after the zoom).
    box: (u0, v0, u1, v1).
    keypoints: [6, 2]: right eye, left eye (the subject's), nose tip, mouth, right ear, left ear.
    detector: which detector proposed it: 'short-range' or 'full-range'.
    plausible: whether it passed every check (None: not judged, as :func:`detect_faces` returns it).
    why: the failed check, '' when plausible.
    person: mean person probability over the middle of its box (None: not judged).
    scores: (short range, full range): each detector's score for it on a window of 2.8 boxes around it
        (None: not judged).
    """

    score: float
    box: tuple[float, float, float, float]
    keypoints: np.ndarray = field(repr=False)
    detector: str = "short-range"
    plausible: bool | None = None
    why: str = ""
    person: float | None = None
    scores: tuple[float, float] | None = None

    @property
    def side(self) -> float:
        """The box's longer side, pixels."""
        return max(self.box[2] - self.box[0], self.box[3] - self.box[1])

    def to_dict(self) -> dict:
        return {"score": round(self.score, 4), "box": [round(v, 2) for v in self.box],
                "keypoints": np.round(self.keypoints, 2).tolist(), "yaw_deg": round(self.yaw_deg, 1),
                "detector": self.detector, "plausible": self.plausible, "why": self.why,
                "person": None if self.person is None else round(self.person, 3),
                "scores": None if self.scores is None else [round(v, 4) for v in self.scores]}

    def moved(self, du: float, dv: float) -> Face:
        b = self.box
        return Face(self.score, (b[0] + du, b[1] + dv, b[2] + du, b[3] + dv),
                    self.keypoints + np.array([du, dv], np.float64), self.detector)

    @property
    def yaw_deg(self) -> float:
        """How far the face is turned from the camera, degrees (positive: toward the image's right, the
        subject's left), from the keypoints: the nose tip's horizontal offset from the eyes' midpoint over
        the eyes' distance is tan(yaw) · _NOSE_OVER_EYES (the eyes come closer as cos(yaw), the nose moves
        as sin(yaw)). Calibrated on synthetic heads turned by known yaws (a3d.data.augment.turn_heads, 256²,
        12 heads a yaw; scripts/turn_calibration.py): the mean is within 3.5° of the truth up to ±45°, one
        face's estimate spreads by 4–6° (standard deviation)."""
        k = self.keypoints
        eyes = float(np.linalg.norm(k[1] - k[0]))
        offset = float(k[2, 0] - (k[0, 0] + k[1, 0]) / 2)
        return math.degrees(math.atan2(offset, _NOSE_OVER_EYES * max(eyes, 1e-6)))


_NOSE_OVER_EYES = 0.52  # the nose tip's depth in front of the eyes over their distance, as the detector sees it
TRAINED_TURN_DEG = 30.0
"""How far from the camera the bundled model's training faces were turned (its recipe's `head_yaw`)."""
TURNED_FACE_DEG = 35.0
"""Faces turned further than this from the camera get a warning: the bundled model was trained on heads
turned up to ±TRAINED_TURN_DEG (30°) and scores 18.8–19.1 dB on held-out heads from 0° to ±30°, 14.8 at ±45°
(docs/eval.md, "Turned heads"); 35° leaves room for the estimate's spread (4–6°)."""


# ---- one detector run ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Detector:
    """A BlazeFace model: its file, input side and anchor centres [A, 2] (normalised), from MediaPipe's SSD
    anchor options for it (fixed anchor size, so the centres are all the decoder needs)."""

    name: str
    path: Path
    size: int
    anchors: np.ndarray = field(repr=False)


def _anchors(layers: tuple[tuple[int, int], ...]) -> np.ndarray:
    """Anchor centres [A, 2] of grids (cells a side, anchors a cell), in order."""
    out = []
    for grid, per_cell in layers:
        ys, xs = np.meshgrid(np.arange(grid), np.arange(grid), indexing="ij")
        c = np.stack([(xs + 0.5) / grid, (ys + 0.5) / grid], -1).reshape(-1, 1, 2)
        out.append(np.repeat(c, per_cell, 1).reshape(-1, 2))
    return np.concatenate(out).astype(np.float32)


# short range: 16² cells of stride 8 with 2 anchors, then 8² of stride 16 with 6 (896); full range: 48² of stride 4
_SHORT = _Detector("short-range", SHORT_RANGE, 128, _anchors(((16, 2), (8, 6))))
_FULL = _Detector("full-range", FULL_RANGE, 192, _anchors(((48, 1),)))


def _detect_all(rgb: np.ndarray, det: _Detector = _SHORT, min_score: float = _MIN_SCORE) -> list[Face]:
    """Every face of one run of ``det`` on ``rgb`` [H, W, 3] letterboxed to a square, largest first: detections
    above the score threshold are grouped greedily (largest first, IoU > 0.3) and each group averaged,
    weighted by score."""
    H, W = rgb.shape[:2]
    side = max(H, W)
    pad_u, pad_v = (side - W) / 2, (side - H) / 2
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None]
    x = F.pad(x, (int(pad_u), side - W - int(pad_u), int(pad_v), side - H - int(pad_v)))
    x = F.interpolate(x, size=(det.size, det.size), mode="bilinear", antialias=True, align_corners=False)
    x = (x[0].permute(1, 2, 0).numpy() * 2 - 1)[None]  # [1, S, S, 3] in [-1, 1]
    reg, cls = run_model(det.path, x)
    reg, scores = reg[0], 0.5 * (1 + np.tanh(np.clip(cls[0, :, 0], -100, 100) / 2))  # sigmoid, overflow-free
    keep = np.nonzero(scores >= min_score)[0]
    if len(keep) == 0:
        return []
    reg, scores, anchors = reg[keep] / det.size, scores[keep], det.anchors[keep]
    centre = reg[:, :2] + anchors
    half = reg[:, 2:4] / 2
    boxes = np.concatenate([centre - half, centre + half], 1)  # normalised (u0, v0, u1, v1)
    kps = reg[:, 4:16].reshape(-1, 6, 2) + anchors[:, None]
    to_px = lambda p: p * side - np.array([pad_u, pad_v])  # noqa: E731
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    left = np.ones(len(boxes), bool)
    faces = []
    while left.any():
        best = int(np.argmax(np.where(left, area, -np.inf)))
        group = (_iou(boxes[best], boxes) > 0.3) & left
        left &= ~group
        w = scores[group][:, None]
        box = (boxes[group] * w).sum(0) / w.sum()
        kp = (kps[group] * w[:, :, None]).sum(0) / w.sum()
        box_px = np.concatenate([to_px(box[:2]), to_px(box[2:])])
        faces.append(Face(float(scores[group].max()), tuple(float(v) for v in box_px), to_px(kp).astype(np.float64),
                          det.name))
    return faces


def _window(rgb: np.ndarray, u: int, v: int, side: int) -> np.ndarray | None:
    """The square window [v, v + side) × [u, u + side) of ``rgb`` (zero outside the image); None if it misses."""
    H, W = rgb.shape[:2]
    su0, sv0, su1, sv1 = max(u, 0), max(v, 0), min(u + side, W), min(v + side, H)
    if su1 <= su0 or sv1 <= sv0:
        return None
    win = np.zeros((side, side) + rgb.shape[2:], np.float32)
    win[sv0 - v:sv1 - v, su0 - u:su1 - u] = rgb[sv0:sv1, su0:su1]
    return win


def _detect_window(rgb: np.ndarray, u: int, v: int, side: int, det: _Detector = _SHORT,
                   min_score: float = _MIN_SCORE) -> list[Face]:
    """Every face of ``det`` in the square window at (u, v) of ``side`` pixels, in source pixels, largest first."""
    win = _window(rgb, u, v, side)
    return [] if win is None else [f.moved(u, v) for f in _detect_all(win, det, min_score)]


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lo, hi = np.maximum(a[:2], b[:, :2]), np.minimum(a[2:], b[:, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), 1)
    area = lambda x: np.prod(np.clip(x[..., 2:] - x[..., :2], 0, None), -1)  # noqa: E731
    return inter / np.maximum(area(a) + area(b) - inter, 1e-12)


# ---- candidates -----------------------------------------------------------------------------------------

def refine_face(rgb: np.ndarray, face: Face) -> Face | None:
    """Zoom on ``face``: run the short-range detector on a square window of 2.8 face boxes around it (its most
    accurate scale), up to three times while the box keeps shrinking. When the short-range detector loses it
    at once, the full-range one is tried on the same window. None if both lose it."""
    for det in (_SHORT, _FULL):
        f = face
        for i in range(3):
            u0, v0, u1, v1 = f.box
            box = f.side
            side = int(round(2.8 * box))
            if side < MIN_SIDE:
                break
            found = _detect_window(rgb, int(round((u0 + u1 - side) / 2)), int(round((v0 + v1 - side) / 2)), side, det)
            if not found:
                f = None if i == 0 else f
                break
            f = Face(found[0].score, found[0].box, found[0].keypoints, face.detector)
            if f.side > 0.8 * box:
                break
        if f is not None:
            return f
    return None


def _tiles(rgb: np.ndarray) -> list[tuple[int, int, int]]:
    """(u, v, side) of 3 × 3 overlapping half-size square tiles; [] for an image too small to tile."""
    H, W = rgb.shape[:2]
    side = min(H, W) // 2
    if side < MIN_SIDE:
        return []
    us, vs = np.linspace(0, W - side, 3).round(), np.linspace(0, H - side, 3).round()
    return [(int(u), int(v), side) for v in vs for u in us]


def detect_faces(rgb: np.ndarray, tiles: bool = True) -> list[Face]:
    """Every face candidate in ``rgb`` [H, W, 3] (float in [0, 1]), refined, not judged, largest box first.

    Both detectors run on the whole image and (``tiles``) on its half-size tiles; each detection not already found
    (IoU > 0.3 with a refined candidate) is refined by :func:`refine_face`. A detection that the zoom loses is
    kept with its unrefined box and ``plausible=False``, ``why='lost when zoomed in'``.
    """
    proposals = [*_detect_all(rgb, _SHORT), *_detect_all(rgb, _FULL)]
    for u, v, side in _tiles(rgb) if tiles else []:
        proposals += _detect_window(rgb, u, v, side, _SHORT) + _detect_window(rgb, u, v, side, _FULL)
    faces: list[Face] = []

    def known(f: Face) -> bool:
        return any(_iou(np.array(f.box), np.array([g.box]))[0] > 0.3 for g in faces)

    for p in proposals:
        if known(p):  # a tile or the other detector seeing a face already found: no need to zoom on it again
            continue
        r = refine_face(rgb, p)
        if r is None:
            faces.append(Face(p.score, p.box, p.keypoints, p.detector, False, "lost when zoomed in"))
        elif not known(r):
            faces.append(r)
    return sorted(faces, key=lambda f: -(f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))


def detect_face(rgb: np.ndarray) -> Face | None:
    """The largest plausible face in ``rgb`` [H, W, 3] (float in [0, 1]) judged without the matte (for framed
    images, renders and calibration), or None. The tiles are searched only when the whole image gives none."""
    for tiles in (False, True):
        face = next((f for f in find_faces(rgb, matte=False, tiles=tiles) if f.plausible), None)
        if face is not None:
            return face
    return None


def geometry_problem(face: Face) -> str:
    """What is wrong with ``face``'s keypoints for a human face ('' if nothing), in units of its box side s.

    The mouth lies 0.25-0.75 s from the eyes' midpoint, the nose tip between them (its projection on that
    line 10-95% of the way), and the eyes at most 0.75 s apart. Where the eyes are far enough apart to give the
    face's roll (0.25 s: faces turned less than about 50°), the mouth must lie within 40° of their
    perpendicular on the chin's side, so that a rolled head is judged like an upright one and an upside-down
    or mirrored pattern is not a face. Bounds measured on the example portraits, synthetic heads turned up to
    60° and rolled by ±30°.
    """
    k, s = face.keypoints, face.side
    eyes = k[1] - k[0]
    d = float(np.linalg.norm(eyes))
    if d > 0.75 * s:
        return "eyes too far apart for a face"
    mid = (k[0] + k[1]) / 2
    down = k[3] - mid
    m = float(np.linalg.norm(down))
    if not 0.25 * s <= m <= 0.75 * s:
        return "mouth too close to the eyes" if m < 0.25 * s else "mouth too far from the eyes"
    nose = float((k[2] - mid) @ down) / (m * m)
    if not 0.1 <= nose <= 0.95:
        return "nose not between the eyes and the mouth"
    if d >= 0.25 * s:
        chin_side = np.array([-eyes[1], eyes[0]]) / d  # the eyes' perpendicular toward the chin (u right, v down)
        if float(down @ chin_side) < math.cos(math.radians(40)) * m:
            return "mouth not below the eyes"
    return ""


def find_faces(rgb: np.ndarray, alpha: np.ndarray | None = None, *, matte: bool = True,
               tiles: bool = True) -> list[Face]:
    """Every face candidate in ``rgb`` [H, W, 3] (float in [0, 1]), judged, largest box first.

    Each candidate of :func:`detect_faces` gets ``scores``, ``person``, ``plausible`` and ``why``. Plausible
    when both detectors, run again on a window of 2.8 boxes around it, find it with a score of at least
    :data:`PLAUSIBLE_SCORE` (the detectors err on different things: a false positive of one is rarely one of
    the other), its keypoints pass :func:`geometry_problem`, and the person matte (``alpha`` [H, W] in [0, 1]
    when the image has one, else the selfie segmenter on that window) averages at least :data:`MIN_PERSON`
    over the middle of its box. ``matte=False`` skips the matte check (``person`` stays None); ``tiles=False``
    proposes from the whole image only.
    """
    faces = detect_faces(rgb, tiles)
    for f in faces:
        f.person = _person_at(rgb, alpha, f) if matte else None
        if f.plausible is False:  # lost in the zoom: already judged
            continue
        f.scores = _second_opinion(rgb, f)
        problem = geometry_problem(f)
        if min(f.scores) < PLAUSIBLE_SCORE:
            weak = [f"{name} {s:.2f}" for name, s in zip(("short-range", "full-range"), f.scores)]
            f.why = f"not confirmed by both detectors ({', '.join(weak)}; {PLAUSIBLE_SCORE} needed)"
        elif problem:
            f.why = problem
        elif f.person is not None and f.person < MIN_PERSON:
            f.why = f"no person around it (matte {f.person:.2f})"
        f.plausible = not f.why
    return faces


def _second_opinion(rgb: np.ndarray, face: Face) -> tuple[float, float]:
    """The best score of each detector (short range, full range) for a detection overlapping ``face`` (IoU > 0.3)
    in a square window of 2.8 boxes around it; 0 where a detector finds nothing there."""
    u0, v0, u1, v1 = face.box
    side = max(int(round(2.8 * face.side)), MIN_SIDE)
    u, v = int(round((u0 + u1 - side) / 2)), int(round((v0 + v1 - side) / 2))
    out = []
    for det in (_SHORT, _FULL):
        found = _detect_window(rgb, u, v, side, det, min_score=0.05)
        out.append(max([g.score for g in found if _iou(np.array(g.box), np.array([face.box]))[0] > 0.3], default=0.0))
    return out[0], out[1]


def _person_at(rgb: np.ndarray, alpha: np.ndarray | None, face: Face) -> float:
    """Mean person probability over the middle half of ``face``'s box (the alpha channel where given, else the
    selfie segmenter run on a square window of 2.8 boxes around the face: a head-and-shoulders view, what it
    was made for)."""
    u0, v0, u1, v1 = face.box
    cu, cv, s = (u0 + u1) / 2, (v0 + v1) / 2, face.side
    if alpha is not None:
        H, W = alpha.shape
        a = alpha[int(np.clip(cv - s / 4, 0, H - 1)):int(np.clip(cv + s / 4, 1, H)),
                  int(np.clip(cu - s / 4, 0, W - 1)):int(np.clip(cu + s / 4, 1, W))]
        return float(a.mean()) if a.size else 0.0
    side = max(int(round(2.8 * s)), MIN_SIDE)
    u, v = int(round(cu - side / 2)), int(round(cv - side / 2))
    win = _window(rgb, u, v, side)
    if win is None:
        return 0.0
    p = person_probability(win)  # [256, 256]
    n = p.shape[0]
    lo, hi = int(n * (0.5 - 0.25 * s / side)), int(math.ceil(n * (0.5 + 0.25 * s / side)))
    return float(p[lo:hi, lo:hi].mean())
