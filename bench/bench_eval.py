"""Timing of the evaluation tools: the identity embedding of one 150² crop (the PyTorch port of dlib's
ResNet) and `a3d eval --synthetic` on the held-out set (16 heads × 16 views, bundled tiny model).

    python bench/bench_eval.py                 # both, on CUDA if available
    python bench/bench_eval.py --device cpu --skip-synthetic

Prints wall time and, for the synthetic run, the process CPU time too (on a shared machine the wall
clock also counts other jobs' turns).
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import device_ms, wall_ms  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--skip-synthetic", action="store_true")
    ap.add_argument("--weights", help="dlib_face_recognition_resnet_model_v1.dat (default: the installed package's)")
    args = ap.parse_args()
    dev = torch.device(args.device)

    from a3d.perception.identity import FaceEmbedder

    t0 = time.perf_counter()
    emb = FaceEmbedder(args.weights).to(dev)
    load_s = time.perf_counter() - t0
    crop = torch.rand(1, 3, 150, 150, device=dev)
    with torch.no_grad():
        one = device_ms(lambda: emb(crop), args.reps, device=dev)
        batch = device_ms(lambda: emb(crop.expand(16, -1, -1, -1)), max(3, args.reps // 4), device=dev)
        c0 = time.process_time()
        for _ in range(args.reps):
            emb(crop)
        cpu_ms = (time.process_time() - c0) / args.reps * 1e3  # this process's CPU time, all its threads
    crop.requires_grad_(True)
    fwd_bwd = wall_ms(lambda: emb(crop).sum().backward(), max(3, args.reps // 4), device=dev)
    print(f"identity embedding on {dev} ({torch.get_num_threads()} threads): weights read in {load_s:.2f} s; "
          f"one 150² crop {one:.1f} ms (process CPU {cpu_ms:.1f} ms); 16 crops {batch:.1f} ms; "
          f"one crop forward+backward {fwd_bwd:.1f} ms")

    if not args.skip_synthetic:
        from a3d.eval.evaluate import run_eval

        with tempfile.TemporaryDirectory() as out:
            w0, c0 = time.perf_counter(), time.process_time()
            rep = run_eval(out, synthetic=True, device=str(dev), progress=False)
            wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        a = rep["synthetic"]["all"]
        print(f"a3d eval --synthetic on {dev}: {wall:.1f} s wall, {cpu:.1f} s process CPU "
              f"(PSNR {a['psnr']:.2f}, SSIM {a['ssim']:.3f}, LPIPS {a['lpips']:.3f})")


if __name__ == "__main__":
    main()
