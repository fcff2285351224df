"""Animated clips of a rigged head, and the ``a3d animate`` command.

* a preset (:data:`a3d.animation.drive.PRESETS`) over a slow orbit: the camera swings ±``sweep``
  degrees around the front while the expression rises, holds and falls;
* a driving video (:mod:`a3d.animation.driver`): the head with the driver's expression and head pose
  per frame, rendered from the front canonical camera, beside the driver's own frame; the driver's
  audio is copied into the MP4, and the weights are written as JSON and CSV under ARKit's names.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from ..core import framing
from ..core.cameras import orbit_cameras
from ..core.rendering import render, to_uint8
from ..errors import InputError, check_int, check_number
from .drive import Rig, preset_weights

__all__ = ["preset_frames", "driven_frames", "write_weights", "cmd_animate"]


@torch.no_grad()
def preset_frames(rig: Rig, preset: str, frames: int = 90, size: int = 256, sweep: float = 30.0,
                  elevation: float = 5.0, batch: int = 4) -> Iterator[np.ndarray]:
    """Yield ``frames`` [size, size, 3] uint8 images of ``preset`` over an orbit swinging ±``sweep`` degrees."""
    check_int(frames, "frames", 1, 10_000)
    check_int(size, "size", 16, 4096)
    check_number(sweep, "sweep", 0.0, 180.0)
    w = preset_weights(preset, frames, rig.names).to(rig.gaussians.device)
    t = torch.arange(frames, dtype=torch.float64) / max(frames, 1)
    az = (sweep * torch.sin(2 * math.pi * t)).tolist()
    for s in range(0, frames, batch):
        moved = rig.deform(w[s:s + batch])
        for i in range(moved.means.shape[0]):
            cam = orbit_cameras(1, elevation=elevation, size=size, azimuths=[az[s + i]]).to(rig.gaussians.device)
            yield to_uint8(render(moved.scene(i), cam, framing.BACKGROUND).rgb[0])


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


def cmd_animate(args: argparse.Namespace) -> int:
    """``a3d animate PHOTO (--preset NAME | --driver CLIP) [--glb] -o OUT``: reconstruct, rig, animate, write."""
    from tqdm.auto import tqdm

    from ..api import reconstruct
    from ..io.video import encode_frames

    if args.preset is None and args.driver is None and not args.glb:
        raise InputError("give --preset NAME, --driver CLIP or --glb")
    check_int(args.size, "--size", 16, 2048)
    if args.size % 2:
        raise InputError(f"--size: an MP4 needs an even frame size, got {args.size}")
    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise InputError(f"-o/--output: {out} is a file; expected a folder (it is created if missing)")
    out.mkdir(parents=True, exist_ok=True)
    avatar = reconstruct(args.photo, args.model, seed=args.seed, device=args.device,
                         refine=True if args.refine == -1 else args.refine)
    rig = avatar.rig()
    print(f"rig: {rig.seconds:.2f} s (fit {rig.fit.report['seconds']:.2f} s, {rig.num_mouth:,} mouth Gaussians)")
    if args.glb:
        from .gltf import save_arkit_glb

        print(f"wrote {save_arkit_glb(rig, out / 'head_arkit.glb')}")
    if args.preset is not None:
        check_int(args.frames, "--frames", 1, 10_000)
        path = out / f"{args.preset}.mp4"
        with tqdm(total=args.frames, desc="animate", unit="frame") as bar:
            def frames():
                for img in preset_frames(rig, args.preset, args.frames, args.size):
                    yield img
                    bar.update(1)

            encode_frames(frames(), path, fps=args.fps)
        print(f"wrote {path}")
        return 0
    if args.driver is None:
        return 0
    from .driver import drive_from_video

    written = drive_from_video(rig, args.driver, out, size=args.size, progress=True)
    print("wrote " + ", ".join(written))
    return 0
