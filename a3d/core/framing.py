"""The framing convention: one definition shared by training data and real-photo preprocessing.

World units are "head units": the head is centred at the origin (midpoint between the ears at the
height of the eyes' midline, roughly), y up, face toward +z, and scaled so that the crown-to-chin
height is about 1.1 units (a head-sized ellipsoid has semi-axes of about 0.45 / 0.55 / 0.5).

The canonical cameras (paper §3.1) sit on a horizontal circle of radius ``CANONICAL_RADIUS``
around the origin with vertical field of view ``CANONICAL_FOV_DEG`` and look at the origin; the
input portrait is the front view, so a real photo must be cropped so that the face lands where a
synthetic head's face lands in the front canonical camera (see :mod:`a3d.inference.preprocess`).
"""
from __future__ import annotations

import math

from ..errors import check_number

CANONICAL_RADIUS: float = 2.7
"""Distance of the canonical cameras from the head centre, in head units."""

CANONICAL_FOV_DEG: float = 30.0
"""Vertical (and horizontal: images are square) field of view of the canonical cameras, degrees."""

CANONICAL_VIEWS: tuple[str, ...] = ("front", "left", "right", "back")
"""Order of the canonical views. Azimuths: front 0°, left +90° (camera on the subject's left, +x),
right -90°, back 180°."""

CANONICAL_AZIMUTHS_DEG: tuple[float, ...] = (0.0, 90.0, -90.0, 180.0)

# ---- where the face sits in the input image -----------------------------------------------------
# The portrait is the front canonical view, so the framing of the face follows from the camera above
# and from where a face sits on a head in head units. Three facial landmarks, which both the
# synthetic heads (their mesh vertices) and the face detector on real photos (its keypoints)
# provide, are pinned here in 3D; their 2D positions in the input image are derived from them by
# :func:`face_anchors_uv`, so there is one source of truth for the training data and for
# :mod:`a3d.inference.preprocess`.
#
# The numbers: an adult head is about 23 cm from crown to chin, which is 1.1 head units, so one unit
# is about 21 cm. The pupils are about 6.3 cm apart (±0.15 units) at the height of the origin, the
# mouth (stomion) about 7 cm below them (-0.33 units), and the eyes' and lips' surfaces about 9 cm in
# front of the ears (z ≈ 0.42 and 0.45). The synthetic data places each head by the similarity
# transform that best maps its landmarks onto these anchors; preprocessing maps a photo's detected
# landmarks onto their projections.

FACE_ANCHORS_3D: dict[str, tuple[float, float, float]] = {
    "right_eye": (-0.15, 0.0, 0.42),  # the subject's right eye: world -x, the left side of the front image
    "left_eye": (0.15, 0.0, 0.42),
    "mouth": (0.0, -0.33, 0.45),
}
"""Head-unit positions (world, y up, face toward +z) of the pupils and the mouth centre."""

FACE_BOX_CENTER_UV: tuple[float, float] = (0.5, 0.62)
"""Informative, derived from the anchors: the centre of the face box that MediaPipe's short-range
detector draws on an image framed by :data:`FACE_ANCHORS_3D`, as fractions of the image width and
height (measured on the public-domain astronaut portrait of scikit-image after framing). For tools
that frame by a detector box rather than by landmarks; a3d itself frames by the landmarks."""

FACE_BOX_FRACTION: float = 0.63
"""Informative, as :data:`FACE_BOX_CENTER_UV`: that face box's side as a fraction of the image side."""

BACKGROUND: tuple[float, float, float] = (1.0, 1.0, 1.0)
"""The model's background colour (RGB in [0, 1]): training views are rendered over it, and
preprocessing composites a photo's masked-out background and any transparency onto it."""


def face_anchors_uv(size: int, radius: float = CANONICAL_RADIUS,
                    fov_deg: float = CANONICAL_FOV_DEG) -> dict[str, tuple[float, float]]:
    """Pixel positions (u right, v down; pixel centres at +0.5) of :data:`FACE_ANCHORS_3D` in the
    front canonical view of a ``size`` × ``size`` image: where preprocessing puts a photo's eyes
    and mouth. With the default camera, for ``size`` = 1, the eyes land at (0.377, 0.5) and
    (0.623, 0.5), the mouth at (0.5, 0.774): the eyes are 25% of the image apart, 27% above the mouth, and
    the head (1.1 units tall) fills about 76% of its height.
    """
    check_number(size, "size", positive=True)
    f = 0.5 * size / math.tan(math.radians(fov_deg) / 2)
    out = {}
    for name, (x, y, z) in FACE_ANCHORS_3D.items():
        depth = radius - z  # the front camera sits at (0, 0, radius) looking along -z
        # OpenCV camera axes for the front camera: x_cam = x_world, y_cam = -y_world.
        out[name] = (0.5 * size + f * x / depth, 0.5 * size - f * y / depth)
    return out
