"""The framing convention: one definition shared by training data and real-photo preprocessing.

World units are "head units": the head is centred at the origin (midpoint between the ears at the
height of the eyes' midline, roughly), y up, face toward +z, and scaled so that the crown-to-chin
height is about 1.1 units (a head-sized ellipsoid has semi-axes of about 0.45 / 0.55 / 0.5).

The canonical cameras (paper §3.1) sit on a horizontal circle of radius ``CANONICAL_RADIUS``
around the origin with vertical field of view ``CANONICAL_FOV_DEG`` and look at the origin; the
input portrait is the front view, so a real photo must be cropped so that the face lands where a
synthetic head's face lands in the front canonical camera (see :mod:`a3d.preprocess`).
"""
from __future__ import annotations

CANONICAL_RADIUS: float = 2.7
"""Distance of the canonical cameras from the head centre, in head units."""

CANONICAL_FOV_DEG: float = 30.0
"""Vertical (and horizontal: images are square) field of view of the canonical cameras, degrees."""

CANONICAL_VIEWS: tuple[str, ...] = ("front", "left", "right", "back")
"""Order of the canonical views. Azimuths: front 0°, left +90° (camera on the subject's left, +x),
right -90°, back 180°."""

CANONICAL_AZIMUTHS_DEG: tuple[float, ...] = (0.0, 90.0, -90.0, 180.0)
