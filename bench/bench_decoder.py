"""Time the Gaussian decoder's token-to-pixel step alone (``GaussianDecoder.features``) for each
``ModelConfig.decoder``, in one process (BENCHMARKS.md, issue 25).

    python bench/bench_decoder.py                       # CPU, float32
    python bench/bench_decoder.py --device cuda --profile

Random weights, one portrait's tokens ([1, 4·N, D] of the tiny preset) and the flow time's features; bf16
autocast on CUDA. Each row: the median of --iters calls after --warmup, with ``cudnn.benchmark`` off and on
(CUDA), and for the upsampler also with zero instead of replicate padding. --profile prints the GPU kernels
of five upsampler calls.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from a3d.model.config import NUM_VIEWS, get_config  # noqa: E402
from a3d.model.decoder import GaussianDecoder  # noqa: E402
from timing import wall_ms  # noqa: E402  (bench/timing.py)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    dev = torch.device(args.device)
    torch.manual_seed(0)
    base = get_config("tiny")
    n = (base.image_size // base.patch_size) ** 2
    tokens = torch.randn(1, NUM_VIEWS * n, base.width, device=dev)
    temb = torch.randn(1, base.width, device=dev)
    cuda = dev.type == "cuda"
    print(f"device: {torch.cuda.get_device_name(dev) if cuda else 'cpu'}, torch {torch.__version__}")

    def run(decoder: GaussianDecoder) -> float:
        with torch.no_grad(), torch.autocast(dev.type, dtype=torch.bfloat16, enabled=cuda):
            return wall_ms(lambda: decoder.features(tokens, temb), args.iters, args.warmup, dev)

    for kind in ("patch", "upsampler"):
        decoder = GaussianDecoder(get_config("tiny", decoder=kind)).to(dev).eval()
        for bench in ((False, True) if cuda else (False,)):
            torch.backends.cudnn.benchmark = bench
            print(f"{kind:9s} cudnn.benchmark={bench!s:5s} features {run(decoder):.2f} ms")
        if kind == "upsampler":
            convs = [c for st in decoder.upsampler.stages for c in (st.conv1, st.conv2)]
            for c in convs:
                c.padding_mode = "zeros"
            print(f"{kind:9s} zero padding           features {run(decoder):.2f} ms")
            for c in convs:
                c.padding_mode = "replicate"
            if args.profile and cuda:
                from torch.profiler import ProfilerActivity, profile

                with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16), \
                        profile(activities=[ProfilerActivity.CUDA]) as prof:
                    for _ in range(5):
                        decoder.features(tokens, temb)
                    torch.cuda.synchronize(dev)
                print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=12))


if __name__ == "__main__":
    main()
