"""Time a3d.reconstruct(): the network alone, the whole call, and preprocessing, per preset.

    python bench/bench_reconstruct.py                       # tiny and paper on CUDA (tiny only on CPU)
    python bench/bench_reconstruct.py --presets tiny --device cpu
    python bench/bench_reconstruct.py --compile             # also time torch.compile (GPU)
    python bench/bench_reconstruct.py --presets tiny --overrides '{"depth": 12}' --device cpu   # a candidate
    python bench/bench_reconstruct.py --presets tiny --models runs/mine/export   # trained weights beside it

Preset weights are random; --models times model folders with their trained weights in the same
process (the given views' colour fit renders Gaussians whose sizes depend on the weights).
"network" is one A3DModel.one_step call
(bf16 autocast on CUDA, float32 on CPU), timed with CUDA events (GPU) or perf_counter (CPU);
"reconstruct" is the whole a3d.reconstruct(image, preprocess=False) call from a numpy image (noise,
transfers, the network, splitting into an Avatar); "preprocess" is face detection + framing +
matting of a real portrait (CPU work, reported apart). Median over --iters runs after --warmup.
Prints a markdown table for BENCHMARKS.md and writes JSON with --json.
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import a3d  # noqa: E402
from a3d.model.config import get_config
from a3d.model.network import A3DModel
from a3d.inference.preprocess import has_face_models, preprocess  # noqa: E402
from timing import device_ms, wall_ms  # noqa: E402  (bench/timing.py)

PORTRAIT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "astronaut_256.jpg"


def bench_preset(name: str, device: torch.device, iters: int, warmup: int, compile_: bool,
                 profile: bool = False, overrides: dict | None = None, matte: bool = False,
                 folder: str | None = None) -> dict:
    """One row: the preset ``name`` with random weights, or the model folder ``folder`` (then ``name`` is its
    label and ``overrides`` are not applied)."""
    if folder is not None:
        model = a3d.load_model(folder, device=device).eval().requires_grad_(False)
        cfg, overrides = model.config, None
    else:
        cfg = get_config(name, **(overrides or {}))
        with torch.device(device):
            model = A3DModel(cfg).eval().requires_grad_(False)
    S = cfg.image_size
    image = torch.rand(1, 3, S, S, device=device)
    g0 = model.noise(1, torch.Generator().manual_seed(0))
    use_bf16 = device.type == "cuda"

    def network(m=model):
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
            return m.one_step(image, g0)

    label = name + (f" {json.dumps(overrides, sort_keys=True)}" if overrides else "")
    row = {"preset": label, "device": str(device), "params_M": round(model.num_parameters() / 1e6, 2),
           "gaussians": 4 * S * S, "tokens": 5 * (S // cfg.patch_size) ** 2}
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    row["network_ms"] = round(device_ms(network, iters, warmup, device), 2)
    framed = (np.random.default_rng(0).random((S, S, 3)) * 255).astype(np.uint8)
    if matte:  # a cut-out portrait (RGBA): the model gets a matte, as after preprocessing
        yy, xx = np.mgrid[:S, :S]
        inside = ((xx - S / 2) / (0.35 * S)) ** 2 + ((yy - S / 2) / (0.45 * S)) ** 2 <= 1
        framed = np.dstack([framed, (inside * 255).astype(np.uint8)])
        row["preset"] += " (matte)"
    row["reconstruct_ms"] = round(wall_ms(lambda: a3d.reconstruct(framed, model, seed=0, preprocess=False),
                                           max(3, iters // 2), 2, device), 2)
    if device.type == "cuda":
        row["peak_GiB"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    if compile_ and device.type == "cuda":
        # tiny: the whole forward with CUDA graphs (it is launch-bound: ~1 ms of GPU work in
        # ~6-11 ms of host time); nn.Module.compile() so that one_step's self(...) runs the compiled
        # forward (outputs then live in graph buffers that the next call overwrites: fine for
        # timing only). paper: each DiT block compiled (one code shared by the 24 blocks).
        try:
            t0 = time.perf_counter()
            if name == "tiny" or (folder is not None and cfg.image_size <= 128):  # a tiny-scale model folder
                model.compile(mode="reduce-overhead")
            else:
                model.compile_blocks()
            compiled = model
            for _ in range(3):
                network(compiled)
            torch.cuda.synchronize()
            row["compile_s"] = round(time.perf_counter() - t0, 1)
            row["network_compiled_ms"] = round(device_ms(lambda: network(compiled), iters, warmup, device), 2)
            row["reconstruct_compiled_ms"] = round(wall_ms(
                lambda: a3d.reconstruct(framed, compiled, seed=0, preprocess=False), max(3, iters // 2), 2, device), 2)
        except Exception as e:  # report, do not hide: the eager figure stands
            row["compile_error"] = f"{type(e).__name__}: {str(e)[:200]}"
    if profile:
        from torch.profiler import ProfilerActivity, profile as torch_profile

        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
        with torch_profile(activities=acts) as prof:
            network()
            if device.type == "cuda":
                torch.cuda.synchronize()
        key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
        print(f"\n{name}: top ops of one network call\n" + prof.key_averages().table(sort_by=key, row_limit=14))
    model = compiled = None  # free the weights before the next preset
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return row


def bench_preprocess(iters: int) -> dict:
    if not has_face_models():
        return {"preprocess_ms": None, "note": "ai-edge-litert not installed"}
    preprocess(PORTRAIT, 128)  # load the interpreters
    t = [preprocess(PORTRAIT, size).seconds * 1e3 for size in (128, 512) for _ in range(iters)]
    return {"preprocess_128_ms": round(statistics.median(t[:iters]), 1),
            "preprocess_512_ms": round(statistics.median(t[iters:]), 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", default=None,
                    help="comma-separated presets (default: tiny,paper on CUDA, tiny on CPU)")
    ap.add_argument("--device", default=None, help="cuda or cpu (default: cuda if available)")
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--compile", action="store_true", help="also time torch.compile (GPU)")
    ap.add_argument("--profile", action="store_true", help="print the top ops of one eager network call")
    ap.add_argument("--overrides", type=json.loads, default=None,
                    help="ModelConfig fields to change in every preset, as JSON (a candidate architecture)")
    ap.add_argument("--matte", action="store_true",
                    help="reconstruct() gets an RGBA cut-out: the matte-dependent steps run (given_fit, given_erode)")
    ap.add_argument("--models", nargs="*", default=[], metavar="DIR",
                    help="model folders to time with their trained weights, after the presets")
    ap.add_argument("--json", default=None, help="write the results here")
    args = ap.parse_args()
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    presets = (args.presets or ("tiny,paper" if device.type == "cuda" else "tiny")).split(",")
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    header = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
              "device": name, "torch": torch.__version__, "a3d": a3d.__version__,
              "command": "python " + " ".join([os.path.relpath(sys.argv[0])] + sys.argv[1:])}
    rows = [bench_preset(p, device, args.iters, args.warmup, args.compile, args.profile, args.overrides, args.matte)
            for p in presets if p]
    rows += [bench_preset(m, device, args.iters, args.warmup, args.compile, args.profile, None, args.matte, folder=m)
             for m in args.models]
    pre = bench_preprocess(5)
    print(f"\n{header['date']} · {header['device']} · torch {header['torch']} · `{header['command']}`\n")
    print("| preset | params (M) | Gaussians | tokens | network ms | reconstruct() ms | peak GiB "
          "| compiled: network ms | compiled: reconstruct() ms |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        comp = r.get("network_compiled_ms", r.get("compile_error", "-"))
        print(f"| {r['preset']} | {r['params_M']} | {r['gaussians']:,} | {r['tokens']:,} | {r['network_ms']} | "
              f"{r['reconstruct_ms']} | {r.get('peak_GiB', '-')} | {comp} | {r.get('reconstruct_compiled_ms', '-')} |")
    print(f"\npreprocessing (CPU, astronaut 256² portrait): {pre}")
    if args.json:
        Path(args.json).write_text(json.dumps({"header": header, "rows": rows, "preprocess": pre}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
