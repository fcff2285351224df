"""Mesh files: GLB (binary glTF 2.0), OBJ + MTL + PNG, PLY; and the texture atlas layout that OBJ needs.

Files are written through trimesh (MIT), whose exporters follow the formats' specifications. a3d's world
(y up, face toward +z, head units) is glTF's frame (y up, front +z), so no axis change is made; lengths are
head units (about 21 cm; ``scale`` converts, e.g. ``scale=0.21`` for metres).

* GLB: vertex colours (``COLOR_0``) on shared vertices, or, when the mesh carries a texture atlas, the
  atlas as the base colour texture (corners split per face, as UV seams require).
* OBJ: always textured (OBJ has no standard vertex colours): ``name.obj``, ``name.mtl`` and
  ``name.png`` side by side; a mesh without an atlas gets one baked from its vertex colours
  (:func:`bake_vertex_colors`), which shows the same colours.
* PLY: binary little-endian, vertex positions, normals and RGB colours, triangle faces.

The atlas (:func:`atlas_layout`) packs two triangles into each square cell of a grid, each inset by one
texel, so every texel of a cell belongs to one triangle and bilinear filtering never mixes neighbours.
"""
from __future__ import annotations

import math
import os
from typing import Iterator

import numpy as np

__all__ = ["save_mesh", "atlas_layout", "atlas_texels", "bake_vertex_colors", "MESH_FORMATS"]

MESH_FORMATS = (".glb", ".obj", ".ply")
DEFAULT_CELL = 6  # texels a side of an atlas cell (one pair of triangles) when no size is given


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
        raise ValueError(f"texture_size: {texture_size} texels is too small for {num_faces} faces "
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
    """A copy of ``mesh`` (an :class:`a3d.mesh.Mesh`) with an atlas holding its interpolated vertex colours."""
    from .mesh import Mesh

    F = mesh.num_faces
    size = default_texture_size(F) if texture_size is None else texture_size
    tex = np.zeros((size, size, 3), dtype=np.float32)
    cols = mesh.vertex_colors[mesh.faces]  # [F, 3, 3]
    for xy, face, bary in atlas_texels(F, size):
        tex[xy[:, 1], xy[:, 0]] = (bary[:, :, None] * cols[face]).sum(1)
    tex = (np.clip(tex, 0, 1) * 255 + 0.5).astype(np.uint8)
    return Mesh(mesh.vertices, mesh.faces, mesh.vertex_colors, atlas_uv(F, size), tex,
                dict(mesh.metadata, texture_size=size, texture_source="vertex colours"))


def _trimesh(mesh, textured: bool, scale: float):
    import trimesh
    from PIL import Image

    v = mesh.vertices.astype(np.float64) * scale
    if not textured:
        rgba = np.concatenate([(np.clip(mesh.vertex_colors, 0, 1) * 255 + 0.5).astype(np.uint8),
                               np.full((mesh.num_vertices, 1), 255, np.uint8)], 1)
        return trimesh.Trimesh(v, mesh.faces, vertex_colors=rgba, process=False)
    # UV seams: every face corner becomes its own vertex
    F = mesh.num_faces
    material = trimesh.visual.material.PBRMaterial(name="a3d_head", baseColorTexture=Image.fromarray(mesh.texture),
                                                   metallicFactor=0.0, roughnessFactor=1.0)
    visual = trimesh.visual.TextureVisuals(uv=mesh.uv.reshape(-1, 2), material=material)
    return trimesh.Trimesh(v[mesh.faces.reshape(-1)], np.arange(3 * F).reshape(F, 3), visual=visual, process=False)


def save_mesh(mesh, path: str | os.PathLike, scale: float = 1.0) -> str:
    """Write ``mesh`` (an :class:`a3d.mesh.Mesh`) to ``path``; the extension picks the format
    (:data:`MESH_FORMATS`; see the module docstring). ``scale`` multiplies the coordinates (1 = head
    units). The write is atomic per file. Returns the path written (for OBJ, the .obj file)."""
    path = os.fspath(path)
    stem, ext = os.path.splitext(path)
    ext = ext.lower()
    if ext not in MESH_FORMATS:
        raise ValueError(f"path: expected a file ending in {', '.join(MESH_FORMATS)}, got {path!r}")
    if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale: expected a positive number, got {scale!r}")
    os.makedirs(os.path.dirname(os.path.abspath(path)) or ".", exist_ok=True)
    if ext == ".glb":
        data = _trimesh(mesh, mesh.texture is not None, scale).export(file_type="glb")
        _write(path, data)
    elif ext == ".ply":
        _write_ply(mesh, path, scale)
    else:
        _write_obj(mesh if mesh.texture is not None else bake_vertex_colors(mesh), stem, scale)
    return path


def _write(path: str, data: bytes | str) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
    os.replace(tmp, path)


def _write_ply(mesh, path: str, scale: float) -> None:
    from .mesh import vertex_normals

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
    tmp = f"{png}.tmp"
    Image.fromarray(mesh.texture).save(tmp, format="PNG")
    os.replace(tmp, png)
    _write(mtl, f"# a3d mesh material\nnewmtl a3d_head\nKa 1 1 1\nKd 1 1 1\nKs 0 0 0\nillum 1\n"
                f"map_Kd {name}.png\n")
    F = mesh.num_faces
    lines = [f"# a3d mesh: {mesh.num_vertices} vertices, {F} faces; y up, face toward +z\n",
             f"mtllib {name}.mtl\nusemtl a3d_head\n"]
    lines.append("".join(f"v {x:.6f} {y:.6f} {z:.6f}\n" for x, y, z in (mesh.vertices * scale).tolist()))
    lines.append("".join(f"vt {u:.6f} {v:.6f}\n" for u, v in mesh.uv.reshape(-1, 2).tolist()))
    idx = np.concatenate([mesh.faces + 1, np.arange(3 * F).reshape(F, 3) + 1], 1)  # v and vt, 1-based
    lines.append("".join(f"f {a}/{d} {b}/{e} {c}/{f}\n" for a, b, c, d, e, f in idx.tolist()))
    _write(f"{stem}.obj", "".join(lines))
