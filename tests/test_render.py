"""render() batching and broadcasting, orbit_video files, and the CLI's render and info commands."""

import imageio.v2 as imageio
import numpy as np
import pytest
import torch

from a3d.cameras import canonical_cameras, orbit_cameras
from a3d.cli import main
from a3d.gaussians import Gaussians
from a3d.io_ply import save_ply
from a3d.rasterize import rasterize_reference
from a3d.render import orbit_video, render


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


@pytest.mark.parametrize("ext", [".mp4", ".gif"])
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
