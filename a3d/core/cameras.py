"""Pinhole cameras in the OpenCV convention, orbits, the canonical views, and the camera JSON file.

Conventions (used everywhere in a3d):

* ``viewmats`` [..., C, 4, 4] map world to camera coordinates; the camera looks along +z, with x to
  the right of the image and y down (OpenCV). ``Ks`` [..., C, 3, 3] are intrinsics in pixels; pixel
  ``(u, v)`` has its centre at ``(u + 0.5, v + 0.5)``.
* World: head centred at the origin, y up, face toward +z (see :mod:`a3d.core.framing`).
* Azimuth 0° is the front (camera on +z), +90° puts the camera on +x (the subject's left side);
  elevation > 0 puts the camera above the head, looking down.

The camera JSON file (``CAMERA_PARAMETERS.json`` of datasets, ``cameras.json`` of outputs) is::

    {
      "format": "a3d-cameras", "version": 1, "convention": "opencv",
      "frames": [
        {"name": "000", "width": 512, "height": 512,
         "K": [[fx, 0, cx], [0, fy, cy], [0, 0, 1]],
         "world_to_camera": [[r00, r01, r02, tx], ..., [0, 0, 0, 1]]},
        ...
      ]
    }

``name`` is the image's file stem in a dataset folder. All frames of one file share a size.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor

from . import framing
from ..errors import InputError, check_int
from .files import atomic_write, read_json

__all__ = [
    "Cameras", "fov_to_focal", "focal_to_fov", "intrinsics", "look_at", "orbit_cameras",
    "canonical_cameras", "opencv_to_opengl", "opengl_to_opencv", "blender_to_opencv",
    "opencv_to_blender", "save_cameras_json", "load_cameras_json", "MAX_CAMERA_FILE_BYTES",
]

# OpenCV camera axes (x right, y down, z forward) <-> OpenGL/Blender camera axes (x right, y up, z back).
_FLIP_YZ = torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0], dtype=torch.float64))
# a3d world (y up, face +z) <-> Blender world (z up, front view looking along +y, face toward -y).
_A3D_FROM_BLENDER_WORLD = torch.tensor(
    [[1.0, 0, 0, 0], [0, 0, 1.0, 0], [0, -1.0, 0, 0], [0, 0, 0, 1.0]], dtype=torch.float64
)
MAX_CAMERA_FILE_BYTES = 64 * 2**20
"""Largest camera JSON file read (a 100,000-frame file written by a3d is about 40 MiB)."""
_MAX_FRAMES = 100_000


@dataclass
class Cameras:
    """A batch of pinhole cameras sharing one image size.

    Attributes:
        viewmats: [..., C, 4, 4] world-to-camera, OpenCV axes.
        Ks: [..., C, 3, 3] intrinsics in pixels, pixel centres at +0.5.
        width: image width in pixels.
        height: image height in pixels.
    """

    viewmats: Tensor
    Ks: Tensor
    width: int
    height: int

    def __post_init__(self) -> None:
        if not isinstance(self.viewmats, Tensor) or self.viewmats.dim() < 3 or self.viewmats.shape[-2:] != (4, 4):
            raise InputError(f"viewmats: expected a tensor [..., C, 4, 4], got {_shape(self.viewmats)}")
        if not isinstance(self.Ks, Tensor) or self.Ks.dim() < 3 or self.Ks.shape[-2:] != (3, 3):
            raise InputError(f"Ks: expected a tensor [..., C, 3, 3], got {_shape(self.Ks)}")
        if self.viewmats.shape[:-2] != self.Ks.shape[:-2]:
            raise InputError(
                f"viewmats {tuple(self.viewmats.shape)} and Ks {tuple(self.Ks.shape)} disagree on the batch dims"
            )
        for name in ("width", "height"):
            check_int(getattr(self, name), name, 1, 16384)

    def __len__(self) -> int:
        return self.viewmats.shape[-3]

    def __getitem__(self, index) -> "Cameras":
        """Select cameras along the camera dim C (the last batch dim)."""
        if isinstance(index, int):
            index = slice(index, index + 1 if index != -1 else None)
        return Cameras(self.viewmats[..., index, :, :], self.Ks[..., index, :, :], self.width, self.height)

    @property
    def device(self) -> torch.device:
        return self.viewmats.device

    def to(self, device=None, dtype=None) -> "Cameras":
        return Cameras(self.viewmats.to(device=device, dtype=dtype), self.Ks.to(device=device, dtype=dtype),
                       self.width, self.height)

    @property
    def camtoworlds(self) -> Tensor:
        """[..., C, 4, 4] camera-to-world (OpenCV camera axes)."""
        return torch.linalg.inv(self.viewmats)

    @property
    def centers(self) -> Tensor:
        """[..., C, 3] camera centres in world coordinates."""
        R = self.viewmats[..., :3, :3]
        t = self.viewmats[..., :3, 3:]
        return -(R.transpose(-1, -2) @ t)[..., 0]

    @staticmethod
    def cat(cams: Sequence["Cameras"]) -> "Cameras":
        """Concatenate along the camera dim; all must share width and height."""
        if not cams:
            raise InputError("cams: expected at least one Cameras")
        w, h = cams[0].width, cams[0].height
        if any(c.width != w or c.height != h for c in cams):
            raise InputError("cams: all Cameras must share width and height to be concatenated")
        return Cameras(torch.cat([c.viewmats for c in cams], -3), torch.cat([c.Ks for c in cams], -3), w, h)


def _shape(x) -> str:
    return f"shape {tuple(x.shape)}" if isinstance(x, Tensor) else f"{type(x).__name__}"


def fov_to_focal(fov_deg: float, size: int) -> float:
    """Focal length in pixels for a field of view ``fov_deg`` (degrees) spanning ``size`` pixels."""
    if not 0.0 < fov_deg < 180.0:
        raise InputError(f"fov_deg: expected a field of view in (0, 180) degrees, got {fov_deg}")
    return 0.5 * size / math.tan(math.radians(fov_deg) / 2)


def focal_to_fov(focal: float, size: int) -> float:
    """Field of view in degrees spanned by ``size`` pixels at focal length ``focal`` (pixels)."""
    if focal <= 0:
        raise InputError(f"focal: expected a positive focal length in pixels, got {focal}")
    return math.degrees(2 * math.atan(0.5 * size / focal))


def intrinsics(fov_deg: float, width: int, height: int | None = None) -> Tensor:
    """[3, 3] intrinsics with vertical field of view ``fov_deg``, square pixels, centred principal point."""
    height = width if height is None else height
    f = fov_to_focal(fov_deg, height)
    return torch.tensor([[f, 0.0, width / 2], [0.0, f, height / 2], [0.0, 0.0, 1.0]])


def look_at(eye: Tensor, target: Tensor | Sequence[float] = (0.0, 0.0, 0.0),
            up: Tensor | Sequence[float] = (0.0, 1.0, 0.0)) -> Tensor:
    """World-to-camera matrices [C, 4, 4] (OpenCV axes) for cameras at ``eye`` [C, 3] looking at ``target``,
    in the dtype of ``eye`` (float32 unless it is a floating-point tensor).

    ``up`` is the world direction that appears up in the image (the camera's -y). A camera looking
    straight along ``up`` is ill-posed and raises.
    """
    eye = torch.as_tensor(eye)
    eye = eye if eye.is_floating_point() else eye.float()  # keeps float64 for precise work
    if eye.dim() == 1:
        eye = eye[None]
    if eye.dim() != 2 or eye.shape[-1] != 3:
        raise InputError(f"eye: expected [C, 3] positions, got {_shape(eye)}")
    target = torch.as_tensor(target, dtype=eye.dtype, device=eye.device).expand_as(eye)
    up = torch.as_tensor(up, dtype=eye.dtype, device=eye.device).expand_as(eye)
    if ((target - eye).norm(dim=-1) < 1e-9).any():
        raise InputError("eye: a camera sits at its target; expected eye != target")
    fwd = torch.nn.functional.normalize(target - eye, dim=-1)
    right = torch.linalg.cross(fwd, up, dim=-1)  # fwd x up points to the image right
    if (right.norm(dim=-1) < 1e-6).any():
        raise InputError("look_at: a camera looks along its up vector; choose another up")
    right = torch.nn.functional.normalize(right, dim=-1)
    down = torch.linalg.cross(fwd, right, dim=-1)
    R = torch.stack([right, down, fwd], dim=-2)  # rows: camera axes in world coordinates
    M = torch.eye(4, dtype=eye.dtype, device=eye.device).repeat(eye.shape[0], 1, 1)
    M[:, :3, :3] = R
    M[:, :3, 3] = -(R @ eye[..., None])[..., 0]
    return M


def _orbit_positions(azimuth_deg: Tensor, elevation_deg: Tensor, radius: float) -> Tensor:
    az, el = torch.deg2rad(azimuth_deg), torch.deg2rad(elevation_deg)
    return radius * torch.stack([torch.cos(el) * torch.sin(az), torch.sin(el), torch.cos(el) * torch.cos(az)], -1)


def orbit_cameras(n: int, radius: float = framing.CANONICAL_RADIUS, elevation: float = 0.0,
                  fov: float = framing.CANONICAL_FOV_DEG, size: int | tuple[int, int] = 512,
                  azimuth_start: float = 0.0, azimuths: Sequence[float] | Tensor | None = None) -> Cameras:
    """``n`` cameras evenly spaced in azimuth on a circle around the origin, looking at it.

    Args:
        n: number of cameras (ignored when ``azimuths`` is given).
        radius: distance to the origin, head units.
        elevation: degrees above the horizontal plane (positive looks down on the head).
        fov: vertical field of view, degrees.
        size: image size, an int for square images or (width, height).
        azimuth_start: azimuth of the first camera, degrees (0 = front).
        azimuths: explicit azimuths in degrees instead of an even spacing.
    """
    if azimuths is None:
        check_int(n, "n", 1)
        azimuths = azimuth_start + 360.0 * torch.arange(n, dtype=torch.float64) / n
    azimuths = torch.as_tensor(azimuths, dtype=torch.float64).reshape(-1)
    if len(azimuths) == 0:
        raise InputError("azimuths: expected at least one azimuth")
    if not radius > 0:
        raise InputError(f"radius: expected a positive distance, got {radius}")
    if not -89.0 <= elevation <= 89.0:
        raise InputError(f"elevation: expected degrees in [-89, 89], got {elevation}")
    if not 0.0 < fov < 180.0:
        raise InputError(f"fov: expected a field of view in (0, 180) degrees, got {fov}")
    if isinstance(size, int):
        size = (size, size)
    if not (isinstance(size, (tuple, list)) and len(size) == 2):
        raise InputError(f"size: expected an int or (width, height), got {size!r}")
    width, height = size
    eye = _orbit_positions(azimuths, torch.full_like(azimuths, float(elevation)), radius).float()
    K = intrinsics(fov, width, height)
    return Cameras(look_at(eye), K.expand(len(azimuths), 3, 3).clone(), width, height)


def canonical_cameras(size: int, radius: float = framing.CANONICAL_RADIUS,
                      fov: float = framing.CANONICAL_FOV_DEG) -> Cameras:
    """The paper's four canonical views in the order of :data:`a3d.core.framing.CANONICAL_VIEWS`
    (front, left, right, back), square images of ``size`` pixels."""
    return orbit_cameras(4, radius=radius, fov=fov, size=size, azimuths=framing.CANONICAL_AZIMUTHS_DEG)


def opencv_to_opengl(viewmats: Tensor) -> Tensor:
    """World-to-camera (OpenCV) [..., 4, 4] -> camera-to-world with OpenGL camera axes [..., 4, 4]
    (x right, y up, looking along -z; the convention of LGM, NeRF and three.js). Same world frame."""
    flip = _FLIP_YZ.to(viewmats)
    return torch.linalg.inv(viewmats) @ flip


def opengl_to_opencv(c2w_gl: Tensor) -> Tensor:
    """Camera-to-world with OpenGL camera axes [..., 4, 4] -> world-to-camera (OpenCV) [..., 4, 4]."""
    flip = _FLIP_YZ.to(c2w_gl)
    return torch.linalg.inv(c2w_gl @ flip)


def blender_to_opencv(c2w_blender: Tensor) -> Tensor:
    """Blender ``matrix_world`` of a camera [..., 4, 4] (z-up world, OpenGL camera axes) -> a3d
    world-to-camera [..., 4, 4]. A head facing Blender's -y (toward a front camera on -y) faces +z in a3d."""
    w = _A3D_FROM_BLENDER_WORLD.to(c2w_blender)
    return opengl_to_opencv(w @ c2w_blender)


def opencv_to_blender(viewmats: Tensor) -> Tensor:
    """Inverse of :func:`blender_to_opencv`."""
    w = _A3D_FROM_BLENDER_WORLD.to(viewmats)
    return torch.linalg.inv(w) @ opencv_to_opengl(viewmats)


def save_cameras_json(path: str | os.PathLike, cameras: Cameras, names: Sequence[str] | None = None) -> None:
    """Write ``cameras`` (no leading batch dims: viewmats [C, 4, 4]) to the camera JSON file."""
    if cameras.viewmats.dim() != 3:
        raise InputError(f"cameras: expected viewmats [C, 4, 4] without batch dims, "
                         f"got {tuple(cameras.viewmats.shape)}")
    C = len(cameras)
    names = [f"{i:03d}" for i in range(C)] if names is None else list(names)
    if len(names) != C:
        raise InputError(f"names: expected {C} names, got {len(names)}")
    vm, K = cameras.viewmats.detach().double().cpu(), cameras.Ks.detach().double().cpu()
    if not (torch.isfinite(vm).all() and torch.isfinite(K).all()):  # JSON has no NaN: the file would not read back
        raise InputError(f"cameras: viewmats or Ks hold NaN or inf; {os.fspath(path)} was not written")
    frames = [{"name": str(n), "width": cameras.width, "height": cameras.height,
               "K": K[i].tolist(), "world_to_camera": vm[i].tolist()} for i, n in enumerate(names)]
    doc = {"format": "a3d-cameras", "version": 1, "convention": "opencv", "frames": frames}
    with atomic_write(path, "w") as f:
        json.dump(doc, f, indent=1, allow_nan=False)


def load_cameras_json(path: str | os.PathLike) -> tuple[Cameras, list[str]]:
    """Read a camera JSON file; returns (Cameras with viewmats [C, 4, 4], frame names).

    The file is parsed by :func:`a3d.core.files.read_json` (at most :data:`MAX_CAMERA_FILE_BYTES`).
    Raises :class:`a3d.errors.InputError` naming the file and the field that is missing or malformed.
    """
    doc = read_json(path, MAX_CAMERA_FILE_BYTES, what="camera file")
    if not isinstance(doc, dict) or doc.get("format") != "a3d-cameras":
        raise InputError(f"{path}: expected an object with \"format\": \"a3d-cameras\"")
    if doc.get("convention", "opencv") != "opencv":
        raise InputError(f"{path}: convention {doc.get('convention')!r} is not supported; expected 'opencv'")
    frames = doc.get("frames")
    if not isinstance(frames, list) or not frames or len(frames) > _MAX_FRAMES:
        raise InputError(f"{path}: \"frames\" must be a non-empty list of at most {_MAX_FRAMES} frames")
    names, vms, Ks, sizes = [], [], [], set()
    for i, fr in enumerate(frames):
        if not isinstance(fr, dict):
            raise InputError(f"{path}: frame {i}: expected an object, got {type(fr).__name__}")
        K = _matrix(fr, "K", 3, path, i)
        vm = _matrix(fr, "world_to_camera", 4, path, i)
        w, h = fr.get("width"), fr.get("height")
        for name, v in (("width", w), ("height", h)):
            check_int(v, f"{path}: frame {i}: \"{name}\"", 1, 16384)
        if not (K[0, 0] > 0 and K[1, 1] > 0 and K[1, 0] == 0 and K[2].tolist() == [0.0, 0.0, 1.0]):
            raise InputError(f"{path}: frame {i}: K must be [[fx, s, cx], [0, fy, cy], [0, 0, 1]] with fx, fy > 0")
        R = vm[:3, :3]
        if vm[3].tolist() != [0.0, 0.0, 0.0, 1.0] or (R @ R.T - torch.eye(3, dtype=R.dtype)).abs().max() > 1e-3 \
                or torch.linalg.det(R) < 0:
            raise InputError(f"{path}: frame {i}: world_to_camera must be a rigid transform "
                             f"(rotation, translation, last row [0, 0, 0, 1])")
        name = fr.get("name", f"{i:03d}")
        if not isinstance(name, (str, int)) or isinstance(name, bool) or len(str(name)) > 255:
            raise InputError(f"{path}: frame {i}: \"name\" must be a string (an image's file stem), got {name!r:.60}")
        names.append(str(name))
        vms.append(vm)
        Ks.append(K)
        sizes.add((w, h))
    if len(sizes) != 1:
        raise InputError(f"{path}: all frames must share one image size, got {sorted(sizes)[:4]}")
    (w, h), = sizes
    return Cameras(torch.stack(vms).float(), torch.stack(Ks).float(), w, h), names


def _matrix(frame: dict, key: str, n: int, path, i: int) -> Tensor:
    """frame[key] as a float64 [n, n] tensor (K: 3, world_to_camera: 4) of numbers under 1e12 in
    magnitude, else InputError."""
    rows = frame.get(key)
    ok = isinstance(rows, list) and len(rows) == n and all(
        isinstance(r, list) and len(r) == n
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) and abs(v) < 1e12 for v in r) for r in rows)
    if not ok:
        raise InputError(f"{path}: frame {i}: \"{key}\" must be a {n}x{n} list of numbers (each under 1e12)")
    return torch.tensor(rows, dtype=torch.float64)
