"""Plücker rays: geometric properties, the compiled CPU/CUDA op against the reference, backend choice."""
from __future__ import annotations

import pytest
import torch

from a3d.core import ops
from a3d.core.cameras import look_at, orbit_cameras
from a3d.core.rays import plucker_rays_reference


def random_cameras(gen: torch.Generator, lead: tuple[int, ...], width: int, height: int,
                   dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """Cameras anywhere around the origin looking near it, with random non-square intrinsics."""
    n = 1
    for s in lead:
        n *= s
    f64 = dict(generator=gen, dtype=torch.float64)
    eye = torch.nn.functional.normalize(torch.randn(n, 3, **f64), dim=-1) * (1.5 + 3 * torch.rand(n, 1, **f64))
    up = torch.randn(3, **f64) * 0.2 + torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)  # tilted a little
    vm = look_at(eye, 0.3 * torch.randn(n, 3, **f64), up=up)  # float64: orthonormal to 1e-16
    fx = width * (0.5 + torch.rand(n, generator=gen))
    fy = height * (0.5 + torch.rand(n, generator=gen))
    K = torch.zeros(n, 3, 3)
    K[:, 0, 0], K[:, 1, 1], K[:, 2, 2] = fx, fy, 1.0
    K[:, 0, 2] = width * (0.3 + 0.4 * torch.rand(n, generator=gen))
    K[:, 1, 2] = height * (0.3 + 0.4 * torch.rand(n, generator=gen))
    return vm.reshape(*lead, 4, 4).to(dtype), K.reshape(*lead, 3, 3).to(dtype)


IMPLS = {
    "reference": plucker_rays_reference,
    "op": ops.plucker_rays,
}


@pytest.fixture(autouse=True)
def _no_forced_backend(monkeypatch):
    monkeypatch.delenv("A3D_BACKEND", raising=False)


# ---- properties (every implementation) ---------------------------------------------------------

@pytest.mark.parametrize("impl", IMPLS)
def test_ray_properties(impl, seed):
    gen = torch.Generator().manual_seed(seed)
    W, H = int(torch.randint(3, 24, (1,), generator=gen)), int(torch.randint(3, 24, (1,), generator=gen))
    vm, K = random_cameras(gen, (3,), W, H, torch.float64)
    rays = IMPLS[impl](vm, K, W, H)
    assert rays.shape == (3, H, W, 6) and rays.dtype == torch.float64
    m, d = rays[..., :3], rays[..., 3:]
    torch.testing.assert_close(d.norm(dim=-1), torch.ones(3, H, W, dtype=torch.float64), atol=1e-12, rtol=0)
    torch.testing.assert_close((m * d).sum(-1), torch.zeros(3, H, W, dtype=torch.float64), atol=1e-12, rtol=0)
    # through the camera centre: the moment is centre × d
    centre = -(vm[:, :3, :3].transpose(-1, -2) @ vm[:, :3, 3:])[..., 0]  # [C, 3]
    torch.testing.assert_close(m, torch.linalg.cross(centre[:, None, None].expand_as(d), d, dim=-1),
                               atol=1e-12, rtol=0)
    # through its pixel centre: a point along the ray projects back to (u + 0.5, v + 0.5)
    t = 0.5 + torch.rand(3, H, W, 1, generator=gen, dtype=torch.float64) * 3
    P = centre[:, None, None] + t * d
    Pc = torch.einsum("cij,chwj->chwi", vm[:, :3, :3], P) + vm[:, None, None, :3, 3]
    assert (Pc[..., 2] > 0).all()  # in front of the camera
    uvw = torch.einsum("cij,chwj->chwi", K, Pc)
    uv = uvw[..., :2] / uvw[..., 2:]
    v, u = torch.meshgrid(torch.arange(H, dtype=torch.float64), torch.arange(W, dtype=torch.float64), indexing="ij")
    expect = torch.stack([u + 0.5, v + 0.5], -1).expand(3, H, W, 2)
    torch.testing.assert_close(uv, expect, atol=1e-9, rtol=0)


def test_front_camera_centre_pixel_looks_down_minus_z():
    cams = orbit_cameras(1, radius=2.0, size=(5, 3))
    rays = ops.plucker_rays(cams.viewmats, cams.Ks, 5, 3)
    torch.testing.assert_close(rays[0, 1, 2, 3:], torch.tensor([0.0, 0.0, -1.0]), atol=1e-6, rtol=0)
    torch.testing.assert_close(rays[0, 1, 2, :3], torch.zeros(3), atol=1e-6, rtol=0)
    # pixel columns to the right see world +x, rows further down see world -y
    assert rays[0, 1, 4, 3] > 0 > rays[0, 1, 0, 3]
    assert rays[0, 2, 2, 4] < 0 < rays[0, 0, 2, 4]


# ---- the compiled op against the reference -----------------------------------------------------

def test_cpu_op_is_built():
    assert ops.has_kernel("plucker_rays", "cpu"), (
        f"a3d._C has no CPU kernel (extension: {ops.extension_error()}); "
        "build it with `pip install --no-build-isolation -e .`")
    assert ops.backend("cpu") == "cpu"


@pytest.mark.parametrize("dtype, atol", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
def test_cpu_op_matches_reference(seed, dtype, atol):
    gen = torch.Generator().manual_seed(seed)
    for _ in range(3):
        W, H = (int(x) for x in torch.randint(1, 40, (2,), generator=gen))
        ndim = int(torch.randint(1, 3, (1,), generator=gen))
        lead = tuple(int(x) for x in torch.randint(1, 4, (ndim,), generator=gen))  # e.g. (C,) or (B, C)
        vm, K = random_cameras(gen, lead, W, H, dtype)
        out = torch.ops.a3d.plucker_rays(vm.reshape(-1, 4, 4), K.reshape(-1, 3, 3), W, H).reshape(*lead, H, W, 6)
        ref = plucker_rays_reference(vm, K, W, H)
        assert out.dtype == dtype
        torch.testing.assert_close(out, ref, atol=atol, rtol=0)
        torch.testing.assert_close(ops.plucker_rays(vm, K, W, H), ref, atol=atol, rtol=0)  # the dispatching wrapper


def test_op_non_contiguous_and_single_camera(seed):
    gen = torch.Generator().manual_seed(seed)
    vm, K = random_cameras(gen, (4,), 7, 5)
    ref = plucker_rays_reference(vm[::2], K[::2], 7, 5)
    torch.testing.assert_close(ops.plucker_rays(vm[::2], K[::2], 7, 5), ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(ops.plucker_rays(vm[0], K[0], 7, 5), ref[0], atol=1e-5, rtol=0)


@pytest.mark.parametrize("args, match", [
    ((torch.eye(4)[None], torch.eye(4)[None], 4, 4), "Ks"),
    ((torch.eye(3)[None], torch.eye(3)[None], 4, 4), "viewmats"),
    ((torch.eye(4).expand(2, 4, 4), torch.eye(3)[None], 4, 4), "viewmats"),
    ((torch.eye(4)[None], torch.eye(3)[None], 0, 4), "width"),
    ((torch.eye(4)[None], torch.eye(3)[None], 4, -2), "height"),
    ((torch.eye(4)[None], torch.eye(3)[None], 4.5, 4), "width"),
])
def test_op_bad_arguments(args, match):
    with pytest.raises(ValueError, match=match):
        ops.plucker_rays(*args)


# ---- backend selection -------------------------------------------------------------------------

def test_backend_default_and_forced(monkeypatch):
    assert ops.backend("cpu") == ("cpu" if ops.has_kernel("plucker_rays", "cpu") else "torch")
    monkeypatch.setenv("A3D_BACKEND", "torch")
    assert ops.backend("cpu") == "torch"
    assert ops.backend("cuda") == "torch"
    monkeypatch.setenv("A3D_BACKEND", " CPU ")
    assert ops.backend("cpu") == "cpu"
    monkeypatch.setenv("A3D_BACKEND", "metal")
    with pytest.raises(RuntimeError, match="expected one of cuda, cpu, torch"):
        ops.backend("cpu")
    monkeypatch.setenv("A3D_BACKEND", "cuda")
    with pytest.raises(RuntimeError, match="tensors are on cpu"):
        ops.backend("cpu")


def test_forced_torch_backend_runs_the_reference(monkeypatch, seed):
    gen = torch.Generator().manual_seed(seed)
    vm, K = random_cameras(gen, (2,), 6, 4)
    monkeypatch.setenv("A3D_BACKEND", "torch")
    calls = []
    monkeypatch.setattr(ops, "plucker_rays_reference", lambda *a: calls.append(1) or plucker_rays_reference(*a))
    ops.plucker_rays(vm, K, 6, 4)
    assert calls == [1]


@pytest.mark.skipif(ops.has_kernel("plucker_rays", "cuda"), reason="this build has CUDA kernels")
def test_forced_cuda_without_cuda_build_says_how_to_build(monkeypatch):
    monkeypatch.setenv("A3D_BACKEND", "cuda")
    with pytest.raises(RuntimeError, match=r"no CUDA kernel.*pip install --no-build-isolation -e \."):
        ops.backend("cuda")


def test_missing_extension(monkeypatch, seed):
    """Without a3d._C: import works, the default backend is the reference, forcing cpu explains the build."""
    monkeypatch.setattr(ops, "_ext_loaded", False)
    monkeypatch.setattr(ops, "_ext_error", ImportError("simulated: no a3d._C"))
    assert not ops.has_kernel("plucker_rays", "cpu")
    assert ops.backend("cpu") == "torch"
    assert "not loaded" in ops.info()["extension"]
    gen = torch.Generator().manual_seed(seed)
    vm, K = random_cameras(gen, (2,), 5, 4)
    torch.testing.assert_close(ops.plucker_rays(vm, K, 5, 4), plucker_rays_reference(vm, K, 5, 4))
    monkeypatch.setenv("A3D_BACKEND", "cpu")
    with pytest.raises(RuntimeError, match=r"simulated: no a3d._C.*pip install --no-build-isolation -e \."):
        ops.backend("cpu")


# ---- CUDA --------------------------------------------------------------------------------------

@pytest.mark.cuda
@pytest.mark.parametrize("dtype, atol", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
def test_cuda_op_matches_reference(seed, dtype, atol):
    gen = torch.Generator().manual_seed(seed)
    assert ops.backend("cuda") == "cuda"
    for W, H in [(1, 1), (37, 23), (256, 192)]:
        vm, K = random_cameras(gen, (2, 3), W, H, dtype)
        ref = plucker_rays_reference(vm, K, W, H)
        out = ops.plucker_rays(vm.cuda(), K.cuda(), W, H)
        assert out.is_cuda and out.dtype == dtype
        torch.testing.assert_close(out.cpu(), ref, atol=atol, rtol=0)
