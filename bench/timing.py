"""Timing helpers shared by the benchmark scripts (run as `python bench/NAME.py`, so this is importable).

Both warm up first and return the median in milliseconds.
"""
import statistics
import time

import torch


def device_ms(fn, reps: int, warm: int = 3, device: torch.device | str = "cuda") -> float:
    """Device time of fn(): between CUDA events on a CUDA device, host wall clock on the CPU."""
    device = torch.device(device)
    for _ in range(warm):
        fn()
    if device.type != "cuda":
        return wall_ms(fn, reps, 0, device)
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def wall_ms(fn, reps: int, warm: int = 3, device: torch.device | str = "cpu") -> float:
    """Wall-clock time of a whole fn() call, host work included (synchronised on a CUDA device)."""
    device = torch.device(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(warm):
        fn()
    times = []
    for _ in range(reps):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)
