"""Timing of the synthetic head generator (a3d.data.synth): building heads and rendering their views.

    python bench/bench_synth.py [--device cuda] [--batch 8 64] [--gaussians 60000] [--size 256] [--views 8]

Prints one JSON line per measurement: median wall-clock milliseconds (synchronised) over --repeats
calls after --warmup calls, heads a second for building, the rasterizer backend that ran for
rendering, and on a CUDA device the peak memory of the largest batch. Every call builds new heads
(the next ids of the stream), as training with a fresh head per sample does.
"""
from __future__ import annotations

import argparse
import json

import torch

from a3d.core import ops
from a3d.data.synth import SyntheticHeads, render_views
from timing import wall_ms  # noqa: E402  (bench/timing.py)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, nargs="+", default=[8], help="batch sizes to time (heads a call)")
    ap.add_argument("--gaussians", type=int, default=200_000)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--views", type=int, default=8, help="views rendered of every head (0: skip rendering)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    dev = torch.device(args.device)
    gen = SyntheticHeads(dev, seed=0, num_gaussians=args.gaussians, image_size=args.size)
    for batch in args.batch:
        ms = wall_ms(lambda: gen.sample(batch), args.repeats, args.warmup, dev)
        print(json.dumps({"what": "sample", "device": str(dev), "batch": batch, "gaussians": args.gaussians,
                          "ms": round(ms, 2), "ms_per_head": round(ms / batch, 3),
                          "heads_per_s": round(1e3 * batch / ms, 1)}), flush=True)
    if args.views:
        sample = gen.sample(args.batch[-1])
        views = list(range(16, 16 + args.views)) if args.views <= 64 else list(range(min(args.views, 80)))
        ms = wall_ms(lambda: render_views(sample, views), args.repeats, args.warmup, dev)
        print(json.dumps({"what": "render", "device": str(dev), "backend": ops.backend(dev, "rasterize_fwd"),
                          "batch": args.batch[-1], "views": args.views, "size": args.size,
                          "gaussians": args.gaussians, "ms": round(ms, 2)}), flush=True)
    if dev.type == "cuda":
        print(json.dumps({"what": "peak_memory_gib", "value": round(torch.cuda.max_memory_allocated() / 2**30, 2),
                          "gpu": torch.cuda.get_device_name()}), flush=True)


if __name__ == "__main__":
    main()
