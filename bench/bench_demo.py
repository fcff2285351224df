"""The demo's upload-to-video latency on the CPU: demo/app.py's Reconstruct handler on the bundled example,
end to end (preprocessing, the model, PLY and .splat export, the view grid, the turntable MP4), with given
turntable and grid settings; the figures behind demo/app.py's CPU_VIDEO and CPU_GRID (BENCHMARKS.md).

    python bench/bench_demo.py                                   # the app's current CPU settings
    python bench/bench_demo.py --frames 36 --size 256 --reps 3   # a candidate

Prints wall-clock and CPU time (this process and its ffmpeg) per run, and the per-stage times of the fastest
run. On a machine shared with other jobs the wall time is the noisy one; the CPU time bounds what an idle
machine takes (no thread ever waits for a core there). Uses the bundled weights; the renderer is whatever
a3d.core.ops.backend picks (printed).
"""
from __future__ import annotations

import argparse
import importlib.util
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def load_app():
    spec = importlib.util.spec_from_file_location("a3d_demo_app", REPO / "demo" / "app.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # gradio looks its component classes up by module
    spec.loader.exec_module(module)
    return module


def _children_cpu() -> float:
    """CPU seconds of finished child processes (the ffmpeg that encodes the turntable)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--frames", type=int, default=None, help="turntable frames (default: the app's CPU setting)")
    p.add_argument("--fps", type=int, default=None)
    p.add_argument("--size", type=int, default=None, help="turntable frame size")
    p.add_argument("--grid-views", type=int, default=None)
    p.add_argument("--grid-size", type=int, default=None)
    p.add_argument("--reps", type=int, default=3)
    args = p.parse_args()

    app = load_app()
    from a3d.core import ops

    video = dict(app.CPU_VIDEO)
    grid = dict(app.CPU_GRID)
    for key, value in (("frames", args.frames), ("fps", args.fps), ("size", args.size)):
        if value is not None:
            video[key] = value
    for key, value in (("views", args.grid_views), ("size", args.grid_size)):
        if value is not None:
            grid[key] = value
    app.CPU_VIDEO, app.CPU_GRID = video, grid
    device = torch.device("cpu")
    slot = app.ModelSlot(device, random_init=False)
    if slot.status != "trained":
        raise SystemExit(f"bench_demo: needs the bundled weights ({slot.error})")
    run = app.make_handler(slot)
    upload = {"path": str(app.EXAMPLES[0]), "orig_name": app.EXAMPLES[0].name}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, renderer: {app.renderer(device)} "
          f"({ops.info()['extension_path']})")
    print(f"turntable {video}, grid {grid}")
    run(upload, 1, 10.0, progress=lambda *a, **k: None)  # warm-up: model, MediaPipe and ffmpeg loaded once
    walls, cpus, best = [], [], None
    for i in range(args.reps):
        t0, c0, k0 = time.perf_counter(), time.process_time(), _children_cpu()
        outputs = run(upload, 1, 10.0, progress=lambda *a, **k: None)
        wall, cpu, kids = time.perf_counter() - t0, time.process_time() - c0, _children_cpu() - k0
        walls.append(wall)
        cpus.append(cpu + kids)
        print(f"run {i + 1}: {wall:.2f} s wall, {cpu + kids:.2f} s CPU ({cpu:.2f} s this process, {kids:.2f} s "
              f"ffmpeg; {(cpu + kids) / wall:.2f} cores): " + ", ".join(f"{k} {v:.1f}" for k, v in outputs[-2]))
        if best is None or wall < best[0]:
            best = (wall, outputs[-2])  # the timings table
    print(f"wall: median {statistics.median(walls):.2f} s, best {min(walls):.2f} s; CPU time: median "
          f"{statistics.median(cpus):.2f} s (an idle 2-core machine takes at most this long); stages of the best run:")
    for stage, seconds in best[1]:
        print(f"  {stage}: {seconds:.2f} s")


if __name__ == "__main__":
    main()
