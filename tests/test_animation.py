"""a3d.animation: the morphable head fitted to a synthetic head recovers its parameters, Gaussians bound to it
move with expressions while hair and shoulders stay, a neutral rig changes nothing, the mouth shows an
interior when the jaw opens, and the Avatar API (rig, animate) with clear errors."""
import pytest
import torch

from a3d.animation.drive import build_rig, expression_tensor, preset_weights, PRESETS
from a3d.animation.fit import face_vertex_mask
from a3d.animation.pose import axis_angle_matrix, pose_matrix
from a3d.core.cameras import canonical_cameras, orbit_cameras
from a3d.core.rendering import render
from a3d.data.head_basis import load_head_basis
from a3d.data.synth import ACCESSORIES, SyntheticHeads
from a3d.errors import InputError


@pytest.fixture(scope="module")
def head():
    """A synthetic head (short hair, no accessories, neutral) and its rig, shared by the module's tests."""
    gen = SyntheticHeads("cpu", seed=3, num_gaussians=30_000, image_size=64, num_random_views=0)
    sample = gen.sample(1, overrides={**ACCESSORIES["none"], "expression": "neutral"})
    g = sample.gaussians.scene(0)
    return gen.basis, sample, g, build_rig(g, gen.basis)


def _pixels(means: torch.Tensor, size: int = 256) -> torch.Tensor:
    """[..., N, 3] world points -> [..., N, 2] pixels in the front canonical camera of a size² image."""
    cam = canonical_cameras(size)[0]
    p = means @ cam.viewmats[0, :3, :3].T + cam.viewmats[0, :3, 3]
    uv = p @ cam.Ks[0].T
    return uv[..., :2] / uv[..., 2:]


def test_pose_conventions():
    z, y = torch.tensor([0.0, 0.0, 1.0]), torch.tensor([0.0, 1.0, 0.0])
    assert torch.allclose(pose_matrix(torch.tensor([90.0, 0, 0])) @ z, torch.tensor([1.0, 0, 0]), atol=1e-6)
    assert torch.allclose(pose_matrix(torch.tensor([0, 90.0, 0])) @ z, torch.tensor([0, -1.0, 0]), atol=1e-6)
    assert torch.allclose(pose_matrix(torch.tensor([0, 0, 90.0])) @ y, torch.tensor([1.0, 0, 0]), atol=1e-6)
    rv = torch.randn(5, 3, dtype=torch.float64)
    R = axis_angle_matrix(rv)
    assert torch.allclose(R @ R.transpose(-1, -2), torch.eye(3, dtype=torch.float64).expand(5, 3, 3), atol=1e-12)
    assert torch.allclose(R @ rv[..., None], rv[..., None], atol=1e-12)  # the axis stays
    assert torch.allclose(axis_angle_matrix(torch.zeros(3)), torch.eye(3))


def test_fit_recovers_the_synthetic_head(head):
    basis, sample, g, rig = head
    fit = rig.fit
    truth = sample.vertices[0]  # framed like the fit, with the head's weak random expression
    face = face_vertex_mask(basis)
    err = (fit.vertices - truth).norm(dim=-1)[face].mean()
    start = (basis.mean - truth).norm(dim=-1)[face].mean()  # the mean head, where the fit starts
    # measured on this head: 0.012 against 0.020 for the mean head (2-core CPU, 2026-12-07)
    assert err < 0.8 * start, (float(err), float(start))
    assert abs(float(fit.scale) - 1) < 0.03  # synthetic heads are framed at scale ~1 by their anchors
    assert fit.report["anchor_error"] < 0.01
    corr = torch.corrcoef(torch.stack([fit.identity, sample.attributes.identity[0]]))[0, 1]
    assert corr > 0.15, float(corr)  # the identity coefficients lean the right way (measured 0.31-0.38)


def test_neutral_changes_nothing(head):
    basis, sample, g, rig = head
    out = rig.deform(None)
    n = g.num_gaussians
    assert torch.allclose(out.means[0, :n], g.means, atol=1e-5)
    assert torch.allclose(out.scales[0, :n], g.scales, rtol=1e-5)
    assert (out.opacities[0, n:] == 0).all()  # the mouth's interior is invisible while the lips are closed
    cams = orbit_cameras(1, size=48)
    a, b = render(g, cams).rgb, render(out.scene(0), cams).rgb
    assert (a - b).abs().max() < 1e-4


def test_smile_moves_the_face_not_hair_or_shoulders(head):
    basis, sample, g, rig = head
    w = expression_tensor({"mouthSmileLeft": 0.9, "mouthSmileRight": 0.9, "cheekSquintLeft": 0.5,
                           "cheekSquintRight": 0.5}, rig.names)
    out = rig.deform(torch.cat([torch.zeros_like(w), w]), mouth=False)
    shift = (_pixels(out.means[1]) - _pixels(out.means[0])).norm(dim=-1)  # 256² front view, pixels
    y = g.means[:, 1]
    # hair: far from the fitted skin and above the brows; shoulders: the lowest 0.15 units (the collar)
    dist = torch.cdist(g.means, rig.fit.vertices).min(1).values
    hair = (dist > 0.05) & (y > 0.1)
    shoulders = y < y.min() + 0.15
    assert hair.sum() > 500 and shoulders.sum() > 200
    assert shift[hair].max() < 0.5 and shift[shoulders].max() < 0.5
    mouth = (g.means - basis.landmarks(rig.fit.vertices)[basis.landmark_names.index("mouth")]).norm(dim=-1) < 0.12
    assert shift[mouth].max() > 2.0  # the mouth's corners did move


def test_head_pose_turns_the_head_and_keeps_the_shoulders(head):
    basis, sample, g, rig = head
    out = rig.deform(None, head_pose=[20.0, 0.0, 0.0], mouth=False)
    nose = basis.landmarks(rig.fit.vertices)[basis.landmark_names.index("nose_tip")]
    i = (g.means - nose).norm(dim=-1).argmin()
    assert out.means[0, i, 0] - g.means[i, 0] > 0.05  # the face turned toward +x (the subject's left)
    chin = float(basis.landmarks(rig.fit.vertices)[basis.landmark_names.index("chin"), 1])
    low = g.means[:, 1] < chin - 0.26
    assert low.sum() > 50 and torch.allclose(out.means[0, low], g.means[low])


def test_open_jaw_shows_the_mouth(head):
    basis, sample, g, rig = head
    # a reconstruction from a photo has nothing behind closed lips: take the synthetic head's interior away
    near = torch.cdist(g.means, rig.fit.vertices).argmin(1)
    inner = basis.regions[:, [basis.region("mouth"), basis.region("tongue")]].sum(1)[near] > 0.5
    hollow = g.index(~inner)
    rig = build_rig(hollow, basis, fit=rig.fit)
    w = expression_tensor({"jawOpen": 0.8}, rig.names)
    with_mouth, without = rig.deform(w), rig.deform(w, mouth=False)
    mouth = basis.landmarks(rig.vertices(w))[0, basis.landmark_names.index("mouth")]
    u, v = _pixels(mouth, 128).round().long().tolist()
    cams = canonical_cameras(128)[0]
    a, b = (render(x.scene(0), cams, (1.0, 1.0, 1.0)) for x in (with_mouth, without))
    window = (slice(v - 12, v + 12), slice(u - 16, u + 16))
    hole = b.alpha[0][window][..., 0] < 0.5  # without the interior, the open mouth shows the background
    assert hole.sum() >= 4
    assert (a.alpha[0][window][..., 0][hole] > 0.9).all()  # with it, the gap is filled
    assert (a.rgb[0][window][hole].mean(-1) < 0.8).all()  # by the mouth's colours, not white


def test_presets_and_errors():
    names = SyntheticHeads("cpu", num_gaussians=2000, image_size=8).basis.expressions
    assert len(names) == 52 and names[names.index("jawOpen")] == "jawOpen"
    for name in PRESETS:
        w = preset_weights(name, 30, names)
        assert w.shape == (30, 52) and torch.isfinite(w).all()
        assert (w.abs().amax() > 0) == (name != "neutral")
    smile = preset_weights("smile", 31, names)
    assert smile[15, names.index("mouthSmileLeft")] > smile[0, names.index("mouthSmileLeft")]
    with pytest.raises(InputError, match="unknown ARKit names"):
        expression_tensor({"smile": 1.0}, names)
    with pytest.raises(InputError, match=r"\[52\]"):
        expression_tensor(torch.zeros(3, 51), names)
    with pytest.raises(InputError, match="preset"):
        preset_weights("frown", 10, names)


def test_avatar_rig_is_cached_and_animate_returns_avatars(head):
    import a3d

    basis, sample, g, rig = head
    avatar = a3d.Avatar(g, canonical_cameras(64), torch.zeros(3, 64, 64))
    avatar.__dict__["_rig"] = (g, rig)  # as if built: the cache is keyed by the Gaussians object
    assert avatar.rig() is rig
    smiling = avatar.animate({"mouthSmileLeft": 1.0})
    assert isinstance(smiling, a3d.Avatar) and smiling.gaussians.num_gaussians == rig.gaussians.num_gaussians
    frames = avatar.animate(torch.zeros(3, 52), head_pose=torch.zeros(3, 3))
    assert isinstance(frames, list) and len(frames) == 3
    with pytest.raises(InputError, match="head_pose"):
        avatar.animate(None, head_pose=[1.0, 2.0])


def test_arkit_glb_morph_targets(head, tmp_path):
    import json
    import struct

    from a3d.animation.bind import bindable_faces
    from a3d.animation.gltf import morph_targets, write_glb

    basis, sample, g, rig = head
    verts = rig.fit.vertices.numpy()
    targets = morph_targets(rig, verts)
    assert list(targets) == list(rig.names)
    chin = basis.landmark_index[basis.landmark_names.index("chin"), 0]
    assert targets["jawOpen"][chin, 1] < -0.02  # the jaw opens downward
    crown = basis.landmark_index[basis.landmark_names.index("crown"), 0]
    assert abs(targets["jawOpen"][crown]).max() < 1e-6  # the skull stays
    path = write_glb(tmp_path / "head.glb", verts, basis.faces[bindable_faces(basis)].numpy(),
                     0.5 + 0 * verts, targets, scale=0.21)
    data = open(path, "rb").read()
    magic, version, length = struct.unpack("<III", data[:12])
    assert (magic, version, length) == (0x46546C67, 2, len(data))
    size, kind = struct.unpack("<II", data[12:20])
    doc = json.loads(data[20:20 + size])
    mesh = doc["meshes"][0]
    assert mesh["extras"]["targetNames"] == list(rig.names) and len(mesh["primitives"][0]["targets"]) == 52
    jaw = doc["accessors"][mesh["primitives"][0]["targets"][list(rig.names).index("jawOpen")]["POSITION"]]
    assert 0 < jaw["sparse"]["count"] < len(verts)  # only the vertices the jaw moves
    assert doc["accessors"][0]["max"][1] == pytest.approx(float(verts[:, 1].max()) * 0.21, rel=1e-5)


@pytest.fixture(scope="module")
def driver_clip(head):
    """A talking clip made by driving the synthetic head's rig with known weights and poses (256², 20 frames)."""
    basis, sample, g, rig = head
    F = 20
    t = torch.arange(F) / F
    truth = torch.zeros(F, 52)
    names = rig.names
    truth[:, names.index("jawOpen")] = 0.5 * (1 - torch.cos(4 * torch.pi * t))
    for side in ("Left", "Right"):
        truth[:, names.index("mouthSmile" + side)] = 0.8 * torch.sin(torch.pi * t) ** 2
    truth[:, names.index("browInnerUp")] = 0.7 * torch.sin(torch.pi * t / 0.4) * (t < 0.4)
    poses = torch.stack([12 * torch.sin(2 * torch.pi * t), 5 * torch.sin(4 * torch.pi * t), torch.zeros(F)], -1)
    cam = canonical_cameras(256)[0]
    moved = rig.deform(truth, poses)
    from a3d.core.rendering import to_uint8

    frames = [to_uint8(render(moved.scene(i), cam, (1.0, 1.0, 1.0)).rgb[0]) for i in range(F)]
    return frames, truth, poses


def test_driver_fit_recovers_known_weights(head, driver_clip):
    from a3d.animation.driver import fit_clip
    from a3d.animation.face_mesh import track

    basis, sample, g, rig = head
    frames, truth, poses = driver_clip
    meshes = track(frames)
    assert all(m is not None for m in meshes)
    clip = fit_clip(meshes, basis)
    names = rig.names

    def corr(name: str) -> float:
        i = names.index(name)
        return float(torch.corrcoef(torch.stack([clip.weights[:, i], truth[:, i]]))[0, 1])

    # tolerances measured on this clip (2-core CPU, 2026-12-07): jawOpen 0.905, browInnerUp 0.846, smile 0.68/0.74
    # (MediaPipe reads smaller motions on these renders than the head makes: the amplitudes come out low)
    assert corr("jawOpen") > 0.75 and corr("browInnerUp") > 0.7
    assert corr("mouthSmileLeft") > 0.45 and corr("mouthSmileRight") > 0.45
    yaw_err = (clip.poses[:, 0] - poses[:, 0]).abs().mean()
    assert yaw_err < 5.0, float(yaw_err)  # measured 2.2°
    unseen = [names.index(n) for n in ("eyeLookInLeft", "tongueOut")]
    assert (clip.weights[:, unseen] == 0).all()


def test_driver_reads_blinks_from_the_frames():
    from a3d.animation.driver import fit_clip
    from a3d.animation.face_mesh import track
    from a3d.animation.synthetic import CALIBRATION_SEEDS, talking_clip

    seed = 5  # neither the bench's clip (3) nor those EYE_CLOSED was measured on
    assert seed not in CALIBRATION_SEEDS
    frames, truth, _ = talking_clip(48, seed=seed, num_gaussians=30_000)
    basis = load_head_basis()
    clip = fit_clip(track(frames), basis, frames=frames)
    for name in ("eyeBlinkLeft", "eyeBlinkRight"):
        i = basis.expressions.index(name)
        fitted, true = clip.weights[:, i], truth[:, i]
        corr = float(torch.corrcoef(torch.stack([fitted, true]))[0, 1])
        # measured on this clip (2-core CPU, 2026-12-07): correlation 0.89 / 0.93, 1.0 on the blink's frames
        assert corr > 0.7, (name, corr)
        assert float(fitted[true > 0].mean()) > 0.7, name


def test_drive_from_video_writes_clip_audio_and_weights(head, driver_clip, tmp_path):
    import csv
    import json
    import subprocess

    import imageio_ffmpeg

    from a3d.animation.driver import drive_from_video
    from a3d.io.video import encode_frames

    basis, sample, g, rig = head
    frames, truth, poses = driver_clip
    silent = encode_frames(frames, tmp_path / "silent.mp4", fps=10)
    clip = tmp_path / "talk.mp4"  # the clip with a tone as its sound track
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    subprocess.run([ffmpeg, "-y", "-loglevel", "error", "-i", silent, "-f", "lavfi", "-i",
                    "sine=frequency=440:duration=2", "-c:v", "copy", "-c:a", "aac", "-shortest", str(clip)], check=True)
    written = drive_from_video(rig, clip, tmp_path / "out", size=128, progress=False)
    video, js, cs = written
    probe = subprocess.run([ffmpeg, "-i", video], capture_output=True, text=True).stderr
    assert "Audio:" in probe and "256x128" in probe  # the driver's sound; driver | head side by side
    doc = json.loads(open(js).read())
    assert doc["fps"] == 10 and len(doc["frames"]) == len(frames) and doc["names"] == list(rig.names)
    rows = list(csv.reader(open(cs)))
    assert rows[0][:3] == ["frame", "time_s", "browDownLeft"] and rows[0][-3:] == ["headYaw", "headPitch", "headRoll"]
    assert len(rows) == len(frames) + 1
    with pytest.raises(InputError, match="no such file"):
        drive_from_video(rig, tmp_path / "missing.mp4", tmp_path / "out")


def test_animate_command_refuses_bad_input_before_any_work(tmp_path, capsys):
    from a3d.cli import main

    assert main(["animate", str(tmp_path / "me.jpg"), "-o", str(tmp_path / "out")]) == 2
    assert "give --preset NAME, --driver CLIP or --glb" in capsys.readouterr().err
    assert main(["animate", str(tmp_path / "me.jpg"), "--driver", str(tmp_path / "clip.mp4"), "-o",
                 str(tmp_path / "out")]) == 2
    assert "--driver: no such file" in capsys.readouterr().err
    assert main(["animate", str(tmp_path / "me.jpg"), "--preset", "smile", "--size", "255", "-o",
                 str(tmp_path / "out")]) == 2
    assert "even frame size" in capsys.readouterr().err


def test_blink_closes_the_eyes_of_a_reconstruction_without_lids(head):
    basis, sample, g, rig = head
    # a portrait's eyes are open: take the synthetic head's lids away, as a photo's reconstruction lacks them
    near = torch.cdist(g.means, rig.fit.vertices).argmin(1)
    lids = basis.regions[:, basis.region("eyelids")][near] > 0.5
    open_eyed = build_rig(g.index(~lids), basis, fit=rig.fit)
    assert open_eyed.num_lids > 0
    w = expression_tensor({"eyeBlinkLeft": 1.0, "eyeBlinkRight": 1.0}, open_eyed.names)
    cams = canonical_cameras(128)[0]
    eyes = basis.landmarks(rig.fit.vertices)[[basis.landmark_names.index("right_eye"),
                                              basis.landmark_names.index("left_eye")]]
    uv = _pixels(eyes, 128).round().long()
    closed, opened = (render(x.scene(0), cams, (1.0, 1.0, 1.0)).rgb[0] for x in
                      (open_eyed.deform(w), open_eyed.deform(None)))
    lid_colors = open_eyed.gaussians.colors[-open_eyed.num_lids:]
    lid = lid_colors.max(0).values  # the lids' skin (the lash line along their edge is darker)
    lash = (lid_colors.sum(-1) < 0.5 * lid.sum()).float().mean()
    assert 0.05 < lash < 0.5, float(lash)  # a dark line along the closed lids' edge, not the whole lid
    for u, v in uv.tolist():
        a, b = (img[v - 1:v + 2, u - 2:u + 3].reshape(-1, 3).mean(0) for img in (closed, opened))
        assert (a - b).abs().max() > 0.05, (a, b)  # the eye changed
        assert (a - lid).abs().max() < 0.1, (a, lid)  # to the lids' skin colour
    neutral = open_eyed.deform(None)
    assert (neutral.opacities[0, open_eyed.num_own:] == 0).all()  # open eyes: the lids' Gaussians do not show
