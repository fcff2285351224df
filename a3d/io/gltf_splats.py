"""Gaussian splats in glTF 2.0 (``.glb``, the KHR_gaussian_splatting extension; read and write).

The extension (Khronos, a release candidate in 2026) stores splats as a point primitive (``mode`` 0) whose
vertex attributes are the Gaussians, activated: ``POSITION`` (float VEC3, with min/max),
``KHR_gaussian_splatting:ROTATION`` (float VEC4, x y z w), ``:SCALE`` (float VEC3, linear standard
deviations), ``:OPACITY`` (float SCALAR, in [0, 1]), ``:SH_DEGREE_0_COEF_0`` (float VEC3, the DC
coefficient f_dc, colour = 0.5 + SH_C0 f_dc) and ``:SH_DEGREE_d_COEF_c`` for higher SH (float VEC3 per
coefficient, RGB), plus ``COLOR_0`` (RGBA bytes: colour and opacity) for readers without the extension.
The primitive's extension object names the kernel (``ellipse``), colour space (``srgb_rec709_display``),
sorting (``cameraDistance``) and projection (``perspective``), as PlayCanvas' splat-transform writes them.

The frame is glTF's, which is a3d's world (y up, face toward +z): no ``up`` flip, unlike the PLY family;
lengths are metres like every glTF (:data:`a3d.io.mesh_file.HEAD_UNIT_METRES` per head unit; ``scale``
overrides). Faint Gaussians are dropped (``min_opacity``). The PlayCanvas engine reads these files
(tests/test_viewer_browser.py); :func:`load_gltf_splats` reads back what :func:`save_gltf_splats` writes.
"""
from __future__ import annotations

import json
import os
import struct

import numpy as np
import torch

from ..core.files import atomic_write
from ..core.gaussians import SH_C0, Gaussians
from ..errors import InputError, check_int
from .mesh_file import HEAD_UNIT_METRES
from .splat_codec import WEB_MIN_OPACITY, prepare

__all__ = ["save_gltf_splats", "load_gltf_splats", "EXTENSION"]

EXTENSION = "KHR_gaussian_splatting"
_COEFS = [1, 3, 5, 7]  # SH coefficients of each degree
_FLOAT, _UBYTE = 5126, 5121
_SIZES = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4}
_MAX_JSON = 16 << 20


def save_gltf_splats(gaussians: Gaussians, path: str | os.PathLike, sh_degree: int | None = None,
                     min_opacity: float = WEB_MIN_OPACITY, scale: float = HEAD_UNIT_METRES) -> int:
    """Write one scene (means [N, 3]) as a ``.glb`` with KHR_gaussian_splatting (module docstring): glTF's
    frame (a3d's world), lengths times ``scale`` (head units to metres by default), SH degree 0..3.
    Returns the number of Gaussians written."""
    if sh_degree is not None and not (isinstance(sh_degree, int) and 0 <= sh_degree <= 3):
        raise InputError(f"sh_degree: the extension holds SH degrees 0..3; got {sh_degree!r}")
    g = prepare(gaussians, "save_gltf_splats", "+y", sh_degree, min_opacity)
    n = len(g["means"])
    k = 0 if "sh_rest" not in g else g["sh_rest"].shape[1]
    if k > 15:
        raise InputError("gaussians.sh_rest: the extension holds SH degrees 0..3; pass sh_degree=3")
    means = (g["means"] * scale).astype(np.float32)
    rgba = np.clip(np.rint(np.concatenate([g["colors"], g["opacities"][:, None]], 1) * 255), 0, 255)
    attributes = {"POSITION": (means, _FLOAT, "VEC3"),
                  "COLOR_0": (rgba.astype(np.uint8), _UBYTE, "VEC4"),
                  f"{EXTENSION}:ROTATION": (g["quats"][:, [1, 2, 3, 0]].astype(np.float32), _FLOAT, "VEC4"),
                  f"{EXTENSION}:SCALE": ((g["scales"] * scale).astype(np.float32), _FLOAT, "VEC3"),
                  f"{EXTENSION}:OPACITY": (g["opacities"].astype(np.float32), _FLOAT, "SCALAR"),
                  f"{EXTENSION}:SH_DEGREE_0_COEF_0": (((g["colors"] - 0.5) / SH_C0).astype(np.float32), _FLOAT,
                                                      "VEC3")}
    j = 0
    for degree in range(1, int(round((k + 1) ** 0.5))):
        for c in range(_COEFS[degree]):
            attributes[f"{EXTENSION}:SH_DEGREE_{degree}_COEF_{c}"] = (g["sh_rest"][:, j].astype(np.float32), _FLOAT,
                                                                     "VEC3")
            j += 1
    blob, views, accessors, attr_index = bytearray(), [], [], {}
    for name, (array, component, kind) in attributes.items():
        blob.extend(b"\0" * (-len(blob) % 4))
        views.append({"buffer": 0, "byteOffset": len(blob), "byteLength": array.nbytes, "target": 34962})
        blob.extend(np.ascontiguousarray(array).tobytes())
        acc = {"bufferView": len(views) - 1, "componentType": component, "count": n, "type": kind}
        if component == _UBYTE:
            acc["normalized"] = True
        if name == "POSITION":
            acc["min"] = means.min(0).tolist() if n else [0.0] * 3
            acc["max"] = means.max(0).tolist() if n else [0.0] * 3
        accessors.append(acc)
        attr_index[name] = len(accessors) - 1
    blob.extend(b"\0" * (-len(blob) % 4))
    doc = {"asset": {"version": "2.0", "generator": "a3d"}, "extensionsUsed": [EXTENSION], "scene": 0,
           "scenes": [{"nodes": [0]}], "nodes": [{"mesh": 0, "name": "a3d_head"}],
           "meshes": [{"name": "a3d_head", "primitives": [{
               "attributes": attr_index, "mode": 0,
               "extensions": {EXTENSION: {"kernel": "ellipse", "colorSpace": "srgb_rec709_display",
                                          "sortingMethod": "cameraDistance", "projection": "perspective"}}}]}],
           "buffers": [{"byteLength": len(blob)}], "bufferViews": views, "accessors": accessors}
    text = json.dumps(doc, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 4)
    with atomic_write(path) as f:
        f.write(struct.pack("<III", 0x46546C67, 2, 28 + len(text) + len(blob)))
        f.write(struct.pack("<II", len(text), 0x4E4F534A) + text)
        f.write(struct.pack("<II", len(blob), 0x004E4942) + bytes(blob))
    return n


def load_gltf_splats(path: str | os.PathLike, max_vertices: int = 50_000_000,
                     scale: float = HEAD_UNIT_METRES) -> Gaussians:
    """Read a ``.glb`` with KHR_gaussian_splatting (its first splat primitive; float attributes) into
    Gaussians in a3d's world, lengths divided by ``scale``. Raises InputError naming the file for another
    layout, a count over ``max_vertices`` or accessors that run past the buffer."""
    check_int(max_vertices, "max_vertices", 0)
    path = os.fspath(path)
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 20 or struct.unpack("<I", data[:4])[0] != 0x46546C67:
        raise InputError(f"{path}: not a binary glTF (.glb) file")
    length, kind = struct.unpack("<II", data[12:20])
    if kind != 0x4E4F534A or length > _MAX_JSON or 20 + length + 8 > len(data):
        raise InputError(f"{path}: a malformed GLB JSON chunk")
    try:
        doc = json.loads(data[20:20 + length])
        blob = data[20 + length + 8:20 + length + 8 + struct.unpack("<I", data[20 + length:24 + length])[0]]
        prim = next(p for m in doc["meshes"] for p in m["primitives"] if EXTENSION in p.get("extensions", {}))
        attrs = prim["attributes"]

        def read(name: str) -> np.ndarray:
            acc = doc["accessors"][attrs[name]]
            view = doc["bufferViews"][acc["bufferView"]]
            if acc["componentType"] != _FLOAT or acc["count"] > max_vertices:
                raise InputError(f"{path}: attribute {name}: expected float32 and at most {max_vertices} splats")
            width = _SIZES[acc["type"]]
            start = view.get("byteOffset", 0) + acc.get("byteOffset", 0)
            end = start + 4 * width * acc["count"]
            if end > len(blob) or view.get("byteStride", 4 * width) != 4 * width:
                raise InputError(f"{path}: attribute {name} runs past the buffer or is interleaved")
            return np.frombuffer(blob[start:end], "<f4").reshape(acc["count"], width).astype(np.float64)

        means, rot = read("POSITION") / scale, read(f"{EXTENSION}:ROTATION")
        scales, opacity = read(f"{EXTENSION}:SCALE") / scale, read(f"{EXTENSION}:OPACITY")[:, 0]
        dc = read(f"{EXTENSION}:SH_DEGREE_0_COEF_0")
        rest = []
        for degree in (1, 2, 3):
            names = [f"{EXTENSION}:SH_DEGREE_{degree}_COEF_{c}" for c in range(_COEFS[degree])]
            if not all(n in attrs for n in names):
                break
            rest += [read(n) for n in names]
    except (KeyError, StopIteration, ValueError, TypeError, IndexError, struct.error) as e:
        if isinstance(e, InputError):
            raise
        raise InputError(f"{path}: not a KHR_gaussian_splatting glTF ({type(e).__name__}: {e})") from None
    if not all(np.isfinite(a).all() for a in (means, rot, scales, opacity, dc)) or (scales <= 0).any():
        raise InputError(f"{path}: non-finite values or non-positive scales")
    return Gaussians(
        means=torch.from_numpy(means.astype(np.float32)),
        quats=torch.from_numpy(rot[:, [3, 0, 1, 2]].astype(np.float32)),
        scales=torch.from_numpy(scales.astype(np.float32)),
        opacities=torch.from_numpy(opacity.clip(0, 1).astype(np.float32)),
        colors=torch.from_numpy((0.5 + SH_C0 * dc).astype(np.float32)),
        sh_rest=torch.from_numpy(np.stack(rest, 1).astype(np.float32)) if rest else None)
