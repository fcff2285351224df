"""The cost of the given views' carve and colour fit, and of the two decoders, side by side.

    python bench/bench_given_views.py [--device cuda] [--preset tiny] [--repeats 20] [--warmup 5]

Times one A3DModel.one_step call (front photo with its matte; bf16 autocast on CUDA, float32 on CPU) of
the same random weights under four configs: the preset as it ships, the same with the carve off, with the
colour fit off, and with the upsampler decoder (ModelConfig.decoder). Prints one JSON line each:
median wall-clock milliseconds (synchronised) over --repeats calls after --warmup calls.
"""
from __future__ import annotations

import argparse
import json

import torch

from a3d.model.config import get_config
from a3d.model.network import A3DModel
from timing import wall_ms  # noqa: E402  (bench/timing.py)

ARMS = {
    "as shipped": {},
    "no carve": dict(carve_depth=0.0),
    "no colour fit": dict(given_fit=0),
    "upsampler decoder": dict(decoder="upsampler"),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args()
    dev = torch.device(args.device)
    for name, fields in ARMS.items():
        torch.manual_seed(0)  # the same weights in every arm
        model = A3DModel(get_config(args.preset, **fields)).to(dev).eval()
        S = model.config.image_size
        image, masks = torch.rand(1, 3, S, S, device=dev), torch.rand(1, 4, S, S, device=dev)
        g0 = model.noise(1, torch.Generator().manual_seed(0))

        @torch.no_grad()
        def call():
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
                model.one_step(image, g0, masks=masks)

        ms = wall_ms(call, args.repeats, args.warmup, dev)
        print(json.dumps({"arm": name, "device": str(dev), "preset": args.preset, "threads": torch.get_num_threads(),
                          "ms": round(ms, 1)}), flush=True)


if __name__ == "__main__":
    main()
