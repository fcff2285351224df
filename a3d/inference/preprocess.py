"""From a user's picture to the model's input: loading, face framing, background removal.

Steps of :func:`preprocess` (``align=True``, the default of :func:`a3d.reconstruct`):

1. :func:`load_image` reads a path, PIL image, numpy array or tensor in any mode PIL reads
   (EXIF orientation applied, palette/grayscale/16-bit/CMYK converted, alpha kept), with bounds
   checked from the header before decoding: files over :data:`MAX_FILE_BYTES` and images under
   :data:`MIN_SIDE` pixels a side are refused; a JPEG over :data:`DRAFT_PIXELS` (a 48-50 MP phone
   photo) is decoded at 1/2, 1/4 or 1/8 of its size by the JPEG decoder itself, so that it never
   occupies more than :data:`DRAFT_PIXELS` in memory; JPEGs over :data:`MAX_JPEG_PIXELS` and other
   images over :data:`MAX_PIXELS` are refused (a decompression bomb). Float pixels follow the
   range rule of :func:`load_image`.
2. The face is found with MediaPipe's short-range face detector (BlazeFace, a ``.tflite`` run by
   ``ai-edge-litert``; zoomed in on its first guess so that small and very large faces are
   located well, see :func:`detect_face`); its eyes and mouth are mapped by a least-squares
   similarity transform (scale, rotation, shift) onto where :func:`a3d.core.framing.face_anchors_uv`
   puts them in the front canonical view, and the photo is resampled into that square frame
   (bicubic, pre-filtered when shrinking; outside the photo counts as background). No face:
   :class:`NoFaceError`.
3. The background: the image's own alpha channel if it has a non-trivial one, else MediaPipe's
   selfie segmentation (256², coarse), upsampled and refined by a guided filter on the photo so the
   edge follows the hair, then softly thresholded. Everything outside the person (and outside the
   photo) becomes :data:`a3d.core.framing.BACKGROUND`.
4. Resize to the model's resolution (area-averaged, no aliasing).

Without ``ai-edge-litert`` (``pip install a3d[preprocess]``) step 2-3 cannot run: a warning says so
once, and the documented fallback is used: the largest centred square, resized, alpha (if any)
composited, no background removal. ``align=False`` (``preprocess=False``) is for images that are
already framed like the model's input: the same centred square and resize, nothing else.
"""
from __future__ import annotations

import contextlib
import importlib.util
import io
import math
import os
import sys
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps
from torch import Tensor

from ..core import framing
from ..core.assets import ASSET_DIR
from ..errors import InputError, check_int

__all__ = ["ImageError", "NoFaceError", "FaceTooSmallError", "Face", "Preprocessed", "load_image", "detect_face",
           "detect_faces", "segment_person", "preprocess", "frame_like", "has_face_models", "MAX_FILE_BYTES",
           "MAX_PIXELS", "MAX_JPEG_PIXELS", "DRAFT_PIXELS", "MIN_SIDE", "MIN_FACE_SIDE", "FLOAT_TOLERANCE"]

MAX_FILE_BYTES = 50 * 2**20
"""Largest image file accepted, bytes."""
MAX_PIXELS = 40_000_000
"""Largest image decoded at full size, pixels (width × height), checked from the header before decoding."""
MAX_JPEG_PIXELS = 120_000_000
"""Largest JPEG accepted, pixels (checked from the header); it is decoded at reduced size (:data:`DRAFT_PIXELS`)."""
DRAFT_PIXELS = 8_000_000
"""JPEGs larger than this are decoded at the largest of 1/2, 1/4, 1/8 of their size that fits in it."""
FLOAT_TOLERANCE = 0.05
"""Float pixels this far outside [0, 1] (resampling overshoot) are clipped without a word."""
MIN_SIDE = 32
"""Smallest image side accepted, pixels."""

_ASSETS = ASSET_DIR / "mediapipe"
_DETECTOR_FILE = _ASSETS / "face_detection_short_range.tflite"
_SEGMENTER_FILE = _ASSETS / "selfie_segmentation.tflite"
_DETECT_SIZE = 128  # BlazeFace short-range input
_SEGMENT_SIZE = 256  # selfie segmentation input
_MIN_SCORE = 0.5

ImageLike = Union[str, os.PathLike, Image.Image, np.ndarray, Tensor]


class ImageError(InputError):
    """The input is not an image a3d can use (unreadable, truncated, too large, too small, ...)."""


class NoFaceError(InputError):
    """Preprocessing found no face in the image."""


# ---- loading ----------------------------------------------------------------------------------------

def load_image(image: ImageLike, *, draft: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """Read ``image`` into float32 RGB [H, W, 3] in [0, 1] and its alpha [H, W] in [0, 1] (None if opaque).

    Accepts a file path, a PIL image (any mode PIL reads; EXIF orientation is applied), a numpy
    array [H, W], [H, W, C] (C = 1, 2, 3, 4: gray, gray+alpha, RGB, RGBA) of uint8, uint16 (full
    16-bit range), bool or floats, or a tensor [C, H, W] / [1, C, H, W] (uint8 or floats).
    Raises :class:`ImageError` naming the problem for anything else.

    Float pixels: values in [0, 1] are used as they are, and within :data:`FLOAT_TOLERANCE` of it
    clipped; an image whose values exceed 1 + FLOAT_TOLERANCE but stay within [0, 255] is taken as
    0..255 and divided by 255, with a warning; anything else (negative values, values over 255,
    NaN or inf) is refused.

    ``draft``: a JPEG file over :data:`DRAFT_PIXELS` is decoded at 1/2, 1/4 or 1/8 of its size
    (the returned array is that size); False decodes every file at full size (up to :data:`MAX_PIXELS`).
    """
    if isinstance(image, (str, os.PathLike)):
        return _from_pil(_open_file(image, draft), str(image))
    if isinstance(image, Image.Image):
        _check_size(image.size, "image")
        return _from_pil(image, "image")
    if isinstance(image, Tensor):
        t = image.detach().cpu()
        if t.dim() == 4 and t.shape[0] == 1:
            t = t[0]
        if t.dim() == 3 and t.shape[0] in (1, 2, 3, 4):
            t = t.permute(1, 2, 0)
        elif t.dim() != 2:
            raise ImageError(f"image: expected a tensor [C, H, W] or [1, C, H, W] with C in 1..4, "
                             f"got {tuple(image.shape)}")
        if t.dtype == torch.bfloat16 or t.dtype == torch.float16:
            t = t.float()
        return _from_array(t.numpy(), "image")
    if isinstance(image, np.ndarray):
        return _from_array(image, "image")
    raise ImageError(f"image: expected a path, PIL image, numpy array or tensor, got {type(image).__name__}")


def _check_size(size: tuple[int, int], name: str, limit: int = MAX_PIXELS) -> None:
    w, h = size
    if w * h > limit:
        hint = "; a JPEG file given by its path is decoded at reduced size" if limit == MAX_PIXELS else ""
        raise ImageError(f"{name}: {w}×{h} is {w * h / 1e6:.0f} megapixels; a3d accepts at most "
                         f"{limit / 1e6:.0f} megapixels here (downscale it first{hint})")
    if min(w, h) < MIN_SIDE:
        raise ImageError(f"{name}: {w}×{h} is too small; a3d needs at least {MIN_SIDE} pixels a side")


def _open_file(path: str | os.PathLike, draft: bool = True) -> Image.Image:
    path = os.fspath(path)
    if os.path.isdir(path):
        raise ImageError(f"{path}: is a folder; expected an image file")
    try:
        size = os.path.getsize(path)
    except OSError as e:
        raise ImageError(f"{path}: cannot read the file ({e.strerror or e})") from None
    if size == 0:
        raise ImageError(f"{path}: the file is empty")
    if size > MAX_FILE_BYTES:
        raise ImageError(f"{path}: {size / 2**20:.1f} MiB is over the {MAX_FILE_BYTES // 2**20} MiB limit for images")
    with open(path, "rb") as f:
        data = f.read()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(data))  # reads the header only
        except Image.DecompressionBombError as e:
            raise ImageError(f"{path}: the header claims an image too large to decode safely ({e})") from None
        except (Image.UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
            hint = " (HEIC/HEIF photos: convert them to JPEG first)" if data[4:12] in _HEIF_BRANDS else ""
            raise ImageError(f"{path}: not an image file that PIL can read ({type(e).__name__}){hint}") from None
        w, h = img.size
        if draft and img.format in ("JPEG", "MPO") and w * h > DRAFT_PIXELS:  # MPO: a phone's JPEG with extras
            _check_size(img.size, path, MAX_JPEG_PIXELS)  # before a single pixel is decoded
            scale = next(s for s in (2, 4, 8) if -(-w // s) * -(-h // s) <= DRAFT_PIXELS or s == 8)
            img.draft(None, (-(-w // scale), -(-h // scale)))  # the decoder's DCT scaling: 1/scale of the work
        _check_size(img.size, path)  # before a single pixel is decoded
        try:
            img.load()
        except Image.DecompressionBombError as e:
            raise ImageError(f"{path}: image too large to decode safely ({e})") from None
        except (OSError, SyntaxError, ValueError, EOFError) as e:
            raise ImageError(f"{path}: the image data is truncated or corrupt ({e})") from None
    return img


# ISO-BMFF brands of HEIC/HEIF files (what iPhones and many Android phones write): "ftyp" + brand.
_HEIF_BRANDS = {b"ftyp" + b for b in (b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1", b"avif")}


def _from_pil(img: Image.Image, name: str) -> tuple[np.ndarray, np.ndarray | None]:
    try:
        img = ImageOps.exif_transpose(img)
    except Exception:  # a malformed EXIF block must not stop an otherwise good image
        pass
    _check_size(img.size, name)
    mode = img.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        a = np.asarray(img).astype(np.float32)
        return _from_array(np.clip(a / 65535.0, 0.0, 1.0), name)
    if mode == "F":
        return _from_array(np.asarray(img, dtype=np.float32), name)
    if mode == "1":
        img = img.convert("L")
    elif mode in ("P", "PA"):
        img = img.convert("RGBA")
    elif mode in ("LA", "La", "RGBa", "RGBA"):
        img = img.convert("RGBA")
    elif mode not in ("L", "RGB"):
        img = img.convert("RGB")  # CMYK, YCbCr, LAB, HSV, RGBX, ...
    return _from_array(np.asarray(img), name)


def _from_array(a: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray | None]:
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[-1] not in (1, 2, 3, 4):
        raise ImageError(f"{name}: expected an array [H, W] or [H, W, C] with C in 1..4, got shape {a.shape}")
    _check_size((a.shape[1], a.shape[0]), name)
    if a.dtype == np.uint8:  # one float32 allocation (a large photo is hundreds of MiB as floats)
        a = np.divide(a, np.float32(255.0), dtype=np.float32)
    elif a.dtype == np.uint16:
        a = np.divide(a, np.float32(65535.0), dtype=np.float32)
    elif a.dtype == np.bool_:
        a = a.astype(np.float32)
    elif np.issubdtype(a.dtype, np.floating):
        a = _float_pixels(a.astype(np.float32), name)
    else:
        raise ImageError(f"{name}: expected uint8, uint16, bool or float pixels, got {a.dtype} "
                         f"(for 8-bit values use .astype(np.uint8))")
    c = a.shape[-1]
    rgb = np.repeat(a[..., :1], 3, -1) if c in (1, 2) else a[..., :3]
    alpha = a[..., -1] if c in (2, 4) else None
    if alpha is not None and alpha.min() >= 1.0:
        alpha = None  # an opaque alpha channel carries no matte
    return np.ascontiguousarray(rgb), alpha


def _float_pixels(a: np.ndarray, name: str) -> np.ndarray:
    """Float pixels to [0, 1] by the range rule of :func:`load_image`."""
    if not np.isfinite(a).all():
        raise ImageError(f"{name}: the image contains NaN or infinite values")
    lo, hi = float(a.min()), float(a.max())
    if lo >= -FLOAT_TOLERANCE and hi > 1.0 + FLOAT_TOLERANCE and hi <= 255.0:
        warnings.warn(f"a3d: {name}: float pixels span [{lo:.3g}, {hi:.3g}]; taken as 0..255 and divided by 255 "
                      f"(pass floats in [0, 1] to silence this)", UserWarning, stacklevel=4)
        a = a / 255.0
    elif lo < -FLOAT_TOLERANCE or hi > 1.0 + FLOAT_TOLERANCE:
        hint = " (for an image in [-1, 1] pass (x + 1) / 2)" if lo >= -1.0 - FLOAT_TOLERANCE and hi <= 1.0 + \
            FLOAT_TOLERANCE else ""
        raise ImageError(f"{name}: float pixels span [{lo:.3g}, {hi:.3g}]; expected [0, 1] "
                         f"(or 0..255, which is rescaled){hint}")
    return np.clip(a, 0.0, 1.0)


# ---- MediaPipe models through ai-edge-litert --------------------------------------------------------

_lock = threading.Lock()
_interpreters: dict[Path, Any] = {}
_warned = False


def has_face_models() -> bool:
    """Whether face detection and segmentation can run (ai-edge-litert installed, models present)."""
    if importlib.util.find_spec("ai_edge_litert") is None:
        return False
    return _DETECTOR_FILE.is_file() and _SEGMENTER_FILE.is_file()


@contextlib.contextmanager
def _native_stderr_silenced():
    """Send file descriptor 2 to /dev/null for a moment: LiteRT's C++ logs "INFO: Created TensorFlow
    Lite XNNPACK delegate for CPU." there when an interpreter is built, which would leak into every
    terminal and notebook (ipykernel forwards fd 2). Python exceptions still propagate."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _run(model: Path, x: np.ndarray) -> list[np.ndarray]:
    """Run a .tflite model on one float32 input; outputs in the model's order."""
    from ai_edge_litert.interpreter import Interpreter

    with _lock:  # a LiteRT interpreter is not thread-safe
        it = _interpreters.get(model)
        if it is None:
            with _native_stderr_silenced():
                it = Interpreter(model_path=str(model), num_threads=max(1, min(4, os.cpu_count() or 1)))
                it.allocate_tensors()
            _interpreters[model] = it
        it.set_tensor(it.get_input_details()[0]["index"], x.astype(np.float32))
        it.invoke()
        return [it.get_tensor(d["index"]).copy() for d in it.get_output_details()]


def _blazeface_anchors() -> np.ndarray:
    """[896, 2] anchor centres of BlazeFace short range (normalised): a 16×16 grid of stride 8 with
    2 anchors a cell, then an 8×8 grid of stride 16 with 6 anchors a cell (MediaPipe's SSD anchor
    options for this model, with fixed anchor size)."""
    out = []
    for grid, per_cell in ((16, 2), (8, 6)):
        ys, xs = np.meshgrid(np.arange(grid), np.arange(grid), indexing="ij")
        c = np.stack([(xs + 0.5) / grid, (ys + 0.5) / grid], -1).reshape(-1, 1, 2)
        out.append(np.repeat(c, per_cell, 1).reshape(-1, 2))
    return np.concatenate(out).astype(np.float32)


_ANCHORS = _blazeface_anchors()


@dataclass
class Face:
    """A detected face in source pixels (u right, v down).

    score: detector confidence in (0, 1).
    box: (u0, v0, u1, v1).
    keypoints: [6, 2]: right eye, left eye (the subject's), nose tip, mouth, right ear, left ear.
    """

    score: float
    box: tuple[float, float, float, float]
    keypoints: np.ndarray = field(repr=False)

    def to_dict(self) -> dict:
        return {"score": round(self.score, 4), "box": [round(v, 2) for v in self.box],
                "keypoints": np.round(self.keypoints, 2).tolist(), "yaw_deg": round(self.yaw_deg, 1)}

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
"""How far from the camera the bundled model's training faces were turned (rounds 6-7: `TrainConfig.head_yaw`)."""
TURNED_FACE_DEG = 35.0
"""Faces turned further than this from the camera get a warning: the bundled model (round 7) was trained on heads
turned up to ±TRAINED_TURN_DEG (30°) and scores 18.8–19.1 dB on held-out heads from 0° to ±30°, 14.8 at ±45°
(docs/eval.md, "Turned heads"); 35° leaves room for the estimate's spread (4–6°)."""


def detect_face(rgb: np.ndarray) -> Face | None:
    """The most prominent face in ``rgb`` [H, W, 3] (float in [0, 1]), or None.

    BlazeFace short range (128² input) is run on the image letterboxed to a square. It is most
    accurate when the face box is about a third of its input, so the first detection is refined by
    running it again on a square window of 2.8 face boxes around it (padded where it leaves the
    image), up to three times while the box keeps shrinking: this zooms in on faces of wide shots
    and out of close-ups. When the whole image gives nothing, or a detection that the first zoom
    loses, overlapping half-size tiles (3 × 3) are searched the same way; a face must hold up under
    the zoom to count. In each run, among detections above 0.5 the largest is kept, averaged with
    the detections that overlap it (weighted by score).
    """
    first = _detect_once(rgb)
    face = _refine(rgb, first) if first is not None else None
    if face is None:  # nothing, or nothing that holds up when zoomed in: search half-size tiles
        for f in _tile_detections(rgb):
            f = _refine(rgb, f)
            if f is not None and (face is None or f.score > face.score):
                face = f
    return face


def _refine(rgb: np.ndarray, face: Face) -> Face | None:
    """Zoom on ``face`` (windows of 2.8 boxes) until its box settles; None if the zoom loses it."""
    for i in range(3):
        u0, v0, u1, v1 = face.box
        box = max(u1 - u0, v1 - v0)
        side = int(round(2.8 * box))
        if side < MIN_SIDE:
            return face
        refined = _detect_window(rgb, int(round((u0 + u1 - side) / 2)), int(round((v0 + v1 - side) / 2)), side)
        if refined is None:
            return None if i == 0 else face
        face = refined
        if max(face.box[2] - face.box[0], face.box[3] - face.box[1]) > 0.8 * box:
            break
    return face


def _detect_window(rgb: np.ndarray, u: int, v: int, side: int) -> Face | None:
    """Detect in the square window [v, v + side) × [u, u + side) (zero outside the image)."""
    H, W = rgb.shape[:2]
    win = np.zeros((side, side, 3), np.float32)
    su0, sv0, su1, sv1 = max(u, 0), max(v, 0), min(u + side, W), min(v + side, H)
    if su1 <= su0 or sv1 <= sv0:
        return None
    win[sv0 - v:sv1 - v, su0 - u:su1 - u] = rgb[sv0:sv1, su0:su1]
    f = _detect_once(win)
    if f is None:
        return None
    b = f.box
    return Face(f.score, (b[0] + u, b[1] + v, b[2] + u, b[3] + v), f.keypoints + np.array([u, v], np.float64))


def _detect_once(rgb: np.ndarray) -> Face | None:
    """The largest face of one detector run, or None."""
    faces = _detect_all(rgb)
    return faces[0] if faces else None


def _detect_all(rgb: np.ndarray) -> list[Face]:
    """Every face of one detector run on ``rgb`` letterboxed to a square, largest first: detections
    above the score threshold are grouped greedily (largest first, IoU > 0.3) and each group averaged,
    weighted by score."""
    H, W = rgb.shape[:2]
    side = max(H, W)
    pad_u, pad_v = (side - W) / 2, (side - H) / 2
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None]
    x = F.pad(x, (int(pad_u), side - W - int(pad_u), int(pad_v), side - H - int(pad_v)))
    x = F.interpolate(x, size=(_DETECT_SIZE, _DETECT_SIZE), mode="bilinear", antialias=True, align_corners=False)
    x = (x[0].permute(1, 2, 0).numpy() * 2 - 1)[None]  # [1, 128, 128, 3] in [-1, 1]
    reg, cls = _run(_DETECTOR_FILE, x)
    reg, scores = reg[0], 0.5 * (1 + np.tanh(np.clip(cls[0, :, 0], -100, 100) / 2))  # sigmoid, overflow-free
    keep = np.nonzero(scores >= _MIN_SCORE)[0]
    if len(keep) == 0:
        return []
    reg, scores, anchors = reg[keep] / _DETECT_SIZE, scores[keep], _ANCHORS[keep]
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
        faces.append(Face(float(scores[best]), tuple(float(v) for v in box_px), to_px(kp).astype(np.float64)))
    return faces


def detect_faces(rgb: np.ndarray) -> list[Face]:
    """Every face in ``rgb`` [H, W, 3] (float in [0, 1]), largest box first; [] when there is none.

    Candidates come from the whole-image detector run and from overlapping half-size tiles (3 × 3,
    where small faces beside a large one become visible to the 128² detector); each is refined as in
    :func:`detect_face`. Faces that the zoom loses, or that land on a face already found, are dropped.
    """
    faces: list[Face] = []

    def known(f: Face) -> bool:
        return any(_iou(np.array(f.box), np.array([g.box]))[0] > 0.3 for g in faces)

    for f in [*_detect_all(rgb), *_tile_detections(rgb)]:
        if known(f):  # a tile seeing a face already found: no need to zoom on it again
            continue
        r = _refine(rgb, f)
        if r is not None and not known(r):
            faces.append(r)
    return sorted(faces, key=lambda f: -(f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))


def _tile_detections(rgb: np.ndarray) -> list[Face]:
    """Detections in overlapping half-size tiles (3 × 3) of ``rgb``, in source pixels, unrefined."""
    H, W = rgb.shape[:2]
    side = min(H, W) // 2
    if side < MIN_SIDE:
        return []
    found = []
    for v in np.linspace(0, H - side, 3).round().astype(int):
        for u in np.linspace(0, W - side, 3).round().astype(int):
            f = _detect_window(rgb, int(u), int(v), side)
            if f is not None:
                found.append(f)
    return found


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lo, hi = np.maximum(a[:2], b[:, :2]), np.minimum(a[2:], b[:, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), 1)
    area = lambda x: np.prod(np.clip(x[..., 2:] - x[..., :2], 0, None), -1)  # noqa: E731
    return inter / np.maximum(area(a) + area(b) - inter, 1e-12)


def segment_person(rgb: np.ndarray) -> np.ndarray:
    """Foreground (person) matte [H, W] in [0, 1] for ``rgb`` [H, W, 3] in [0, 1].

    MediaPipe selfie segmentation at 256², upsampled, refined with a guided filter whose guide is
    the photo (so the edge follows hair and shoulders rather than the 256² grid), then softly
    thresholded (smoothstep over 0.3-0.7) to clean the fringe.
    """
    H, W = rgb.shape[:2]
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None]
    small = F.interpolate(x, size=(_SEGMENT_SIZE, _SEGMENT_SIZE), mode="bilinear", antialias=True, align_corners=False)
    (prob,) = _run(_SEGMENTER_FILE, small[0].permute(1, 2, 0).numpy()[None])  # input RGB in [0, 1]
    p = torch.from_numpy(prob[0, :, :, 0]).clamp(0, 1)[None, None]
    p = F.interpolate(p, size=(H, W), mode="bilinear", align_corners=False)[0, 0]
    gray = x[0].mean(0)
    q = _guided_filter(gray, p, radius=max(2, round(max(H, W) / 96)), eps=1e-3)
    q = ((q - 0.3) / 0.4).clamp(0, 1)
    return (q * q * (3 - 2 * q)).numpy()


def _box_mean(x: Tensor, r: int) -> Tensor:
    """Mean over a (2r+1)² window (clamped at the borders), x [H, W]."""
    k = 2 * r + 1
    pad = F.pad(x[None, None], (r, r, r, r), mode="replicate")
    return F.avg_pool2d(pad, k, stride=1)[0, 0]


def _guided_filter(guide: Tensor, src: Tensor, radius: int, eps: float) -> Tensor:
    """He et al.'s guided filter with a grayscale guide: an edge-aware smoothing of ``src``."""
    mean_i, mean_p = _box_mean(guide, radius), _box_mean(src, radius)
    cov_ip = _box_mean(guide * src, radius) - mean_i * mean_p
    var_i = _box_mean(guide * guide, radius) - mean_i * mean_i
    a = cov_ip / (var_i + eps)
    b = mean_p - a * mean_i
    return _box_mean(a, radius) * guide + _box_mean(b, radius)


# ---- framing ----------------------------------------------------------------------------------------

def _similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (scale, rotation, shift) [2, 3] mapping points src [K, 2] onto dst [K, 2]."""
    ms, md = src.mean(0), dst.mean(0)
    s, d = src - ms, dst - md
    a = (s * d).sum() / (s * s).sum()
    b = (s[:, 0] * d[:, 1] - s[:, 1] * d[:, 0]).sum() / (s * s).sum()
    R = np.array([[a, -b], [b, a]])
    return np.concatenate([R, (md - R @ ms)[:, None]], 1)


def _warp(img: Tensor, M: np.ndarray, size: int) -> Tensor:
    """Resample img [C, H, W] into a size × size frame where output pixel q shows source pixel
    M⁻¹ q (M [2, 3] maps source to output pixel coordinates, continuous, centres at +0.5).
    Outside the source gives 0. Downscaling is pre-filtered so that it does not alias."""
    C, H, W = img.shape
    scale = math.sqrt(abs(np.linalg.det(M[:, :2])))
    if scale < 0.5:  # shrink the source first (area average), so bicubic sampling sees no aliasing
        f = scale * 2
        h2, w2 = max(1, round(H * f)), max(1, round(W * f))
        img = F.interpolate(img[None], size=(h2, w2), mode="area")[0]
        M = M @ np.diag([W / w2, H / h2, 1.0])
        H, W = h2, w2
    A = np.linalg.inv(np.vstack([M, [0, 0, 1]]))[:2]  # output → source pixels
    c = torch.arange(size, dtype=torch.float64) + 0.5
    v, u = torch.meshgrid(c, c, indexing="ij")
    A_t = torch.from_numpy(A)
    su = A_t[0, 0] * u + A_t[0, 1] * v + A_t[0, 2]
    sv = A_t[1, 0] * u + A_t[1, 1] * v + A_t[1, 2]
    grid = torch.stack([su / W * 2 - 1, sv / H * 2 - 1], -1).float()[None]  # align_corners=False coordinates
    return F.grid_sample(img[None], grid, mode="bicubic", padding_mode="zeros", align_corners=False)[0]


def _center_square(rgb: np.ndarray, alpha: np.ndarray | None) -> tuple[Tensor, Tensor | None]:
    H, W = rgb.shape[:2]
    s = min(H, W)
    v0, u0 = (H - s) // 2, (W - s) // 2
    t = torch.from_numpy(rgb[v0:v0 + s, u0:u0 + s]).permute(2, 0, 1)
    a = None if alpha is None else torch.from_numpy(alpha[v0:v0 + s, u0:u0 + s])[None]
    return t, a


def _resize(x: Tensor, size: int) -> Tensor:
    """[C, h, w] → [C, size, size]; area average when shrinking, bicubic when enlarging."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    if x.shape[-1] > size:
        return F.interpolate(x[None], size=(size, size), mode="area")[0]
    return F.interpolate(x[None], size=(size, size), mode="bicubic", align_corners=False)[0].clamp(0, 1)


@dataclass
class Preprocessed:
    """The model's input and how it was made.

    image: [3, S, S] RGB in [0, 1], background composited over :data:`a3d.core.framing.BACKGROUND`.
    mask: [S, S] foreground matte in [0, 1], or None where no matte was made or given.
    mode: 'aligned' (face framed by the convention), 'centre-crop' (fallback without the face
        models), or 'as-is' (``align=False``: centred square, resized).
    face: the detection in source pixels, or None.
    seconds: wall time of the whole preprocessing.
    faces: how many faces the photo holds (0 where no detection ran).
    face_index: which of them (largest first) was framed, or None.
    scale: output pixels per source pixel of the framing (for framing other views of the same
        capture like this one: :func:`frame_like`), or None.
    """

    image: Tensor
    mask: Tensor | None
    mode: str
    face: Face | None
    seconds: float
    faces: int = 0
    face_index: int | None = None
    scale: float | None = None


def _warn_no_models() -> None:
    global _warned
    if not _warned:
        _warned = True
        warnings.warn("a3d: face detection is unavailable (install it with `pip install ai-edge-litert==2.3.0`, "
                      "or `pip install a3d[preprocess]`); using a centred square crop without background "
                      "removal, so frame the face yourself for best results", RuntimeWarning, stacklevel=3)


MIN_FACE_SIDE = 24  # source pixels: a smaller face holds too little detail to frame and reconstruct


class FaceTooSmallError(NoFaceError):
    """The chosen face is below :data:`MIN_FACE_SIDE` pixels a side."""


def preprocess(image: ImageLike, size: int, *, align: bool = True,
               background: Sequence[float] = framing.BACKGROUND, face: int | None = None) -> Preprocessed:
    """Turn a user's picture into the model's [3, size, size] input (see the module docstring).

    Args:
        image: path, PIL image, numpy array or tensor (see :func:`load_image`).
        size: the model's resolution, pixels.
        align: find the face and frame it by the convention (``reconstruct(preprocess=True)``);
            False keeps the centred square of an already framed image.
        background: RGB in [0, 1] composited behind the person.
        face: which face to frame when the photo holds several (0 = the largest); None takes the
            largest and warns when there are others.
    Raises:
        ImageError for unusable input; NoFaceError when ``align`` and no face is found (or ``face``
        is out of range); FaceTooSmallError when the chosen face is under MIN_FACE_SIDE pixels.
    """
    if face is not None:
        check_int(face, "face", 0)
    check_int(size, "size", 16, 4096)
    start = time.perf_counter()
    rgb, alpha = load_image(image)
    bg = torch.tensor(background, dtype=torch.float32).reshape(3, 1, 1)
    chosen, faces, index, scale = None, 0, None, None
    if align and has_face_models():
        found = detect_faces(rgb)
        faces = len(found)
        if not found:
            raise NoFaceError("no face was found in the image; a3d needs a portrait with the face clearly visible. "
                              "If the image is already framed like the model's input (see a3d.core.framing), "
                              "pass preprocess=False (CLI: --no-preprocess)")
        if face is not None and face >= len(found):
            raise NoFaceError(f"face: index {face} asked for, but the image holds {len(found)} face(s) "
                              f"(0 = the largest)")
        index = 0 if face is None else face
        if face is None and len(found) > 1:
            warnings.warn(f"a3d: the image holds {len(found)} faces; reconstructing the largest (index 0). "
                          f"Pass face=i (CLI: --face i) to choose another", RuntimeWarning, stacklevel=2)
        chosen = found[index]
        if abs(chosen.yaw_deg) > TURNED_FACE_DEG:
            warnings.warn(f"a3d: the face is turned about {abs(chosen.yaw_deg):.0f}° from the camera; the bundled "
                          f"model was trained on faces turned up to {TRAINED_TURN_DEG:.0f}° and reconstructs "
                          f"faces turned further much worse (docs/eval.md, 'Turned heads'): a photo that looks "
                          f"into the camera works best", RuntimeWarning, stacklevel=2)
        side = max(chosen.box[2] - chosen.box[0], chosen.box[3] - chosen.box[1])
        if side < MIN_FACE_SIDE:
            raise FaceTooSmallError(f"the face is {side:.0f} pixels across; a3d needs at least {MIN_FACE_SIDE} "
                                    f"(crop the photo around the face, or use a larger photo)")
        work = max(size, _SEGMENT_SIZE)  # segment and refine at no less than the segmenter's resolution
        anchors = framing.face_anchors_uv(work)
        dst = np.array([anchors["right_eye"], anchors["left_eye"], anchors["mouth"]])
        src = chosen.keypoints[[0, 1, 3]]
        M = _similarity(src, dst)
        scale = float(np.sqrt(abs(np.linalg.det(M[:2, :2])))) * size / work
        planes = [torch.from_numpy(rgb).permute(2, 0, 1), torch.ones(1, *rgb.shape[:2])]
        if alpha is not None:
            planes.append(torch.from_numpy(alpha)[None])
        warped = _warp(torch.cat(planes), M, work)
        crop, inside = warped[:3].clamp(0, 1), warped[3:4].clamp(0, 1)
        if alpha is not None:
            matte = warped[4:5].clamp(0, 1)
        else:
            matte = torch.from_numpy(segment_person(crop.permute(1, 2, 0).contiguous().numpy()))[None]
        matte = matte * inside
        mode = "aligned"
    else:
        if align:
            _warn_no_models()
        crop, matte = _center_square(rgb, alpha)
        work = crop.shape[-1]
        mode = "centre-crop" if align else "as-is"
    planes = _resize(torch.cat([crop] + ([matte] if matte is not None else [])), size)
    img, mask = planes[:3], (planes[3].clamp(0, 1) if matte is not None else None)
    if mask is not None:
        img = img * mask + bg * (1 - mask)
    return Preprocessed(img.clamp(0, 1).contiguous(), mask, mode, chosen, time.perf_counter() - start, faces, index,
                        scale)


def frame_like(image: ImageLike, size: int, reference: Preprocessed, *,
               background: Sequence[float] = framing.BACKGROUND) -> Preprocessed:
    """Frame a side or back photo of the same capture as the front ``reference`` for its canonical view.

    Such photos have no frontal face to align by, so the framing leans on the capture: the photo is
    scaled like the front one (``reference.scale``: the same camera distance and zoom), its person
    matte's top (the crown) goes to the row of the front's crown (every canonical camera sits at the
    head's height), and the head (the matte in the top quarter of the frame below the crown) is
    centred. Without a front framing to copy (no scale or matte), the photo's centred square is used.
    """
    start = time.perf_counter()
    rgb, alpha = load_image(image)
    bg = torch.tensor(background, dtype=torch.float32).reshape(3, 1, 1)
    if reference.scale is None or reference.mask is None or not has_face_models():
        crop, matte = _center_square(rgb, alpha)
        planes = _resize(torch.cat([crop] + ([matte] if matte is not None else [])), size)
        img, mask = planes[:3], (planes[3].clamp(0, 1) if matte is not None else None)
        if mask is not None:
            img = img * mask + bg * (1 - mask)
        return Preprocessed(img.clamp(0, 1).contiguous(), mask, "centre-crop", None, time.perf_counter() - start)
    matte = alpha if alpha is not None else segment_person(rgb)
    rows = np.nonzero(matte.max(1) > 0.5)[0]
    ref_rows = np.nonzero(reference.mask.numpy().max(1) > 0.5)[0]
    if len(rows) == 0 or len(ref_rows) == 0:
        raise NoFaceError("no person was found in the side/back photo (its matte is empty)")
    s = reference.scale
    v_top = float(rows[0])
    band = matte[int(v_top):int(v_top + 0.25 * size / s) + 1] > 0.5
    cols = np.nonzero(band.any(0))[0]
    u_c = float(cols.mean()) if len(cols) else rgb.shape[1] / 2
    M = np.array([[s, 0.0, size / 2 - s * u_c], [0.0, s, float(ref_rows[0]) - s * v_top]])
    planes = torch.cat([torch.from_numpy(rgb).permute(2, 0, 1), torch.ones(1, *rgb.shape[:2]),
                        torch.from_numpy(np.ascontiguousarray(matte, np.float32))[None]])
    warped = _warp(planes, M, size)
    img, mask = warped[:3].clamp(0, 1), (warped[4] * warped[3]).clamp(0, 1)
    img = img * mask + bg * (1 - mask)
    return Preprocessed(img.contiguous(), mask, "framed-like-front", None, time.perf_counter() - start,
                        scale=s)
