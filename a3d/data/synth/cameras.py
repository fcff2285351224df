"""The cameras of a synthetic head (paper App. C): 40 fixed circular views (:func:`fixed_cameras`; the
front one is the input view) and random views on a spherical shell (:func:`random_cameras`).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ..device_constants import on_device
from ...core.cameras import Cameras, orbit_cameras
from ...errors import check_int
from .draws import HeadRandom, head_keys, normal_quantile

__all__ = ["fixed_cameras", "random_cameras", "random_views", "CIRCLE_ELEVATIONS", "NUM_FIXED_VIEWS", "INPUT_VIEW"]


CIRCLE_ELEVATIONS: tuple[float, ...] = (-20.0, -10.0, 0.0, 10.0, 20.0)
"""Elevations (degrees) of the rings of fixed views; 8 azimuths each (odd rings turned by 22.5°)."""
_VIEWS_PER_RING = 8
NUM_FIXED_VIEWS = len(CIRCLE_ELEVATIONS) * _VIEWS_PER_RING
INPUT_VIEW = CIRCLE_ELEVATIONS.index(0.0) * _VIEWS_PER_RING
"""Index of the front canonical camera (azimuth 0, elevation 0) among a sample's views."""

# =================================================================================================
# Cameras
# =================================================================================================
def fixed_cameras(size: int) -> Cameras:
    """The 40 fixed circular views [40, ...]: 8 azimuths on each ring of :data:`CIRCLE_ELEVATIONS` at
    the canonical radius and field of view, odd rings turned by 22.5°. View :data:`INPUT_VIEW` is the
    front canonical camera; the 0° ring holds the four canonical views at azimuths 0, 90, 180, 270."""
    rings = [orbit_cameras(_VIEWS_PER_RING, elevation=e, size=size, azimuth_start=22.5 * (i % 2))
             for i, e in enumerate(CIRCLE_ELEVATIONS)]
    return Cameras.cat(rings)


def random_views(rng: HeadRandom, n: int, size: int) -> tuple[Tensor, Tensor]:
    """viewmats [B, n, 4, 4] and Ks [B, n, 3, 3] of ``n`` random views a head (see :func:`random_cameras`)."""
    B, dev = len(rng.keys), rng.device
    u = rng.uniform("cameras", n, 8)
    az = u[..., 0] * 2 * math.pi
    lo, hi = math.sin(math.radians(-30.0)), math.sin(math.radians(55.0))
    el = torch.asin(lo + (hi - lo) * u[..., 1])
    radius = 1.7 + 1.6 * u[..., 2]
    eye = radius[..., None] * torch.stack([torch.cos(el) * torch.sin(az), torch.sin(el),
                                           torch.cos(el) * torch.cos(az)], -1)
    target = (0.1 * normal_quantile(u[..., 5:])).clamp(-0.25, 0.25) \
        + on_device(dev, (0.0, -0.05, 0.0))
    # look at the target (as :func:`a3d.core.cameras.look_at`, whose checks would wait for the device;
    # elevations within ±55° never look along the up axis), then roll about the optical axis
    fwd = F.normalize(target - eye, dim=-1)
    right = F.normalize(torch.linalg.cross(fwd, on_device(dev, (0.0, 1.0, 0.0)).expand_as(fwd), dim=-1), dim=-1)
    down = torch.linalg.cross(fwd, right, dim=-1)
    roll = math.radians(6.0) * (2 * u[..., 3] - 1)
    c, s = torch.cos(roll)[..., None], torch.sin(roll)[..., None]
    R = torch.stack([c * right - s * down, s * right + c * down, fwd], -2)  # rows: camera axes in the world
    t = -(R @ eye[..., None])
    bottom = on_device(dev, (0.0, 0.0, 0.0, 1.0)).expand(B, n, 1, 4)
    vm = torch.cat([torch.cat([R, t], -1), bottom], -2)
    fov = 22.0 + 18.0 * u[..., 4]
    f = 0.5 * size / torch.tan(torch.deg2rad(fov) / 2)
    zero, half, one = torch.zeros_like(f), torch.full_like(f, size / 2), torch.ones_like(f)
    K = torch.stack([f, zero, half, zero, f, half, zero, zero, one], -1).reshape(B, n, 3, 3)
    return vm, K


def random_cameras(seed: int, n: int, size: int, device: str | torch.device = "cpu") -> Cameras:
    """``n`` random views [n, ...]: camera centres on a spherical shell of radius 1.7–3.3 head units
    (azimuth uniform, elevation −30°…55°, uniform on the sphere band), looking at the origin jittered by
    about 0.1 units, vertical field of view 22°–40°, roll within ±6°. A function of ``seed`` alone."""
    check_int(seed, "seed")
    keys = head_keys(seed, torch.zeros(1, dtype=torch.int64, device=torch.device(device)))
    vm, K = random_views(HeadRandom(keys), n, size)
    return Cameras(vm[0], K[0], size, size)
