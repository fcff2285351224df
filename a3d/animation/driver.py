"""Expressions and head pose from a talking video: MediaPipe's face mesh per frame, the morphable head fitted to it.

Per frame, :func:`a3d.animation.face_mesh.track` reads the driver's 468 face-mesh points. :func:`fit_clip`
then fits, for the whole clip at once, the morphable head's identity (one for the clip), and per frame its
52 ARKit weights (in [0, 1]), rotation, scale and translation, so that the head's points
(:func:`a3d.animation.face_mesh.load_face_mesh_map`) projected orthographically (the face is small against
its distance to the camera) land on the driver's points, depth included at a lower weight. A least-squares
fit with Adam; temporal smoothing is part of it: the differences of weights and pose between neighbouring
frames are penalised, so jitter of the landmarks does not become jitter of the face. Frames without a face
take their neighbours' values. Actions that the face mesh cannot see (the eyes' gaze, the tongue) stay 0.

Blinks come from the frames' pixels when the frames are given (:func:`eye_closure`): the face mesh's lid points
follow a closing lid only a little of the way, but a closed eye has none of an open eye's dark pixels (pupil,
iris, lashes' shadow) inside its outline.

:func:`drive_from_video` runs it all for ``a3d animate --driver``: the rigged head with the driver's weights
and pose, rendered from the front camera beside the driver's frame (cropped to the face), with the driver's
audio, and the weights as JSON and CSV.
"""
from __future__ import annotations

import csv
import json
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch import Tensor

from ..core import framing
from ..core.cameras import orbit_cameras
from ..core.rendering import render, to_uint8
from ..data.head_basis import HeadBasis
from ..errors import InputError
from .drive import Rig
from .eyelids import BLINKS
from .face_mesh import MESH_POINTS, FaceMesh, load_face_mesh_map, track
from .pose import axis_angle_matrix, pose_from_matrix

__all__ = ["ClipFit", "fit_clip", "eye_closure", "relative_closure", "blink_weights", "read_video", "drive_from_video",
           "driven_frames", "write_weights", "UNSEEN_ACTIONS", "MAX_FRAMES"]

UNSEEN_ACTIONS = ("eyeLookDownLeft", "eyeLookDownRight", "eyeLookInLeft", "eyeLookInRight", "eyeLookOutLeft",
                  "eyeLookOutRight", "eyeLookUpLeft", "eyeLookUpRight", "tongueOut")
"""Actions the 468-point face mesh does not show (it has no irises, nothing inside the mouth): kept at 0."""
MAX_FRAMES = 3600
"""The longest driver read: two minutes at 30 frames/s."""
MAX_SIDE = 4096
_DEPTH_WEIGHT = 0.3  # MediaPipe's depth is less certain than its image positions
EYE_OUTLINES = ((33, 246, 161, 160, 159, 158, 157, 173, 133, 155, 154, 153, 145, 144, 163, 7),
                (263, 466, 388, 387, 386, 385, 384, 398, 362, 382, 381, 380, 374, 373, 390, 249))
"""The face mesh's outline of each eye (the subject's right, then left: the order of
:data:`a3d.animation.eyelids.BLINKS`), in order around the eye."""
EYE_CLOSED = (0.2, 0.6)
"""How closed an eye reads (:func:`relative_closure`: 0 for the clip's usual open eye, 1 for skin-bright) where its
blink weight starts to rise above 0 and where it reaches 1. On the synthetic clips of seeds 11-13
(:func:`a3d.animation.synthetic.eye_closure_levels`), 95% of the open-eyed frames read below 0.14 and every
closed-eyed frame above 0.66."""
_FEATURE_WEIGHT = 3.0  # lips and eyelids carry the expression


@dataclass
class ClipFit:
    """What :func:`fit_clip` found for F frames.

    Attributes:
        weights: [F, 52] ARKit weights in [0, 1] (the basis's order).
        poses: [F, 3] head (yaw, pitch, roll) in degrees (:mod:`a3d.animation.pose`).
        identity: [K] the driver's identity coefficients.
        found: [F] bool, frames where a face was read.
        report: residual (in eye distances) and seconds.
    """

    weights: Tensor
    poses: Tensor
    identity: Tensor
    found: Tensor
    report: dict = field(default_factory=dict)


def _point_weights(spread: Tensor) -> Tensor:
    """[468] weights: points well pinned to the head (small spread) weigh more, lips and eyelids more still."""
    w = 1 / (1 + (spread / 0.02) ** 2)
    feature = [i for k in ("lips_inner", "mouth_corners", "right_eye_lids", "left_eye_lids") for i in MESH_POINTS[k]]
    w[feature] *= _FEATURE_WEIGHT
    return w


def fit_clip(meshes: list[FaceMesh | None], basis: HeadBasis, *, steps: int = 300, smooth: float = 0.1,
             sparsity: float = 0.003, identity_prior: float = 0.1, pose_prior: float = 1.0,
             frames: list[np.ndarray] | None = None) -> ClipFit:
    """Fit weights and head pose to the face meshes of F frames (see the module docstring).

    Args:
        meshes: per frame, a :class:`a3d.animation.face_mesh.FaceMesh` or None (no face).
        basis: the morphable head.
        steps: Adam steps over the whole clip.
        smooth: weight of the squared differences between neighbouring frames (weights and pose).
        sparsity: weight of the sum of the weights (prefers few actions where several explain the same motion).
        identity_prior: weight of the identity coefficients' mean square.
        pose_prior: weight of the squared rotation angle (radians²): pulls an uncertain pose toward facing the camera.
        frames: the F frames ([H, W, 3] uint8) the meshes were read in: the blinks are then read from their
            pixels (:func:`blink_weights`) instead of fitted to the lid points.
    Raises:
        InputError when no frame has a face.
    """
    start = time.perf_counter()
    F_ = len(meshes)
    found = torch.tensor([m is not None for m in meshes])
    if not bool(found.any()):
        raise InputError("driver: no face was found in any frame")
    basis = basis.to("cpu")  # a small problem: the CPU fits it as fast as a GPU would
    tri, bary, spread, rest = load_face_mesh_map()
    idx = basis.faces[tri]  # [468, 3]

    def on_points(x: Tensor) -> Tensor:  # [..., V, 3] -> [..., 468, 3]
        return (x[..., idx, :] * bary[:, :, None]).sum(-2)

    mean_pts = on_points(basis.mean)  # [468, 3]
    shape_pts = on_points(basis.shape_basis)  # [K, 468, 3]
    expr_pts = on_points(basis.expr_basis)  # [E, 468, 3]
    # observed points, frames without a face filled from the nearest frame with one
    have = torch.nonzero(found)[:, 0]
    nearest = have[(torch.arange(F_)[:, None] - have[None]).abs().argmin(1)]
    obs = torch.tensor(np.stack([meshes[int(i)].points for i in nearest]), dtype=torch.float32)  # [F, 468, 3]
    corners = MESH_POINTS["eye_corners"]
    unit = (obs[:, corners[0], :2] - obs[:, corners[1], :2]).norm(dim=-1).clamp_min(1.0)  # [F] eye distance, px
    model_eyes = float((mean_pts[corners[0]] - mean_pts[corners[1]]).norm())
    centre = obs.mean(1)  # [F, 3]
    pw = _point_weights(spread)
    unseen = UNSEEN_ACTIONS + (BLINKS if frames is not None else ())
    seen = torch.tensor([n not in unseen for n in basis.expressions], dtype=torch.float32)
    K, E = shape_pts.shape[0], expr_pts.shape[0]
    identity = torch.zeros(K, requires_grad=True)
    w = torch.zeros(F_, E, requires_grad=True)
    rotvec = torch.zeros(F_, 3, requires_grad=True)
    log_s = torch.log(unit / model_eyes).clone().requires_grad_(True)
    shift = torch.zeros(F_, 3, requires_grad=True)
    opt = torch.optim.Adam([{"params": [identity], "lr": 0.05}, {"params": [w], "lr": 0.03},
                            {"params": [rotvec], "lr": 0.02}, {"params": [log_s], "lr": 0.01},
                            {"params": [shift], "lr": 0.02}])
    flip = torch.tensor([1.0, -1.0, -1.0])  # world (x right, y up, z toward the camera) -> (u, v, MediaPipe depth)

    def predict() -> Tensor:
        pts = mean_pts + torch.einsum("k,kpc->pc", identity, shape_pts) \
            + torch.einsum("fe,epc->fpc", w * seen, expr_pts)
        rot = pts @ axis_angle_matrix(rotvec).transpose(-1, -2)
        return log_s.exp()[:, None, None] * (rot - rot.mean(1, keepdim=True)) * flip + centre[:, None] + \
            shift[:, None] * unit[:, None, None]

    def data_term(pred: Tensor) -> Tensor:
        r = (pred - obs) / unit[:, None, None]
        r2 = r[..., 0] ** 2 + r[..., 1] ** 2 + _DEPTH_WEIGHT * r[..., 2] ** 2
        return (r2 * pw).sum(1).mean() / pw.sum() * 100

    for _ in range(steps):
        pred = predict()
        loss = data_term(pred) + sparsity * (w * seen).sum(1).mean() + identity_prior * (identity ** 2).mean() \
            + pose_prior * (rotvec ** 2).sum(1).mean()
        if F_ > 1:
            loss = loss + smooth * ((w[1:] - w[:-1]) ** 2).sum(1).mean() \
                + smooth * ((rotvec[1:] - rotvec[:-1]) ** 2).sum(1).mean() * 10
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            w.clamp_(0, 1)
    with torch.no_grad():
        pred = predict()
        resid = ((pred - obs)[..., :2].norm(dim=-1) / unit[:, None]).mean()
        poses = pose_from_matrix(rest.T @ axis_angle_matrix(rotvec))  # relative to facing the camera
        report = {"frames": F_, "frames_with_face": int(found.sum()),
                  "mean_residual_eye_distances": round(float(resid), 4),
                  "seconds": round(time.perf_counter() - start, 3)}
        weights = (w * seen).detach()
        if frames is not None:
            blinks = blink_weights(frames, meshes)[nearest]
            weights[:, [basis.expressions.index(n) for n in BLINKS]] = blinks
        return ClipFit(weights, poses, identity.detach(), found, report)


def eye_closure(frame: np.ndarray, mesh: FaceMesh) -> np.ndarray:
    """[2] how bright the darkest fifth of each eye's pixels (inside its face-mesh outline) is against the median
    of the skin around it (the outline scaled 2×, the eye left out): low for an open eye (pupil, iris, lashes),
    about 1 for a closed one. The subject's right eye first."""
    from PIL import Image, ImageDraw

    grey = np.asarray(frame[..., :3], dtype=np.float32).mean(-1)
    h, w = grey.shape
    out = np.full(2, np.nan)
    for k, ring in enumerate(EYE_OUTLINES):
        poly = mesh.points[list(ring), :2]
        centre = poly.mean(0)
        masks = []
        for p in (poly, centre + 2 * (poly - centre)):
            m = Image.new("L", (w, h))
            ImageDraw.Draw(m).polygon([tuple(map(float, q)) for q in p], fill=1)
            masks.append(np.asarray(m, dtype=bool))
        eye, around = masks[0], masks[1] & ~masks[0]
        if eye.sum() >= 4 and around.sum() >= 4:
            out[k] = np.percentile(grey[eye], 20) / max(float(np.median(grey[around])), 1.0)
    return out


def relative_closure(frames: list[np.ndarray], meshes: list[FaceMesh | None]) -> np.ndarray:
    """[F, 2] :func:`eye_closure` relative to the clip's own open eye (its median over the clip: eyes are open
    most of the time): 0 at the median, 1 at skin brightness; NaN for frames without a face."""
    raw = np.array([eye_closure(f, m) if m is not None else [np.nan, np.nan] for f, m in zip(frames, meshes)])
    usual = np.nanmedian(raw, 0) if np.isfinite(raw).any() else np.zeros(2)
    return (raw - usual) / np.maximum(1 - usual, 0.05)


def blink_weights(frames: list[np.ndarray], meshes: list[FaceMesh | None]) -> Tensor:
    """[F, 2] blink weights (the subject's right eye, then left) from the frames' pixels: :func:`relative_closure`
    mapped to weights by :data:`EYE_CLOSED`. Frames without a face read 0."""
    rel = relative_closure(frames, meshes)
    lo, hi = EYE_CLOSED
    return torch.as_tensor(np.nan_to_num((rel - lo) / (hi - lo), nan=0.0).clip(0, 1), dtype=torch.float32)


@torch.no_grad()
def driven_frames(rig: Rig, weights: torch.Tensor, poses: torch.Tensor, size: int = 256,
                  batch: int = 4) -> Iterator[np.ndarray]:
    """Yield the head rendered from the front canonical camera with [F, 52] ``weights`` and [F, 3] head
    ``poses`` (yaw, pitch, roll degrees), [size, size, 3] uint8 each."""
    cam = orbit_cameras(1, size=size, azimuths=[0.0]).to(rig.gaussians.device)
    for s in range(0, len(weights), batch):
        moved = rig.deform(weights[s:s + batch], poses[s:s + batch])
        out = render(moved, cam, framing.BACKGROUND).rgb[:, 0]
        yield from to_uint8(out)


def write_weights(folder: str | os.PathLike, names: tuple[str, ...], weights: torch.Tensor, poses: torch.Tensor,
                  fps: float) -> tuple[str, str]:
    """Write per-frame ARKit weights and head poses as ``weights.json`` and ``weights.csv`` (columns: frame,
    time_s, the 52 ARKit names, headYaw, headPitch, headRoll in degrees); returns both paths."""
    folder = Path(folder)
    w, p = weights.detach().cpu().numpy(), poses.detach().cpu().numpy()
    frames = [{"frame": i, "time_s": round(i / fps, 4),
               "blendshapes": {n: round(float(v), 4) for n, v in zip(names, w[i])},
               "head_pose_deg": {"yaw": round(float(p[i, 0]), 3), "pitch": round(float(p[i, 1]), 3),
                                 "roll": round(float(p[i, 2]), 3)}} for i in range(len(w))]
    js = folder / "weights.json"
    js.write_text(json.dumps({"fps": fps, "names": list(names), "convention": "ARKit blendshape weights in "
                              "[0, 1]; head pose in degrees: yaw + turns the face to the subject's left, pitch + "
                              "nods down, roll + tilts toward the subject's left shoulder", "frames": frames}))
    cs = folder / "weights.csv"
    with open(cs, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["frame", "time_s", *names, "headYaw", "headPitch", "headRoll"])
        for i in range(len(w)):
            out.writerow([i, f"{i / fps:.4f}", *(f"{v:.4f}" for v in w[i]), *(f"{v:.3f}" for v in p[i])])
    return str(js), str(cs)


def read_video(path: str | os.PathLike, max_frames: int = MAX_FRAMES) -> tuple[list[np.ndarray], float]:
    """Frames ([H, W, 3] uint8) and frames per second of a video file (at most ``max_frames``; each side at
    most 4096 pixels). Raises InputError for a missing or unreadable file."""
    import imageio.v2 as imageio

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InputError(f"driver: no such file: {path}")
    try:
        reader = imageio.get_reader(path, format="FFMPEG")
    except Exception as e:  # imageio raises several kinds for files that are not videos
        raise InputError(f"driver: {path} is not a readable video ({type(e).__name__}: {e})") from None
    try:
        fps = float(reader.get_meta_data().get("fps") or 30.0)
        frames = []
        for frame in reader:
            if max(frame.shape[:2]) > MAX_SIDE:
                raise InputError(f"driver: frames of {frame.shape[1]}×{frame.shape[0]} exceed {MAX_SIDE} pixels a side")
            frames.append(np.ascontiguousarray(frame[..., :3]))
            if len(frames) >= max_frames:
                break
    finally:
        reader.close()
    if not frames:
        raise InputError(f"driver: {path} has no frames")
    return frames, fps


def _face_crop(frame: np.ndarray, mesh: FaceMesh | None, size: int, last: tuple | None) -> tuple[np.ndarray, tuple]:
    """The driver's frame cropped square around its face (as the avatar is framed) and resized to size²."""
    from PIL import Image

    if mesh is not None:
        p = mesh.points[:, :2]
        lo, hi = p.min(0), p.max(0)
        cu, cv, side = (lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2 + 0.1 * (hi[1] - lo[1]), 1.9 * max(hi - lo)
        box = (cu - side / 2, cv - side / 2, cu + side / 2, cv + side / 2)
    else:
        h, w = frame.shape[:2]
        box = last or ((w - min(h, w)) / 2, (h - min(h, w)) / 2, (w + min(h, w)) / 2, (h + min(h, w)) / 2)
    img = Image.fromarray(frame).transform((size, size), Image.Transform.EXTENT, box, Image.Resampling.BILINEAR,
                                           fillcolor=(255, 255, 255))
    return np.asarray(img), box


def _mux_audio(video: str, driver: str, out: str) -> bool:
    """Copy the driver's audio (if it has any) into ``video``, written as ``out``; False when there is none."""
    import imageio_ffmpeg

    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-i", video, "-i", driver, "-map", "0:v",
           "-map", "1:a:0?", "-c:v", "copy", "-c:a", "aac", "-shortest", "-movflags", "+faststart", out]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise InputError(f"driver: could not copy the audio of {driver}: {done.stderr.strip()[-300:]}")
    probe = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-i", out], capture_output=True, text=True)
    return "Audio:" in probe.stderr


def drive_from_video(rig, driver: str | os.PathLike, out: str | os.PathLike, *, size: int = 256,
                     progress: bool = True, max_frames: int = MAX_FRAMES) -> list[str]:
    """Animate ``rig`` (:class:`a3d.animation.drive.Rig`) with the face of the video ``driver`` (its first
    ``max_frames`` frames); write into the folder ``out``: ``driven.mp4`` (the driver's face | the head, with
    the driver's audio), ``weights.json`` and ``weights.csv``. Returns the paths written."""
    from tqdm.auto import tqdm

    from ..io.video import encode_frames

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    frames, fps = read_video(driver, max_frames)
    meshes = track(frames, progress=progress, total=len(frames))
    clip = fit_clip(meshes, rig.basis, frames=frames)
    dev = rig.gaussians.device
    rendered = driven_frames(rig, clip.weights.to(dev), clip.poses.to(dev), size=size)
    silent = out / "driven.silent.mp4"
    with tqdm(total=len(frames), desc="render", unit="frame", disable=not progress) as bar:
        def pairs():
            box = None
            for frame, mesh, head in zip(frames, meshes, rendered):
                crop, box = _face_crop(frame, mesh, size, box)
                yield np.concatenate([crop, head], 1)
                bar.update(1)

        encode_frames(pairs(), silent, fps=int(round(fps)))
    final = out / "driven.mp4"
    try:
        _mux_audio(str(silent), os.fspath(driver), str(final))
    finally:
        silent.unlink(missing_ok=True)
    js, cs = write_weights(out, rig.names, clip.weights, clip.poses, fps)
    return [str(final), js, cs]
