"""Animated clips of a rigged head, and the ``a3d animate`` command.

* a preset (:data:`a3d.animation.drive.PRESETS`) over a slow orbit: the camera swings ±``sweep``
  degrees around the front while the expression rises, holds and falls;
* a driving video: :func:`a3d.animation.driver.drive_from_video` (the head beside the driver, with its
  audio, and the weights as JSON and CSV);
* with ``--glb``, the head's mesh with the ARKit morph targets (:mod:`a3d.animation.gltf`).
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from ..core import framing
from ..core.cameras import orbit_cameras
from ..core.rendering import render, to_uint8
from .. import limits
from ..errors import InputError, check_number
from .drive import Rig, preset_weights

__all__ = ["preset_frames", "cmd_animate"]


@torch.no_grad()
def preset_frames(rig: Rig, preset: str, frames: int = 90, size: int = 256, sweep: float = 30.0,
                  elevation: float = 5.0, batch: int = 4) -> Iterator[np.ndarray]:
    """Yield ``frames`` [size, size, 3] uint8 images of ``preset`` over an orbit swinging ±``sweep`` degrees."""
    limits.check("video_frames", frames, "frames")
    limits.check("video_size", size, "size")
    check_number(sweep, "sweep", 0.0, 180.0)
    w = preset_weights(preset, frames, rig.names).to(rig.gaussians.device)
    t = torch.arange(frames, dtype=torch.float64) / max(frames, 1)
    az = (sweep * torch.sin(2 * math.pi * t)).tolist()
    for s in range(0, frames, batch):
        moved = rig.deform(w[s:s + batch])
        for i in range(moved.means.shape[0]):
            cam = orbit_cameras(1, elevation=elevation, size=size, azimuths=[az[s + i]]).to(rig.gaussians.device)
            yield to_uint8(render(moved.scene(i), cam, framing.BACKGROUND).rgb[0])


def cmd_animate(args: argparse.Namespace) -> int:
    """``a3d animate PHOTO (--preset NAME | --driver CLIP) [--glb] -o OUT``: reconstruct, rig, animate, write."""
    from tqdm.auto import tqdm

    from ..api import reconstruct
    from ..io.video import encode_frames

    if args.preset is None and args.driver is None and not args.glb:
        raise InputError("give --preset NAME, --driver CLIP or --glb")
    if args.driver is not None and not Path(args.driver).is_file():  # before the reconstruction, not after
        raise InputError(f"--driver: no such file: {args.driver}")
    if args.size % 2:
        raise InputError(f"--size: an MP4 needs an even frame size, got {args.size}")
    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise InputError(f"-o/--output: {out} is a file; expected a folder (it is created if missing)")
    out.mkdir(parents=True, exist_ok=True)
    avatar = reconstruct(args.photo, args.model, seed=args.seed, device=args.device, refine=args.refine)
    rig = avatar.rig()
    print(f"rig: {rig.seconds:.2f} s (fit {rig.fit.report['seconds']:.2f} s; {rig.num_mouth:,} mouth and "
          f"{rig.num_lids:,} lid Gaussians)")
    if args.glb:
        from .gltf import save_arkit_glb

        print(f"wrote {save_arkit_glb(rig, out / 'head_arkit.glb')}")
    if args.preset is not None:
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
