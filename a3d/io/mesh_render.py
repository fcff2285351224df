"""A small z-buffer rasterizer for coloured triangle meshes, in PyTorch, with a3d's cameras.

It exists to check extracted meshes against the Gaussian renders (:func:`a3d.io.mesh.fidelity`) without an
OpenGL context. Conventions are those of :mod:`a3d.core.cameras` (OpenCV world-to-camera, pixel centres at
+0.5). A pixel is covered when its centre lies inside (or on an edge of) a triangle in front of the near
plane; the nearest triangle wins (ties: the lower face index). Attributes are interpolated with
perspective-correct barycentric coordinates; colours come from the vertex colours or, when asked, from the
mesh's texture atlas (bilinear). No lighting: the colours are shown as they are, like the Gaussians' DC
colour.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from ..core.cameras import Cameras
from ..errors import InputError

__all__ = ["MeshRender", "rasterize_triangles", "render_mesh"]

NEAR_PLANE = 0.01
_CHUNK = 1 << 22  # candidate (triangle, pixel) pairs evaluated at once
_EMPTY = torch.iinfo(torch.int64).max


@dataclass
class MeshRender:
    """Images of a mesh. rgb [C, H, W, 3] (background where empty), alpha [C, H, W, 1] (0 or 1),
    depth [C, H, W, 1] camera z (0 where empty), face [C, H, W] face index (-1 where empty)."""

    rgb: Tensor
    alpha: Tensor
    depth: Tensor
    face: Tensor


def rasterize_triangles(vertices: Tensor, faces: Tensor, viewmat: Tensor, K: Tensor, width: int,
                        height: int) -> tuple[Tensor, Tensor, Tensor]:
    """Visible triangle per pixel of one camera.

    Args:
        vertices: [V, 3] world positions; faces: [F, 3] int64 indices; viewmat: [4, 4] world-to-camera;
        K: [3, 3] intrinsics in pixels.
    Returns:
        face [H, W] int64 (-1 where empty), bary [H, W, 3] perspective-correct barycentric coordinates
        of that face's corners, depth [H, W] camera z (0 where empty).
    """
    dev = vertices.device
    pc = vertices @ viewmat[:3, :3].T + viewmat[:3, 3]
    z = pc[:, 2]
    zs = z.clamp_min(NEAR_PLANE)
    uv = torch.stack([K[0, 0] * pc[:, 0] / zs + K[0, 2], K[1, 1] * pc[:, 1] / zs + K[1, 2]], -1)
    tri = uv[faces]  # [F, 3, 2]
    tz = z[faces]  # [F, 3]
    lo, hi = tri.amin(1), tri.amax(1)
    x0 = torch.ceil(lo[:, 0] - 0.5).clamp(0, width - 1).long()
    x1 = torch.floor(hi[:, 0] - 0.5).clamp(-1, width - 1).long()
    y0 = torch.ceil(lo[:, 1] - 0.5).clamp(0, height - 1).long()
    y1 = torch.floor(hi[:, 1] - 0.5).clamp(-1, height - 1).long()
    area = _edge(tri[:, 0], tri[:, 1], tri[:, 2])
    valid = (tz > NEAR_PLANE).all(1) & (x1 >= x0) & (y1 >= y0) & (area.abs() > 1e-12) \
        & (hi[:, 0] >= 0) & (lo[:, 0] <= width) & (hi[:, 1] >= 0) & (lo[:, 1] <= height)
    span = torch.maximum(x1 - x0 + 1, y1 - y0 + 1)
    zbuf = torch.full((height * width,), _EMPTY, dtype=torch.int64, device=dev)
    fids_all = valid.nonzero().squeeze(1)
    # bucket triangles by the power of two that bounds their pixel box, so small ones enumerate few pixels
    bucket = torch.ceil(torch.log2(span[fids_all].float())).long().clamp_min(0)
    for b in bucket.unique().tolist():
        k = 1 << b
        ids = fids_all[bucket == b]
        oy, ox = torch.meshgrid(torch.arange(k, device=dev), torch.arange(k, device=dev), indexing="ij")
        ox, oy = ox.reshape(-1), oy.reshape(-1)
        step = max(1, _CHUNK // (k * k))
        for s in range(0, len(ids), step):
            f = ids[s:s + step]
            px = x0[f, None] + ox[None]  # [n, k²]
            py = y0[f, None] + oy[None]
            inbox = (px <= x1[f, None]) & (py <= y1[f, None])
            p = torch.stack([px.float() + 0.5, py.float() + 0.5], -1)
            bary = _screen_bary(p, tri[f, None])
            inside = inbox & (bary >= 0).all(-1)
            inv_z = (bary / tz[f, None]).sum(-1)
            depth = 1.0 / inv_z.clamp_min(1e-12)
            key = (depth.float().view(torch.int32).long() << 32) | f[:, None].expand_as(px)
            pix = (py.clamp(0, height - 1) * width + px.clamp(0, width - 1))
            zbuf.scatter_reduce_(0, pix[inside], key[inside], reduce="amin")
    covered = zbuf != _EMPTY
    face = torch.where(covered, zbuf & 0xFFFFFFFF, torch.full_like(zbuf, -1))
    pix = covered.nonzero().squeeze(1)
    f = face[pix]
    p = torch.stack([(pix % width).float() + 0.5, (pix // width).float() + 0.5], -1)
    b = _screen_bary(p, tri[f]).clamp_min(0)
    w = b / tz[f]
    depth = torch.zeros(height * width, dtype=vertices.dtype, device=dev)
    depth[pix] = 1.0 / w.sum(-1)
    bary = torch.zeros(height * width, 3, dtype=vertices.dtype, device=dev)
    bary[pix] = w / w.sum(-1, keepdim=True)
    return face.reshape(height, width), bary.reshape(height, width, 3), depth.reshape(height, width)


def _edge(a: Tensor, b: Tensor, p: Tensor) -> Tensor:
    return (b[..., 0] - a[..., 0]) * (p[..., 1] - a[..., 1]) - (b[..., 1] - a[..., 1]) * (p[..., 0] - a[..., 0])


def _screen_bary(p: Tensor, tri: Tensor) -> Tensor:
    """Screen-space barycentric coordinates [..., 3] of points p [..., 2] in triangles tri [..., 3, 2]
    (either winding)."""
    a, b, c = tri[..., 0, :], tri[..., 1, :], tri[..., 2, :]
    area = _edge(a, b, c)
    return torch.stack([_edge(b, c, p), _edge(c, a, p), _edge(a, b, p)], -1) / area[..., None]


def _sample_bilinear(texture: Tensor, uv: Tensor) -> Tensor:
    """texture [T, S, 3] float, uv [M, 2] (v up) -> [M, 3], clamped at the border."""
    Ht, Wt = texture.shape[:2]
    x = uv[:, 0] * Wt - 0.5
    y = (1.0 - uv[:, 1]) * Ht - 0.5
    x0, y0 = x.floor(), y.floor()
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    x0, y0 = x0.long(), y0.long()

    def at(yy, xx):
        return texture[yy.clamp(0, Ht - 1), xx.clamp(0, Wt - 1)]

    return (at(y0, x0) * (1 - fx) * (1 - fy) + at(y0, x0 + 1) * fx * (1 - fy)
            + at(y0 + 1, x0) * (1 - fx) * fy + at(y0 + 1, x0 + 1) * fx * fy)


def render_mesh(mesh, cameras: Cameras, background: Sequence[float] = (0.0, 0.0, 0.0),
                use_texture: bool = False) -> MeshRender:
    """Render ``mesh`` (an :class:`a3d.io.mesh.Mesh`) from ``cameras`` (viewmats [C, 4, 4]) on the CPU.

    ``use_texture`` colours pixels from the texture atlas (the mesh must have one) instead of the
    vertex colours.
    """
    if cameras.viewmats.dim() != 3:
        raise InputError(f"cameras: expected viewmats [C, 4, 4], got {tuple(cameras.viewmats.shape)}")
    if use_texture and mesh.texture is None:
        raise InputError("use_texture: the mesh has no texture atlas (bake one with a3d.io.mesh.bake_texture)")
    verts = torch.from_numpy(np.ascontiguousarray(mesh.vertices, dtype=np.float32))
    faces = torch.from_numpy(np.ascontiguousarray(mesh.faces, dtype=np.int64))
    colors = torch.from_numpy(np.ascontiguousarray(mesh.vertex_colors, dtype=np.float32))
    vm, Ks = cameras.viewmats.float().cpu(), cameras.Ks.float().cpu()
    H, W = cameras.height, cameras.width
    bg = torch.as_tensor(background, dtype=torch.float32)
    if use_texture:
        tex = torch.from_numpy(mesh.texture).float() / 255.0
        uv = torch.from_numpy(np.ascontiguousarray(mesh.uv, dtype=np.float32))
    rgbs, alphas, depths, face_ids = [], [], [], []
    for c in range(len(cameras)):
        face, bary, depth = rasterize_triangles(verts, faces, vm[c], Ks[c], W, H)
        hit = face >= 0
        rgb = bg.expand(H, W, 3).clone()
        f = face[hit]
        w = bary[hit]
        if use_texture:
            rgb[hit] = _sample_bilinear(tex, (w[:, :, None] * uv[f]).sum(1))
        else:
            rgb[hit] = (w[:, :, None] * colors[faces[f]]).sum(1)
        rgbs.append(rgb)
        alphas.append(hit.float()[..., None])
        depths.append(depth[..., None])
        face_ids.append(face)
    return MeshRender(torch.stack(rgbs), torch.stack(alphas), torch.stack(depths), torch.stack(face_ids))
