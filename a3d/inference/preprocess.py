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
2. The face is chosen by evidence (:func:`a3d.inference.faces.find_faces`): candidates from MediaPipe's
   short- and full-range face detectors (BlazeFace, ``.tflite`` files run by ``ai-edge-litert``) over the
   image and its half-size tiles, each zoomed on and judged by its score, the geometry of its keypoints and
   the person matte around it; the largest plausible face is framed (``face=i`` picks another). Its eyes
   and mouth are mapped by a least-squares similarity transform (scale, rotation, shift) onto where
   :func:`a3d.core.framing.face_anchors_uv` puts them in the front canonical view, and the photo is
   resampled into that square frame (bicubic, pre-filtered when shrinking; outside the photo counts as
   background). No plausible face: :class:`NoFaceError`, listing what was found; a face under
   :data:`MIN_FACE_SIDE` pixels: :class:`FaceTooSmallError`.
3. The background: the image's own alpha channel if it has a non-trivial one, else MediaPipe's
   selfie segmentation (:func:`a3d.inference.matte.segment_person`). A matte that is (nearly) empty around
   the face is an :class:`EmptyMatteError`, never a blank input. Where the matte is partial, the person's
   own colour is estimated (:func:`a3d.inference.matte.estimate_foreground`) so that the photo's background
   does not stay in hair and shoulders; everything outside the person (and outside the photo) becomes
   :data:`a3d.core.framing.BACKGROUND`.
4. Resize to the model's resolution (area-averaged, no aliasing).

Steps 2-3 need ``ai-edge-litert`` (a dependency of a3d where its wheels exist); without it they raise a
:class:`a3d.errors.SetupError` saying so. ``align=False`` (``preprocess=False``) is for images that are
already framed like the model's input: the centred square, resized, its alpha (if any) composited.
"""
from __future__ import annotations

import io
import math
import os
import time
import warnings
from dataclasses import dataclass, field
from typing import Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps
from torch import Tensor

from ..core import framing
from ..errors import InputError, check_int
from .faces import TRAINED_TURN_DEG, TURNED_FACE_DEG, Face, detect_face, detect_faces, find_faces
from .matte import SEGMENT_SIZE, estimate_foreground, segment_person
from .mediapipe import has_face_models, require_face_models

__all__ = ["ImageError", "NoFaceError", "FaceTooSmallError", "EmptyMatteError", "Face", "Preprocessed", "load_image",
           "detect_face", "detect_faces", "find_faces", "segment_person", "preprocess", "frame_like",
           "has_face_models", "MAX_FILE_BYTES", "MAX_PIXELS", "MAX_JPEG_PIXELS", "DRAFT_PIXELS", "MIN_SIDE",
           "MIN_FACE_SIDE", "FLOAT_TOLERANCE", "TRAINED_TURN_DEG", "TURNED_FACE_DEG"]

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
    mode: 'aligned' (face framed by the convention), 'as-is' (``align=False``: centred square, resized),
        'framed-like-front' or 'centre-crop' (side and back photos: :func:`frame_like`).
    face: the framed face in source pixels, or None.
    seconds: wall time of the whole preprocessing.
    faces: how many plausible faces the photo holds (0 where no detection ran).
    face_index: which candidate was framed (an index into ``candidates``), or None.
    scale: output pixels per source pixel of the framing (for framing other views of the same
        capture like this one: :func:`frame_like`), or None.
    candidates: every face candidate, judged (:func:`a3d.inference.faces.find_faces`): the plausible ones
        first (largest first, so index 0 is the default choice), then the others (largest first).
    """

    image: Tensor
    mask: Tensor | None
    mode: str
    face: Face | None
    seconds: float
    faces: int = 0
    face_index: int | None = None
    scale: float | None = None
    candidates: list[Face] = field(default_factory=list)


MIN_FACE_SIDE = 24
"""Source pixels: a smaller face holds too little detail to frame and reconstruct."""
MIN_FACE_MATTE = 0.5
"""The framed face's middle (its eyes-to-mouth region) must be at least this much person in the matte."""
MIN_PERSON_AREA = 0.05
"""The framed image must be at least this fraction person (a head fills about a third of it)."""
_WHAT_TO_DO = (f"crop the photo around the face (at least {MIN_FACE_SIDE} pixels across; a portrait works "
               f"best), or, for an image already framed like the model's input (a3d.core.framing), pass "
               f"preprocess=False (CLI: --no-preprocess)")


class FaceTooSmallError(NoFaceError):
    """The chosen face is below :data:`MIN_FACE_SIDE` pixels a side."""


class EmptyMatteError(NoFaceError):
    """The person matte of the framed face is (nearly) empty: reconstructing it would give a blank head."""


def _describe(candidates: Sequence[Face], limit: int = 6) -> str:
    """'[i] box ..., score ...: why' for the first ``limit`` candidates."""
    parts = []
    for i, f in enumerate(candidates[:limit]):
        u0, v0, u1, v1 = (round(v) for v in f.box)
        verdict = "a face" if f.plausible else (f.why or "not judged")
        parts.append(f"[{i}] {u1 - u0}×{v1 - v0} px at ({u0}, {v0}), score {f.score:.2f}: {verdict}")
    more = f"; and {len(candidates) - limit} more" if len(candidates) > limit else ""
    return "; ".join(parts) + more


def _choose(candidates: Sequence[Face], plausible: int, face: int | None) -> int:
    """The index of the candidate to frame (see :func:`preprocess`'s ``face``), or raise NoFaceError."""
    if face is not None:
        if face >= len(candidates):
            found = f"{len(candidates)} face candidate(s) ({plausible} plausible)" if candidates else "no face"
            raise NoFaceError(f"face: index {face} asked for, but the image holds {found} "
                              f"(0 = the largest plausible face)")
        return face
    if not candidates:
        raise NoFaceError(f"no face was found in the image; a3d needs a portrait with the face clearly visible: "
                          f"{_WHAT_TO_DO}")
    if plausible == 0:
        raise NoFaceError(f"no plausible face in the image; the detectors proposed {len(candidates)} candidate(s), "
                          f"none of them a face: {_describe(candidates)}. Pass face=i (CLI: --face i) to frame "
                          f"candidate i anyway, or {_WHAT_TO_DO}")
    return 0


def preprocess(image: ImageLike, size: int, *, align: bool = True,
               background: Sequence[float] = framing.BACKGROUND, face: int | None = None) -> Preprocessed:
    """Turn a user's picture into the model's [3, size, size] input (see the module docstring).

    Args:
        image: path, PIL image, numpy array or tensor (see :func:`load_image`).
        size: the model's resolution, pixels.
        align: find the face and frame it by the convention (``reconstruct(preprocess=True)``);
            False keeps the centred square of an already framed image (no face models needed).
        background: RGB in [0, 1] composited behind the person.
        face: which face candidate to frame, an index into :attr:`Preprocessed.candidates` (plausible faces
            first, largest first: 0 is the largest plausible face; an implausible candidate is framed when
            asked for, but its matte must still hold a person). None takes the largest plausible face and
            warns when there are others.
    Raises:
        ImageError for unusable input; NoFaceError when ``align`` and no plausible face is found (the message
        lists the candidates and why each was rejected), or ``face`` is out of range; FaceTooSmallError when
        the chosen face is under MIN_FACE_SIDE pixels; EmptyMatteError when the matte around the framed face
        is (nearly) empty; :class:`a3d.errors.SetupError` when ``align`` and ai-edge-litert is not installed.
    """
    if face is not None:
        check_int(face, "face", 0)
    check_int(size, "size", 16, 4096)
    start = time.perf_counter()
    rgb, alpha = load_image(image)
    bg = torch.tensor(background, dtype=torch.float32).reshape(3, 1, 1)
    if not align:
        crop, matte = _center_square(rgb, alpha)
        img, mask = _composite(crop, matte, size, bg)
        return Preprocessed(img, mask, "as-is", None, time.perf_counter() - start)
    require_face_models()
    candidates = find_faces(rgb, alpha)
    candidates.sort(key=lambda f: not f.plausible)  # stable: plausible faces first, each group largest first
    plausible = sum(bool(f.plausible) for f in candidates)
    index = _choose(candidates, plausible, face)
    chosen = candidates[index]
    if face is None and plausible > 1:
        warnings.warn(f"a3d: the image holds {plausible} faces; reconstructing the largest (index 0). "
                      f"Pass face=i (CLI: --face i) to choose another", RuntimeWarning, stacklevel=2)
    if abs(chosen.yaw_deg) > TURNED_FACE_DEG:
        warnings.warn(f"a3d: the face is turned about {abs(chosen.yaw_deg):.0f}° from the camera; the bundled "
                      f"model was trained on faces turned up to {TRAINED_TURN_DEG:.0f}° and reconstructs "
                      f"faces turned further much worse (docs/eval.md, 'Turned heads'): a photo that looks "
                      f"into the camera works best", RuntimeWarning, stacklevel=2)
    if chosen.side < MIN_FACE_SIDE:
        raise FaceTooSmallError(f"the face is {chosen.side:.0f} pixels across; a3d needs at least {MIN_FACE_SIDE}: "
                                f"use a larger photo, or crop the photo around the face and enlarge it")
    work = max(size, SEGMENT_SIZE)  # segment and refine at no less than the segmenter's resolution
    anchors = framing.face_anchors_uv(work)
    dst = np.array([anchors["right_eye"], anchors["left_eye"], anchors["mouth"]])
    M = _similarity(chosen.keypoints[[0, 1, 3]], dst)
    scale = float(np.sqrt(abs(np.linalg.det(M[:2, :2])))) * size / work
    planes = [torch.from_numpy(rgb).permute(2, 0, 1), torch.ones(1, *rgb.shape[:2])]
    if alpha is not None:
        planes.append(torch.from_numpy(alpha)[None])
    warped = _warp(torch.cat(planes), M, work)
    crop, inside = warped[:3].clamp(0, 1), warped[3:4].clamp(0, 1)
    if alpha is not None:  # straight alpha: the colours are the person's own already
        matte = warped[4:5].clamp(0, 1) * inside
    else:
        matte = torch.from_numpy(segment_person(crop.permute(1, 2, 0).contiguous().numpy()))[None] * inside
        crop = estimate_foreground(crop, matte)
    _check_matte(matte[0], dst, index, candidates)
    img, mask = _composite(crop, matte, size, bg)
    return Preprocessed(img, mask, "aligned", chosen, time.perf_counter() - start, plausible, index, scale,
                        candidates)


def _check_matte(matte: Tensor, features: np.ndarray, index: int, candidates: Sequence[Face]) -> None:
    """Raise EmptyMatteError when the framed matte [S, S] is nearly empty overall or over the face's middle
    (the box spanning ``features`` [3, 2], its eyes and mouth, in output pixels)."""
    (u0, v0), (u1, v1) = features.min(0), features.max(0)
    face_part = float(matte[int(v0):int(math.ceil(v1)) + 1, int(u0):int(math.ceil(u1)) + 1].mean())
    area = float(matte.mean())
    if face_part >= MIN_FACE_MATTE and area >= MIN_PERSON_AREA:
        return
    others = [f"face={i}" for i, f in enumerate(candidates) if f.plausible and i != index]
    other = f" pass {' or '.join(others[:3])} for another face, or" if others else ""
    raise EmptyMatteError(f"the person matte of face {index} is nearly empty ({face_part:.0%} of the face's middle, "
                          f"{area:.0%} of the framed image are person): no person was found around what the "
                          f"detector took for a face, and its reconstruction would be blank. "
                          f"Found: {_describe(candidates)}.{other} {_WHAT_TO_DO}")


def _composite(crop: Tensor, matte: Tensor | None, size: int, bg: Tensor) -> tuple[Tensor, Tensor | None]:
    """Resize ``crop`` [3, h, w] (and ``matte`` [1, h, w]) to ``size``² and composite it over ``bg`` [3, 1, 1]."""
    planes = _resize(torch.cat([crop] + ([matte] if matte is not None else [])), size)
    img, mask = planes[:3], (planes[3].clamp(0, 1) if matte is not None else None)
    if mask is not None:
        img = img * mask + bg * (1 - mask)
    return img.clamp(0, 1).contiguous(), mask


def frame_like(image: ImageLike, size: int, reference: Preprocessed, *,
               background: Sequence[float] = framing.BACKGROUND) -> Preprocessed:
    """Frame a side or back photo of the same capture as the front ``reference`` for its canonical view.

    Such photos have no frontal face to align by, so the framing leans on the capture: the photo is
    scaled like the front one (``reference.scale``: the same camera distance and zoom), its person
    matte's top (the crown) goes to the row of the front's crown (every canonical camera sits at the
    head's height), and the head (the matte in the top quarter of the frame below the crown) is
    centred. Without a front framing to copy (no scale or matte), the photo's centred square is used.
    Raises EmptyMatteError when the photo's person matte is empty, SetupError without ai-edge-litert.
    """
    start = time.perf_counter()
    rgb, alpha = load_image(image)
    bg = torch.tensor(background, dtype=torch.float32).reshape(3, 1, 1)
    if reference.scale is None or reference.mask is None:
        crop, matte = _center_square(rgb, alpha)
        img, mask = _composite(crop, matte, size, bg)
        return Preprocessed(img, mask, "centre-crop", None, time.perf_counter() - start)
    if alpha is None:
        require_face_models()
    matte = alpha if alpha is not None else segment_person(rgb)
    rows = np.nonzero(matte.max(1) > 0.5)[0]
    ref_rows = np.nonzero(reference.mask.numpy().max(1) > 0.5)[0]
    if len(rows) == 0 or len(ref_rows) == 0:
        raise EmptyMatteError("no person was found in the side/back photo (its matte is empty)")
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
    if alpha is None:  # the segmenter's matte: take the photo's background out of the fringe
        img = estimate_foreground(img, mask)
    img = img * mask + bg * (1 - mask)
    return Preprocessed(img.contiguous(), mask, "framed-like-front", None, time.perf_counter() - start,
                        scale=s)
