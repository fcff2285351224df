"""MediaPipe's 468-point face mesh of a video frame, and where its points sit on the morphable head.

The landmark model ``a3d/assets/mediapipe/face_landmark.tflite`` (MediaPipe's face mesh, 192² input in
[0, 1], 468 points (x, y, z) in input pixels, and a face-presence logit) runs through ``ai-edge-litert``
like the detectors of :mod:`a3d.inference.mediapipe`. As MediaPipe's own pipeline, it reads a square crop
1.5 times the face's size around the face: the first frame's face comes from a3d's detector
(:func:`a3d.inference.faces.detect_faces`), later frames' from the previous frame's points (tracking),
and the detector is asked again whenever the presence score drops.

:func:`load_face_mesh_map` reads ``a3d/assets/mediapipe/face_mesh_map.json``, written by
``scripts/derive_face_mesh_map.py``: for each of the 468 points, a triangle and barycentric coordinates on
the morphable head (:mod:`a3d.data.head_basis`), found by casting the points of synthetic heads' renders
onto their meshes, and how much they spread between heads (points on the face's outline, which the
model places on the silhouette, spread most and weigh least in a fit).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from ..core.assets import ASSET_DIR
from ..errors import SetupError

__all__ = ["FACE_LANDMARK_MODEL", "FACE_MESH_MAP", "FaceMesh", "face_mesh", "track", "load_face_mesh_map",
           "MESH_POINTS"]

FACE_LANDMARK_MODEL = ASSET_DIR / "mediapipe" / "face_landmark.tflite"
FACE_MESH_MAP = ASSET_DIR / "mediapipe" / "face_mesh_map.json"
_INPUT = 192
_PRESENT = 0.5  # the presence probability below which a frame's face counts as lost

MESH_POINTS: dict[str, tuple[int, ...]] = {
    "lips_inner": (13, 14), "mouth_corners": (61, 291), "right_eye_lids": (159, 145), "left_eye_lids": (386, 374),
    "eye_corners": (33, 263), "nose_tip": (1,),
}
"""Indices of MediaPipe's face mesh used by the measurements (docs/animation.md): the inner lips' middle (upper,
lower), the mouth's corners, each eye's lids (upper, lower; the subject's right eye first) and the eyes' outer
corners."""


@dataclass
class FaceMesh:
    """A frame's face mesh: points [468, 3] as (u, v) image pixels and a depth in pixels (smaller: nearer the
    camera, relative to the face's centre); presence in (0, 1); box (u0, v0, u1, v1): the crop it was read in."""

    points: np.ndarray
    presence: float
    box: tuple[float, float, float, float]


def _sigmoid(x: float) -> float:
    return float(1 / (1 + np.exp(-x)))


def face_mesh(image: Image.Image, box: tuple[float, float, float, float]) -> FaceMesh:
    """Run the landmark model on the square crop 1.5 times ``box`` (u0, v0, u1, v1, pixels) around its centre."""
    from ..inference.mediapipe import run_model

    if not FACE_LANDMARK_MODEL.is_file():
        raise SetupError(f"the MediaPipe face mesh model is missing: {FACE_LANDMARK_MODEL} (reinstall a3d)")
    u0, v0, u1, v1 = box
    cu, cv, side = (u0 + u1) / 2, (v0 + v1) / 2, 1.5 * max(u1 - u0, v1 - v0, 8.0)
    crop_box = (cu - side / 2, cv - side / 2, cu + side / 2, cv + side / 2)
    crop = image.transform((_INPUT, _INPUT), Image.Transform.EXTENT, crop_box, Image.Resampling.BILINEAR)
    x = np.asarray(crop, dtype=np.float32)[None] / 255.0
    points, flag = run_model(FACE_LANDMARK_MODEL, x)
    p = points.reshape(468, 3).astype(np.float64) * (side / _INPUT)
    p[:, 0] += crop_box[0]
    p[:, 1] += crop_box[1]
    return FaceMesh(p, _sigmoid(float(flag.reshape(-1)[0])), crop_box)


def _box_of(points: np.ndarray) -> tuple[float, float, float, float]:
    lo, hi = points[:, :2].min(0), points[:, :2].max(0)
    return float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])


def _detect(rgb: np.ndarray) -> tuple[float, float, float, float] | None:
    from ..inference.faces import detect_faces

    faces = detect_faces(rgb.astype(np.float32) / 255.0)
    return tuple(float(v) for v in faces[0].box) if faces else None


def track(frames, progress: bool = False, total: int | None = None) -> list[FaceMesh | None]:
    """The face mesh of each frame ([H, W, 3] uint8) of an iterable, tracked from frame to frame (see the
    module docstring); None where no face is found."""
    from tqdm.auto import tqdm

    out: list[FaceMesh | None] = []
    box = None
    for frame in tqdm(frames, desc="face mesh", unit="frame", total=total, disable=not progress):
        image = Image.fromarray(np.ascontiguousarray(frame[..., :3]))
        mesh = None
        for attempt in range(2):  # the tracked box first, then the detector's
            if box is None or attempt == 1:
                box = _detect(np.asarray(image))
                if box is None:
                    break
                box = _refined(image, box)
            mesh = face_mesh(image, box)
            if mesh.presence >= _PRESENT:
                break
            mesh, box = None, None
        if mesh is not None:
            box = _box_of(mesh.points)  # MediaPipe's tracking: the next crop around this frame's points
        out.append(mesh)
    return out


def _refined(image: Image.Image, box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    """A detector box -> the box of the face mesh read in it (the detector's box is smaller than the mesh's)."""
    mesh = face_mesh(image, box)
    return _box_of(mesh.points) if mesh.presence >= _PRESENT else box


@lru_cache(maxsize=2)
def _read_map(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from ..core.files import read_json

    doc = read_json(path, max_bytes=2 * 2**20, what="face mesh map")
    tri = np.asarray(doc["triangle"], dtype=np.int64)
    bary = np.asarray(doc["bary"], dtype=np.float32)
    spread = np.asarray(doc["spread"], dtype=np.float32)
    rest = np.asarray(doc.get("rest_rotation", np.eye(3)), dtype=np.float32)
    if tri.shape != (468,) or bary.shape != (468, 3) or spread.shape != (468,) or rest.shape != (3, 3):
        raise ValueError(f"{path}: expected 468 triangles, barycentric triples and spreads, and a 3×3 rest rotation")
    return tri, bary, spread, rest


def load_face_mesh_map(device: torch.device | str = "cpu") -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """([468] triangle indices into the basis's faces, [468, 3] barycentric coordinates, [468] spread in head
    units) of MediaPipe's points on the morphable head, and [3, 3] the rotation that a fit on this map finds for
    a head facing the camera (identity in a map without one)."""
    tri, bary, spread, rest = _read_map(str(FACE_MESH_MAP))
    return tuple(torch.as_tensor(x, device=device) for x in (tri, bary, spread, rest))
