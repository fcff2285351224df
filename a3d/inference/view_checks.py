"""Sanity checks of a head's photos given as several views: the same image twice, a view without a
head, a side view of another person. Each finding is a warning that names the view and its file and
says what a3d did: it leaves that view out and reconstructs from the others (the front is never left
out; a front without a face is an error of :func:`a3d.inference.preprocess.preprocess`).

* **The same image twice**: two views whose files (or arrays) hold the same bytes. The later view in
  front, left, right, back order is left out: one photo cannot show the head from two sides.
* **No head**: a side or back photo with no person at all (:func:`a3d.inference.preprocess.frame_like`'s
  EmptyMatteError, which :func:`a3d.reconstruct` turns into this warning), or whose person matte, framed like
  the front, covers less than :data:`MIN_HEAD_COVERAGE` of what the front's covers (a head seen from any
  side has about the front's silhouette at the same distance). A photo of a mug or a landscape lands here.
* **Another person**: a left or right photo in which a face can be framed like a portrait (a three-
  quarter view; a true profile has no frontal face and is not checked) and whose face descriptor
  (:mod:`a3d.perception.identity`, dlib's face-recognition network) lies farther than
  :data:`DIFFERENT_PERSON_DISTANCE` from the front's. This check needs the identity model
  (``pip install a3d[eval]``); without it, it is skipped silently and the other two still run.

The side-view face check costs one face detection and one descriptor (about a second on a CPU) per
left/right photo, only when the identity model is installed.
"""
from __future__ import annotations

import hashlib
import os
import warnings
from typing import Mapping

import numpy as np
from PIL import Image
from torch import Tensor

from .preprocess import ImageLike, NoFaceError, Preprocessed

__all__ = ["MIN_HEAD_COVERAGE", "DIFFERENT_PERSON_DISTANCE", "same_images", "head_coverage", "side_face_distance",
           "unusable_views", "describe"]

MIN_HEAD_COVERAGE = 0.3
"""A side or back view's matte (pixels over 0.5, framed like the front) must cover at least this fraction of
the front's; a real head from any side covers about as much."""
DIFFERENT_PERSON_DISTANCE = 0.7
"""Face-descriptor distance above which a side photo's face is taken for another person. dlib calls faces closer
than 0.6 one person; the margin leaves room for a turned face of the same person. Measured with
:func:`side_face_distance` at 128² on the three real portraits of docs/eval.md: astronaut–Hopper 0.64,
Hopper–cameraman 0.80, astronaut–cameraman 0.84 (so the first pair passes unflagged); one photo against its
mirror image 0.19-0.23, blurred or resized copies 0.21-0.35 (docs/eval.md)."""


def describe(view: str, image: ImageLike) -> str:
    """``"the left view (b.jpg)"``: how messages name a view and its source."""
    if isinstance(image, (str, os.PathLike)):
        return f"the {view} view ({os.fspath(image)})"
    return f"the {view} view (a {type(image).__name__})"


def _fingerprint(image: ImageLike) -> bytes | None:
    """A digest of the image's content (a file's bytes, an array's or PIL image's pixels), None if unknown."""
    h = hashlib.sha256()
    try:
        if isinstance(image, (str, os.PathLike)):
            with open(image, "rb") as f:  # preprocess has already read it within its size bound
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
        elif isinstance(image, Image.Image):
            h.update(f"{image.mode}{image.size}".encode())
            h.update(image.tobytes())
        elif isinstance(image, (np.ndarray, Tensor)):
            a = np.ascontiguousarray(image.detach().cpu().numpy() if isinstance(image, Tensor) else image)
            h.update(f"{a.dtype}{a.shape}".encode())
            h.update(a.tobytes())
        else:
            return None
    except OSError:
        return None
    return h.digest()


def same_images(views: Mapping[str, ImageLike]) -> dict[str, str]:
    """{view: the earlier view holding the same image} for every view whose content repeats an earlier one's."""
    seen: dict[bytes, str] = {}
    out = {}
    for view, image in views.items():
        key = _fingerprint(image)
        if key is None:
            continue
        if key in seen:
            out[view] = seen[key]
        else:
            seen[key] = view
    return out


def head_coverage(mask: Tensor | None) -> float | None:
    """Fraction of the frame that is person (matte over 0.5), or None without a matte."""
    return None if mask is None else float((mask > 0.5).float().mean())


def side_face_distance(image: ImageLike, front: Preprocessed, size: int) -> float | None:
    """Descriptor distance between the face of a side ``image`` (framed as a portrait) and the ``front``'s;
    None when the identity model is missing or no face can be framed in the image (a profile)."""
    from ..core.cameras import canonical_cameras
    from ..perception import identity
    from .preprocess import preprocess

    if not identity.has_identity_model():
        return None
    try:
        with warnings.catch_warnings():  # a turned or second face is expected in a side photo: not the user's news
            warnings.simplefilter("ignore")
            side = preprocess(image, size)
    except NoFaceError:
        return None
    cam = canonical_cameras(size)[0:1]
    return float(identity.identity_distance(front.image, side.image[None], cam.viewmats, cam.Ks)[0])


def unusable_views(views: Mapping[str, ImageLike], framed: Mapping[str, Preprocessed], size: int,
                   faces: bool = True) -> dict[str, str]:
    """The views to leave out, {view: why, naming the view and its file}, after warning about each (see the
    module docstring). ``views``: the user's images by canonical view name, front first; ``framed``: their
    :class:`Preprocessed`, the front's by :func:`preprocess`, the others' by :func:`frame_like`; ``faces``:
    run the face check (False for images used as they are, ``preprocess=False``)."""
    out: dict[str, str] = {}
    for view, other in same_images(views).items():
        if view != "front":
            out[view] = (f"{describe(view, views[view])} is the same image as {describe(other, views[other])}; "
                         f"one photo cannot show two sides of a head")
    front_area = head_coverage(framed["front"].mask)
    for view, p in framed.items():
        area = head_coverage(p.mask)
        if view == "front" or view in out or not front_area or area is None:
            continue
        if area < MIN_HEAD_COVERAGE * front_area:
            out[view] = (f"{describe(view, views[view])} shows little or no head: its person matte covers "
                         f"{area:.0%} of the frame against the front's {front_area:.0%}")
    for view in ("left", "right") if faces else ():
        if view in framed and view not in out:
            d = side_face_distance(views[view], framed["front"], size)
            if d is not None and d > DIFFERENT_PERSON_DISTANCE:
                out[view] = (f"{describe(view, views[view])} shows a face that is not the front's person (face "
                             f"descriptor distance {d:.2f}; above {DIFFERENT_PERSON_DISTANCE} is another person)")
    for why in out.values():
        warnings.warn(f"a3d: {why}; a3d leaves this view out and reconstructs from the others", UserWarning,
                      stacklevel=3)
    return out
