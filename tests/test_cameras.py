"""Cameras: OpenCV axes, orbits and canonical views, OpenGL/Blender conversions, the camera JSON file."""
from __future__ import annotations

import json
import math

import pytest
import torch

from a3d.core import cameras as cam_mod
from a3d.core import framing
from a3d.errors import InputError
from a3d.core.cameras import (Cameras, blender_to_opencv, canonical_cameras, focal_to_fov, fov_to_focal, intrinsics,
                         load_cameras_json, look_at, opencv_to_blender, opencv_to_opengl, opengl_to_opencv,
                         orbit_cameras, save_cameras_json)


def project(viewmat: torch.Tensor, K: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    """Pixel coordinates (continuous, pixel centres at +0.5) of world points X [N, 3]."""
    Xc = X @ viewmat[:3, :3].T + viewmat[:3, 3]
    uvw = Xc @ K.T
    return uvw[:, :2] / uvw[:, 2:]


def random_rigid(n: int, gen: torch.Generator) -> torch.Tensor:
    q = torch.nn.functional.normalize(torch.randn(n, 4, generator=gen, dtype=torch.float64), dim=-1)
    w, x, y, z = q.unbind(-1)
    R = torch.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
                     2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
                     2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1).reshape(n, 3, 3)
    M = torch.eye(4, dtype=torch.float64).repeat(n, 1, 1)
    M[:, :3, :3] = R
    M[:, :3, 3] = torch.randn(n, 3, generator=gen, dtype=torch.float64) * 3
    return M


# ---- look_at and the OpenCV axes ---------------------------------------------------------------

def test_look_at_front_camera_matrix():
    r = 2.7
    M = look_at(torch.tensor([0.0, 0.0, r]))
    expect = torch.tensor([[1.0, 0, 0, 0], [0, -1, 0, 0], [0, 0, -1, r], [0, 0, 0, 1]])
    torch.testing.assert_close(M[0], expect)


def test_look_at_opencv_axes_image_right_and_up():
    M = look_at(torch.tensor([0.0, 0.0, 3.0]))[0]
    K = intrinsics(40.0, 64)
    uv = project(M, K, torch.tensor([[0.0, 0.0, 0.0], [0.3, 0.0, 0.0], [0.0, 0.3, 0.0]]))
    centre, right, up = uv
    torch.testing.assert_close(centre, torch.tensor([32.0, 32.0]))  # origin at the image centre
    assert right[0] > centre[0] + 1 and abs(right[1] - centre[1]) < 1e-4  # world +x -> image right
    assert up[1] < centre[1] - 1 and abs(up[0] - centre[0]) < 1e-4  # world +y -> image up (smaller v)


def test_look_at_orthonormal_and_targets(seed):
    gen = torch.Generator().manual_seed(seed)
    eye = torch.randn(16, 3, generator=gen) * 4
    target = torch.randn(16, 3, generator=gen) * 0.5
    M = look_at(eye, target)
    R = M[:, :3, :3]
    torch.testing.assert_close(R @ R.transpose(-1, -2), torch.eye(3).expand(16, 3, 3), atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.linalg.det(R), torch.ones(16), atol=1e-5, rtol=0)
    torch.testing.assert_close(Cameras(M, intrinsics(30, 8).expand(16, 3, 3), 8, 8).centers, eye, atol=1e-5, rtol=0)
    # the target lies on the optical axis, in front of the camera
    t_cam = (R @ target[..., None])[..., 0] + M[:, :3, 3]
    torch.testing.assert_close(t_cam[:, :2], torch.zeros(16, 2), atol=1e-5, rtol=0)
    assert (t_cam[:, 2] > 0).all()
    # the world up vector projects to image up (camera -y) for every camera
    assert ((R @ torch.tensor([0.0, 1.0, 0.0]))[:, 1] <= 1e-6).all()


def test_look_at_bad_arguments():
    with pytest.raises(ValueError, match="eye"):
        look_at(torch.zeros(2, 4))
    with pytest.raises(ValueError, match="eye"):
        look_at(torch.zeros(3), target=(0.0, 0.0, 0.0))
    with pytest.raises(ValueError, match="up"):
        look_at(torch.tensor([0.0, 5.0, 0.0]))


# ---- intrinsics --------------------------------------------------------------------------------

def test_fov_focal_round_trip_and_values():
    f = fov_to_focal(90.0, 512)
    assert math.isclose(f, 256.0)
    assert math.isclose(focal_to_fov(f, 512), 90.0)
    assert math.isclose(fov_to_focal(60.0, 100), 50.0 / math.tan(math.radians(30.0)))
    K = intrinsics(90.0, 200, 100)
    torch.testing.assert_close(K, torch.tensor([[50.0, 0, 100.0], [0, 50.0, 50.0], [0, 0, 1.0]]))


@pytest.mark.parametrize("fn, args, name", [
    (fov_to_focal, (0.0, 10), "fov_deg"), (fov_to_focal, (180.0, 10), "fov_deg"),
    (focal_to_fov, (-1.0, 10), "focal"),
])
def test_intrinsics_bad_arguments(fn, args, name):
    with pytest.raises(ValueError, match=name):
        fn(*args)


# ---- orbits and canonical views ----------------------------------------------------------------

def test_canonical_cameras_centres_and_order():
    cams = canonical_cameras(64)
    r = framing.CANONICAL_RADIUS
    assert framing.CANONICAL_VIEWS == ("front", "left", "right", "back")
    expect = torch.tensor([[0.0, 0.0, r], [r, 0.0, 0.0], [-r, 0.0, 0.0], [0.0, 0.0, -r]])
    torch.testing.assert_close(cams.centers, expect, atol=1e-5, rtol=0)
    assert (cams.width, cams.height) == (64, 64)
    f = 32 / math.tan(math.radians(framing.CANONICAL_FOV_DEG / 2))
    torch.testing.assert_close(cams.Ks, torch.tensor([[f, 0, 32.0], [0, f, 32.0], [0, 0, 1.0]]).expand(4, 3, 3))
    # every canonical camera sees the origin at its image centre
    for i in range(4):
        torch.testing.assert_close(project(cams.viewmats[i], cams.Ks[i], torch.zeros(1, 3))[0],
                                   torch.tensor([32.0, 32.0]), atol=1e-4, rtol=0)
    # the left camera (on +x) sees the face side (+z) on the image left; the right camera on the image right
    nose = torch.tensor([[0.0, 0.0, 0.5]])
    assert project(cams.viewmats[1], cams.Ks[1], nose)[0, 0] < 32 - 1
    assert project(cams.viewmats[2], cams.Ks[2], nose)[0, 0] > 32 + 1


def test_orbit_cameras_azimuths_elevation_radius():
    n, r, el = 8, 3.5, 20.0
    cams = orbit_cameras(n, radius=r, elevation=el, fov=45.0, size=(96, 64), azimuth_start=30.0)
    assert len(cams) == n and (cams.width, cams.height) == (96, 64)
    c = cams.centers.double()
    torch.testing.assert_close(c.norm(dim=-1), torch.full((n,), r, dtype=torch.float64), atol=1e-5, rtol=0)
    torch.testing.assert_close(c[:, 1], torch.full((n,), r * math.sin(math.radians(el)), dtype=torch.float64),
                               atol=1e-5, rtol=0)
    az = torch.rad2deg(torch.atan2(c[:, 0], c[:, 2]))  # 0 at +z, +90 at +x
    expect = (30.0 + 360.0 * torch.arange(n, dtype=torch.float64) / n + 180.0) % 360.0 - 180.0
    torch.testing.assert_close(az, expect, atol=1e-4, rtol=0)
    # positive elevation looks down: the optical axis (third row of R) has a negative y
    assert (cams.viewmats[:, 2, 1] < 0).all()
    explicit = orbit_cameras(1, radius=r, azimuths=[90.0, -90.0])
    torch.testing.assert_close(explicit.centers, torch.tensor([[r, 0, 0], [-r, 0, 0]]), atol=1e-5, rtol=0)


@pytest.mark.parametrize("kwargs, name", [
    ({"n": 0}, "n"), ({"n": 2.0}, "n"), ({"n": 3, "radius": 0.0}, "radius"),
    ({"n": 3, "elevation": 95.0}, "elevation"), ({"n": 3, "fov": 0.0}, "fov"), ({"n": 3, "fov": 200.0}, "fov"),
    ({"n": 3, "size": (1, 2, 3)}, "size"), ({"n": 3, "size": 0}, "width"), ({"n": 3, "azimuths": []}, "azimuths"),
])
def test_orbit_cameras_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=f"^{name}"):
        orbit_cameras(**kwargs)


def test_cameras_dataclass_checks_and_indexing():
    cams = orbit_cameras(4, size=32)
    one = cams[2]
    assert len(one) == 1 and torch.equal(one.viewmats[0], cams.viewmats[2])
    assert torch.equal(cams[-1].viewmats[0], cams.viewmats[3])
    both = Cameras.cat([cams[0], cams[3]])
    assert len(both) == 2
    torch.testing.assert_close(cams.camtoworlds @ cams.viewmats, torch.eye(4).expand(4, 4, 4), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="viewmats"):
        Cameras(torch.eye(4), cams.Ks, 32, 32)
    with pytest.raises(ValueError, match="Ks"):
        Cameras(cams.viewmats, torch.eye(4).expand(4, 4, 4), 32, 32)
    with pytest.raises(ValueError, match="disagree"):
        Cameras(cams.viewmats, cams.Ks[:2], 32, 32)
    with pytest.raises(ValueError, match="height"):
        Cameras(cams.viewmats, cams.Ks, 32, 0)
    with pytest.raises(ValueError, match="width"):
        Cameras(cams.viewmats, cams.Ks, True, 32)
    with pytest.raises(ValueError, match="width and height"):
        Cameras.cat([cams, orbit_cameras(1, size=16)])


# ---- OpenGL / Blender --------------------------------------------------------------------------

def test_opengl_front_camera_hand_computed():
    r = 2.0
    vm = look_at(torch.tensor([0.0, 0.0, r]))
    gl = opencv_to_opengl(vm)[0]
    # an OpenGL camera on +z looking at the origin with y up is the identity rotation
    torch.testing.assert_close(gl, torch.tensor([[1.0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, r], [0, 0, 0, 1]]))
    torch.testing.assert_close(opengl_to_opencv(gl), vm[0])


def test_blender_front_camera_hand_computed():
    r = 2.7
    # Blender: z up, a front camera at (0, -r, 0) looking along +y (rotation_euler = (90°, 0, 0)).
    mw = torch.tensor([[1.0, 0, 0, 0], [0, 0, -1, -r], [0, 1, 0, 0], [0, 0, 0, 1]])
    torch.testing.assert_close(blender_to_opencv(mw), look_at(torch.tensor([0.0, 0.0, r]))[0], atol=1e-6, rtol=0)
    torch.testing.assert_close(opencv_to_blender(look_at(torch.tensor([0.0, 0.0, r]))[0]), mw, atol=1e-6, rtol=0)
    # a Blender camera on +x looking at the origin is a3d's "left" canonical camera (azimuth +90)
    mw_x = torch.tensor([[0.0, 0, 1, r], [1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1]])
    torch.testing.assert_close(blender_to_opencv(mw_x), canonical_cameras(8).viewmats[1], atol=1e-6, rtol=0)


def test_conversions_round_trip(seed):
    gen = torch.Generator().manual_seed(seed)
    vm = random_rigid(10, gen)
    torch.testing.assert_close(opengl_to_opencv(opencv_to_opengl(vm)), vm, atol=1e-12, rtol=0)
    torch.testing.assert_close(blender_to_opencv(opencv_to_blender(vm)), vm, atol=1e-12, rtol=0)
    # the camera centre is the same point in both camera conventions (same world)
    torch.testing.assert_close(opencv_to_opengl(vm)[:, :3, 3], torch.linalg.inv(vm)[:, :3, 3], atol=1e-12, rtol=0)
    assert opencv_to_opengl(vm.float()).dtype == torch.float32


# ---- camera JSON -------------------------------------------------------------------------------

def test_json_round_trip(tmp_path):
    cams = orbit_cameras(5, size=(40, 30), elevation=10.0)
    names = ["a", "b", "c", "d", "e"]
    path = tmp_path / "cameras.json"
    save_cameras_json(path, cams, names)
    back, back_names = load_cameras_json(path)
    assert back_names == names
    assert (back.width, back.height) == (40, 30)
    assert torch.equal(back.viewmats, cams.viewmats) and torch.equal(back.Ks, cams.Ks)
    doc = json.loads(path.read_text())
    assert doc["format"] == "a3d-cameras" and doc["version"] == 1 and doc["convention"] == "opencv"
    assert set(doc["frames"][0]) == {"name", "width", "height", "K", "world_to_camera"}
    _, default_names = load_cameras_json(_write(tmp_path, _doc(name=None)))
    assert default_names == ["000"]


def test_json_save_bad_arguments(tmp_path):
    cams = orbit_cameras(2)
    with pytest.raises(ValueError, match="names"):
        save_cameras_json(tmp_path / "c.json", cams, ["only one"])
    batched = Cameras(cams.viewmats[None], cams.Ks[None], cams.width, cams.height)
    with pytest.raises(ValueError, match="cameras"):
        save_cameras_json(tmp_path / "c.json", batched)


def _doc(**frame_overrides):
    frame = {"name": "000", "width": 8, "height": 8, "K": [[8.0, 0, 4], [0, 8.0, 4], [0, 0, 1]],
             "world_to_camera": [[1.0, 0, 0, 0], [0, -1, 0, 0], [0, 0, -1, 2.7], [0, 0, 0, 1]]}
    for k, v in frame_overrides.items():
        if v is None:
            frame.pop(k)
        else:
            frame[k] = v
    return {"format": "a3d-cameras", "version": 1, "convention": "opencv", "frames": [frame]}


def _write(tmp_path, doc, name="c.json"):
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


@pytest.mark.parametrize("doc, match", [
    ("{not json", "not valid JSON"),
    ([1, 2], "a3d-cameras"),
    ({"format": "nerf", "frames": []}, "a3d-cameras"),
    ({**_doc(), "convention": "opengl"}, "convention"),
    ({**_doc(), "frames": []}, "frames"),
    ({**_doc(), "frames": "x"}, "frames"),
    ({**_doc(), "frames": [5]}, "frame 0"),
    (_doc(K=None), "frame 0: \"K\" must be a 3x3 list"),
    (_doc(width="wide"), "frame 0: \"width\": expected an int"),
    (_doc(K=[[1, 0], [0, 1]]), "3x3 list of numbers"),
    (_doc(K=[[-8.0, 0, 4], [0, 8.0, 4], [0, 0, 1]]), "fx, fy > 0"),
    (_doc(K=[[8.0, 0, 4], [0, 8.0, 4], [0, 1, 1]]), "fx, fy > 0"),
    (_doc(world_to_camera=[[2.0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]), "rigid"),
    (_doc(world_to_camera=[[1.0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 1, 1]]), "rigid"),
    (_doc(world_to_camera=[[-1.0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]), "rigid"),
    ('{"format": "a3d-cameras", "frames": [{"width": 8, "height": 8, "K": [[NaN, 0, 4], [0, 8, 4], [0, 0, 1]], '
     '"world_to_camera": [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]}]}', "NaN is not a JSON number"),
    (_doc(width=0), "width"),
])
def test_json_malformed(tmp_path, doc, match):
    with pytest.raises(InputError, match=match):
        load_cameras_json(_write(tmp_path, doc))


def test_json_mixed_sizes_and_size_limit(tmp_path, monkeypatch):
    doc = _doc()
    doc["frames"].append({**doc["frames"][0], "width": 16})
    with pytest.raises(ValueError, match="share one image size"):
        load_cameras_json(_write(tmp_path, doc))
    monkeypatch.setattr(cam_mod, "MAX_CAMERA_FILE_BYTES", 100)
    with pytest.raises(InputError, match="at most 100 are accepted"):
        load_cameras_json(_write(tmp_path, _doc(), "big.json"))
