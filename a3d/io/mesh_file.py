"""The triangle mesh container (:class:`Mesh`) and its files: GLB (binary glTF 2.0), OBJ + MTL + PNG, PLY;
and the texture atlas layout that OBJ needs.

a3d's world (y up, face toward +z, head units) is glTF's frame (y up, front +z), so no axis change is made.
Lengths: a GLB is in metres, glTF's unit (:data:`HEAD_UNIT_METRES` per head unit); OBJ and PLY have no
unit and keep head units; ``scale`` (head units times ``scale``) overrides both.

* GLB (:func:`glb_bytes`, written by a3d): normals, a PBR material (dielectric, rough) and either the
  texture atlas as its base colour texture (corners split per face, as UV seams require) or vertex
  colours (``COLOR_0``).
* OBJ: always textured (OBJ has no standard vertex colours): ``name.obj``, ``name.mtl`` and
  ``name.png`` side by side; a mesh without an atlas gets one baked from its vertex colours
  (:func:`bake_vertex_colors`), which shows the same colours.
* PLY: binary little-endian, vertex positions, normals and RGB colours, triangle faces.

The atlas (:func:`atlas_layout`) packs two triangles into each square cell of a grid, each inset by one
texel, so every texel of a cell belongs to one triangle and bilinear filtering never mixes neighbours.
"""
from __future__ import annotations

import io
import json
import math
import os
import struct
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from ..core.files import atomic_path, atomic_write, check_writable
from ..errors import InputError

__all__ = ["Mesh", "save_mesh", "is_watertight", "vertex_normals", "atlas_layout", "atlas_texels", "atlas_uv",
           "bake_vertex_colors", "glb_bytes", "MESH_FORMATS", "HEAD_UNIT_METRES"]

MESH_FORMATS = (".glb", ".obj", ".ply")
DEFAULT_CELL = 6  # texels a side of an atlas cell (one pair of triangles) when no size is given


@dataclass
class Mesh:
    """A triangle mesh with vertex colours and, optionally, a texture atlas.

    Attributes:
        vertices: [V, 3] float32 positions, world coordinates (head units, y up, face toward +z).
        faces: [F, 3] int64 vertex indices, counter-clockwise seen from outside.
        vertex_colors: [V, 3] float32 RGB in [0, 1].
        uv: optional [F, 3, 2] float32 texture coordinates per face corner, origin at the image's
            bottom-left (OBJ/glTF-importer convention: v up), in [0, 1].
        texture: optional [T, T, 3] uint8 RGB atlas that ``uv`` points into (row 0 is the image's top).
        metadata: settings, timings in seconds, counts.
    """

    vertices: np.ndarray
    faces: np.ndarray
    vertex_colors: np.ndarray
    uv: np.ndarray | None = None
    texture: np.ndarray | None = None
    metadata: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        v, f, c = self.vertices, self.faces, self.vertex_colors
        if not isinstance(v, np.ndarray) or v.ndim != 2 or v.shape[1] != 3:
            raise InputError(f"vertices: expected an array [V, 3], got {_desc(v)}")
        if not isinstance(f, np.ndarray) or f.ndim != 2 or f.shape[1] != 3 or not np.issubdtype(f.dtype, np.integer):
            raise InputError(f"faces: expected an integer array [F, 3], got {_desc(f)}")
        if len(f) and (f.min() < 0 or f.max() >= len(v)):
            raise InputError(f"faces: indices must lie in [0, {len(v)}), got [{f.min()}, {f.max()}]")
        if not isinstance(c, np.ndarray) or c.shape != v.shape:
            raise InputError(f"vertex_colors: expected an array {v.shape} like vertices, got {_desc(c)}")
        if (self.uv is None) != (self.texture is None):
            raise InputError("uv and texture: give both or neither")
        if self.uv is not None:
            if self.uv.shape != (len(f), 3, 2):
                raise InputError(f"uv: expected [{len(f)}, 3, 2] (one per face corner), got {_desc(self.uv)}")
            t = self.texture
            if not isinstance(t, np.ndarray) or t.ndim != 3 or t.shape[2] != 3 or t.dtype != np.uint8:
                raise InputError(f"texture: expected a uint8 array [T, T, 3], got {_desc(t)}")

    @property
    def num_faces(self) -> int:
        return len(self.faces)

    @property
    def num_vertices(self) -> int:
        return len(self.vertices)

    def is_watertight(self) -> bool:
        """True when every edge is shared by exactly two faces with opposite orientations."""
        return is_watertight(self.faces)

    def save(self, path: str | os.PathLike, scale: float | None = None) -> str:
        """Write ``path``; its extension picks the format (.glb in metres, .obj with .mtl and .png beside it,
        .ply); ``scale`` multiplies the head-unit coordinates instead. See :func:`a3d.io.mesh_file.save_mesh`."""
        return save_mesh(self, path, scale)


def is_watertight(faces: np.ndarray) -> bool:
    """True when every edge of ``faces`` [F, 3] is used exactly twice, once in each direction
    (a closed, consistently oriented, edge-manifold surface)."""
    f = np.asarray(faces, dtype=np.int64)
    if len(f) == 0:
        return False
    directed = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    n = int(f.max()) + 1
    key = directed[:, 0] * n + directed[:, 1]
    rev = directed[:, 1] * n + directed[:, 0]
    key_sorted = np.sort(key)
    if (np.diff(key_sorted) == 0).any():  # an edge used twice in one direction
        return False
    pos = np.searchsorted(key_sorted, rev)
    return bool((pos < len(key_sorted)).all() and (key_sorted[np.minimum(pos, len(key_sorted) - 1)] == rev).all())


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """[V, 3] unit normals: the area-weighted mean of the adjacent faces' normals."""
    tri = vertices[faces]
    fn = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])  # length = 2 x area
    n = np.zeros_like(vertices)
    for k in range(3):
        np.add.at(n, faces[:, k], fn)
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)


def atlas_layout(num_faces: int, texture_size: int) -> tuple[np.ndarray, int, int]:
    """Per-corner texel positions [F, 3, 2] (x right, y down, in texels) of the pair-of-triangles atlas.

    Faces 2k and 2k+1 share cell k (cells in rows of ``per_row``): face 2k takes the lower-left half,
    2k+1 the upper-right, each one texel inside the cell border and the diagonal. Returns
    (corners, cell size in texels, per_row). Raises ValueError when cells would be under 4 texels.
    """
    cells = max(1, -(-num_faces // 2))
    per_row = math.ceil(math.sqrt(cells))
    cell = texture_size // per_row
    if cell < 4:
        raise InputError(f"texture_size: {texture_size} texels is too small for {num_faces} faces "
                         f"(needs at least {4 * per_row})")
    k = np.arange(num_faces) // 2
    origin = np.stack([(k % per_row) * cell, (k // per_row) * cell], -1).astype(np.float64)
    lo, hi = 1.0, cell - 1.0
    lower = np.array([[lo, lo + 1], [hi - 1, hi], [lo, hi]])  # below the diagonal (y down)
    upper = np.array([[lo + 1, lo], [hi, lo], [hi, hi - 1]])
    corners = np.where((np.arange(num_faces) % 2 == 0)[:, None, None], lower[None], upper[None])
    return corners + origin[:, None, :], cell, per_row


def atlas_texels(num_faces: int, texture_size: int,
                 texels_per_chunk: int = 1 << 20) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Every texel of every used cell, in chunks: (xy [M, 2] int64 texel column/row, face [M] int64,
    bary [M, 3] barycentric coordinates in that face, clamped onto it for the margin texels)."""
    corners, cell, per_row = atlas_layout(num_faces, texture_size)
    ty, tx = np.mgrid[0:cell, 0:cell]
    local = np.stack([tx.ravel(), ty.ravel()], -1)  # [cell², 2]
    upper_half = (tx + 0.5 > ty + 0.5).ravel().astype(np.int64)  # strictly right of the diagonal
    cells = -(-num_faces // 2)
    per_chunk = max(1, texels_per_chunk // (cell * cell))
    for s in range(0, cells, per_chunk):
        k = np.arange(s, min(cells, s + per_chunk))
        face = np.minimum(2 * k[:, None] + upper_half[None], num_faces - 1)  # [P, cell²]
        xy = local[None] + np.stack([(k % per_row) * cell, (k // per_row) * cell], -1)[:, None, :]
        bary = _barycentric(xy + 0.5, corners[face])
        bary = np.clip(bary, 0.0, None)
        bary /= bary.sum(-1, keepdims=True)
        yield xy.reshape(-1, 2), face.reshape(-1), bary.reshape(-1, 3)


def _barycentric(p: np.ndarray, tri: np.ndarray) -> np.ndarray:
    """Barycentric coordinates [..., 3] of 2D points ``p`` [..., 2] in triangles ``tri`` [..., 3, 2]."""
    a, b, c = tri[..., 0, :], tri[..., 1, :], tri[..., 2, :]
    v0, v1, v2 = b - a, c - a, p - a
    den = v0[..., 0] * v1[..., 1] - v1[..., 0] * v0[..., 1]
    w1 = (v2[..., 0] * v1[..., 1] - v1[..., 0] * v2[..., 1]) / den
    w2 = (v0[..., 0] * v2[..., 1] - v2[..., 0] * v0[..., 1]) / den
    return np.stack([1 - w1 - w2, w1, w2], -1)


def atlas_uv(num_faces: int, texture_size: int) -> np.ndarray:
    """[F, 3, 2] float32 texture coordinates of the atlas corners, v up (OBJ and glTF importers' way)."""
    corners, _, _ = atlas_layout(num_faces, texture_size)
    uv = corners / texture_size
    return np.stack([uv[..., 0], 1.0 - uv[..., 1]], -1).astype(np.float32)


def default_texture_size(num_faces: int) -> int:
    """Atlas side giving each pair of triangles a :data:`DEFAULT_CELL`-texel cell."""
    return math.ceil(math.sqrt(max(1, -(-num_faces // 2)))) * DEFAULT_CELL


def bake_vertex_colors(mesh, texture_size: int | None = None):
    """A copy of ``mesh`` (an :class:`a3d.io.mesh.Mesh`) with an atlas holding its interpolated vertex colours."""
    F = mesh.num_faces
    size = default_texture_size(F) if texture_size is None else texture_size
    tex = np.zeros((size, size, 3), dtype=np.float32)
    cols = mesh.vertex_colors[mesh.faces]  # [F, 3, 3]
    for xy, face, bary in atlas_texels(F, size):
        tex[xy[:, 1], xy[:, 0]] = (bary[:, :, None] * cols[face]).sum(1)
    tex = (np.clip(tex, 0, 1) * 255 + 0.5).astype(np.uint8)
    return Mesh(mesh.vertices, mesh.faces, mesh.vertex_colors, atlas_uv(F, size), tex,
                dict(mesh.metadata, texture_size=size, texture_source="vertex colours"))


def save_mesh(mesh, path: str | os.PathLike, scale: float | None = None) -> str:
    """Write ``mesh`` (an :class:`a3d.io.mesh.Mesh`) to ``path``; the extension picks the format
    (:data:`MESH_FORMATS`; see the module docstring). ``scale`` multiplies the head-unit coordinates; None
    writes a GLB in metres and OBJ/PLY in head units. The write is atomic per file. Returns the path
    written (for OBJ, the .obj file)."""
    path = os.fspath(path)
    stem, ext = os.path.splitext(path)
    ext = ext.lower()
    if ext not in MESH_FORMATS:
        raise InputError(f"path: expected a file ending in {', '.join(MESH_FORMATS)}, got {path!r}")
    from .. import limits

    if scale is None:
        scale = HEAD_UNIT_METRES if ext == ".glb" else 1.0
    limits.check("mesh_scale", scale, "scale")
    targets = [path] if ext != ".obj" else [f"{stem}.obj", f"{stem}.mtl", f"{stem}.png"]
    for target in targets:
        check_writable(target)
    if not np.isfinite(mesh.vertices).all():
        raise InputError("mesh: its vertices hold NaN or inf; nothing was written")
    os.makedirs(os.path.dirname(os.path.abspath(path)) or ".", exist_ok=True)
    if ext == ".glb":
        _write(path, glb_bytes(mesh, scale))
    elif ext == ".ply":
        _write_ply(mesh, path, scale)
    else:
        _write_obj(mesh if mesh.texture is not None else bake_vertex_colors(mesh), stem, scale)
    return path


def _write(path: str, data: bytes | str) -> None:
    with atomic_write(path) as f:
        f.write(data.encode() if isinstance(data, str) else data)


def _write_ply(mesh, path: str, scale: float) -> None:
    V, F = mesh.num_vertices, mesh.num_faces
    header = ("ply\nformat binary_little_endian 1.0\ncomment a3d mesh (y up, face toward +z)\n"
              f"element vertex {V}\nproperty float x\nproperty float y\nproperty float z\n"
              "property float nx\nproperty float ny\nproperty float nz\n"
              "property uchar red\nproperty uchar green\nproperty uchar blue\n"
              f"element face {F}\nproperty list uchar int vertex_indices\nend_header\n").encode()
    vdt = np.dtype([("p", "<f4", 3), ("n", "<f4", 3), ("c", "u1", 3)])
    verts = np.empty(V, vdt)
    verts["p"] = mesh.vertices * scale
    verts["n"] = vertex_normals(mesh.vertices, mesh.faces)
    verts["c"] = (np.clip(mesh.vertex_colors, 0, 1) * 255 + 0.5).astype(np.uint8)
    fdt = np.dtype([("n", "u1"), ("i", "<i4", 3)])
    faces = np.empty(F, fdt)
    faces["n"] = 3
    faces["i"] = mesh.faces
    _write(path, header + verts.tobytes() + faces.tobytes())


def _write_obj(mesh, stem: str, scale: float) -> None:
    from PIL import Image

    name = os.path.basename(stem)
    png, mtl = f"{stem}.png", f"{stem}.mtl"
    F = mesh.num_faces
    lines = [f"# a3d mesh: {mesh.num_vertices} vertices, {F} faces; y up, face toward +z\n",
             f"mtllib {name}.mtl\nusemtl a3d_head\n"]
    lines.append("".join(f"v {x:.6f} {y:.6f} {z:.6f}\n" for x, y, z in (mesh.vertices * scale).tolist()))
    lines.append("".join(f"vt {u:.6f} {v:.6f}\n" for u, v in mesh.uv.reshape(-1, 2).tolist()))
    idx = np.concatenate([mesh.faces + 1, np.arange(3 * F).reshape(F, 3) + 1], 1)  # v and vt, 1-based
    lines.append("".join(f"f {a}/{d} {b}/{e} {c}/{f}\n" for a, b, c, d, e, f in idx.tolist()))
    # the three files are written to temporaries first and moved into place together at the end
    with atomic_path(png) as png_tmp, atomic_write(mtl) as mtl_file, atomic_write(f"{stem}.obj") as obj_file:
        Image.fromarray(mesh.texture).save(png_tmp, format="PNG")
        mtl_file.write((f"# a3d mesh material\nnewmtl a3d_head\nKa 1 1 1\nKd 1 1 1\nKs 0 0 0\nillum 1\n"
                       f"map_Kd {name}.png\n").encode())
        obj_file.write("".join(lines).encode())


def _desc(x) -> str:
    return f"shape {tuple(x.shape)} {x.dtype}" if isinstance(x, np.ndarray) else type(x).__name__


# ---- GLB --------------------------------------------------------------------------------------------------

HEAD_UNIT_METRES = 0.21
"""Metres per head unit: an adult head is about 23 cm from crown to chin, 1.1 head units
(:mod:`a3d.core.framing`)."""

_FLOAT, _UINT32 = 5126, 5125
_ARRAY_BUFFER, _ELEMENT_ARRAY_BUFFER = 34962, 34963


def _srgb_to_linear(c: np.ndarray) -> np.ndarray:
    c = np.clip(c, 0.0, 1.0)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def glb_bytes(mesh, scale: float = HEAD_UNIT_METRES) -> bytes:
    """The ``.glb`` file of ``mesh`` (a :class:`Mesh`), coordinates multiplied by ``scale`` (head units to
    metres by default): one mesh, one node, one PBR material, in glTF's frame (y up, front +z, a3d's world).

    Per vertex: ``POSITION`` (float32, with glTF's min/max) and ``NORMAL`` (:func:`vertex_normals`: smooth
    shading). With a texture atlas: ``TEXCOORD_0`` (v flipped to glTF's top-left origin) and the atlas as
    the material's ``baseColorTexture`` (PNG, sRGB, linear filtering without mipmaps, which would mix
    neighbouring atlas cells, clamped); UV seams need a vertex per face corner, and the corners of one
    vertex keep its position and normal, so a loader that merges vertices by position finds the closed
    surface again. Without an atlas: ``COLOR_0`` (float RGB, sRGB converted to the linear values glTF
    specifies). The material is dielectric (metallic 0), roughness 0.8, single-sided: glTF's default
    material is fully metallic, which renders a head almost black in physically based viewers."""
    from PIL import Image

    verts = mesh.vertices.astype(np.float64) * scale
    normals = vertex_normals(mesh.vertices.astype(np.float64), mesh.faces)
    textured = mesh.texture is not None and mesh.uv is not None
    attributes: dict[str, np.ndarray] = {}
    if textured:  # a vertex per face corner (UV seams)
        corner = mesh.faces.reshape(-1)
        attributes["POSITION"] = verts[corner].astype(np.float32)
        attributes["NORMAL"] = normals[corner].astype(np.float32)
        uv = mesh.uv.reshape(-1, 2).astype(np.float32).copy()
        uv[:, 1] = 1.0 - uv[:, 1]  # mesh.uv has v up; glTF's origin is the image's top-left
        attributes["TEXCOORD_0"] = uv
        indices = np.arange(len(corner), dtype=np.uint32)
    else:
        attributes["POSITION"] = verts.astype(np.float32)
        attributes["NORMAL"] = normals.astype(np.float32)
        attributes["COLOR_0"] = _srgb_to_linear(mesh.vertex_colors.astype(np.float64)).astype(np.float32)
        indices = mesh.faces.reshape(-1).astype(np.uint32)

    blob = bytearray()
    views, accessors = [], []

    def add_view(data: bytes, target: int | None = None) -> int:
        while len(blob) % 4:
            blob.append(0)
        view = {"buffer": 0, "byteOffset": len(blob), "byteLength": len(data)}
        if target is not None:
            view["target"] = target
        views.append(view)
        blob.extend(data)
        return len(views) - 1

    def add_accessor(array: np.ndarray, component: int, kind: str, target: int, bounds: bool = False) -> int:
        acc = {"bufferView": add_view(array.tobytes(), target), "componentType": component, "count": len(array),
               "type": kind}
        if bounds:
            acc["min"], acc["max"] = array.min(0).tolist(), array.max(0).tolist()
        accessors.append(acc)
        return len(accessors) - 1

    index_acc = add_accessor(indices, _UINT32, "SCALAR", _ELEMENT_ARRAY_BUFFER)
    kinds = {"POSITION": "VEC3", "NORMAL": "VEC3", "TEXCOORD_0": "VEC2", "COLOR_0": "VEC3"}
    attr = {name: add_accessor(a, _FLOAT, kinds[name], _ARRAY_BUFFER, bounds=name == "POSITION")
            for name, a in attributes.items()}
    pbr: dict = {"baseColorFactor": [1.0, 1.0, 1.0, 1.0], "metallicFactor": 0.0, "roughnessFactor": 0.8}
    doc: dict = {"asset": {"version": "2.0", "generator": "a3d"},
                 "scene": 0, "scenes": [{"nodes": [0]}], "nodes": [{"mesh": 0, "name": "a3d_head"}],
                 "meshes": [{"name": "a3d_head", "primitives": [{"attributes": attr, "indices": index_acc,
                                                                 "material": 0, "mode": 4}]}],
                 "materials": [{"name": "a3d_head", "pbrMetallicRoughness": pbr, "doubleSided": False}]}
    if textured:
        png = io.BytesIO()
        Image.fromarray(mesh.texture).save(png, format="PNG")
        doc["images"] = [{"bufferView": add_view(png.getvalue()), "mimeType": "image/png", "name": "a3d_head"}]
        doc["samplers"] = [{"magFilter": 9729, "minFilter": 9729, "wrapS": 33071, "wrapT": 33071}]
        doc["textures"] = [{"sampler": 0, "source": 0}]
        pbr["baseColorTexture"] = {"index": 0, "texCoord": 0}
    doc["accessors"], doc["bufferViews"] = accessors, views
    while len(blob) % 4:
        blob.append(0)
    doc["buffers"] = [{"byteLength": len(blob)}]
    text = json.dumps(doc, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 4)
    total = 12 + 8 + len(text) + 8 + len(blob)
    return (struct.pack("<III", 0x46546C67, 2, total) + struct.pack("<II", len(text), 0x4E4F534A) + text
            + struct.pack("<II", len(blob), 0x004E4942) + bytes(blob))
