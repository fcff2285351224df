"""Where a3d.inference.preprocess's turned-face estimate comes from: ``_NOSE_OVER_EYES`` and its accuracy.

    python scripts/turn_calibration.py [--heads 12] [--seed 77]      # needs ai-edge-litert (a3d[preprocess])

Synthetic heads (a3d.data.synth) are turned by known yaws and framed again by their faces
(a3d.data.augment.turn_heads), rendered from the front camera at 256² and run through the face detector. For a
turn θ the eyes' distance shrinks as cos θ and the nose tip moves sideways as sin θ, so the nose tip's
offset from the eyes' midpoint over the eyes' distance is r = c · tan θ. Printed per yaw: how many faces
were found, r's mean and spread, the c that the mean gives, and the estimate ``Face.yaw_deg`` with the
bundled c (mean and spread over the heads).
"""
import argparse
import math

import numpy as np
import torch

from a3d.core import framing
from a3d.data.augment import turn_heads
from a3d.core.cameras import canonical_cameras
from a3d.inference.faces import _NOSE_OVER_EYES, detect_face
from a3d.core.rendering import render
from a3d.data.synth import SyntheticHeads


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--seed", type=int, default=77)
    args = ap.parse_args()
    S = 256
    heads = SyntheticHeads("cpu", seed=args.seed, num_gaussians=60_000, image_size=S).sample(args.heads).gaussians
    front = canonical_cameras(S)[0:1]
    print(f"bundled c = {_NOSE_OVER_EYES}")
    print(f"{'yaw':>5s} {'found':>5s} {'r mean':>7s} {'r sd':>6s} {'c':>6s} {'est. mean':>9s} {'est. sd':>7s}")
    for yaw in (-45, -30, -20, -10, 0, 10, 20, 30, 45):
        with torch.no_grad():
            imgs = render(turn_heads(heads, front, float(yaw)), front, framing.BACKGROUND).rgb[:, 0].clamp(0, 1)
        faces = [detect_face(im.contiguous().numpy()) for im in imgs]
        faces = [f for f in faces if f is not None]
        r = np.array([(f.keypoints[2, 0] - f.keypoints[:2, 0].mean()) / np.linalg.norm(f.keypoints[1] - f.keypoints[0])
                      for f in faces])
        est = np.array([f.yaw_deg for f in faces])
        c = r.mean() / math.tan(math.radians(yaw)) if yaw else float("nan")
        print(f"{yaw:5d} {len(faces):5d} {r.mean():7.3f} {r.std():6.3f} {c:6.3f} {est.mean():9.1f} {est.std():7.1f}")


if __name__ == "__main__":
    main()
