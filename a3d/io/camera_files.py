"""Cameras for other 3DGS tools: nerfstudio's ``transforms.json`` and COLMAP's text model, with the images
rendered from them, in the world of the splat files a3d writes.

a3d's own camera file (:func:`a3d.core.cameras.save_cameras_json`, written as ``a3d_cameras.json`` so that
it is not mistaken for the Inria code's ``cameras.json``) keeps a3d's world; these files are written in
the world of a splat file saved with the same ``up`` (:data:`a3d.io.splat_codec.UP_CHOICES`, default
``"-y"``), so the images, the cameras and ``head.ply`` line up in the tool that reads them: a world point p
of a3d is ``diag(1, -1, -1) p`` in a ``"-y"`` file, and every world-to-camera matrix V becomes
``V diag(1, -1, -1, 1)``.

**nerfstudio** (``transforms.json``, what ``ns-process-data`` writes and its ``nerfstudio`` data parser
reads)::

    {"camera_model": "OPENCV", "w", "h", "fl_x", "fl_y", "cx", "cy", "k1": 0, "k2": 0, "p1": 0, "p2": 0,
     "ply_file_path": "head.ply",                           # optional: initial points
     "frames": [{"file_path": "images/front.png",
                 "transform_matrix": camera-to-world, OpenGL camera axes (x right, y up, looking along -z)}]}

**COLMAP** (text model, ``sparse/0/`` of a COLMAP project, read by the Inria 3DGS code, gsplat's and
nerfstudio's COLMAP parsers): ``cameras.txt`` (one PINHOLE camera ``fx fy cx cy`` in pixels, the
principal point with pixel centres at +0.5 as in a3d), ``images.txt`` (per image ``QW QX QY QZ TX TY TZ``,
the world-to-camera rotation as a unit quaternion with QW >= 0 and the translation, OpenCV axes, then an
empty line of 2-D points) and ``points3D.txt`` (the centres of the opaque Gaussians with their colours,
for tools that start from COLMAP's sparse points; no tracks).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import torch

from ..core.cameras import Cameras, opencv_to_opengl
from ..core.files import atomic_path, atomic_write
from ..core.gaussians import Gaussians
from ..errors import InputError
from .splat_codec import DEFAULT_UP, resolve_up

__all__ = ["CAMERA_FORMATS", "cameras_in_file_world", "save_transforms_json", "save_colmap_text",
           "export_camera_set"]

CAMERA_FORMATS = ("nerfstudio", "colmap")
_FLIP = torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0], dtype=torch.float64))
_MAX_POINTS = 100_000


def _check(cameras: Cameras, names: Sequence[str]) -> list[str]:
    if cameras.viewmats.dim() != 3:
        raise InputError(f"cameras: expected viewmats [C, 4, 4] without batch dims, "
                         f"got {tuple(cameras.viewmats.shape)}")
    names = [str(n) for n in names]
    if len(names) != len(cameras) or len(set(names)) != len(names):
        raise InputError(f"names: expected {len(cameras)} distinct names, got {names}")
    return names


def cameras_in_file_world(cameras: Cameras, up: str = DEFAULT_UP) -> Cameras:
    """``cameras`` (a3d's world) seen in the world of a splat file written with ``up``: viewmats [C, 4, 4]
    float64 on the CPU, V diag(1, -1, -1, 1) for ``"-y"``; intrinsics unchanged."""
    vm = cameras.viewmats.detach().double().cpu()
    if resolve_up(up) == "-y":
        vm = vm @ _FLIP
    return Cameras(vm, cameras.Ks.detach().double().cpu(), cameras.width, cameras.height)


def save_transforms_json(path: str | os.PathLike, cameras: Cameras, image_paths: Sequence[str],
                         up: str = DEFAULT_UP, ply_file_path: str | None = None) -> None:
    """Write nerfstudio's ``transforms.json`` (module docstring) for ``cameras`` (viewmats [C, 4, 4], a3d's
    world, OpenCV) whose images are ``image_paths`` (relative to the file's folder), in the world of a
    splat file written with ``up``. The intrinsics are shared when all cameras have the same."""
    image_paths = _check(cameras, image_paths)
    cams = cameras_in_file_world(cameras, up)
    c2w = opencv_to_opengl(cams.viewmats)
    K = cams.Ks

    def intrinsics(k: torch.Tensor) -> dict[str, float]:
        return {"fl_x": float(k[0, 0]), "fl_y": float(k[1, 1]), "cx": float(k[0, 2]), "cy": float(k[1, 2])}

    shared = bool((K == K[:1]).all())
    doc: dict = {"camera_model": "OPENCV", "w": cams.width, "h": cams.height,
                 **(intrinsics(K[0]) if shared else {}), "k1": 0.0, "k2": 0.0, "p1": 0.0, "p2": 0.0}
    if ply_file_path is not None:
        doc["ply_file_path"] = ply_file_path
    doc["frames"] = [{"file_path": p, "transform_matrix": c2w[i].tolist(), **({} if shared else intrinsics(K[i]))}
                     for i, p in enumerate(image_paths)]
    with atomic_write(path, "w") as f:
        json.dump(doc, f, indent=1)


def save_colmap_text(folder: str | os.PathLike, cameras: Cameras, image_names: Sequence[str], up: str = DEFAULT_UP,
                     points: Gaussians | None = None) -> dict[str, str]:
    """Write COLMAP's text model (module docstring) into ``folder`` (created): cameras.txt, images.txt and
    points3D.txt, in the world of a splat file written with ``up``. ``points``: Gaussians whose centres of
    opacity >= 0.5 (at most 100,000, evenly taken) become the 3-D points; None writes none.
    Returns name -> path."""
    from ..core.rotations import rotmat_to_quat

    image_names = _check(cameras, image_names)
    cams = cameras_in_file_world(cameras, up)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    K, vm = cams.Ks, cams.viewmats
    one_camera = bool((K == K[:1]).all())
    cam_lines = [f"{i + 1} PINHOLE {cams.width} {cams.height} {float(k[0, 0])!r} {float(k[1, 1])!r} "
                 f"{float(k[0, 2])!r} {float(k[1, 2])!r}" for i, k in enumerate(K[:1] if one_camera else K)]
    q = rotmat_to_quat(vm[:, :3, :3])
    img_lines = []
    for i, name in enumerate(image_names):
        numbers = " ".join(repr(float(v)) for v in (*q[i].tolist(), *vm[i, :3, 3].tolist()))
        img_lines += [f"{i + 1} {numbers} {1 if one_camera else i + 1} {name}", ""]
    pt_lines = []
    if points is not None:
        g = points.detach().to("cpu")
        if resolve_up(up) == "-y":
            g_means = g.means.double() * torch.tensor([1.0, -1.0, -1.0], dtype=torch.float64)
        else:
            g_means = g.means.double()
        keep = torch.nonzero(g.opacities >= 0.5)[:, 0]
        keep = keep[torch.linspace(0, len(keep) - 1, min(len(keep), _MAX_POINTS)).round().long()] if len(keep) else keep
        rgb = (g.colors[keep].clamp(0, 1) * 255).round().to(torch.int64)
        pt_lines = [f"{j + 1} {x!r} {y!r} {z!r} {r} {gg} {b} 0.0" for j, ((x, y, z), (r, gg, b))
                    in enumerate(zip(g_means[keep].tolist(), rgb.tolist()))]
    files = {
        "cameras.txt": ["# Camera list with one line of data per camera:",
                        "#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]", f"# Number of cameras: {len(cam_lines)}",
                        *cam_lines],
        "images.txt": ["# Image list with two lines of data per image:",
                       "#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME",
                       "#   POINTS2D[] as (X, Y, POINT3D_ID)", f"# Number of images: {len(image_names)}", *img_lines],
        "points3D.txt": ["# 3D point list with one line of data per point:",
                         "#   POINT3D_ID, X, Y, Z, R, G, B, ERROR, TRACK[] as (IMAGE_ID, POINT2D_IDX)",
                         f"# Number of points: {len(pt_lines)}", *pt_lines],
    }
    out = {}
    for name, lines in files.items():
        with atomic_write(folder / name, "w") as f:
            f.write("\n".join(lines) + "\n")
        out[name] = str(folder / name)
    return out


def export_camera_set(gaussians: Gaussians, cameras: Cameras, names: Sequence[str], folder: str | os.PathLike,
                      fmt: str = "nerfstudio", up: str = DEFAULT_UP, background: Sequence[float] = (1.0, 1.0, 1.0)
                      ) -> dict[str, str]:
    """Render ``gaussians`` (one scene, a3d's world) from ``cameras`` into ``folder``/images/NAME.png, save
    the splats as ``folder``/head.ply (``up``) and write the cameras for ``fmt``: ``"nerfstudio"``
    (``transforms.json``) or ``"colmap"`` (``sparse/0/*.txt``). A project another 3DGS tool can open as it
    is. Returns name -> path of what was written."""
    from PIL import Image

    from ..core.rendering import render, to_uint8
    from .ply import save_ply

    if fmt not in CAMERA_FORMATS:
        raise InputError(f"fmt: expected one of {', '.join(CAMERA_FORMATS)}, got {fmt!r}")
    names = _check(cameras, names)
    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    out: dict[str, str] = {}
    with torch.no_grad():
        rgb = to_uint8(render(gaussians, cameras.to(gaussians.device), background).rgb)  # [C, H, W, 3]
    for name, img in zip(names, rgb):
        with atomic_path(folder / "images" / f"{name}.png") as tmp:
            Image.fromarray(img).save(tmp, format="PNG")
    out["images"] = str(folder / "images")
    save_ply(gaussians.detach().to("cpu"), folder / "head.ply", up=up)
    out["ply"] = str(folder / "head.ply")
    if fmt == "nerfstudio":
        save_transforms_json(folder / "transforms.json", cameras, [f"images/{n}.png" for n in names], up=up,
                             ply_file_path="head.ply")
        out["transforms"] = str(folder / "transforms.json")
    else:
        out.update(save_colmap_text(folder / "sparse" / "0", cameras, [f"{n}.png" for n in names], up=up,
                                    points=gaussians))
    return out
