"""a3d.io.mesh (extraction), a3d.io.mesh_file (files) and a3d.io.mesh_render (the triangle rasterizer of the
quality check).

The quality bar (docs/mesh.md): rendered from the canonical views, the mesh covers the Gaussians' silhouette
with IoU >= 0.95 in every view and matches their colour with PSNR >= 25 dB inside it (over the four views'
pixels pooled: a single view can dip below, e.g. 23.7 dB for the front of a head with thin glasses frames), on
synthetic heads (a fresh one each run), the bundled example head and the bundled model's reconstruction of the
example portrait; the files load in an independent reader (trimesh).
"""
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh  # a runtime dependency of a3d (GLB export): missing is a broken install, not a skip

import a3d
from a3d.core.cameras import canonical_cameras, look_at
from a3d.cli import main
from a3d.io.mesh import Mesh, _close_surface, clean_surface, extract, fidelity, is_watertight, vertex_normals
from a3d.io.mesh_file import HEAD_UNIT_METRES, atlas_layout, bake_vertex_colors
from a3d.io.mesh_render import rasterize_triangles, render_mesh
from a3d.data.synth import SyntheticHeads

EXAMPLE = Path(a3d.__file__).parent / "assets" / "example_head.ply"
IOU_MIN, PSNR_MIN = 0.95, 25.0


def _cube(colors: bool = True) -> Mesh:
    """A closed unit cube centred at the origin, 12 triangles wound counter-clockwise seen from outside."""
    v = np.array([[x, y, z] for x in (-0.5, 0.5) for y in (-0.5, 0.5) for z in (-0.5, 0.5)], dtype=np.float32)
    f = np.array([[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
                  [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]], dtype=np.int64)
    c = (v + 0.5) if colors else np.full_like(v, 0.5)
    return Mesh(v, f, c.astype(np.float32))


def _signed_volume(mesh: Mesh) -> float:
    t = mesh.vertices[mesh.faces].astype(np.float64)
    return float(np.einsum("ij,ij->i", t[:, 0], np.cross(t[:, 1], t[:, 2])).sum() / 6)


# ---- watertightness and repair ---------------------------------------------------------------------------

def test_watertight_check():
    cube = _cube()
    assert is_watertight(cube.faces) and cube.is_watertight()
    assert _signed_volume(cube) == pytest.approx(1.0)  # counter-clockwise from outside: positive volume
    assert not is_watertight(cube.faces[1:])  # a hole
    flipped = cube.faces.copy()
    flipped[0] = flipped[0, ::-1]
    assert not is_watertight(flipped)  # inconsistent orientation
    assert not is_watertight(np.concatenate([cube.faces, cube.faces[:2]]))  # an edge used four times


def test_close_surface_repairs_folds_and_holes(seed):
    from skimage.measure import marching_cubes

    x = np.linspace(-1, 1, 40, dtype=np.float32)
    X, Y, Z = np.meshgrid(x, x, x, indexing="ij")
    v, f, _, _ = marching_cubes(np.sqrt(X ** 2 + Y ** 2 + Z ** 2) - 0.7, 0.0, gradient_direction="descent")
    f = f.astype(np.int64)
    assert is_watertight(f)
    rng = np.random.default_rng(seed)
    holes = rng.choice(len(f), 5, replace=False)
    fold = f[rng.choice(len(f), 3, replace=False)][:, ::-1]  # back-to-back copies, as decimation leaves
    broken = np.concatenate([np.delete(f, holes, axis=0), fold])
    assert not is_watertight(broken)
    v2, f2 = _close_surface(v.astype(np.float32), broken)
    assert is_watertight(f2)
    assert abs(len(f2) - len(f)) < 60  # local repairs only


# ---- the triangle rasterizer ---------------------------------------------------------------------------------

def test_rasterizer_matches_a_per_pixel_loop(seed):
    """Coverage, nearest face and perspective-correct depth against a brute-force loop over pixels."""
    rng = np.random.default_rng(seed)
    W, H = 24, 20
    verts = torch.tensor(rng.uniform(-0.6, 0.6, (9, 3)), dtype=torch.float32)
    faces = torch.arange(9).reshape(3, 3)
    vm = look_at(torch.tensor([0.3, 0.2, 3.0]))[0]
    K = torch.tensor([[30.0, 0, W / 2], [0, 30.0, H / 2], [0, 0, 1]])
    face, bary, depth = rasterize_triangles(verts, faces, vm, K, W, H)
    pc = (verts @ vm[:3, :3].T + vm[:3, 3]).double()
    for v in range(H):
        for u in range(W):
            ray = torch.tensor([(u + 0.5 - K[0, 2]) / K[0, 0], (v + 0.5 - K[1, 2]) / K[1, 1], 1.0], dtype=torch.float64)
            best, best_f = float("inf"), -1
            for fi in range(3):
                a, b, c = pc[faces[fi]]
                n = torch.linalg.cross(b - a, c - a)
                den = n @ ray
                if abs(den) < 1e-12:
                    continue
                t = (n @ a) / den  # the ray point t * ray lies on the plane; its camera z is t
                p = t * ray
                inside = all((torch.linalg.cross(q1 - q0, p - q0) @ n) >= -1e-9 for q0, q1 in ((a, b), (b, c), (c, a)))
                if inside and t > 0 and t < best - 1e-9:
                    best, best_f = float(t), fi
            assert int(face[v, u]) == best_f, (u, v)
            if best_f >= 0:
                assert float(depth[v, u]) == pytest.approx(best, rel=1e-4)
                w = bary[v, u].double()
                p = (w[:, None] * pc[faces[best_f]]).sum(0)  # perspective-correct weights give the 3D point
                assert float(p[2]) == pytest.approx(best, rel=1e-4)


def test_render_cube_silhouette_and_colours():
    cube = _cube()
    cams = canonical_cameras(64, radius=3.0)
    out = render_mesh(cube, cams, background=(1.0, 1.0, 1.0))
    assert out.rgb.shape == (4, 64, 64, 3) and out.alpha.shape == (4, 64, 64, 1)
    # the front view sees the z = +0.5 face: a square of side f / (3 - 0.5) around the centre
    f = float(cams.Ks[0, 0, 0])
    side = f / 2.5
    assert float(out.alpha[0].sum()) == pytest.approx(side * side, rel=0.1)
    assert out.face[0][32, 32] >= 0 and float(out.depth[0, 32, 32, 0]) == pytest.approx(2.5, abs=1e-3)
    # vertex colour = position + 0.5, so the centre of the front face is (0.5, 0.5, 1)
    assert out.rgb[0, 32, 32].tolist() == pytest.approx([0.5, 0.5, 1.0], abs=0.03)
    assert out.rgb[0, 0, 0].tolist() == [1.0, 1.0, 1.0]


def test_texture_atlas_shows_the_vertex_colours(seed):
    """An atlas baked from vertex colours renders like the vertex colours (validates UVs and layout)."""
    x = np.linspace(-1, 1, 24, dtype=np.float32)
    from skimage.measure import marching_cubes

    X, Y, Z = np.meshgrid(x, x, x, indexing="ij")
    v, f, _, _ = marching_cubes(np.sqrt(X ** 2 + Y ** 2 + Z ** 2) - 0.8, 0.0, gradient_direction="descent",
                                spacing=(2 / 23,) * 3)
    v = (v - 1).astype(np.float32)
    rng = np.random.default_rng(seed)
    mesh = Mesh(v, f.astype(np.int64), rng.uniform(0, 1, v.shape).astype(np.float32))
    textured = bake_vertex_colors(mesh)
    corners, cell, per_row = atlas_layout(mesh.num_faces, textured.texture.shape[0])
    assert cell >= 4 and per_row * cell <= textured.texture.shape[0]
    assert textured.uv.min() >= 0 and textured.uv.max() <= 1
    cams = canonical_cameras(96, radius=3.0)
    a = render_mesh(textured, cams)
    b = render_mesh(textured, cams, use_texture=True)
    hit = a.alpha[..., 0] > 0
    mse = float(((a.rgb - b.rgb) ** 2)[hit].mean())
    assert 10 * np.log10(1 / mse) > 30


# ---- extraction and its quality -------------------------------------------------------------------------------

def _check(mesh: Mesh, gaussians, faces: int, size: int = 256) -> dict:
    assert mesh.is_watertight() and mesh.metadata["watertight"]
    assert 0.5 * faces <= mesh.num_faces <= faces
    assert _signed_volume(mesh) > 0  # normals point out
    n = vertex_normals(mesh.vertices, mesh.faces)
    assert np.isfinite(n).all() and np.isfinite(mesh.vertices).all()
    assert mesh.vertex_colors.min() >= 0 and mesh.vertex_colors.max() <= 1
    q = fidelity(mesh, gaussians, canonical_cameras(size))
    assert min(q["iou"]) >= IOU_MIN, q
    assert q["psnr_all"] >= PSNR_MIN, q
    return q


def test_synthetic_head_meets_the_quality_bar(seed):
    head = SyntheticHeads("cpu", seed=seed % 2**31, num_gaussians=65_536).sample(1).gaussians.scene(0)
    mesh = extract(head)
    print(mesh.metadata, _check(mesh, head, 100_000))


def test_example_head_meets_the_quality_bar(tmp_path):
    head = a3d.load_ply(EXAMPLE)
    mesh = extract(head)
    print(mesh.metadata, _check(mesh, head, 100_000))
    # files: GLB with vertex colours (in metres, linear COLOR_0), PLY, OBJ + MTL + PNG, each read back by trimesh
    glb = mesh.save(tmp_path / "head.glb")
    loaded = trimesh.load(glb, force="mesh", process=False)
    assert len(loaded.faces) == mesh.num_faces and len(loaded.vertices) == mesh.num_vertices
    assert np.allclose(loaded.vertices, HEAD_UNIT_METRES * mesh.vertices, atol=1e-6)
    assert loaded.is_watertight and loaded.is_winding_consistent and loaded.volume > 0
    (geometry,) = trimesh.load(glb, process=False).geometry.values()  # COLOR_0 beside the material: a scene's
    linear = np.asarray(geometry.visual.vertex_attributes["color"], np.float64)[:, :3]
    srgb = np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055)
    assert np.abs(srgb - mesh.vertex_colors).max() < 1e-4
    ply = trimesh.load(mesh.save(tmp_path / "head.ply"), process=False)
    assert np.array_equal(ply.faces, mesh.faces) and ply.is_watertight
    assert np.abs(np.asarray(ply.visual.vertex_colors)[:, :3] / 255.0 - mesh.vertex_colors).max() <= 1 / 255 + 1e-6
    obj = mesh.save(tmp_path / "head.obj", scale=0.21)
    assert {p.name for p in tmp_path.iterdir()} >= {"head.obj", "head.mtl", "head.png"}
    scene = trimesh.load(obj, process=False)
    tex_mesh = scene if isinstance(scene, trimesh.Trimesh) else scene.dump(concatenate=True)
    assert len(tex_mesh.faces) == mesh.num_faces
    assert tex_mesh.visual.material.image is not None
    assert np.allclose(tex_mesh.vertices.max(0), 0.21 * mesh.vertices.max(0), atol=1e-5)


def test_baked_texture_from_renders_meets_the_quality_bar(tmp_path, seed):
    # No glasses here: at these reduced settings (128³, 20k faces, 12 views) a head with glasses frames falls
    # under the pooled bar (seed 1380506351: 24.1 dB, 19.4 dB in the front view; docs/mesh.md, "Limits");
    # the full-settings test above keeps every attribute.
    head = SyntheticHeads("cpu", seed=seed % 2**31, num_gaussians=20_000, glasses_p=0.0).sample(1).gaussians.scene(0)
    mesh = extract(head, resolution=128, faces=20_000, views=12, texture_size=1024)
    assert mesh.texture.shape == (1024, 1024, 3) and mesh.uv.shape == (mesh.num_faces, 3, 2)
    q = fidelity(mesh, head, canonical_cameras(128))  # renders the atlas, since the mesh has one
    assert min(q["iou"]) >= IOU_MIN and q["psnr_all"] >= PSNR_MIN, q
    glb = trimesh.load(mesh.save(tmp_path / "t.glb"), force="mesh", process=False)
    assert glb.visual.kind == "texture" and len(glb.faces) == mesh.num_faces


def test_extract_refuses_bad_input():
    head = a3d.load_ply(EXAMPLE)
    with pytest.raises(ValueError, match="resolution"):
        extract(head, resolution=8)
    with pytest.raises(ValueError, match="faces"):
        extract(head, faces=0)
    with pytest.raises(ValueError, match="views"):
        extract(head, views=True)
    with pytest.raises(a3d.InputError, match="gaussians"):
        extract(head.means)
    batch = a3d.Gaussians(*(t[None] for t in (head.means, head.quats, head.scales, head.opacities, head.colors)))
    with pytest.raises(ValueError, match="batch"):
        extract(batch)
    clear = a3d.Gaussians(head.means, head.quats, head.scales, head.opacities * 0.01, head.colors)
    with pytest.raises(ValueError, match="no surface"):
        extract(clear)
    veil = a3d.Gaussians(torch.zeros(1, 3), torch.tensor([[1.0, 0, 0, 0]]), torch.full((1, 3), 0.2),
                         torch.tensor([0.3]), torch.full((1, 3), 0.5))  # never reaches alpha 0.5
    with pytest.raises(ValueError, match="no surface"):
        extract(veil, resolution=32, views=8)
    with pytest.raises(ValueError, match="path"):
        _cube().save("head.stl")
    with pytest.raises(ValueError, match="faces"):
        Mesh(np.zeros((3, 3), np.float32), np.array([[0, 1, 3]]), np.zeros((3, 3), np.float32))


def test_cli_mesh(tmp_path, capsys):
    out = tmp_path / "m" / "head.glb"
    rc = main(["mesh", str(EXAMPLE), "-o", str(out), "--resolution", "64", "--faces", "4000", "--views", "8",
               "--vertex-colors"])
    assert rc == 0 and "watertight" in capsys.readouterr().out
    loaded = trimesh.load(out, force="mesh", process=False)
    assert 2000 <= len(loaded.faces) <= 4000 and loaded.is_watertight
    rc = main(["mesh", str(EXAMPLE), "-o", str(tmp_path / "x.fbx"), "--resolution", "32", "--views", "8"])
    assert rc == 2 and "expected a file ending in" in capsys.readouterr().err


@pytest.mark.cuda
def test_extract_on_cuda():
    head = a3d.load_ply(EXAMPLE)
    cpu = extract(head, resolution=128, faces=20_000)
    gpu = extract(head.to("cuda"), resolution=128, faces=20_000)
    assert gpu.is_watertight() and gpu.metadata["device"].startswith("cuda")
    assert abs(gpu.num_faces - cpu.num_faces) <= 0.1 * cpu.num_faces
    q = fidelity(gpu, head.to("cuda"), canonical_cameras(128))
    assert min(q["iou"]) >= IOU_MIN and q["psnr_all"] >= PSNR_MIN, q


def test_reconstruct_mesh_of_the_example_portrait(tmp_path, capsys):
    """`a3d reconstruct --mesh` with the bundled model on the bundled portrait; the GLB, read back by
    trimesh, meets the quality bar against the head.ply written beside it."""
    portrait = Path(a3d.__file__).parents[1] / "demo" / "examples" / "astronaut.jpg"
    if not portrait.is_file() or not (a3d.api.DEFAULT_MODEL_DIR / "model.safetensors").is_file():
        pytest.skip("needs the repository's example portrait and the bundled model")
    rc = main(["reconstruct", str(portrait), "-o", str(tmp_path), "--mesh", "--ply", "--device", "cpu"])
    assert rc == 0, capsys.readouterr().err
    out = tmp_path / "astronaut"
    assert {"head.glb", "head.ply"} <= {p.name for p in out.iterdir()}
    glb = trimesh.load(out / "head.glb", force="mesh", process=False)  # textured: a vertex per face corner
    assert glb.visual.kind == "texture"
    # the texture as the GLB carries it, rendered: trimesh's UVs have v up, as a3d's Mesh.uv
    F = len(glb.faces)
    mesh = Mesh(np.asarray(glb.vertices, np.float32) / HEAD_UNIT_METRES, np.asarray(glb.faces, np.int64),
                np.full((len(glb.vertices), 3), 0.5, np.float32), np.asarray(glb.visual.uv, np.float32)[glb.faces],
                np.asarray(glb.visual.material.baseColorTexture.convert("RGB")))
    assert mesh.uv.shape == (F, 3, 2)
    glb.merge_vertices(merge_tex=True, merge_norm=True)  # the corners merged back: one closed piece
    assert glb.is_watertight and glb.volume > 0 and len(glb.split(only_watertight=False)) == 1
    q = fidelity(mesh, a3d.load_ply(out / "head.ply"), canonical_cameras(256))
    assert min(q["iou"]) >= IOU_MIN and q["psnr_all"] >= PSNR_MIN, q


# ---- game-ready GLB ----------------------------------------------------------------------------------------

def _glb_json(path) -> dict:
    import json
    import struct

    data = Path(path).read_bytes()
    magic, version, total = struct.unpack("<III", data[:12])
    length, kind = struct.unpack("<II", data[12:20])
    assert (magic, version, total, kind) == (0x46546C67, 2, len(data), 0x4E4F534A)
    return json.loads(data[20:20 + length])


def test_clean_surface_drops_slivers_and_keeps_pinches_closed():
    cube = _cube()
    far = cube.vertices + np.float32(3.0)  # a second cube, apart: a floating piece
    v = np.concatenate([cube.vertices, far])
    f = np.concatenate([cube.faces, cube.faces + 8, [[0, 1, 3], [0, 3, 1]]])  # plus a face pair, back to back
    v2, f2 = clean_surface(v, f)
    assert len(f2) == 12 and len(v2) == 8 and is_watertight(f2)  # the largest piece, no sliver
    # two cubes touching at one corner (the same position, two vertices): merging them would pinch the surface
    touching = np.concatenate([cube.vertices, cube.vertices + np.float32(1.0)])
    v3, f3 = clean_surface(touching, np.concatenate([cube.faces, cube.faces + 8]))
    assert len(f3) == 12  # edge-connected pieces only: the larger (here the first) cube
    tm = trimesh.Trimesh(v3, f3, process=True)
    assert tm.is_watertight and len(tm.split(only_watertight=False)) == 1


def test_glb_is_game_ready(tmp_path):
    """Normals, a PBR material with the baked texture, metres; trimesh merges the UV-seam corners back into
    one closed piece whose normals point out."""
    head = a3d.load_ply(EXAMPLE)
    mesh = extract(head, resolution=64, faces=4000, views=8, texture_size=256)
    doc = _glb_json(mesh.save(tmp_path / "head.glb"))
    prim = doc["meshes"][0]["primitives"][0]
    assert {"POSITION", "NORMAL", "TEXCOORD_0"} <= set(prim["attributes"])
    pbr = doc["materials"][prim["material"]]["pbrMetallicRoughness"]
    assert pbr["metallicFactor"] == 0 and 0.5 <= pbr["roughnessFactor"] <= 1 and "baseColorTexture" in pbr
    assert doc["images"][0]["mimeType"] == "image/png"
    lo, hi = (np.array(doc["accessors"][prim["attributes"]["POSITION"]][k]) for k in ("min", "max"))
    assert 0.15 < (hi - lo).max() < 0.45  # a head in metres, not 1.5 "units"
    loaded = trimesh.load(tmp_path / "head.glb", force="mesh")
    loaded.merge_vertices(merge_tex=True, merge_norm=True)
    assert len(loaded.vertices) == mesh.num_vertices and loaded.is_watertight and loaded.volume > 0
    assert len(loaded.split(only_watertight=False)) == 1
    n = np.asarray(loaded.vertex_normals)
    out = np.asarray(loaded.vertices) - np.asarray(loaded.vertices).mean(0)
    assert np.allclose(np.linalg.norm(n, axis=1), 1, atol=1e-4) and ((n * out).sum(1) > 0).mean() > 0.9
    plain = _glb_json(extract(head, resolution=64, faces=4000, views=8).save(tmp_path / "plain.glb"))
    attrs = plain["meshes"][0]["primitives"][0]["attributes"]
    assert {"NORMAL", "COLOR_0"} <= set(attrs) and plain["materials"][0]["pbrMetallicRoughness"]["metallicFactor"] == 0


def test_blender_imports_the_glb(tmp_path):
    """Blender's glTF importer (Debian's blender package) reads the GLB: one mesh, its faces, a material with
    an image texture, a head-sized object in metres."""
    import shutil
    import subprocess

    blender = shutil.which("blender")
    if blender is None:
        pytest.skip("needs Blender (apt-get install blender)")
    head = a3d.load_ply(EXAMPLE)
    mesh = extract(head, resolution=64, faces=4000, views=8, texture_size=256)
    glb = mesh.save(tmp_path / "head.glb")
    script = tmp_path / "check.py"
    script.write_text(
        "import bpy, json, sys\n"
        "bpy.ops.wm.read_factory_settings(use_empty=True)\n"
        f"bpy.ops.import_scene.gltf(filepath={str(glb)!r})\n"
        "obs = [o for o in bpy.context.scene.objects if o.type == 'MESH']\n"
        "o = obs[0]\n"
        "mats = [m for m in o.data.materials if m]\n"
        "tex = any(n.type == 'TEX_IMAGE' for m in mats for n in m.node_tree.nodes)\n"
        "print('A3D' + json.dumps({'meshes': len(obs), 'faces': len(o.data.polygons), 'texture': tex,\n"
        "                          'size': max(o.dimensions)}))\n")
    run = subprocess.run([blender, "--background", "--factory-startup", "--python", str(script)],
                         capture_output=True, text=True, timeout=300)
    line = next(x for x in run.stdout.splitlines() if x.startswith("A3D"))
    import json
    got = json.loads(line[3:])
    assert got["meshes"] == 1 and got["faces"] == mesh.num_faces and got["texture"], got
    assert 0.15 < got["size"] < 0.45, got
