"""The rasterizer contract and its pure-PyTorch reference.

This module defines the function every backend computes (docs/design.md, Rasterizer contract; gsplat
1.5.3's classic rasterization except the alpha clamp); its constants live in :mod:`a3d.core.contract`:

1. Projection (:func:`project`): world -> camera (``viewmats``), Gaussians with camera z below the
   near plane (0.01) are culled; 3D covariance ``R S Sᵀ Rᵀ`` from the normalised quaternion and
   linear scales; EWA projection through the perspective Jacobian (with gsplat's clamp of x/z and
   y/z to 1.3× the field of view), plus a 0.3 px² screen-space blur on the diagonal. Culled too:
   non-finite inputs, zero/negative scales, zero quaternions, non-positive 2D determinant,
   opacity below 1/255, and Gaussians whose extent box misses the image.
2. Per pixel (centre ``(u + 0.5, v + 0.5)``), Gaussians in ascending camera depth (ties: lower index
   first): ``power = ½(a dx² + c dy²) + b dx dy`` with ``(a, b, c)`` the inverse 2D covariance and
   ``d = μ2d − pixel``; ``α = min(0.99, o·exp(−power))``; skip when ``power < 0`` or ``α < 1/255``;
   stop before the Gaussian that would take the transmittance ``T`` to ``≤ 1e-4``; each included
   Gaussian adds ``α T c`` and ``α T z``, then ``T ← T (1 − α)``.
3. Outputs: ``rgb = Σ α T c + T_final · background``, ``alpha = 1 − T_final``, and the expected depth
   ``Σ α T z / max(alpha, 1e-10)``.

The opacity-aware extent ``min(3.33, sqrt(2 ln(255 o))) · sqrt(Σ2d_xx)`` (and likewise in y) bounds
every pixel whose α can reach 1/255, so tiles and boxes are an acceleration only: the result does
not depend on the tile size. The reference buckets (Gaussian, tile) pairs by tile and composites
each tile's pixels against its depth-sorted list in padded batches, so memory stays bounded.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from . import ops
from .contract import (ALPHA_MAX, ALPHA_MIN, DEPTH_ALPHA_EPS, EPS2D, EXTENT_SIGMA_MAX, FOV_CLAMP_MARGIN,
                       MAX_IMAGE_SIDE, NEAR_PLANE, T_MIN)
from .rotations import quat_to_rotmat
from ..errors import check_int

__all__ = ["Projection", "project", "composite_reference", "rasterize_reference", "rasterize"]


@dataclass
class Projection:
    """Screen-space Gaussians for every (scene, view).

    Attributes:
        means2d: [B, C, N, 2] pixel coordinates of the centres.
        conics: [B, C, N, 3] (a, b, c) of the inverse 2D covariance (blur included).
        depths: [B, C, N] camera-space z.
        extents: [B, C, N, 2] half-extents of the box outside which α < 1/255, in pixels.
        valid: [B, C, N] bool; False for culled Gaussians (their other fields are finite filler).
    """

    means2d: Tensor
    conics: Tensor
    depths: Tensor
    extents: Tensor
    valid: Tensor


def project(means: Tensor, quats: Tensor, scales: Tensor, opacities: Tensor, viewmats: Tensor, Ks: Tensor,
            width: int, height: int) -> Projection:
    """EWA projection of Gaussians [B, N, ...] into cameras [B, C, ...]; see the module docstring."""
    B, N = means.shape[:2]
    # Sanitise culled inputs first so no NaN/inf reaches the arithmetic (and its gradients).
    ok = (torch.isfinite(means).all(-1) & torch.isfinite(quats).all(-1) & torch.isfinite(scales).all(-1)
          & (scales > 0).all(-1) & (quats.abs().sum(-1) > 0) & torch.isfinite(opacities)
          & (opacities >= ALPHA_MIN))  # [B, N]
    means = torch.where(ok[..., None], means, torch.zeros_like(means))
    quats = torch.where(ok[..., None], quats, torch.tensor([1.0, 0, 0, 0], dtype=quats.dtype, device=quats.device))
    scales = torch.where(ok[..., None], scales, torch.ones_like(scales))
    opacities = torch.where(ok, opacities, torch.ones_like(opacities))

    R = viewmats[..., :3, :3]  # [B, C, 3, 3]
    t = viewmats[..., :3, 3]  # [B, C, 3]
    p_cam = torch.einsum("bcij,bnj->bcni", R, means) + t[:, :, None, :]  # [B, C, N, 3]
    x, y, z = p_cam.unbind(-1)
    in_front = z >= NEAR_PLANE
    z = torch.where(in_front, z, torch.ones_like(z))

    M = quat_to_rotmat(quats) * scales[..., None, :]  # [B, N, 3, 3] = R S
    cov3d = M @ M.transpose(-1, -2)
    cov_cam = R[:, :, None] @ cov3d[:, None] @ R[:, :, None].transpose(-1, -2)  # [B, C, N, 3, 3]

    fx, fy = Ks[..., 0, 0, None], Ks[..., 1, 1, None]  # [B, C, 1]
    cx, cy = Ks[..., 0, 2, None], Ks[..., 1, 2, None]
    tan_fovx, tan_fovy = 0.5 * width / fx, 0.5 * height / fy
    lim_xp, lim_xn = (width - cx) / fx + FOV_CLAMP_MARGIN * tan_fovx, cx / fx + FOV_CLAMP_MARGIN * tan_fovx
    lim_yp, lim_yn = (height - cy) / fy + FOV_CLAMP_MARGIN * tan_fovy, cy / fy + FOV_CLAMP_MARGIN * tan_fovy
    rz = 1.0 / z
    tx = z * torch.minimum(lim_xp, torch.maximum(-lim_xn, x * rz))
    ty = z * torch.minimum(lim_yp, torch.maximum(-lim_yn, y * rz))
    zeros = torch.zeros_like(z)
    J = torch.stack([fx * rz, zeros, -fx * tx * rz * rz,
                     zeros, fy * rz, -fy * ty * rz * rz], -1).reshape(*z.shape, 2, 3)  # [B, C, N, 2, 3]
    cov2d = J @ cov_cam @ J.transpose(-1, -2)
    c00 = cov2d[..., 0, 0] + EPS2D
    c01 = cov2d[..., 0, 1]
    c11 = cov2d[..., 1, 1] + EPS2D
    det = c00 * c11 - c01 * c01
    det_ok = det > 0
    det = torch.where(det_ok, det, torch.ones_like(det))
    conics = torch.stack([c11 / det, -c01 / det, c00 / det], -1)
    means2d = torch.stack([fx * x * rz + cx, fy * y * rz + cy], -1)

    extend = torch.clamp(torch.sqrt(2.0 * torch.log(opacities.detach() / ALPHA_MIN).clamp_min(0)),
                         max=EXTENT_SIGMA_MAX)[:, None, :]  # [B, 1, N]
    ext = torch.stack([extend * torch.sqrt(c00.detach().clamp_min(0)),
                       extend * torch.sqrt(c11.detach().clamp_min(0))], -1)  # [B, C, N, 2]
    m2 = means2d.detach()
    on_screen = ((m2[..., 0] + ext[..., 0] > 0) & (m2[..., 0] - ext[..., 0] < width)
                 & (m2[..., 1] + ext[..., 1] > 0) & (m2[..., 1] - ext[..., 1] < height))
    valid = ok[:, None, :] & in_front & det_ok & on_screen & torch.isfinite(m2).all(-1) & torch.isfinite(ext).all(-1)
    return Projection(means2d, conics, z, ext, valid)


def _tile_pairs(proj: Projection, width: int, height: int, tile: int) -> tuple[Tensor, Tensor, Tensor]:
    """(Gaussian, tile) pairs sorted by (view-tile, depth, index).

    Returns flat view-Gaussian ids [P] (index into B*C*N), global tile ids [P] (index into
    B*C*tiles_per_view), and per-tile counts [B*C*tiles_per_view].
    """
    BC = proj.valid.shape[0] * proj.valid.shape[1]
    N = proj.valid.shape[2]
    tw, th = math.ceil(width / tile), math.ceil(height / tile)
    valid = proj.valid.reshape(-1)
    m2 = proj.means2d.detach().reshape(-1, 2)
    ext = proj.extents.reshape(-1, 2)
    ids = valid.nonzero().squeeze(1)
    m2, ext = m2[ids], ext[ids]
    # Pixel index range whose centres (u + 0.5) lie inside the box, then the tiles holding them.
    u0 = torch.ceil(m2[:, 0] - ext[:, 0] - 0.5).clamp(0, width - 1).long()
    u1 = torch.floor(m2[:, 0] + ext[:, 0] - 0.5).clamp(0, width - 1).long()
    v0 = torch.ceil(m2[:, 1] - ext[:, 1] - 0.5).clamp(0, height - 1).long()
    v1 = torch.floor(m2[:, 1] + ext[:, 1] - 0.5).clamp(0, height - 1).long()
    tx0, tx1, ty0, ty1 = u0 // tile, u1 // tile, v0 // tile, v1 // tile
    nx = (tx1 - tx0 + 1).clamp_min(0)
    ny = (ty1 - ty0 + 1).clamp_min(0)
    counts = nx * ny
    pair_g = torch.repeat_interleave(torch.arange(len(ids), device=ids.device), counts)
    start = torch.cumsum(counts, 0) - counts
    local = torch.arange(len(pair_g), device=ids.device) - start[pair_g]
    ptx = tx0[pair_g] + local % nx[pair_g]
    pty = ty0[pair_g] + local // nx[pair_g]
    view = ids[pair_g] // N
    tile_id = view * (tw * th) + pty * tw + ptx
    gid = ids[pair_g]
    # Depth order with ties by index (pairs are already in index order: stable sorts keep it),
    # then a stable sort by tile keeps the depth order inside each tile.
    depth = proj.depths.detach().reshape(-1)[gid]
    order = torch.sort(depth, stable=True).indices
    gid, tile_id = gid[order], tile_id[order]
    order = torch.sort(tile_id, stable=True).indices
    gid, tile_id = gid[order], tile_id[order]
    tile_counts = torch.bincount(tile_id, minlength=BC * tw * th)
    return gid, tile_id, tile_counts


def composite_reference(proj: Projection, opacities: Tensor, colors: Tensor, width: int, height: int,
                        backgrounds: Tensor | None = None, tile_size: int = 8,
                        max_elements: int = 1 << 22) -> tuple[Tensor, Tensor, Tensor]:
    """Composite projected Gaussians; pure PyTorch, differentiable.

    Args:
        proj: :func:`project`'s output for B scenes × C views of N Gaussians.
        opacities: [B, N]; colors: [B, N, 3].
        backgrounds: [B, C, 3] or None (black).
        tile_size: pixels per tile side (any value gives the same result).
        max_elements: bound on (tiles × pixels × Gaussians) evaluated at once, i.e. on memory.

    Returns:
        rgb [B, C, H, W, 3], alpha [B, C, H, W, 1], depth [B, C, H, W, 1] (expected depth).
    """
    B, C, N = proj.valid.shape
    dtype, device = proj.means2d.dtype, proj.means2d.device
    tw, th = math.ceil(width / tile_size), math.ceil(height / tile_size)
    P = tile_size * tile_size
    gid, tile_id, tile_counts = _tile_pairs(proj, width, height, tile_size)
    tile_start = torch.cumsum(tile_counts, 0) - tile_counts

    # Per view-Gaussian attributes, flat over (B, C, N).
    m2 = proj.means2d.reshape(-1, 2)
    con = proj.conics.reshape(-1, 3)
    dep = proj.depths.reshape(-1)
    op = opacities[:, None, :].expand(B, C, N).reshape(-1)
    col = colors[:, None, :, :].expand(B, C, N, 3).reshape(-1, 3)

    # Pixel-centre offsets inside a tile, row-major.
    py, px = torch.meshgrid(torch.arange(tile_size, device=device), torch.arange(tile_size, device=device),
                            indexing="ij")
    pix = torch.stack([px.reshape(-1), py.reshape(-1)], -1).to(dtype) + 0.5  # [P, 2]

    busy = (tile_counts > 0).nonzero().squeeze(1)
    busy = busy[torch.argsort(tile_counts[busy])]  # similar counts together: little padding
    counts_sorted = tile_counts[busy].tolist()
    out_tiles, out_vals = [], []
    i = 0
    while i < len(busy):
        # Grow the group while the padded size stays within the budget.
        j = i + 1
        while j < len(busy) and (j + 1 - i) * P * counts_sorted[j] <= max_elements:
            j += 1
        tiles = busy[i:j]
        K = counts_sorted[j - 1]
        slot = torch.arange(K, device=device)
        idx = tile_start[tiles][:, None] + slot  # [T, K]
        present = slot < tile_counts[tiles][:, None]
        g = gid[idx.clamp_max(len(gid) - 1)]  # [T, K]
        local_tile = tiles % (tw * th)
        origin = torch.stack([local_tile % tw, local_tile // tw], -1).to(dtype) * tile_size  # [T, 2]
        pcoord = origin[:, None, :] + pix[None]  # [T, P, 2]
        d = m2[g][:, None, :, :] - pcoord[:, :, None, :]  # [T, P, K, 2]
        cg = con[g][:, None]  # [T, 1, K, 3]
        power = 0.5 * (cg[..., 0] * d[..., 0] ** 2 + cg[..., 2] * d[..., 1] ** 2) + cg[..., 1] * d[..., 0] * d[..., 1]
        alpha = torch.clamp(op[g][:, None] * torch.exp(-power), max=ALPHA_MAX)  # [T, P, K]
        keep = present[:, None, :] & (power >= 0) & (alpha >= ALPHA_MIN)
        alpha = torch.where(keep, alpha, torch.zeros_like(alpha))
        # Stop before the Gaussian that would take T to <= T_MIN: T is monotone, so that is every
        # Gaussian whose inclusive transmittance is <= T_MIN (skipped ones have α = 0 and change nothing).
        included = torch.cumprod(1 - alpha.detach(), -1) > T_MIN
        alpha = torch.where(included, alpha, torch.zeros_like(alpha))
        trans = torch.cumprod(1 - alpha, -1)  # inclusive
        T_excl = torch.cat([torch.ones_like(trans[..., :1]), trans[..., :-1]], -1)
        w = alpha * T_excl  # [T, P, K]
        rgb = torch.einsum("tpk,tkc->tpc", w, col[g])
        dsum = torch.einsum("tpk,tk->tp", w, dep[g])
        out_tiles.append(tiles)
        out_vals.append(torch.cat([rgb, dsum[..., None], trans[..., -1:]], -1))  # [T, P, 5]
        i = j

    n_tiles = B * C * tw * th
    empty = torch.zeros(n_tiles, P, 5, dtype=dtype, device=device)
    empty[..., 4] = 1.0  # transmittance of an empty tile
    if out_tiles:
        flat = empty.index_copy(0, torch.cat(out_tiles), torch.cat(out_vals))
    else:
        flat = empty + 0 * (m2.sum() + con.sum() + dep.sum() + op.sum() + col.sum())  # keep the graph connected
    img = flat.reshape(B, C, th, tw, tile_size, tile_size, 5).permute(0, 1, 2, 4, 3, 5, 6)
    img = img.reshape(B, C, th * tile_size, tw * tile_size, 5)[:, :, :height, :width]
    T_final = img[..., 4:5]
    alpha_out = 1 - T_final
    rgb = img[..., :3]
    if backgrounds is not None:
        rgb = rgb + T_final * backgrounds[:, :, None, None, :]
    depth = img[..., 3:4] / alpha_out.clamp_min(DEPTH_ALPHA_EPS)
    return rgb, alpha_out, depth


def _check_inputs(means, quats, scales, opacities, colors, viewmats, Ks, width, height, backgrounds):
    if means.dim() != 3 or means.shape[-1] != 3:
        raise ValueError(f"means: expected [B, N, 3], got {tuple(means.shape)}")
    B, N = means.shape[:2]
    for name, t, shape in (("quats", quats, (B, N, 4)), ("scales", scales, (B, N, 3)),
                           ("opacities", opacities, (B, N)), ("colors", colors, (B, N, 3))):
        if tuple(t.shape) != shape:
            raise ValueError(f"{name}: expected {shape} to match means, got {tuple(t.shape)}")
    if viewmats.dim() != 4 or viewmats.shape[0] != B or viewmats.shape[-2:] != (4, 4):
        raise ValueError(f"viewmats: expected [B={B}, C, 4, 4], got {tuple(viewmats.shape)}")
    if tuple(Ks.shape) != tuple(viewmats.shape[:2]) + (3, 3):
        raise ValueError(f"Ks: expected {tuple(viewmats.shape[:2]) + (3, 3)}, got {tuple(Ks.shape)}")
    for name, v in (("width", width), ("height", height)):
        check_int(v, name, 1, MAX_IMAGE_SIDE)
    if backgrounds is not None and tuple(backgrounds.shape) != tuple(viewmats.shape[:2]) + (3,):
        raise ValueError(f"backgrounds: expected {tuple(viewmats.shape[:2]) + (3,)}, got {tuple(backgrounds.shape)}")


def rasterize_reference(means: Tensor, quats: Tensor, scales: Tensor, opacities: Tensor, colors: Tensor,
                        viewmats: Tensor, Ks: Tensor, width: int, height: int,
                        backgrounds: Tensor | None = None, tile_size: int = 8) -> tuple[Tensor, Tensor, Tensor]:
    """The pure-PyTorch rasterizer (the oracle and the fallback); arguments as :func:`rasterize`."""
    _check_inputs(means, quats, scales, opacities, colors, viewmats, Ks, width, height, backgrounds)
    proj = project(means, quats, scales, opacities, viewmats, Ks, width, height)
    return composite_reference(proj, opacities, colors, width, height, backgrounds, tile_size)


def rasterize(means: Tensor, quats: Tensor, scales: Tensor, opacities: Tensor, colors: Tensor,
              viewmats: Tensor, Ks: Tensor, width: int, height: int,
              backgrounds: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Render B scenes of N Gaussians from C cameras each, with the fastest available backend.

    Args:
        means: [B, N, 3]; quats: [B, N, 4] (w, x, y, z); scales: [B, N, 3] linear;
        opacities: [B, N] in (0, 1); colors: [B, N, 3].
        viewmats: [B, C, 4, 4] world-to-camera (OpenCV); Ks: [B, C, 3, 3] pixels.
        width, height: image size in pixels.
        backgrounds: [B, C, 3] colour composited with the final transmittance, or None (black).

    Returns:
        rgb [B, C, H, W, 3], alpha [B, C, H, W, 1], depth [B, C, H, W, 1] (expected camera z of
        the visible surface). Differentiable w.r.t. the Gaussian parameters (and backgrounds).
    """
    _check_inputs(means, quats, scales, opacities, colors, viewmats, Ks, width, height, backgrounds)
    if ops.backend(means.device, "rasterize_fwd") != "torch":
        return ops.rasterize_compiled(means, quats, scales, opacities, colors, viewmats, Ks, width, height,
                                      backgrounds)
    proj = project(means, quats, scales, opacities, viewmats, Ks, width, height)
    return composite_reference(proj, opacities, colors, width, height, backgrounds)
