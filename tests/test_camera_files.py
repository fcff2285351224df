"""Cameras for other tools (a3d.io.camera_files): nerfstudio's transforms.json and COLMAP's text model are
read back by hand-written parsers of those formats, and a head point projects to the same pixel through
the file's camera (in the splat file's world) as through a3d's camera; Avatar.export_cameras writes a
project whose images match the cameras."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from a3d.core.cameras import canonical_cameras, orbit_cameras
from a3d.io.camera_files import export_camera_set, save_colmap_text, save_transforms_json
from a3d.io.ply import load_ply

POINTS = torch.tensor([[0.0, 0.1, 0.55], [0.3, -0.2, 0.1], [-0.25, 0.4, -0.3]], dtype=torch.float64)  # a3d world
FLIP = torch.tensor([1.0, -1.0, -1.0], dtype=torch.float64)


def project_a3d(cams, points):
    """Pixels [C, P, 2] of a3d world points through a3d's cameras (OpenCV, pixel centres at +0.5)."""
    vm, K = cams.viewmats.double(), cams.Ks.double()
    cam = points @ vm[:, :3, :3].transpose(-1, -2) + vm[:, None, :3, 3]
    uv = cam @ K.transpose(-1, -2)
    return uv[..., :2] / uv[..., 2:]


def file_points(up):
    return POINTS * FLIP if up == "-y" else POINTS


def qvec_to_rotmat(q):
    w, x, y, z = q
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                     [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                     [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])


@pytest.mark.parametrize("up", ["-y", "+y"])
def test_transforms_json_projects_like_a3d(tmp_path, up):
    cams = orbit_cameras(5, elevation=15, size=(320, 240))
    save_transforms_json(tmp_path / "transforms.json", cams, [f"images/{i}.png" for i in range(5)], up=up)
    doc = json.loads((tmp_path / "transforms.json").read_text())
    assert doc["camera_model"] == "OPENCV" and (doc["w"], doc["h"]) == (320, 240)
    expected = project_a3d(cams, POINTS)
    for i, frame in enumerate(doc["frames"]):
        assert frame["file_path"] == f"images/{i}.png"
        c2w = np.array(frame["transform_matrix"])  # OpenGL camera axes: x right, y up, looking along -z
        assert np.allclose(c2w[3], [0, 0, 0, 1]) and np.allclose(c2w[:3, :3] @ c2w[:3, :3].T, np.eye(3), atol=1e-6)
        cam = (file_points(up).numpy() - c2w[:3, 3]) @ c2w[:3, :3]  # world -> camera
        assert (cam[:, 2] < 0).all()  # in front of an OpenGL camera
        u = doc["cx"] + doc["fl_x"] * cam[:, 0] / -cam[:, 2]
        v = doc["cy"] - doc["fl_y"] * cam[:, 1] / -cam[:, 2]
        assert np.allclose(np.stack([u, v], -1), expected[i].numpy(), atol=1e-6)


@pytest.mark.parametrize("up", ["-y", "+y"])
def test_colmap_text_projects_like_a3d(tmp_path, up):
    cams = canonical_cameras(256)
    head = load_ply(__import__("pathlib").Path(__file__).parents[1] / "a3d" / "assets" / "example_head.ply")
    files = save_colmap_text(tmp_path / "sparse" / "0", cams, ["front.png", "left.png", "right.png", "back.png"],
                             up=up, points=head)
    assert sorted(files) == ["cameras.txt", "images.txt", "points3D.txt"]
    cam_rows = [line.split() for line in open(files["cameras.txt"]) if not line.startswith("#")]
    assert len(cam_rows) == 1 and cam_rows[0][1] == "PINHOLE" and cam_rows[0][2:4] == ["256", "256"]
    fx, fy, cx, cy = map(float, cam_rows[0][4:])
    rows = [line.split() for line in open(files["images.txt"]) if not line.startswith("#")]
    image_rows = rows[0::2]  # each image is followed by its (empty) line of 2-D points
    assert all(r == [] for r in rows[1::2]) and [r[9] for r in image_rows] == ["front.png", "left.png", "right.png",
                                                                               "back.png"]
    expected = project_a3d(cams, POINTS)
    for i, r in enumerate(image_rows):
        q, t = np.array(list(map(float, r[1:5]))), np.array(list(map(float, r[5:8])))
        assert math.isclose(np.linalg.norm(q), 1.0, abs_tol=1e-9) and q[0] >= 0
        cam = file_points(up).numpy() @ qvec_to_rotmat(q).T + t
        uv = np.stack([fx * cam[:, 0] / cam[:, 2] + cx, fy * cam[:, 1] / cam[:, 2] + cy], -1)
        assert np.allclose(uv, expected[i].numpy(), atol=1e-6)
    pts = [line.split() for line in open(files["points3D.txt"]) if not line.startswith("#")]
    assert len(pts) == int((head.opacities >= 0.5).sum())
    xyz = np.array([list(map(float, p[1:4])) for p in pts])
    assert np.allclose(np.sort(xyz[:, 1]), np.sort((head.means[head.opacities >= 0.5] * FLIP.float()
                                                    if up == "-y" else head.means[head.opacities >= 0.5])[:, 1]
                                                   .numpy()), atol=1e-6)


@pytest.mark.parametrize("fmt", ["nerfstudio", "colmap"])
def test_export_camera_set_writes_a_project(tmp_path, fmt):
    head = load_ply(__import__("pathlib").Path(__file__).parents[1] / "a3d" / "assets" / "example_head.ply")
    cams = orbit_cameras(3, elevation=10, size=64)
    out = export_camera_set(head, cams, ["a", "b", "c"], tmp_path / fmt, fmt)
    assert sorted(p.name for p in (tmp_path / fmt / "images").iterdir()) == ["a.png", "b.png", "c.png"]
    assert load_ply(out["ply"]).num_gaussians == head.num_gaussians
    if fmt == "nerfstudio":
        doc = json.loads((tmp_path / fmt / "transforms.json").read_text())
        assert doc["ply_file_path"] == "head.ply" and len(doc["frames"]) == 3
    else:
        assert (tmp_path / fmt / "sparse" / "0" / "images.txt").is_file()


def test_names_are_checked(tmp_path):
    from a3d.errors import InputError

    with pytest.raises(InputError, match="distinct names"):
        save_transforms_json(tmp_path / "t.json", orbit_cameras(2), ["a.png", "a.png"])


def test_avatar_export_cameras(tmp_path):
    from a3d.api import Avatar

    head = load_ply(__import__("pathlib").Path(__file__).parents[1] / "a3d" / "assets" / "example_head.ply")
    avatar = Avatar(head, canonical_cameras(64), torch.zeros(3, 64, 64))
    out = avatar.export_cameras(tmp_path / "p", format="colmap", views="canonical", size=48)
    assert sorted(p.name for p in (tmp_path / "p" / "images").iterdir()) == [
        "back.png", "front.png", "left.png", "right.png"]
    assert "points3D.txt" in out
    avatar.export_cameras(tmp_path / "q", views=6, size=32)
    assert len(json.loads((tmp_path / "q" / "transforms.json").read_text())["frames"]) == 6
