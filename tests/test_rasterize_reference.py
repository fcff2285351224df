"""The torch reference rasterizer against an independent float64 per-pixel loop, and gradcheck."""
import math

import numpy as np
import pytest
import torch

from a3d.core.cameras import orbit_cameras
from a3d.core.rasterize import rasterize_reference


def random_scene(gen, n, views, size, spread=0.5, scale=(0.02, 0.12), dtype=torch.float64):
    means = (torch.rand(1, n, 3, generator=gen, dtype=dtype) - 0.5) * 2 * spread
    quats = torch.randn(1, n, 4, generator=gen, dtype=dtype)
    scales = torch.empty(1, n, 3, dtype=dtype).uniform_(*scale, generator=gen)
    opac = torch.empty(1, n, dtype=dtype).uniform_(0.05, 0.98, generator=gen)
    colors = torch.rand(1, n, 3, generator=gen, dtype=dtype)
    az = torch.rand(views, generator=gen, dtype=torch.float64) * 360
    cams = orbit_cameras(views, radius=2.0, elevation=float(torch.rand((), generator=gen) * 40 - 20), fov=40.0,
                         size=size, azimuths=az)
    return [means, quats, scales, opac, colors, cams.viewmats[None].to(dtype), cams.Ks[None].to(dtype)]


def brute_force(means, quats, scales, opac, colors, viewmats, Ks, W, H, bg):
    """Per pixel, per Gaussian, straight from docs/design.md, Rasterizer contract (numpy float64, no tiles,
    no vectorisation)."""
    means, quats, scales, opac, colors = (t[0].numpy() for t in (means, quats, scales, opac, colors))
    out_rgb = np.zeros((viewmats.shape[1], H, W, 3))
    out_a = np.zeros((viewmats.shape[1], H, W))
    out_d = np.zeros((viewmats.shape[1], H, W))
    for c in range(viewmats.shape[1]):
        V, K = viewmats[0, c].numpy(), Ks[0, c].numpy()
        fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
        splats = []
        for i in range(len(means)):
            w, x, y, z = quats[i] / np.linalg.norm(quats[i])
            R = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                          [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                          [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])
            S = np.diag(scales[i])
            cov = V[:3, :3] @ R @ S @ S @ R.T @ V[:3, :3].T
            p = V[:3, :3] @ means[i] + V[:3, 3]
            if p[2] < 0.01 or opac[i] < 1 / 255:
                continue
            limx = 1.3 * 0.5 * W / fx  # centred principal point: both margins equal
            limy = 1.3 * 0.5 * H / fy
            tx = p[2] * min(limx, max(-limx, p[0] / p[2]))
            ty = p[2] * min(limy, max(-limy, p[1] / p[2]))
            J = np.array([[fx / p[2], 0, -fx * tx / p[2] ** 2], [0, fy / p[2], -fy * ty / p[2] ** 2]])
            cov2 = J @ cov @ J.T + 0.3 * np.eye(2)
            if np.linalg.det(cov2) <= 0:
                continue
            splats.append((p[2], i, np.array([fx * p[0] / p[2] + cx, fy * p[1] / p[2] + cy]), np.linalg.inv(cov2)))
        splats.sort(key=lambda s: (s[0], s[1]))
        for v in range(H):
            for u in range(W):
                T, rgb, d = 1.0, np.zeros(3), 0.0
                for depth, i, mu, conic in splats:
                    delta = mu - np.array([u + 0.5, v + 0.5])
                    power = 0.5 * delta @ conic @ delta
                    if power < 0:
                        continue
                    a = min(0.99, opac[i] * math.exp(-power))
                    if a < 1 / 255:
                        continue
                    if T * (1 - a) <= 1e-4:
                        break
                    rgb += a * T * colors[i]
                    d += a * T * depth
                    T *= 1 - a
                out_rgb[c, v, u] = rgb + T * bg[c]
                out_a[c, v, u] = 1 - T
                out_d[c, v, u] = d / max(1 - T, 1e-10)
    return out_rgb, out_a, out_d


@pytest.mark.parametrize("n,views,size,tile", [(12, 2, (13, 11), 8), (40, 1, (24, 24), 16), (60, 2, (17, 20), 4)])
def test_reference_matches_brute_force(seed, n, views, size, tile):
    gen = torch.Generator().manual_seed(seed)
    scene = random_scene(gen, n, views, size)
    # dense, overlapping Gaussians so the transmittance stop is exercised too
    scene[3] = scene[3].clamp_min(0.5)
    bg = torch.rand(1, views, 3, generator=gen, dtype=torch.float64)
    W, H = size
    rgb, alpha, depth = rasterize_reference(*scene, W, H, bg, tile_size=tile)
    ref_rgb, ref_a, ref_d = brute_force(*scene, W, H, bg[0].numpy())
    np.testing.assert_allclose(rgb[0].numpy(), ref_rgb, atol=1e-6)
    np.testing.assert_allclose(alpha[0, ..., 0].numpy(), ref_a, atol=1e-6)
    np.testing.assert_allclose(depth[0, ..., 0].numpy(), ref_d, atol=1e-6)
    assert alpha.max() > 0.5  # the scene is visible: the comparison is not between two empty images


def test_transmittance_stop(seed):
    """A stack of nearly opaque Gaussians: compositing stops before T drops under 1e-4."""
    gen = torch.Generator().manual_seed(seed)
    n = 6
    means = torch.zeros(1, n, 3, dtype=torch.float64)
    means[0, :, 2] = torch.linspace(0.0, 0.5, n, dtype=torch.float64)
    quats = torch.tensor([1.0, 0, 0, 0], dtype=torch.float64).repeat(1, n, 1)
    scales = torch.full((1, n, 3), 3.0, dtype=torch.float64)  # σ ≫ a pixel: α clamps to 0.99 everywhere
    opac = torch.full((1, n), 0.999, dtype=torch.float64)
    colors = torch.rand(1, n, 3, generator=gen, dtype=torch.float64)
    cams = orbit_cameras(1, radius=3.0, fov=30.0, size=4)
    vm, K = cams.viewmats[None].double(), cams.Ks[None].double()
    rgb, alpha, _ = rasterize_reference(means, quats, scales, opac, colors, vm, K, 4, 4)
    # α clamps at 0.99: after two Gaussians T = 0.01² (a hair above 1e-4 in floating point), the third
    # would take it to 1e-6, so compositing stops there (the nearest to the camera at +z has the largest z).
    ref_rgb, ref_a, _ = brute_force(means, quats, scales, opac, colors, vm, K, 4, 4, np.zeros((1, 3)))
    np.testing.assert_allclose(rgb[0].numpy(), ref_rgb, atol=1e-9)
    np.testing.assert_allclose(alpha[0, 0, 1, 1, 0].item(), 1 - 0.01**2, atol=1e-9)
    expect = 0.99 * colors[0, -1] + 0.01 * 0.99 * colors[0, -2]
    np.testing.assert_allclose(rgb[0, 0, 1, 1].numpy(), expect.numpy(), atol=1e-9)


def test_gradcheck(seed):
    gen = torch.Generator().manual_seed(seed)
    means, quats, scales, opac, colors, vm, K = random_scene(gen, 6, 2, (8, 8), spread=0.3, scale=(0.15, 0.3))
    opac = opac.clamp(0.2, 0.8)
    params = [t.clone().requires_grad_(True) for t in (means, quats, scales, opac, colors)]

    def fn(m, q, s, o, c):
        rgb, alpha, depth = rasterize_reference(m, q, s, o, c, vm, K, 8, 8, tile_size=4)
        return rgb, alpha, depth

    assert torch.autograd.gradcheck(fn, params, eps=1e-6, atol=1e-5, rtol=1e-4)


def test_degenerate_gaussians_are_culled(seed):
    gen = torch.Generator().manual_seed(seed)
    scene = random_scene(gen, 10, 1, (16, 16), dtype=torch.float32)
    means, quats, scales, opac, colors, vm, K = scene
    good = rasterize_reference(means, quats, scales, opac, colors, vm, K, 16, 16)
    bad_means = torch.tensor([[float("nan"), 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 5.0]])
    bad_scales = torch.tensor([[0.1] * 3, [float("inf"), 0.1, 0.1], [0.0, 0.1, 0.1], [0.1] * 3, [0.1] * 3])
    bad_quats = torch.tensor([[1.0, 0, 0, 0]] * 2 + [[1.0, 0, 0, 0], [0.0, 0, 0, 0], [1.0, 0, 0, 0]])
    # the last one sits behind the front camera (camera at +z looking at -z; z = 5 is behind it)
    vm_front = orbit_cameras(1, radius=2.0, fov=40.0, size=16).viewmats[None]
    m = torch.cat([means, bad_means[None]], 1)
    q = torch.cat([quats, bad_quats[None]], 1)
    s = torch.cat([scales, bad_scales[None]], 1)
    o = torch.cat([opac, torch.full((1, 5), 0.9)], 1)
    c = torch.cat([colors, torch.rand(1, 5, 3, generator=gen)], 1)
    m.requires_grad_(True)
    rgb, alpha, depth = rasterize_reference(m, q, s, o, c, vm_front, K, 16, 16)
    clean = rasterize_reference(means, quats, scales, opac, colors, vm_front, K, 16, 16)
    for a, b in zip((rgb, alpha, depth), clean):
        assert torch.isfinite(a).all()
        torch.testing.assert_close(a, b)
    (rgb.sum() + depth.sum()).backward()
    assert torch.isfinite(m.grad).all()
    assert good[1].max() > 0  # the healthy scene is visible


def test_empty_and_offscreen():
    means = torch.tensor([[[100.0, 0, 0]]])
    args = [means, torch.tensor([[[1.0, 0, 0, 0]]]), torch.full((1, 1, 3), 0.1), torch.tensor([[0.5]]),
            torch.rand(1, 1, 3)]
    cams = orbit_cameras(2, size=8)
    rgb, alpha, depth = rasterize_reference(*args, cams.viewmats[None], cams.Ks[None], 8, 8,
                                            torch.full((1, 2, 3), 0.25))
    assert torch.equal(alpha, torch.zeros_like(alpha))
    assert torch.equal(rgb, torch.full_like(rgb, 0.25))
    assert torch.equal(depth, torch.zeros_like(depth))


def test_bad_arguments_name_the_argument():
    cams = orbit_cameras(1, size=8)
    good = [torch.zeros(1, 2, 3), torch.zeros(1, 2, 4), torch.ones(1, 2, 3), torch.ones(1, 2), torch.ones(1, 2, 3)]
    with pytest.raises(ValueError, match="quats"):
        rasterize_reference(good[0], torch.zeros(1, 2, 3), *good[2:], cams.viewmats[None], cams.Ks[None], 8, 8)
    with pytest.raises(ValueError, match="viewmats"):
        rasterize_reference(*good, cams.viewmats, cams.Ks[None], 8, 8)
    with pytest.raises(ValueError, match="width"):
        rasterize_reference(*good, cams.viewmats[None], cams.Ks[None], 0, 8)
