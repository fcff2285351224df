"""Surface extraction: Gaussians -> a coloured, watertight triangle mesh (for game engines, 3D printing, Blender).

The Gaussians are rendered (colour, alpha, expected depth) from ``views`` cameras around the head (the four
canonical directions, then a Fibonacci sphere); the depth maps are fused into a truncated signed distance
volume (TSDF) whose zero level is cut out by marching cubes. Then the mesh is cleaned, decimated and coloured:

1. **Fusion.** A voxel's signed distance in one view is ``rendered depth − voxel depth`` along the camera's
   axis, truncated to ``± trunc`` (0.08 head units, at least 3 voxels; positive in front of the surface,
   i.e. outside). A pixel with alpha < 0.5 is empty, so every voxel on its ray is outside (``+trunc``: space
   carving). Views where the voxel lies more than ``trunc`` behind the surface say nothing about it; a voxel
   that no view sees in front of or near the surface is inside. The TSDF is the mean over the views that
   see it, computed coarse to fine (blocks of 4³ and 2³ voxels first, single voxels only near the surface).
   The volume's border is outside, so marching cubes returns closed surfaces.
2. **Marching cubes** (scikit-image, Lewiner's topologically consistent variant) on the fine volume; the
   largest connected component is kept (floating blobs and the walls of enclosed voids go).
3. **Quadric decimation** (fast-simplification) to ``faces`` triangles, then repair: faces that the
   collapses folded onto each other are cut out and the holes closed by fans (:func:`_close_surface`),
   and the largest component is kept again, so the result is watertight.
4. **Colour.** Each vertex takes the mean of the rendered colours (un-premultiplied, bilinear) of the
   views that see it, weighted by alpha and the squared cosine between its normal and the view direction;
   a vertex that no view sees takes the colour of the nearest Gaussian. Optionally a texture atlas is baked
   the same way per texel, from the :data:`BAKE_VIEWS` views that face the texel's triangle most (two
   triangles a cell; see :func:`bake_texture` and :mod:`a3d.io.mesh_file`).

World conventions are a3d's (head at the origin, y up, face toward +z, head units), which are glTF's
(y up, front +z); faces wind counter-clockwise seen from outside (normals point out).

Files (GLB, OBJ+MTL+PNG, PLY) are written by :mod:`a3d.io.mesh_file`; :func:`fidelity` checks a mesh against
the Gaussian renders with the triangle rasterizer of :mod:`a3d.io.mesh_render`.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..core import framing
from ..core.cameras import Cameras, intrinsics, look_at
from ..core.gaussians import Gaussians, require_scene
from .. import limits
from ..errors import InputError
from .mesh_file import Mesh, atlas_texels, atlas_uv, is_watertight, vertex_normals

__all__ = ["Mesh", "extract", "fusion_cameras", "vertex_normals", "is_watertight", "bake_texture", "fidelity"]

ALPHA_SOLID = 0.5  # a pixel (or a rendered mesh pixel) is covered when its alpha reaches this
_COARSE = 4  # the coarse grid's voxels are this many fine voxels wide
_TRUNC = 0.08  # truncation of the signed distance, head units (at least 3 voxels)
_FUSION_FOV_DEG = 40.0
_CHUNK_ELEMENTS = 1 << 18  # points x views evaluated at once (memory, and few enough ops to keep threads busy)


# ---- cameras and fusion -----------------------------------------------------------------------------------

def fusion_cameras(center: Tensor, radius: float, views: int, size: int) -> Cameras:
    """``views`` cameras around ``center`` [3], each framing the ball of ``radius``: first the four
    canonical directions (front, left, right, back at elevation 0, the views a head is mostly seen
    from), then ``views - 4`` on a Fibonacci sphere (none looking straight along y, where "up" is
    ill-posed). Square images of ``size`` pixels, vertical field of view 40°."""
    n = views - len(framing.CANONICAL_AZIMUTHS_DEG)
    i = torch.arange(n, dtype=torch.float64) + 0.5
    y = (1.0 - 2.0 * i / n).clamp(-0.97, 0.97)  # evenly spaced heights in (-1, 1)
    ring = torch.sqrt(1.0 - y * y)
    phi = math.pi * (3.0 - math.sqrt(5.0)) * i  # golden angle
    az = torch.deg2rad(torch.tensor(framing.CANONICAL_AZIMUTHS_DEG, dtype=torch.float64))
    dirs = torch.cat([torch.stack([az.sin(), torch.zeros_like(az), az.cos()], -1),
                      torch.stack([ring * torch.sin(phi), y, ring * torch.cos(phi)], -1)])
    dist = radius / math.sin(math.radians(_FUSION_FOV_DEG) / 2) * 1.02
    eye = center.double().cpu() + dist * dirs
    K = intrinsics(_FUSION_FOV_DEG, size)
    return Cameras(look_at(eye, center.double().cpu()).float(), K.expand(views, 3, 3).clone(), size, size)


@dataclass
class _Views:
    """Renders of the Gaussians used by fusion and colouring (all on one device). Every point they are
    asked about lies in the ball the cameras frame, so it projects into every image."""

    P: Tensor  # [V, 3, 4] K [R | t]: world -> (u z, v z, z)
    centers: Tensor  # [V, 3] camera centres
    rgb: Tensor  # [V, H*W, 3] un-premultiplied colour
    alpha: Tensor  # [V, H*W]
    depth: Tensor  # [V, H*W] expected depth
    surface: Tensor  # [V, H*W] depth where the pixel is covered (alpha >= 0.5), else _FAR
    size: int

    def project(self, points: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """points [M, 3] -> (u [V, M], v [V, M] pixel coordinates clamped to the image, camera z [V, M])."""
        uvz = torch.matmul(points[None], self.P[:, :, :3].transpose(1, 2)) + self.P[:, None, :, 3]  # [V, M, 3]
        z = uvz[..., 2]
        inv = 1.0 / z.clamp_min(1e-6)
        s = self.size
        return (uvz[..., 0] * inv).clamp_(0, s - 1e-3), (uvz[..., 1] * inv).clamp_(0, s - 1e-3), z

    def pixel(self, u: Tensor, v: Tensor) -> Tensor:
        """Flat index of the pixel holding (u, v) (``.long()`` truncates, which is floor for u, v >= 0)."""
        return v.long() * self.size + u.long()

    def sample_rgb(self, u: Tensor, v: Tensor) -> Tensor:
        """Bilinear colour [V, M, 3] at (u, v) [V, M] (pixel centres at +0.5)."""
        s = self.size
        x, y = (u - 0.5).clamp(0, s - 1), (v - 0.5).clamp(0, s - 1)
        x0, y0 = x.long(), y.long()
        x1, y1 = (x0 + 1).clamp(max=s - 1), (y0 + 1).clamp(max=s - 1)
        fx, fy = (x - x0)[..., None], (y - y0)[..., None]

        def at(yy, xx):
            return torch.gather(self.rgb, 1, (yy * s + xx)[..., None].expand(-1, -1, 3))

        return (at(y0, x0) * (1 - fx) + at(y0, x1) * fx) * (1 - fy) + (at(y1, x0) * (1 - fx) + at(y1, x1) * fx) * fy


_FAR = 1e6  # the "surface depth" of an empty pixel: every voxel on its ray is in front of it


def _render_views(gaussians: Gaussians, cams: Cameras, batch: int = 8) -> _Views:
    from ..core.rendering import render

    rgb, alpha, depth = [], [], []
    with torch.no_grad():
        for s in range(0, len(cams), batch):
            out = render(gaussians, cams[s:s + batch].to(gaussians.device))  # black background: rgb is premultiplied
            rgb.append(out.rgb / out.alpha.clamp_min(1e-6))
            alpha.append(out.alpha[..., 0])
            depth.append(out.depth[..., 0])
    V = len(cams)
    vm = cams.viewmats.to(gaussians.device, torch.float32)
    P = cams.Ks.to(gaussians.device, torch.float32) @ vm[:, :3, :]
    a, d = torch.cat(alpha).reshape(V, -1), torch.cat(depth).reshape(V, -1)
    return _Views(P.contiguous(), cams.centers.to(gaussians.device, torch.float32),
                  torch.cat(rgb).clamp(0, 1).reshape(V, -1, 3), a, d,
                  torch.where(a >= ALPHA_SOLID, d, torch.full_like(d, _FAR)), cams.width)


def _fuse(points: Tensor, views: _Views, trunc: float) -> Tensor:
    """Truncated signed distance [M] at ``points`` [M, 3] (positive outside), see the module docstring."""
    V = views.P.shape[0]
    out = torch.empty(len(points), dtype=torch.float32, device=points.device)
    step = max(1, _CHUNK_ELEMENTS // V)
    for s in range(0, len(points), step):
        u, v, z = views.project(points[s:s + step])
        sdf = (torch.gather(views.surface, 1, views.pixel(u, v)) - z).clamp_(max=trunc)  # empty pixels give +trunc
        seen = (sdf > -trunc).float()
        count = seen.sum(0)
        total = (sdf * seen).sum(0)
        out[s:s + step] = torch.where(count > 0, total / count.clamp_min(1), torch.full_like(total, -trunc))
    return out


def _bounds(gaussians: Gaussians, extent: float) -> tuple[Tensor, Tensor]:
    """Axis-aligned box (lo [3], hi [3]) around the Gaussians that can show, clipped to ``± extent``."""
    g = gaussians
    keep = g.opacities >= 0.05
    if not bool(keep.any()):
        raise InputError("gaussians: no Gaussian has an opacity of at least 0.05; there is no surface to extract")
    m, r = g.means[keep], 2.0 * g.scales[keep].max(-1).values[:, None]
    lo, hi = (m - r).amin(0).clamp(-extent, extent), (m + r).amax(0).clamp(-extent, extent)
    if bool((hi - lo <= 0).any()):
        raise InputError(f"gaussians: the visible Gaussians lie outside the box ±{extent}; raise extent")
    return lo, hi


def _volume(gaussians: Gaussians, views: _Views, lo: Tensor, hi: Tensor,
            resolution: int) -> tuple[Tensor, float, Tensor]:
    """The fused TSDF on the fine grid -> (volume [X, Y, Z] float32, voxel size h, grid origin [3]).

    Coarse to fine: the TSDF is evaluated at the centres of blocks of 4³ fine voxels, then of 2³ in
    the blocks that may hold the surface, then per voxel in the 2³ blocks that may. A block's test
    value is the fused distance clipped at a threshold (its half-diagonal plus the reach it must cover);
    it reaches +threshold only when every view puts the block's centre that far in front of the
    surface (or -threshold when none sees it in front of or near the surface), so a block that any
    view sees near the surface is refined. Voxels of blocks left unrefined get ±trunc by their sign.
    """
    dev = gaussians.device
    h = float((hi - lo).max()) / (resolution - 1)
    # two empty fine voxels of margin on every side so the surface closes inside the grid
    coarse_dims = [math.ceil((float(hi[i] - lo[i]) / h + 5) / _COARSE) for i in range(3)]
    dims = [c * _COARSE for c in coarse_dims]
    origin = (lo + hi) / 2 - h * (torch.tensor(dims, dtype=lo.dtype, device=lo.device) - 1) / 2
    # Thin, fuzzy sheets (hair curtains) erode when the truncation is short in head units: views that see
    # a voxel slightly behind a layer then leave it unobserved; 0.08 head units (~1.7 cm) keeps them.
    trunc = max(3.0 * h, _TRUNC)

    def centres(blocks: Tensor, size: int) -> Tensor:  # [P, 3] indices of blocks of size³ voxels
        return origin + h * (blocks.to(origin.dtype) * size + (size - 1) / 2)

    def threshold(size: int) -> float:
        # Only voxels within 1.5 h of the surface need their own value (marching cubes interpolates along
        # edges that change sign; ±trunc beyond that moves a vertex by < 0.1 h), so a 2³ block is refined
        # when the surface may pass within its half-diagonal + 2 h; a 4³ block when one of its 2³ blocks
        # (centres √3 h away) may be, with a voxel to spare.
        reach = 2.0 * h if size == 2 else threshold(2) + math.sqrt(3) * h + h
        return reach + (size - 1) / 2 * math.sqrt(3) * h

    axes = [torch.arange(c, device=dev) for c in coarse_dims]
    blocks = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    t = threshold(_COARSE)
    coarse = _fuse(centres(blocks, _COARSE), views, t)
    vol = torch.where(coarse > 0, trunc, -trunc).to(torch.float32).reshape(coarse_dims)
    vol = vol.repeat_interleave(_COARSE, 0).repeat_interleave(_COARSE, 1).repeat_interleave(_COARSE, 2)
    blocks = blocks[coarse.abs() < t]
    size = _COARSE
    while size > 1:  # split the kept blocks in 2³ and evaluate those, down to single voxels
        blocks = (blocks[:, None, :] * 2 + _block_offsets(2, dev)[None]).reshape(-1, 3)
        size //= 2
        t = threshold(size) if size > 1 else trunc
        val = _fuse(centres(blocks, size), views, t)
        if size == 1:
            vol[blocks[:, 0], blocks[:, 1], blocks[:, 2]] = val
        else:
            cells = (blocks[:, None, :] * size + _block_offsets(size, dev)[None]).reshape(-1, 3)
            sign = torch.where(val > 0, trunc, -trunc).to(torch.float32)
            vol[cells[:, 0], cells[:, 1], cells[:, 2]] = sign.repeat_interleave(size ** 3)
            blocks = blocks[val.abs() < t]
    vol[:2], vol[-2:], vol[:, :2], vol[:, -2:], vol[:, :, :2], vol[:, :, -2:] = (trunc,) * 6
    return vol, h, origin


def _block_offsets(size: int, device) -> Tensor:
    """[size³, 3] voxel offsets inside a block."""
    r = torch.arange(size, device=device)
    return torch.stack(torch.meshgrid(r, r, r, indexing="ij"), -1).reshape(-1, 3)


def _largest_component(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(vertices)
    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]]])
    graph = coo_matrix((np.ones(len(e), dtype=np.int8), (e[:, 0], e[:, 1])), shape=(n, n))
    count, labels = connected_components(graph, directed=False)
    if count > 1:
        best = np.argmax(np.bincount(labels[faces[:, 0]], minlength=count))
        faces = faces[labels[faces[:, 0]] == best]
    used = np.unique(faces)
    remap = np.full(n, -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    return vertices[used], remap[faces]


def _edge_components(faces: np.ndarray) -> np.ndarray:
    """[F] component label of each face, faces joined when they share an edge (not just a vertex)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    F = len(faces)
    directed = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    n = int(faces.max()) + 1
    key = np.minimum(directed[:, 0], directed[:, 1]) * n + np.maximum(directed[:, 0], directed[:, 1])
    owner = np.tile(np.arange(F), 3)
    order = np.argsort(key, kind="stable")
    same = key[order][1:] == key[order][:-1]  # consecutive uses of one edge: their faces touch
    a, b = owner[order][:-1][same], owner[order][1:][same]
    graph = coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(F, F))
    return connected_components(graph, directed=False)[1]


def clean_surface(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A closed surface without the debris that loaders count as extra pieces: triangles with a repeated
    vertex go, so do triangles whose three vertices another triangle also uses (a zero-volume sliver, two
    faces back to back), and everything not joined by edges to the largest piece; then vertices
    at the same position are merged when the surface stays closed, and otherwise moved apart by a
    thousandth of the mean edge length (a pinch where two sheets touch), so that a loader that merges
    coincident vertices (trimesh, Blender) finds the same closed surface. Returns (vertices, faces)."""
    v, f = np.asarray(vertices), np.asarray(faces, dtype=np.int64)
    # a triangle of no area but three distinct vertices stays: its edges close the surface around it
    ok = (f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 0] != f[:, 2])
    _, inverse, counts = np.unique(np.sort(f, axis=1), axis=0, return_inverse=True, return_counts=True)
    f = f[ok & (counts[inverse.ravel()] == 1)]
    if len(f) == 0:
        return v[:0], f
    labels = _edge_components(f)
    f = f[labels == np.argmax(np.bincount(labels))]
    used = np.unique(f)
    remap = np.full(len(v), -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    v, f = v[used], remap[f]
    pos, first, inverse = np.unique(v, axis=0, return_index=True, return_inverse=True)
    if len(pos) < len(v):  # coincident vertices
        merged = first[inverse.ravel()][f]
        if is_watertight(merged) and not (np.sort(merged, 1)[:, :-1] == np.sort(merged, 1)[:, 1:]).any():
            keep = np.unique(merged)
            remap = np.full(len(v), -1, dtype=np.int64)
            remap[keep] = np.arange(len(keep))
            return v[keep], remap[merged]
        edge = np.linalg.norm(v[f[:, 0]] - v[f[:, 1]], axis=1).mean()
        moved = v.copy()
        dup = first[inverse.ravel()] != np.arange(len(v))
        moved[dup] += 1e-3 * edge * vertex_normals(v, f)[dup]
        v = moved.astype(v.dtype)
    return v, f


def _edge_use(faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Directed edges [3F, 2] of ``faces`` and, for each, how often its undirected edge is used."""
    directed = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    n = int(faces.max()) + 1
    key = np.minimum(directed[:, 0], directed[:, 1]) * n + np.maximum(directed[:, 0], directed[:, 1])
    _, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
    return directed, counts[inverse.ravel()]


def _close_surface(vertices: np.ndarray, faces: np.ndarray, rounds: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Make a nearly closed surface watertight: quadric decimation can fold faces onto each other
    (edges used four times). Faces at such edges are cut out, and every hole left (a loop of boundary
    edges) is closed by a fan around a new vertex at its centroid."""
    for _ in range(rounds):
        faces = faces[(faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 2] != faces[:, 0])]
        directed, use = _edge_use(faces)
        bad = np.unique(directed[use > 2])
        if len(bad):  # cut out every face touching a vertex of a folded edge
            faces = faces[~np.isin(faces, bad).any(1)]
            directed, use = _edge_use(faces)
        if len(bad) == 0 and is_watertight(faces):
            break
        boundary = directed[use == 1]  # the hole runs along these edges in the opposite direction
        nxt: dict[int, int] = {}
        pinched = set()
        for a, b in boundary.tolist():
            if b in nxt:
                pinched.add(b)
            nxt[b] = a
        if pinched:  # a vertex on two holes: cut its faces out and try again
            faces = faces[~np.isin(faces, list(pinched)).any(1)]
            continue
        new_v, new_f = [], []
        seen: set[int] = set()
        for start in list(nxt):
            if start in seen:
                continue
            loop, v = [], start
            while v not in seen:
                seen.add(v)
                loop.append(v)
                v = nxt[v]
            c = len(vertices) + len(new_v)
            new_v.append(vertices[loop].mean(0))
            new_f += [[loop[i], loop[(i + 1) % len(loop)], c] for i in range(len(loop))]
        if new_v:
            vertices = np.concatenate([vertices, np.asarray(new_v, dtype=vertices.dtype)])
            faces = np.concatenate([faces, np.asarray(new_f, dtype=faces.dtype)])
    return vertices, faces


def _color_sums(points: Tensor, normals: Tensor, views: _Views, tol: float) -> tuple[Tensor, Tensor]:
    """The weighted sums behind :func:`_colors_at`: (sum of w·colour [M, 3], sum of w [M]) over ``views``."""
    V = views.P.shape[0]
    num = torch.zeros(len(points), 3, dtype=torch.float32, device=points.device)
    den = torch.zeros(len(points), dtype=torch.float32, device=points.device)
    step = max(1, _CHUNK_ELEMENTS // V)
    for s in range(0, len(points), step):
        p, n = points[s:s + step], normals[s:s + step]
        u, v, z = views.project(p)
        idx = views.pixel(u, v)
        a = torch.gather(views.alpha, 1, idx)
        d = torch.gather(views.surface, 1, idx)
        to_cam = torch.nn.functional.normalize(views.centers[:, None, :] - p[None], dim=-1)  # [V, m, 3]
        cos = (to_cam * n[None]).sum(-1).clamp_min(0)
        w = torch.where((d - z).abs() < tol, a * cos * cos, torch.zeros_like(a))
        num[s:s + step] = (w[..., None] * views.sample_rgb(u, v)).sum(0)
        den[s:s + step] = w.sum(0)
    return num, den


def _view(views: _Views, v: int) -> _Views:
    """The one view ``v`` of ``views``."""
    return _Views(views.P[v:v + 1], views.centers[v:v + 1], views.rgb[v:v + 1], views.alpha[v:v + 1],
                  views.depth[v:v + 1], views.surface[v:v + 1], views.size)


def _colors_at(points: Tensor, normals: Tensor, views: _Views, tol: float) -> tuple[Tensor, Tensor]:
    """Colours [M, 3] seen at surface ``points`` [M, 3] with outward ``normals`` [M, 3], and whether any
    view saw them [M]. A view sees a point when the rendered depth there is within ``tol`` of its depth."""
    num, den = _color_sums(points, normals, views, tol)
    return num / den.clamp_min(1e-12)[:, None], den > 1e-6


def _colorize(points: np.ndarray, normals: np.ndarray, views: _Views, gaussians: Gaussians,
              tol: float, best: np.ndarray | None = None) -> np.ndarray:
    """[M, 3] float32 colours; points no view sees take the colour of the nearest Gaussian. ``best``: [M, K]
    indices of the only views to average per point (the texture bake's views facing its triangle); None: all."""
    dev = views.P.device
    p = torch.from_numpy(points).to(dev, torch.float32)
    n = torch.from_numpy(normals).to(dev, torch.float32)
    if best is None:
        col, seen = _colors_at(p, n, views, tol)
    else:  # view by view over the points that chose it: K views' work a point instead of all V
        num, den = torch.zeros(len(p), 3, device=dev), torch.zeros(len(p), device=dev)
        for v in range(views.P.shape[0]):
            sel = torch.from_numpy(np.flatnonzero((best == v).any(1))).to(dev)
            if len(sel):
                wc, w = _color_sums(p[sel], n[sel], _view(views, v), tol)
                num[sel] += wc
                den[sel] += w
        col, seen = num / den.clamp_min(1e-12)[:, None], den > 1e-6
    col, seen = col.cpu().numpy(), seen.cpu().numpy()
    if not seen.all():
        from scipy.spatial import cKDTree

        g = gaussians.to("cpu")
        keep = (g.opacities >= 0.05).numpy()
        _, nearest = cKDTree(g.means.numpy()[keep]).query(points[~seen])
        col[~seen] = g.colors.numpy()[keep][nearest]
    return np.clip(col, 0.0, 1.0).astype(np.float32)


# ---- texture atlas ----------------------------------------------------------------------------------------

BAKE_VIEWS = 3
"""Views a triangle's texels average: the ones facing it most."""

def bake_texture(mesh: Mesh, gaussians: Gaussians, texture_size: int = 2048, views: int = 24,
                 view_size: int = 512) -> Mesh:
    """Bake a texture atlas of ``texture_size``² texels (layout: :func:`a3d.io.mesh_file.atlas_layout`) from
    renders of ``gaussians`` onto ``mesh``.

    Each texel is coloured at the point of its triangle under it, the way vertices are (the mean over
    the views that see the point, see the module docstring). Returns a new :class:`Mesh` with ``uv`` and
    ``texture`` set (the vertex colours are kept).
    """
    if isinstance(texture_size, bool) or not isinstance(texture_size, int) or not 64 <= texture_size <= 8192:
        raise InputError(f"texture_size: expected an int in [64, 8192], got {texture_size!r}")
    F = mesh.num_faces
    g = gaussians.detach().float()
    lo, hi = mesh.vertices.min(0), mesh.vertices.max(0)
    center = torch.from_numpy((lo + hi) / 2).to(g.device)
    radius = float(np.linalg.norm(hi - lo)) / 2 * 1.05
    rv = _render_views(g, fusion_cameras(center, radius, views, view_size))
    tri = mesh.vertices[mesh.faces]  # [F, 3, 3]
    fn = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    fn /= np.maximum(np.linalg.norm(fn, axis=1, keepdims=True), 1e-12)
    tol = 3 * float(mesh.metadata.get("voxel_size", radius / 128))
    # each triangle is coloured from the BAKE_VIEWS views that face it most (the others add little weight:
    # the colour weight is cos² of the view angle), a third to a tenth of the work of averaging them all
    to_cam = rv.centers.cpu().numpy()[None] - tri.mean(1)[:, None]  # [F, V, 3]
    facing = (to_cam * fn[:, None]).sum(-1) / np.maximum(np.linalg.norm(to_cam, axis=-1), 1e-12)
    best = np.argsort(-facing, axis=1)[:, :BAKE_VIEWS]  # [F, K]
    tex = np.zeros((texture_size, texture_size, 3), dtype=np.float32)
    for xy, face, bary in atlas_texels(F, texture_size):
        pts = (bary[:, :, None] * tri[face]).sum(1).astype(np.float32)
        tex[xy[:, 1], xy[:, 0]] = _colorize(pts, fn[face].astype(np.float32), rv, g, tol, best[face])
    meta = dict(mesh.metadata, texture_size=texture_size, texture_source="gaussian renders",
                texture_views=views, texture_view_size=view_size)
    return Mesh(mesh.vertices, mesh.faces, mesh.vertex_colors, atlas_uv(F, texture_size),
                (tex * 255 + 0.5).astype(np.uint8), meta)


# ---- extraction -------------------------------------------------------------------------------------------

def extract(gaussians: Gaussians, resolution: int = 256, faces: int = 100_000, views: int = 24,
            view_size: int | None = None, extent: float = 1.5, texture_size: int | None = None,
            progress: bool = False) -> Mesh:
    """The head's surface as a closed, coloured triangle mesh (see the module docstring for the method).

    Args:
        gaussians: one scene [N] (no batch dims), on any device; the work runs there (marching cubes,
            cleaning and decimation on the CPU).
        resolution: voxels along the longest side of the head's bounding box (the grid is cubic voxels).
        faces: target triangle count after decimation (fewer when marching cubes makes fewer).
        views: cameras rendered for fusion and colouring (see :func:`fusion_cameras`).
        view_size: their image size in pixels (default: ``resolution``).
        extent: the box ``± extent`` (head units) outside which Gaussians are ignored.
        texture_size: also bake a texture atlas of this many texels a side (see :func:`bake_texture`);
            None keeps vertex colours only. OBJ files always need one (:mod:`a3d.io.mesh_file` bakes a default).
        progress: a progress bar over the stages (render, fuse, marching cubes, decimate, colour, texture).
    Returns:
        A watertight :class:`Mesh` with vertex colours (``metadata`` has settings, counts and timings).
    """
    require_scene(gaussians)
    limits.check("mesh_resolution", resolution, "resolution")
    limits.check("mesh_faces", faces, "faces")
    limits.check("mesh_views", views, "views")
    if texture_size is not None:
        limits.check("texture_size", texture_size, "texture_size")
    bad = [k for k in ("means", "scales", "opacities", "colors") if not torch.isfinite(getattr(gaussians, k)).all()]
    if bad:
        raise InputError(f"gaussians: {', '.join(bad)} hold NaN or inf; a mesh needs finite Gaussians")
    view_size = resolution if view_size is None else view_size
    if isinstance(view_size, bool) or not isinstance(view_size, int) or not 16 <= view_size <= 4096:
        raise InputError(f"view_size: expected an int in [16, 4096], got {view_size!r}")
    if not extent > 0:
        raise InputError(f"extent: expected a positive half-size in head units, got {extent!r}")
    import fast_simplification
    from skimage.measure import marching_cubes

    from ..core.progress import progress_bar

    timings: dict[str, float] = {}
    clock = [time.perf_counter()]
    bar = progress_bar(total=5 + (texture_size is not None), desc="mesh", unit="stage", disable=not progress)

    def lap(name: str) -> None:
        if gaussians.device.type == "cuda":
            torch.cuda.synchronize(gaussians.device)
        now = time.perf_counter()
        timings[name] = round(now - clock[0], 4)
        clock[0] = now
        bar.set_postfix_str(f"{name} done")
        bar.update(1)

    g = gaussians.detach().float()
    lo, hi = _bounds(g, extent)
    center, radius = (lo + hi) / 2, float((hi - lo).norm()) / 2
    cams = fusion_cameras(center, radius, views, view_size)
    rv = _render_views(g, cams)
    lap("render")
    vol, h, origin = _volume(g, rv, lo, hi, resolution)
    vol = vol.cpu().numpy()
    lap("fuse")
    if not vol.min() < 0:
        raise InputError("gaussians: no view sees a solid surface (alpha >= 0.5 nowhere, or only where other views "
                         "see through it); there is no surface to extract")
    # scikit-image's "descent" (values fall toward the inside) winds faces counter-clockwise seen from outside
    verts, tris, _, _ = marching_cubes(vol, 0.0, spacing=(h, h, h), gradient_direction="descent")
    verts = verts.astype(np.float32) + origin.cpu().numpy().astype(np.float32)
    verts, tris = _largest_component(verts, tris.astype(np.int64))
    lap("marching_cubes")
    mc_faces = len(tris)
    if len(tris) > faces:
        verts, tris = fast_simplification.simplify(verts, tris.astype(np.int32), target_count=faces)
        verts, tris = _close_surface(verts.astype(np.float32), tris.astype(np.int64))
    verts, tris = clean_surface(verts.astype(np.float32), tris)
    lap("decimate")
    normals = vertex_normals(verts, tris)
    colors = _colorize(verts, normals, rv, g, tol=3 * h)
    lap("color")
    meta = {"method": "tsdf-fusion", "resolution": resolution, "voxel_size": h, "views": views,
            "view_size": view_size, "grid": list(vol.shape), "marching_cubes_faces": mc_faces,
            "faces": int(len(tris)), "vertices": int(len(verts)), "num_gaussians": g.num_gaussians,
            "device": str(g.device), "timings_s": timings}
    mesh = Mesh(verts.astype(np.float32), tris.astype(np.int64), colors, metadata=meta)
    meta["watertight"] = mesh.is_watertight()
    if texture_size is not None:
        mesh = bake_texture(mesh, g, texture_size, views=views, view_size=max(view_size, 512))
        lap("texture")
    timings["total"] = round(sum(timings.values()), 4)
    bar.close()
    return mesh


# ---- quality check ----------------------------------------------------------------------------------------

def fidelity(mesh: Mesh, gaussians: Gaussians, cameras: Cameras) -> dict[str, list[float] | float]:
    """How well ``mesh`` reproduces ``gaussians`` seen from ``cameras`` (viewmats [C, 4, 4]).

    Returns {"iou": [C], "psnr": [C], "iou_all": float, "psnr_all": float}: per view and over the pixels
    of all views pooled, the IoU of the silhouettes (Gaussian alpha >= 0.5 vs. pixels the mesh covers)
    and the colour PSNR in dB over the pixels both cover (Gaussian colour un-premultiplied, mesh colour
    as rendered by :func:`a3d.io.mesh_render.render_mesh`, texture atlas if the mesh has one).
    """
    from .mesh_render import render_mesh
    from ..core.rendering import render

    with torch.no_grad():
        ref = render(gaussians.detach().float(), cameras.to(gaussians.device))
    out = render_mesh(mesh, cameras.to("cpu"), use_texture=mesh.texture is not None)
    ref_mask = ref.alpha[..., 0].cpu() >= ALPHA_SOLID
    ref_rgb = (ref.rgb / ref.alpha.clamp_min(1e-6)).clamp(0, 1).cpu()
    mesh_mask = out.alpha[..., 0] >= ALPHA_SOLID
    inter, union = ref_mask & mesh_mask, ref_mask | mesh_mask
    sq = ((ref_rgb - out.rgb) ** 2).mean(-1)

    def psnr(err: Tensor, sel: Tensor) -> float:
        return 10 * math.log10(1.0 / max(float(err[sel].mean()), 1e-12)) if sel.any() else float("nan")

    return {"iou": [float(inter[c].sum()) / max(1, int(union[c].sum())) for c in range(len(cameras))],
            "psnr": [psnr(sq[c], inter[c]) for c in range(len(cameras))],
            "iou_all": float(inter.sum()) / max(1, int(union.sum())), "psnr_all": psnr(sq, inter)}
