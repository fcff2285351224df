"""Rasterizer benchmark: a3d's kernels against gsplat 1.5.3, side by side in one process.

Workloads (docs/design.md, Benchmark workloads): N Gaussians on a head-like
ellipsoid shell (radii 0.45/0.55/0.5, pixel-sized scales), C orbit cameras at radius 2.7, fov 30°:
N = 262,144 at 256² and N = 1,048,576 at 512², 1 and 8 views. Forward (no grad) and forward+backward
(``rgb.sum().backward()``), CUDA events, warm-up, median of --reps; peak memory of a forward+backward
(``torch.cuda.max_memory_allocated``, inputs included for both libraries). a3d's time per pipeline stage
comes from the profiler's kernel trace. The Plücker op is reported against the device's measured copy
bandwidth. The results replace this script's section of BENCHMARKS.md (device and date included).

    python bench/bench_rasterize.py              # GPU: a3d vs gsplat (when installed), writes BENCHMARKS.md
    python bench/bench_rasterize.py --cpu        # CPU: C++ kernel vs the PyTorch reference
    compute-sanitizer --tool memcheck python bench/bench_rasterize.py --sanitize   # small case, fwd+bwd
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from a3d import ops  # noqa: E402
from a3d.core.cameras import orbit_cameras  # noqa: E402
from a3d.core.rasterize import rasterize, rasterize_reference  # noqa: E402
from timing import device_ms  # noqa: E402  (bench/timing.py)

WORKLOADS = [(262144, 256, 1), (262144, 256, 8), (1048576, 512, 1), (1048576, 512, 8)]
SECTION_START = "<!-- bench_rasterize: start -->"
SECTION_END = "<!-- bench_rasterize: end -->"


def head_gaussians(n: int, device: str, seed: int = 0) -> list[torch.Tensor]:
    """means [N,3], quats [N,4], scales [N,3], opacities [N], colors [N,3]: the head shell of docs/design.md."""
    g = torch.Generator().manual_seed(seed)
    d = torch.randn(n, 3, generator=g)
    d = d / d.norm(dim=1, keepdim=True)
    r = 1.0 + 0.03 * torch.randn(n, 1, generator=g)
    means = d * r * torch.tensor([0.45, 0.55, 0.5])
    quats = torch.nn.functional.normalize(torch.randn(n, 4, generator=g), dim=1)
    side = 2 * 0.5 / math.sqrt(n / 4)  # about one Gaussian per pixel of a front view
    scales = torch.full((n, 3), side * 0.6) * torch.exp(0.2 * torch.randn(n, 3, generator=g))
    opac = torch.sigmoid(torch.randn(n, generator=g) + 2.0)
    colors = torch.rand(n, 3, generator=g)
    return [t.to(device) for t in (means, quats, scales, opac, colors)]


def cameras(c: int, res: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    cams = orbit_cameras(c, radius=2.7, elevation=0.0, fov=30.0, size=res)
    return cams.viewmats.float().to(device), cams.Ks.float().to(device)


def peak_mib(fn) -> float:
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    fn()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() / 2**20


def a3d_fns(g, vm, K, res):
    means, quats, scales, opac, colors = (t[None] for t in g)
    cam = (vm[None], K[None])

    def fwd():
        with torch.no_grad():
            return rasterize(means, quats, scales, opac, colors, *cam, res, res)

    params = [t.clone().requires_grad_(True) for t in (means, quats, scales, opac, colors)]

    def fb():
        rgb, _, _ = rasterize(*params, *cam, res, res)
        rgb.sum().backward()

    return fwd, fb


def gsplat_fns(g, vm, K, res, packed: bool):
    from gsplat import rasterization

    def fwd():
        with torch.no_grad():
            return rasterization(*g, vm, K, res, res, packed=packed)

    params = [t.clone().requires_grad_(True) for t in g]

    def fb():
        img, _, _ = rasterization(*params, vm, K, res, res, packed=packed)
        img.sum().backward()

    return fwd, fb


STAGES = [  # (kernel name fragment, stage); cub's kernels take the stage of the marker before them
    ("project_bwd_kernel", "projection bwd"), ("project_kernel", "projection (+tile count)"),
    ("gather_counts_kernel", "count scan"), ("emit_kernel", "emit pairs"), ("tile_ranges_kernel", "tile ranges"),
    ("blend_fwd_kernel", "blend fwd"), ("blend_bwd_kernel", "blend bwd"),
]
AFTER = {"projection (+tile count)": "depth sort", "count scan": "count scan", "emit pairs": "tile sort"}


def stage_profile(fn, iters: int = 5) -> dict[str, float]:
    """Milliseconds per call spent in each stage's kernels (from a profiler trace of `iters` calls)."""
    from torch.profiler import ProfilerActivity, profile

    fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(iters):
            fn()
        torch.cuda.synchronize()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "trace.json")
        prof.export_chrome_trace(path)
        events = json.load(open(path))["traceEvents"]
    kernels = sorted((e for e in events if e.get("cat") == "kernel"), key=lambda e: e["ts"])
    out: dict[str, float] = {}
    current = None
    for k in kernels:
        name = k["name"]
        stage = next((s for frag, s in STAGES if frag in name), None)
        if stage is not None:
            current = stage
        elif current in AFTER and ("cub" in name or "Radix" in name or "Scan" in name):
            stage = AFTER[current]
        else:
            stage = "torch glue (zeros, casts, grads of the depth term)"
        out[stage] = out.get(stage, 0.0) + k["dur"] / 1000.0 / iters
    return out


def copy_bandwidth(reps: int) -> float:
    """GB/s of a 1 GiB device-to-device copy, counting bytes read plus bytes written."""
    src = torch.empty(256 * 2**20, device="cuda")
    dst = torch.empty_like(src)
    t = device_ms(lambda: dst.copy_(src), reps)
    return 2 * src.numel() * 4 / (t * 1e-3) / 1e9


def plucker_vs_copy(reps: int) -> dict[str, float]:
    """The Plücker op's bandwidth against the copy bandwidth. Two figures: the kernel alone (10 calls of
    the raw op captured in a CUDA graph, replayed: no Python or launch gaps), and one call of the
    Python API ``a3d.core.ops.plucker_rays`` (argument checks and backend choice included)."""
    vm, K = cameras(8, 512, "cuda")
    vm, K = vm.reshape(-1, 4, 4).contiguous(), K.reshape(-1, 3, 3).contiguous()
    nbytes = 8 * 512 * 512 * 6 * 4  # bytes written (it reads two small matrices a view)
    api_ms = device_ms(lambda: ops.plucker_rays(vm, K, 512, 512), reps)
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):
        for _ in range(3):
            torch.ops.a3d.plucker_rays(vm, K, 512, 512)
    torch.cuda.current_stream().wait_stream(side)
    graph, calls = torch.cuda.CUDAGraph(), 10
    with torch.cuda.graph(graph):
        for _ in range(calls):
            torch.ops.a3d.plucker_rays(vm, K, 512, 512)
    kernel_ms = device_ms(graph.replay, reps) / calls
    copy_bw = copy_bandwidth(reps)
    bw = nbytes / (kernel_ms * 1e-3) / 1e9
    return {"plucker_ms": kernel_ms, "plucker_GBps": bw, "copy_GBps": copy_bw, "ratio": bw / copy_bw,
            "api_ms": api_ms}


def run_gpu(reps: int) -> dict:
    assert torch.cuda.is_available(), "no CUDA device (use --cpu for the CPU comparison)"
    assert ops.backend("cuda", "rasterize_fwd") == "cuda", f"a3d has no CUDA rasterizer: {ops.extension_error()}"
    try:
        import gsplat
        have_gsplat = gsplat.__version__
    except ImportError:
        have_gsplat = None
    rows = []
    for n, res, c in WORKLOADS:
        g = head_gaussians(n, "cuda")
        vm, K = cameras(c, res, "cuda")
        row = {"N": n, "res": res, "C": c}
        fwd, fb = a3d_fns(g, vm, K, res)
        img = fwd()
        row["a3d_alpha"] = float(img[1].mean())
        row["a3d_fwd_ms"] = device_ms(fwd, reps)
        row["a3d_fb_ms"] = device_ms(fb, reps)
        row["a3d_peak_MiB"] = peak_mib(fb)
        row["a3d_stages_ms"] = stage_profile(fb)
        row["a3d_fwd_stages_ms"] = stage_profile(fwd)
        del fwd, fb
        if have_gsplat:
            for packed in (False, True):
                tag = "gsplat_packed" if packed else "gsplat"
                gfwd, gfb = gsplat_fns(g, vm, K, res, packed)
                gimg = gfwd()
                if not packed:
                    row["mean_abs_rgb_diff"] = float((gimg[0] - img[0][0]).abs().mean())
                row[f"{tag}_fwd_ms"] = device_ms(gfwd, reps)
                row[f"{tag}_fb_ms"] = device_ms(gfb, reps)
                row[f"{tag}_peak_MiB"] = peak_mib(gfb)
                del gfwd, gfb, gimg
        del img
        torch.cuda.empty_cache()
        rows.append(row)
        print(json.dumps(row), flush=True)
    return {"rows": rows, "plucker": plucker_vs_copy(reps), "gsplat": have_gsplat}


def gpu_markdown(res: dict, cmd: str) -> str:
    dev = torch.cuda.get_device_name()
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"**{dev}, torch {torch.__version__}, gsplat {res['gsplat'] or 'not installed'}, {when}**, `{cmd}`", ""]
    lines += ["| workload | a3d fwd ms | gsplat fwd ms | fwd speed-up | a3d fwd+bwd ms | gsplat fwd+bwd ms | "
              "fwd+bwd speed-up | a3d peak MiB | gsplat peak MiB | gsplat packed fwd / fwd+bwd ms |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for r in res["rows"]:
        w = f"N={r['N']:,}, {r['res']}², {r['C']} view{'s' if r['C'] > 1 else ''}"
        if "gsplat_fwd_ms" in r:
            lines.append(f"| {w} | {r['a3d_fwd_ms']:.3f} | {r['gsplat_fwd_ms']:.3f} | "
                         f"{r['gsplat_fwd_ms'] / r['a3d_fwd_ms']:.2f}× | {r['a3d_fb_ms']:.3f} | "
                         f"{r['gsplat_fb_ms']:.3f} | {r['gsplat_fb_ms'] / r['a3d_fb_ms']:.2f}× | "
                         f"{r['a3d_peak_MiB']:.0f} | {r['gsplat_peak_MiB']:.0f} | "
                         f"{r['gsplat_packed_fwd_ms']:.3f} / {r['gsplat_packed_fb_ms']:.3f} |")
        else:
            lines.append(f"| {w} | {r['a3d_fwd_ms']:.3f} | — | — | {r['a3d_fb_ms']:.3f} | — | — | "
                         f"{r['a3d_peak_MiB']:.0f} | — | — |")
    lines += ["", "a3d per stage, ms per call (kernel time from the profiler; the rest of the wall time is launch "
              "gaps and the one host synchronisation):", ""]
    stages = sorted({s for r in res["rows"] for s in r["a3d_stages_ms"]},
                    key=lambda s: -max(r["a3d_stages_ms"].get(s, 0) for r in res["rows"]))
    lines.append("| stage | " + " | ".join(f"{r['N'] // 1024}K, {r['res']}², {r['C']}v" for r in res["rows"]) + " |")
    lines.append("|---|" + "---|" * len(res["rows"]))
    for s in stages:
        lines.append(f"| {s} | " + " | ".join(f"{r['a3d_stages_ms'].get(s, 0):.3f}" for r in res["rows"]) + " |")
    lines.append("| kernels total (fwd+bwd) | " + " | ".join(f"{sum(r['a3d_stages_ms'].values()):.3f}"
                                                      for r in res["rows"]) + " |")
    lines.append("| wall (fwd+bwd, events) | " + " | ".join(f"{r['a3d_fb_ms']:.3f}" for r in res["rows"]) + " |")
    diffs = [f"{r['mean_abs_rgb_diff']:.2e}" for r in res["rows"] if "mean_abs_rgb_diff" in r]
    if diffs:
        lines += ["", "Mean |rgb_a3d − rgb_gsplat| per workload (gsplat clamps alpha at 0.999, a3d at 0.99 as the "
                  f"papers do; everything else is the same contract): {', '.join(diffs)}."]
    p = res["plucker"]
    lines += ["", f"Plücker rays, 8 views × 512² float32 (50.3 MB written): kernel {p['plucker_ms']:.4f} ms = "
              f"{p['plucker_GBps']:.0f} GB/s (CUDA-graph replay of 10 calls); device copy bandwidth (1 GiB copy, "
              f"bytes read + written): {p['copy_GBps']:.0f} GB/s; ratio {100 * p['ratio']:.0f}% (target ≥ 80%). "
              f"One call through the Python API `a3d.core.ops.plucker_rays`: {p['api_ms']:.3f} ms."]
    return "\n".join(lines)


def run_cpu(reps: int) -> str:
    assert ops.backend("cpu", "rasterize_fwd") == "cpu", f"a3d has no CPU rasterizer: {ops.extension_error()}"
    n, res = 262144, 256
    g = [t[None] for t in head_gaussians(n, "cpu")]
    vm, K = cameras(1, res, "cpu")
    args = (*g, vm[None], K[None], res, res)
    # This 2-core machine is shared: interleave the two and keep each one's best (least disturbed) time.
    tk, tr = [], []
    with torch.no_grad():
        ops.rasterize_compiled(*args)
        for i in range(reps):
            t = time.perf_counter()
            out = ops.rasterize_compiled(*args)
            tk.append(time.perf_counter() - t)
            if i % 3 == 0:
                t = time.perf_counter()
                ref = rasterize_reference(*args)
                tr.append(time.perf_counter() - t)
    err = max(float((a - b).abs().max()) for a, b in zip(out[:2], ref[:2]))
    kernel_ms, ref_ms = 1000 * min(tk), 1000 * min(tr)
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    cpu = platform.processor() or platform.machine()
    return (f"**CPU ({cpu}, {torch.get_num_threads()} threads), torch {torch.__version__}, {when}**, "
            f"`python bench/bench_rasterize.py --cpu`: N=262,144 head, 256², 1 view, float32, forward: "
            f"C++ kernel {kernel_ms:.0f} ms, PyTorch reference {ref_ms:.0f} ms (best of {len(tk)} and {len(tr)}, "
            f"interleaved; medians {1000 * statistics.median(tk):.0f} and {1000 * statistics.median(tr):.0f} ms): "
            f"**{ref_ms / kernel_ms:.1f}×** (target ≥ 10×); max |Δ| rgb/alpha {err:.1e} (target ≤ 1e-5).")


def sanitize_case() -> None:
    """A small forward+backward with culled Gaussians mixed in, for compute-sanitizer."""
    g = head_gaussians(4096, "cuda")
    g[2][:8] = torch.tensor([0.0, float("nan"), float("inf"), -1.0]).repeat(2)[:, None]
    vm, K = cameras(3, 64, "cuda")
    params = [t[None].clone().requires_grad_(True) for t in g]
    bg = torch.rand(1, 3, 3, device="cuda")
    rgb, alpha, depth = rasterize(*params, vm[None], K[None], 64, 48, bg)
    (rgb.sum() + alpha.sum() + depth.sum()).backward()
    torch.cuda.synchronize()
    assert all(torch.isfinite(p.grad).all() for p in params)
    print("sanitize case ok: fwd+bwd of 4096 Gaussians, 3 views, 64x48", flush=True)


def write_section(body: str, which: str) -> None:
    """Replaces this script's `which` part (gpu or cpu) of its BENCHMARKS.md section, keeping the rest."""
    path = ROOT / "BENCHMARKS.md"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    start, end = f"<!-- bench_rasterize {which}: start -->", f"<!-- bench_rasterize {which}: end -->"
    part = f"{start}\n{body}\n{end}"
    if SECTION_START not in text:
        header = ("## Rasterizer: a3d kernels vs gsplat 1.5.3\n\n"
                  "Script: `bench/bench_rasterize.py` (it rewrites the marked parts of this section); "
                  "design, per-stage\nanalysis, what was tried and the predicted GPU figures: `docs/kernels.md`.\n\n")
        text = text.rstrip() + f"\n\n{SECTION_START}\n{header}{SECTION_END}\n"
    head, rest = text.split(SECTION_START, 1)
    inner, tail = rest.split(SECTION_END, 1)
    if start in inner:
        before, after = inner.split(start, 1)
        inner = before + part + after.split(end, 1)[1]
    else:
        inner = inner.rstrip() + f"\n\n{part}\n"
    path.write_text(head + SECTION_START + inner + SECTION_END + tail)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cpu", action="store_true", help="CPU kernel vs the PyTorch reference")
    ap.add_argument("--sanitize", action="store_true", help="one small fwd+bwd (for compute-sanitizer)")
    ap.add_argument("--reps", type=int, default=20, help="timed repetitions (median)")
    ap.add_argument("--json", type=Path, help="also write the raw results here")
    ap.add_argument("--no-write", action="store_true", help="do not touch BENCHMARKS.md")
    a = ap.parse_args()
    if a.sanitize:
        sanitize_case()
        return
    cmd = "python bench/bench_rasterize.py" + (" --cpu" if a.cpu else "")
    if a.cpu:
        md = run_cpu(max(3, min(a.reps, 10)))
    else:
        res = run_gpu(a.reps)
        md = gpu_markdown(res, cmd)
        if a.json:
            a.json.write_text(json.dumps(res, indent=1))
    print(md)
    if not a.no_write:
        write_section(md, "cpu" if a.cpu else "gpu")


if __name__ == "__main__":
    main()
