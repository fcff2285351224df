"""A game-ready head: the reconstruction's mesh as a GLB with the 52 ARKit blendshapes as glTF morph targets.

The mesh is :func:`a3d.io.mesh.extract`'s (watertight, vertex colours). Its vertices are bound to the
rig's fitted head the way the Gaussians are (:mod:`a3d.animation.bind`), and each ARKit action at weight 1
moves them: the difference from the rest pose is that action's morph target. Targets are stored as sparse
accessors (only the vertices an action moves), named in ``mesh.extras.targetNames`` with ARKit's names
(``jawOpen``, ``mouthSmileLeft``, ...), which three.js (``morphTargetDictionary``), Blender's importer
(shape keys) and engines read. The material is unlit (``KHR_materials_unlit``): the colours come from
the photo, lighting included.

Coordinates: glTF's y up and the face toward +z, as a3d's world; lengths in metres like a3d's other GLBs
(:data:`a3d.io.mesh_file.HEAD_UNIT_METRES` a head unit) unless ``scale`` says otherwise.
"""
from __future__ import annotations

import json
import os
import struct

import numpy as np
import torch

from ..core.gaussians import Gaussians
from ..core.files import atomic_write
from ..io.mesh_file import HEAD_UNIT_METRES, _srgb_to_linear
from .bind import bind, move
from .drive import Rig

__all__ = ["write_glb", "save_arkit_glb", "morph_targets"]

_FLOAT, _UINT = 5126, 5125
_MIN_DELTA = 1e-5  # head units: smaller moves are left out of a sparse target


def morph_targets(rig: Rig, vertices: np.ndarray) -> dict[str, np.ndarray]:
    """[V, 3] mesh vertices (rest pose, the rig's world) -> {ARKit name: [V, 3] displacement at weight 1}."""
    dev = rig.gaussians.device
    v = torch.as_tensor(vertices, dtype=torch.float32, device=dev)
    n = len(v)
    # the vertices as tiny Gaussians, so that they are bound and moved exactly as the splats are
    points = Gaussians(v, torch.tensor([1.0, 0, 0, 0], device=dev).expand(n, 4), torch.ones(n, 3, device=dev),
                       torch.ones(n, device=dev), torch.zeros(n, 3, device=dev))
    binding = bind(points, rig.basis, rig.fit.vertices)
    E = len(rig.names)
    out: dict[str, np.ndarray] = {}
    for s in range(0, E, 8):
        w = torch.eye(E, device=dev)[s:s + 8]
        with torch.no_grad():
            moved = move(points, binding, rig.basis, rig.fit.vertices, rig.vertices(w)).means
        for i in range(len(w)):
            out[rig.names[s + i]] = (moved[i] - v).cpu().numpy()
    return out


def _pad4(b: bytes, fill: bytes = b"\0") -> bytes:
    return b + fill * (-len(b) % 4)


def write_glb(path: str | os.PathLike, vertices: np.ndarray, faces: np.ndarray, colors: np.ndarray,
              targets: dict[str, np.ndarray], scale: float = 1.0) -> str:
    """Write one mesh with vertex colours and named morph targets as a binary glTF 2.0 file.

    Args:
        vertices: [V, 3] positions; faces: [F, 3] indices (counter-clockwise from outside); colors: [V, 3]
            sRGB in [0, 1] (written linear, as glTF's COLOR_0 is); targets: {name: [V, 3] displacement} in the
            order they should appear.
        scale: multiplies positions and displacements.
    Returns:
        The path written.
    """
    v = np.ascontiguousarray(vertices, dtype=np.float32) * np.float32(scale)
    f = np.ascontiguousarray(faces, dtype=np.uint32)
    # glTF's COLOR_0 is linear; a3d's colours are sRGB (as the splats' and a3d.io.mesh_file's GLB)
    c = np.ascontiguousarray(_srgb_to_linear(np.clip(np.asarray(colors, dtype=np.float64), 0, 1)), dtype=np.float32)
    blob = bytearray()
    views: list[dict] = []
    accessors: list[dict] = []

    def view(data: bytes, target: int | None = None) -> int:
        views.append({"buffer": 0, "byteOffset": len(blob), "byteLength": len(data),
                      **({"target": target} if target else {})})
        blob.extend(_pad4(data))
        return len(views) - 1

    def accessor(arr: np.ndarray, kind: str, bounds: bool = False, target: int | None = None) -> int:
        acc = {"bufferView": view(arr.tobytes(), target), "componentType": _UINT if arr.dtype == np.uint32 else _FLOAT,
               "count": int(arr.shape[0] if kind != "SCALAR" else arr.size), "type": kind}
        if bounds:
            acc["min"], acc["max"] = arr.min(0).tolist(), arr.max(0).tolist()
        accessors.append(acc)
        return len(accessors) - 1

    position = accessor(v, "VEC3", bounds=True, target=34962)
    color = accessor(c, "VEC3", target=34962)
    indices = accessor(f.reshape(-1), "SCALAR", target=34963)
    target_refs = []
    for name, delta in targets.items():
        d = np.asarray(delta, dtype=np.float32) * np.float32(scale)
        moved = np.flatnonzero(np.abs(d).max(1) > _MIN_DELTA * scale).astype(np.uint32)
        values = d[moved] if len(moved) else np.zeros((1, 3), np.float32)
        idx = moved if len(moved) else np.zeros(1, np.uint32)
        acc = {"componentType": _FLOAT, "count": len(v), "type": "VEC3",
               "min": np.minimum(values.min(0), 0).tolist(), "max": np.maximum(values.max(0), 0).tolist(),
               "sparse": {"count": len(idx), "indices": {"bufferView": view(idx.tobytes()), "componentType": _UINT},
                          "values": {"bufferView": view(values.tobytes())}}}
        accessors.append(acc)
        target_refs.append({"POSITION": len(accessors) - 1})
    names = list(targets)
    doc = {
        "asset": {"version": "2.0", "generator": "a3d (a3d.animation.gltf)"},
        "extensionsUsed": ["KHR_materials_unlit"],
        "scene": 0, "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0, "name": "head"}],
        "materials": [{"name": "head", "pbrMetallicRoughness": {"baseColorFactor": [1, 1, 1, 1], "metallicFactor": 0,
                                                                "roughnessFactor": 1},
                       "extensions": {"KHR_materials_unlit": {}}}],
        "meshes": [{"name": "head", "weights": [0.0] * len(names), "extras": {"targetNames": names},
                    "primitives": [{"attributes": {"POSITION": position, "COLOR_0": color}, "indices": indices,
                                    "material": 0, "mode": 4, **({"targets": target_refs} if names else {})}]}],
        "buffers": [{"byteLength": len(blob)}],
        "bufferViews": views, "accessors": accessors,
    }
    js = _pad4(json.dumps(doc, separators=(",", ":")).encode(), b" ")
    body = bytes(blob)
    data = struct.pack("<III", 0x46546C67, 2, 12 + 8 + len(js) + 8 + len(body)) \
        + struct.pack("<II", len(js), 0x4E4F534A) + js + struct.pack("<II", len(body), 0x004E4942) + body
    path = os.fspath(path)
    with atomic_write(path) as out:
        out.write(data)
    return path


def save_arkit_glb(rig: Rig, path: str | os.PathLike, *, faces: int = 40_000, resolution: int = 192,
                   views: int = 16, scale: float = HEAD_UNIT_METRES) -> str:
    """Extract the rigged head's mesh (the reconstruction's own Gaussians, without the mouth's interior and lids)
    and write it with the 52 ARKit morph targets (see the module docstring; ``scale``: metres a head unit).
    Returns the path."""
    from ..io.mesh import extract

    n = rig.num_own
    mesh = extract(rig.gaussians.index(slice(0, n)), resolution=resolution, faces=faces, views=views)
    targets = morph_targets(rig, mesh.vertices)
    return write_glb(path, mesh.vertices, mesh.faces, mesh.vertex_colors, targets, scale=scale)
