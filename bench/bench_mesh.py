"""Timing of mesh extraction (a3d.io.mesh.extract): a synthetic head's Gaussians -> a watertight coloured mesh.

    python bench/bench_mesh.py [--device cuda] [--gaussians 65536] [--resolution 256] [--faces 100000]

Prints one JSON line: the median wall-clock seconds (synchronised) of whole ``extract`` calls over
--repeats calls after --warmup calls, the stages of the last call (render, fuse, marching_cubes, decimate,
color), counts, and the quality check against the Gaussian renders from the canonical views (mask IoU,
colour PSNR; :func:`a3d.io.mesh.fidelity`, not timed). Rendering and fusion run on --device; marching cubes,
the repairs and decimation always run on the CPU.
"""
from __future__ import annotations

import argparse
import json
import os

import torch

from a3d.core import ops
from a3d.core.cameras import canonical_cameras
from a3d.io.mesh import extract, fidelity
from a3d.data.synth import SyntheticHeads
from timing import wall_ms  # noqa: E402  (bench/timing.py)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--gaussians", type=int, default=65_536)
    ap.add_argument("--resolution", type=int, default=256)
    ap.add_argument("--faces", type=int, default=100_000)
    ap.add_argument("--views", type=int, default=24)
    ap.add_argument("--seed", type=int, default=0, help="synthetic head stream seed")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    dev = torch.device(args.device)
    head = SyntheticHeads(dev, seed=args.seed, num_gaussians=args.gaussians).sample(1).gaussians.scene(0)
    last = {}

    def run():
        last["mesh"] = extract(head, resolution=args.resolution, faces=args.faces, views=args.views)

    ms = wall_ms(run, args.repeats, args.warmup, dev)
    mesh = last["mesh"]
    q = fidelity(mesh, head, canonical_cameras(256))
    print(json.dumps({
        "what": "extract", "device": str(dev), "backend": ops.backend(dev, "rasterize_fwd"),
        "threads": torch.get_num_threads(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "gaussians": args.gaussians, "resolution": args.resolution, "views": args.views,
        "median_s": round(ms / 1e3, 3), "stages_s_last": mesh.metadata["timings_s"],
        "marching_cubes_faces": mesh.metadata["marching_cubes_faces"], "faces": mesh.num_faces,
        "watertight": mesh.is_watertight(), "grid": mesh.metadata["grid"],
        "iou_min": round(min(q["iou"]), 4), "psnr_db": round(q["psnr_all"], 2),
        "psnr_min_view_db": round(min(q["psnr"]), 2),
    }), flush=True)


if __name__ == "__main__":
    main()
