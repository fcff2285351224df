"""The web splat formats (.spz, .compressed.ply, .sog) and the writer chosen by file name: each reads back
what it wrote within the precision its module documents, drops faint Gaussians, keeps the up axis, refuses
damaged files, and PlayCanvas' splat-transform (the npm package pinned in tests/viewers/package.json)
decodes each file to the same Gaussians as a3d's reader."""
from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from a3d.core.gaussians import Gaussians
from a3d.errors import InputError
from a3d.io.compressed_ply import load_compressed_ply, save_compressed_ply
from a3d.io.ply import load_ply, save_ply
from a3d.io.sog import load_sog, save_sog
from a3d.io.splat_codec import WEB_MIN_OPACITY, morton_order
from a3d.io.splat_files import SPLAT_FORMATS, load_splats, save_splats, splat_format
from a3d.io.spz import load_spz, save_spz

REPO = Path(__file__).resolve().parents[1]
SPLAT_TRANSFORM = REPO / "tests" / "viewers" / "node_modules" / "@playcanvas" / "splat-transform" / "bin" / "cli.mjs"
WEB = ("compressed.ply", "spz", "sog")


def scene(n: int = 3000, sh_k: int = 0, seed: int = 0) -> Gaussians:
    """Random Gaussians in a head-sized box; opacities above the web cut-off."""
    g = torch.Generator().manual_seed(seed)
    return Gaussians(
        means=torch.rand(n, 3, generator=g) * 1.4 - 0.7,
        quats=torch.randn(n, 4, generator=g),
        scales=torch.exp(torch.rand(n, 3, generator=g) * 4 - 7),
        opacities=torch.rand(n, generator=g) * 0.95 + 0.04,
        colors=torch.rand(n, 3, generator=g),
        sh_rest=(torch.rand(n, sh_k, 3, generator=g) - 0.5) * 0.6 if sh_k else None)


def same_order(g: Gaussians, fmt: str, up: str = "-y") -> Gaussians:
    """The original Gaussians in the order the format stores them (the block formats: Morton order of the
    means in the file's world)."""
    if fmt in ("compressed.ply", "sog"):
        stored = g.means * torch.tensor([1.0, -1.0, -1.0]) if up == "-y" else g.means
        return g.index(torch.from_numpy(morton_order(stored.double().numpy())))
    return g


def quat_angle_deg(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    dot = (torch.nn.functional.normalize(a, dim=-1) * torch.nn.functional.normalize(b, dim=-1)).sum(-1).abs()
    return torch.rad2deg(2 * torch.acos(dot.clamp(max=1.0)))


# per format: means (abs), colours (abs), opacities (abs), scales (relative), rotation (degrees)
TOLERANCE = {"spz": (2.5e-4, 0.01, 0.0025, 0.035, 0.5),
             "compressed.ply": (1e-3, 0.004, 0.0025, 0.002, 0.3),
             "sog": (1e-4, 0.04, 0.0025, 0.1, 1.0)}


@pytest.mark.parametrize("fmt", WEB)
def test_round_trip_within_documented_precision(tmp_path, fmt):
    g = scene()
    path = tmp_path / f"head.{fmt}"
    save_splats(g, path)
    h = load_splats(path)
    ref = same_order(g, fmt)
    assert h.num_gaussians == g.num_gaussians
    mean_tol, color_tol, op_tol, scale_tol, rot_tol = TOLERANCE[fmt]
    assert (h.means - ref.means).abs().max() < mean_tol
    assert (h.colors - ref.colors).abs().max() < color_tol
    assert (h.opacities - ref.opacities).abs().max() < op_tol
    assert (h.scales / ref.scales - 1).abs().max() < scale_tol
    assert quat_angle_deg(h.quats, ref.quats).max() < rot_tol


def test_web_formats_are_smaller_than_the_ply(tmp_path):
    g = scene(5000)
    sizes = {fmt: Path(save_splats(g, tmp_path / f"head.{fmt}")).stat().st_size for fmt in SPLAT_FORMATS}
    assert max(sizes[fmt] for fmt in WEB) < 0.6 * sizes["splat"] < 0.3 * sizes["ply"], sizes


@pytest.mark.parametrize("fmt,k", [("spz", 3), ("spz", 15), ("compressed.ply", 8), ("compressed.ply", 15)])
def test_higher_sh_round_trip(tmp_path, fmt, k):
    g = scene(600, sh_k=k)
    path = tmp_path / f"head.{fmt}"
    save_splats(g, path)
    h = load_splats(path)
    ref = same_order(g, fmt)
    assert h.sh_rest is not None and h.sh_rest.shape == ref.sh_rest.shape
    assert (h.sh_rest - ref.sh_rest).abs().max() < (0.07 if fmt == "spz" else 0.02)


@pytest.mark.parametrize("fmt", WEB + ("splat",))
def test_faint_gaussians_are_dropped_by_default(tmp_path, fmt):
    g = scene(1000)
    g.opacities[:300] = WEB_MIN_OPACITY / 2
    assert load_splats(save_splats(g, tmp_path / f"a.{fmt}")).num_gaussians == 700
    assert load_splats(save_splats(g, tmp_path / f"b.{fmt}", min_opacity=0)).num_gaussians == 1000
    assert load_ply(save_splats(g, tmp_path / "c.ply")).num_gaussians == 1000  # the Inria PLY keeps all


@pytest.mark.parametrize("fmt", WEB)
def test_up_axis_is_written_and_read(tmp_path, fmt):
    """up="-y" stores the head turned 180° about x; reading with the same up turns it back."""
    g = scene(500)
    save_splats(g, tmp_path / f"d.{fmt}", up="-y")
    flip = torch.tensor([1.0, -1.0, -1.0])
    stored = g.means * flip
    order = torch.from_numpy(morton_order(stored.double().numpy())) if fmt != "spz" else torch.arange(500)
    assert torch.allclose(load_splats(tmp_path / f"d.{fmt}", up="+y").means, stored[order], atol=1e-3)
    assert torch.allclose(load_splats(tmp_path / f"d.{fmt}", up="-y").means, g.means[order], atol=1e-3)


def test_file_name_picks_the_format(tmp_path):
    assert splat_format("a/HEAD.Compressed.PLY") == "compressed.ply"
    assert splat_format("x.ply") == "ply"
    assert splat_format(tmp_path / "x.sog") == "sog"
    assert splat_format("head.glb") == "glb"
    with pytest.raises(InputError, match=r"\.spz"):
        splat_format("head.obj")


def test_load_ply_reads_a_compressed_ply(tmp_path):
    g = scene(700)
    save_compressed_ply(g, tmp_path / "head.compressed.ply")
    h = load_ply(tmp_path / "head.compressed.ply")
    assert torch.allclose(h.means, same_order(g, "compressed.ply").means, atol=1e-3)


def test_avatar_export_by_name(tmp_path):
    from a3d.api import Avatar
    from a3d.core.cameras import canonical_cameras

    avatar = Avatar(scene(400), canonical_cameras(64), torch.zeros(3, 64, 64))
    for fmt in SPLAT_FORMATS:
        path = avatar.export(tmp_path / f"head.{fmt}")
        assert load_splats(path).num_gaussians == 400


def test_cli_format_choices_are_the_formats():
    from a3d.cli import _reconstruct_flags
    import argparse

    p = argparse.ArgumentParser()
    _reconstruct_flags(p)
    action = next(a for a in p._actions if a.dest == "format")
    assert tuple(action.choices) == SPLAT_FORMATS


# ---- damaged files ----------------------------------------------------------------------------------

def test_spz_refuses_damaged_files(tmp_path):
    g = scene(200)
    save_spz(g, tmp_path / "a.spz")
    raw = gzip.decompress((tmp_path / "a.spz").read_bytes())
    (tmp_path / "short.spz").write_bytes(gzip.compress(raw[:-10]))
    with pytest.raises(InputError, match="payload"):
        load_spz(tmp_path / "short.spz")
    (tmp_path / "plain.spz").write_bytes(raw)
    with pytest.raises(InputError, match="gzip"):
        load_spz(tmp_path / "plain.spz")
    (tmp_path / "magic.spz").write_bytes(gzip.compress(b"XXXX" + raw[4:]))
    with pytest.raises(InputError, match="magic"):
        load_spz(tmp_path / "magic.spz")
    with pytest.raises(InputError, match="max_vertices"):
        load_spz(tmp_path / "a.spz", max_vertices=100)
    # a header claiming many Gaussians over a tiny payload fails on the size, without allocating them
    huge = raw[:8] + np.uint32(40_000_000).tobytes() + raw[12:16] + b"\0" * 64
    (tmp_path / "huge.spz").write_bytes(gzip.compress(huge))
    with pytest.raises(InputError, match="payload"):
        load_spz(tmp_path / "huge.spz")


def test_compressed_ply_refuses_damaged_files(tmp_path):
    save_compressed_ply(scene(600), tmp_path / "a.compressed.ply")
    data = (tmp_path / "a.compressed.ply").read_bytes()
    (tmp_path / "cut.compressed.ply").write_bytes(data[:-5])
    with pytest.raises(InputError, match="bytes"):
        load_compressed_ply(tmp_path / "cut.compressed.ply")
    (tmp_path / "count.compressed.ply").write_bytes(data.replace(b"element chunk 3", b"element chunk 9"))
    with pytest.raises(InputError, match="inconsistent"):
        load_compressed_ply(tmp_path / "count.compressed.ply")


def test_sog_refuses_damaged_files(tmp_path):
    save_sog(scene(300), tmp_path / "a.sog")
    (tmp_path / "b.sog").write_bytes(b"not a zip")
    with pytest.raises(InputError, match="zip"):
        load_sog(tmp_path / "b.sog")
    with zipfile.ZipFile(tmp_path / "a.sog") as z, zipfile.ZipFile(tmp_path / "c.sog", "w") as out:
        meta = json.loads(z.read("meta.json"))
        meta["count"] = 10_000  # more Gaussians than the textures hold
        for name in z.namelist():
            out.writestr(name, json.dumps(meta) if name == "meta.json" else z.read(name))
    with pytest.raises(InputError, match="WebP|pixels"):
        load_sog(tmp_path / "c.sog")


# ---- a third-party reader ---------------------------------------------------------------------------

needs_splat_transform = pytest.mark.skipif(
    shutil.which("node") is None or not SPLAT_TRANSFORM.is_file(),
    reason="needs node and @playcanvas/splat-transform (npm ci --prefix tests/viewers)")


@needs_splat_transform
@pytest.mark.parametrize("fmt", WEB)
def test_splat_transform_reads_what_a3d_writes(tmp_path, fmt):
    """splat-transform decodes a3d's file to an Inria PLY; it matches a3d's own reading of the file, and
    the original Gaussians within the format's precision."""
    g = scene(1500, sh_k=3 if fmt != "sog" else 0)
    src = tmp_path / f"head.{fmt}"
    save_splats(g, src)
    out = tmp_path / "decoded.ply"
    run = subprocess.run(["node", str(SPLAT_TRANSFORM), "-q", "-w", str(src), str(out)], capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    theirs, ours = load_ply(out), load_splats(src)
    assert theirs.num_gaussians == ours.num_gaussians == g.num_gaussians
    assert torch.allclose(theirs.means, ours.means, atol=1e-5)
    assert torch.allclose(theirs.colors, ours.colors, atol=1e-4)
    assert torch.allclose(theirs.opacities, ours.opacities, atol=1e-4)
    assert torch.allclose(theirs.scales, ours.scales, rtol=1e-4)
    assert quat_angle_deg(theirs.quats, ours.quats).max() < 0.05
    if ours.sh_rest is not None:
        assert torch.allclose(theirs.sh_rest, ours.sh_rest, atol=1e-4)
    assert (theirs.means - same_order(g, fmt).means).abs().max() < TOLERANCE[fmt][0]


@needs_splat_transform
def test_a3d_reads_what_splat_transform_writes(tmp_path):
    """The other direction: splat-transform converts a3d's PLY to each web format and a3d reads them (its
    .spz is version 4, which a3d refuses with a message that says so)."""
    g = scene(1200)
    save_ply(g, tmp_path / "head.ply")
    for fmt in WEB:
        out = tmp_path / f"theirs.{fmt}"
        run = subprocess.run(["node", str(SPLAT_TRANSFORM), "-q", "-w", str(tmp_path / "head.ply"), str(out)],
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        if fmt == "spz":  # splat-transform writes version 4 (ZSTD), which a3d names and refuses
            with pytest.raises(InputError, match="version 4"):
                load_splats(out)
            continue
        h = load_splats(out)
        assert h.num_gaussians == g.num_gaussians, fmt
        # the files keep their own order; compare the sets by their sorted coordinates
        assert np.allclose(np.sort(h.means.numpy(), 0), np.sort(g.means.numpy(), 0), atol=TOLERANCE[fmt][0] * 4), fmt


# ---- glTF KHR_gaussian_splatting --------------------------------------------------------------------------

@pytest.mark.parametrize("k", [0, 8])
def test_gltf_splats_round_trip_in_metres(tmp_path, k):
    """The .glb holds the Gaussians activated, in glTF's frame (a3d's world) and metres; read back exactly."""
    import struct

    from a3d.io.gltf_splats import EXTENSION, load_gltf_splats
    from a3d.io.mesh_file import HEAD_UNIT_METRES

    g = scene(800, sh_k=k)
    g.opacities[:100] = WEB_MIN_OPACITY / 2
    path = save_splats(g, tmp_path / "head.glb")
    data = Path(path).read_bytes()
    length = struct.unpack("<I", data[12:16])[0]
    doc = json.loads(data[20:20 + length])
    prim = doc["meshes"][0]["primitives"][0]
    assert doc["extensionsUsed"] == [EXTENSION] and prim["mode"] == 0 and EXTENSION in prim["extensions"]
    assert doc["accessors"][prim["attributes"]["POSITION"]]["max"][0] == pytest.approx(
        float(g.means[100:, 0].max()) * HEAD_UNIT_METRES, rel=1e-5)
    h = load_gltf_splats(path)
    keep = g.opacities >= WEB_MIN_OPACITY
    assert h.num_gaussians == int(keep.sum())
    ref = g.index(keep)
    assert torch.allclose(h.means, ref.means, atol=1e-6) and torch.allclose(h.scales, ref.scales, rtol=1e-5)
    assert torch.allclose(h.colors, ref.colors, atol=1e-6) and torch.allclose(h.opacities, ref.opacities)
    assert quat_angle_deg(h.quats, ref.quats).max() < 0.1  # float32 acos near 1
    if k:
        assert torch.allclose(h.sh_rest, ref.sh_rest)
    (tmp_path / "bad.glb").write_bytes(b"glTF" + data[4:40])
    with pytest.raises(InputError):
        load_gltf_splats(tmp_path / "bad.glb")
