"""render() batching and broadcasting, SH shading, orbit_video files, and the CLI's render and info commands."""

import math

import imageio.v2 as imageio
import numpy as np
import pytest
import torch

from a3d.core.cameras import canonical_cameras, orbit_cameras
from a3d.cli import main
from a3d.core.gaussians import Gaussians
from a3d.io.ply import flip_yz, save_ply
from a3d.core.rasterize import rasterize_reference
from a3d.core.rendering import render
from a3d.core.sh import sh_basis, view_colors
from a3d.io.video import mp4_box_order, orbit_video


def blob(gen, n=200, batch=()):
    d = torch.nn.functional.normalize(torch.randn(*batch, n, 3, generator=gen), dim=-1)
    return Gaussians(means=d * torch.tensor([0.45, 0.55, 0.5]), quats=torch.randn(*batch, n, 4, generator=gen),
                     scales=torch.full((*batch, n, 3), 0.08), opacities=torch.full((*batch, n), 0.8),
                     colors=torch.rand(*batch, n, 3, generator=gen))


def test_render_matches_reference_and_broadcasts(seed):
    gen = torch.Generator().manual_seed(seed)
    g = blob(gen, batch=(2,))
    cams = canonical_cameras(24)
    out = render(g, cams, background=(0.2, 0.3, 0.4))
    assert out.rgb.shape == (2, 4, 24, 24, 3) and out.alpha.shape == (2, 4, 24, 24, 1)
    assert out.depth.shape == (2, 4, 24, 24, 1)
    bg = torch.tensor([0.2, 0.3, 0.4]).expand(2, 4, 3)
    ref = rasterize_reference(g.means, g.quats, g.scales, g.opacities, g.colors,
                              cams.viewmats.expand(2, 4, 4, 4), cams.Ks.expand(2, 4, 3, 3), 24, 24, bg)
    torch.testing.assert_close(out.rgb, ref[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(out.alpha, ref[1], atol=1e-5, rtol=0)
    # one scene without batch dims renders the same as scene 0 of the batch
    single = render(g.scene(0), cams, background=(0.2, 0.3, 0.4))
    torch.testing.assert_close(single.rgb, out.rgb[0], atol=1e-5, rtol=0)
    # the head is in view from every canonical camera, the corners show the background
    assert (out.alpha[..., 12, 12, 0] > 0.5).all()
    torch.testing.assert_close(out.rgb[0, 0, 0, 0], torch.tensor([0.2, 0.3, 0.4]), atol=1e-5, rtol=0)


def test_render_is_differentiable(seed):
    gen = torch.Generator().manual_seed(seed)
    g = blob(gen)
    g.colors.requires_grad_(True)
    g.means.requires_grad_(True)
    out = render(g, orbit_cameras(2, size=16))
    out.rgb.square().mean().backward()
    assert g.colors.grad.abs().sum() > 0 and torch.isfinite(g.means.grad).all()


def test_render_rejects_bad_arguments():
    gen = torch.Generator().manual_seed(0)
    with pytest.raises(TypeError, match="cameras"):
        render(blob(gen), "front")
    with pytest.raises(ValueError, match="background"):
        render(blob(gen), orbit_cameras(1, size=8), background=(1, 1))
    with pytest.raises(ValueError, match="cameras"):
        cams = orbit_cameras(3, size=8)
        cams.viewmats, cams.Ks = cams.viewmats.expand(5, 3, 4, 4), cams.Ks.expand(5, 3, 3, 3)
        render(blob(gen, batch=(2,)), cams)


@pytest.mark.parametrize("ext", [".mp4", ".webm", ".gif"])
def test_orbit_video_writes_frames(tmp_path, ext, seed):
    gen = torch.Generator().manual_seed(seed)
    path = orbit_video(blob(gen), tmp_path / f"orbit{ext}", frames=6, fps=6, size=32, progress=False)
    frames = imageio.mimread(path)
    assert len(frames) == 6
    first = np.asarray(frames[0])[..., :3]
    assert first.shape[:2] == (32, 32)
    # white background at the corner, the head (darker than white somewhere) in the middle
    assert first[0, 0].min() > 200 and first[12:20, 12:20].min() < 200


def test_orbit_video_rejects_bad_path(tmp_path):
    with pytest.raises(ValueError, match="path"):
        orbit_video(blob(torch.Generator().manual_seed(0)), tmp_path / "orbit.avi", frames=2, size=16)


def test_cli_render_and_info(tmp_path, capsys, seed):
    g = blob(torch.Generator().manual_seed(seed))
    save_ply(g, tmp_path / "head.ply")
    out = tmp_path / "o.gif"
    assert main(["render", str(tmp_path / "head.ply"), "-o", str(out), "--frames", "3", "--size", "16"]) == 0
    assert len(imageio.mimread(out)) == 3
    assert main(["info"]) == 0
    text = capsys.readouterr().out
    assert "torch" in text and "backend_cpu" in text
    # a missing input is one readable error line and exit code 2
    assert main(["render", str(tmp_path / "missing.ply"), "-o", str(out)]) == 2
    assert "error" in capsys.readouterr().err


def test_mp4_is_fast_start(tmp_path):
    path = orbit_video(blob(torch.Generator().manual_seed(1)), tmp_path / "o.mp4", frames=4, size=32, progress=False)
    boxes = mp4_box_order(path)
    assert boxes[0] == "ftyp" and "moov" in boxes and "mdat" in boxes
    assert boxes.index("moov") < boxes.index("mdat"), f"the index comes after the media data: {boxes}"
    with open(tmp_path / "o.webm", "wb") as f:  # WebM is EBML, not a sequence of MP4 boxes
        f.write(b"\x1a\x45\xdf\xa3" + bytes(28))
    with pytest.raises(ValueError, match="MP4 box"):
        mp4_box_order(tmp_path / "o.webm")


def test_webm_is_vp9_in_webm(tmp_path):
    path = orbit_video(blob(torch.Generator().manual_seed(2)), tmp_path / "o.webm", frames=3, size=32,
                       progress=False)
    head = open(path, "rb").read(64)
    assert head[:4] == b"\x1a\x45\xdf\xa3" and b"webm" in head  # EBML magic and the WebM doctype
    assert b"V_VP9" in open(path, "rb").read()


# ---- spherical harmonics -------------------------------------------------------------------------

def _real_sh_from_legendre(deg: int, m: int, dirs: np.ndarray) -> np.ndarray:
    """Real SH built from the textbook complex harmonics (Condon-Shortley phase in P_l^m): an independent
    construction of the Inria basis, sqrt(2)·Im Y_l^|m| for m < 0 and sqrt(2)·Re Y_l^m for m > 0."""
    from numpy.polynomial import legendre

    x, y, z = dirs[:, 0], dirs[:, 1], dirs[:, 2]
    theta, phi = np.arccos(np.clip(z, -1, 1)), np.arctan2(y, x)
    am = abs(m)
    p_l = legendre.Legendre.basis(deg).deriv(am)  # d^|m|/dx^|m| P_l
    plm = (-1) ** am * (1 - np.cos(theta) ** 2) ** (am / 2) * p_l(np.cos(theta))
    norm = math.sqrt((2 * deg + 1) / (4 * math.pi) * math.factorial(deg - am) / math.factorial(deg + am))
    ylm = norm * plm * np.exp(1j * am * phi)
    if m == 0:
        return ylm.real
    return math.sqrt(2) * (ylm.imag if m < 0 else ylm.real)


def test_sh_basis_is_the_inria_real_basis(seed):
    rng = np.random.default_rng(seed)
    dirs = rng.normal(size=(64, 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    ours = sh_basis(torch.from_numpy(dirs), 3).numpy()
    expect = np.stack([_real_sh_from_legendre(d, m, dirs) for d in range(1, 4) for m in range(-d, d + 1)], -1)
    np.testing.assert_allclose(ours, expect, rtol=0, atol=1e-12)


def test_render_shades_sh_per_camera(seed):
    gen = torch.Generator().manual_seed(seed)
    g = blob(gen, n=60)
    g.sh_rest = 0.3 * torch.randn(60, 15, 3, generator=gen)
    cams = orbit_cameras(3, size=20, elevation=15.0)
    out = render(g, cams, background=(0.1, 0.2, 0.3))
    colors = view_colors(g.colors[None], g.sh_rest[None], g.means[None], cams.centers[None])[0]  # [C, N, 3]
    for c in range(3):
        ref = rasterize_reference(g.means[None], g.quats[None], g.scales[None], g.opacities[None], colors[c][None],
                                  cams.viewmats[c:c + 1][None], cams.Ks[c:c + 1][None], 20, 20,
                                  torch.tensor([[[0.1, 0.2, 0.3]]]))
        torch.testing.assert_close(out.rgb[c], ref[0][0, 0], atol=1e-5, rtol=0)
    # a degree-1 red term along z: the front camera (on +z, looking along -z) sees less red than the back
    one = blob(torch.Generator().manual_seed(seed), n=60)
    one.colors = torch.full((60, 3), 0.5)
    one.sh_rest = torch.zeros(60, 3, 3)
    one.sh_rest[:, 1, 0] = 0.4  # Y_1,0 = C1·z
    # over black and divided by the coverage, the centre pixel's red is the Gaussians' own colour there
    # whatever share of the ray the random blob covers (0.5 ∓ 0.4·C1 ≈ 0.30 / 0.70)
    shot = render(one, orbit_cameras(2, size=16), background=(0.0, 0.0, 0.0))
    assert (shot.alpha[:, 8, 8, 0] > 0.05).all()
    front, back = (shot.rgb[:, 8, 8, 0] / shot.alpha[:, 8, 8, 0]).tolist()
    assert back - front > 0.3 and front < 0.4 and back > 0.6


def test_flipped_scene_seen_by_flipped_cameras_looks_the_same(seed):
    """flip_yz turns means, rotations and SH together: turn the cameras too and the images agree."""
    gen = torch.Generator().manual_seed(seed)
    g = blob(gen, n=80)
    g.sh_rest = 0.3 * torch.randn(80, 15, 3, generator=gen)
    cams = orbit_cameras(3, size=20, elevation=20.0)
    turn = torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0]))
    turned = orbit_cameras(3, size=20, elevation=20.0)
    turned.viewmats = cams.viewmats @ turn  # world -> turned world is the same turn (its own inverse)
    a = render(g, cams).rgb
    b = render(flip_yz(g), turned).rgb
    torch.testing.assert_close(a, b, atol=1e-4, rtol=0)
    assert not torch.allclose(render(flip_yz(g), cams).rgb, a, atol=1e-2)  # the flip is not a no-op


def test_cli_renders_other_tools_scenes(tmp_path):
    """A y-down degree-3 scene away from the origin, as a COLMAP-trained 3DGS file would be."""
    gen = torch.Generator().manual_seed(5)
    g = blob(gen, n=120)
    g.sh_rest = 0.1 * torch.randn(120, 15, 3, generator=gen)
    scene = flip_yz(g)
    scene.means = scene.means * 7.0 + torch.tensor([3.0, -2.0, 10.0])
    scene.scales = scene.scales * 7.0
    save_ply(scene, tmp_path / "scene.ply")
    out = tmp_path / "o.gif"
    assert main(["render", str(tmp_path / "scene.ply"), "-o", str(out), "--frames", "2", "--size", "32",
                 "--up=-y", "--fit"]) == 0
    first = np.asarray(imageio.mimread(out)[0])[..., :3]
    assert first[0, 0].min() > 200 and first[12:20, 12:20].min() < 200  # framed: background round, scene inside


@pytest.mark.cuda
def test_sh_shading_on_cuda_matches_cpu(seed):
    gen = torch.Generator().manual_seed(seed)
    g = blob(gen, n=300, batch=(2,))
    g.sh_rest = 0.3 * torch.randn(2, 300, 15, 3, generator=gen)
    cams = orbit_cameras(5, size=48, elevation=15.0)
    cpu = render(g, cams, background=(1.0, 1.0, 1.0)).rgb
    gpu = render(g.to("cuda"), cams.to("cuda"), background=(1.0, 1.0, 1.0)).rgb.cpu()
    torch.testing.assert_close(gpu, cpu, atol=2e-3, rtol=0)
