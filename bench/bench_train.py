"""Training throughput of the training step (a3d.train.loop) on one device, by stage and batch size.

Stages: synthetic head generation (a3d.data.synth), ground-truth rendering of a batch (4 canonical + 8
supervision views), and the optimizer step (forward, Eq. 6 loss with LPIPS and AVAS, backward,
clipping, AdamW, EMA). A batch is made as training makes it, fresh heads every step
(:class:`a3d.train.batches.SyntheticBatches`, one generator call a step); ``generate_ms`` is the
generation part of it (one ``sample(B)`` call, median of 5: the generator is vectorised over the batch),
``render_gt_ms`` the rest, and ``samples/s`` = batch / (batch + step).

    python bench/bench_train.py --batch-sizes 8 16 32 --steps 10 --json bench_train.json
"""
import argparse
import json
import time

import torch

from a3d.model.network import A3DModel
from a3d.data.synth import SyntheticHeads
from a3d.train.batches import SyntheticBatches
from a3d.train.checkpoint import ema_update
from a3d.train.objective import compute_loss
from a3d.train.config import TrainConfig


def _sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 16, 32])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--gaussians", type=int, default=TrainConfig.synth_gaussians,
                    help="Gaussians a synthetic head (default: the recipe's)")
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--json", default=None, help="write the results here")
    args = ap.parse_args()
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    cfg = TrainConfig(preset=args.preset, synth_gaussians=args.gaussians)
    mcfg = cfg.model_config()
    S = mcfg.image_size
    autocast = dev.type == "cuda"

    heads = SyntheticHeads(dev, seed=1, num_gaussians=args.gaussians, image_size=S)

    def generation_s(B: int) -> float:
        """Seconds to generate B fresh heads in one call (median of 5 after 2 warm-up calls)."""
        times = []
        for k in range(7):
            _sync(dev)
            t = time.perf_counter()
            heads.sample(B)
            _sync(dev)
            times.append(time.perf_counter() - t)
        return sorted(times[2:])[2]

    gen_s = generation_s(16) / 16
    print(f"synthetic heads: {1 / gen_s:.1f} heads/s in batches of 16 ({args.gaussians} Gaussians a head)")

    model = A3DModel(mcfg, with_avas=True).to(dev)
    ema = A3DModel(mcfg, with_avas=True).to(dev).requires_grad_(False)
    optim = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=dev.type == "cuda")
    results = {"device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu", "image_size": S,
               "gaussians_per_head": args.gaussians, "heads_per_s": 1 / gen_s, "params": model.num_parameters(False),
               "batches": []}
    for B in args.batch_sizes:
        source = SyntheticBatches(S, B, cfg.num_views, args.gaussians, seed=2, device=dev)
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
        t_batch = t_step = 0.0
        for k in range(args.steps + 3):
            _sync(dev)
            t0 = time.perf_counter()
            batch = source.get(k)
            _sync(dev)
            t1 = time.perf_counter()
            loss, _ = compute_loss(model, batch, cfg, mcfg, autocast)
            optim.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optim.step()
            ema_update(ema, model, 0.999)
            _sync(dev)
            t2 = time.perf_counter()
            if k >= 3:  # warm-up steps excluded
                t_batch += t1 - t0
                t_step += t2 - t1
        b, s = t_batch / args.steps, t_step / args.steps
        g = generation_s(B)
        row = {"batch": B, "generate_ms": 1e3 * g, "render_gt_ms": 1e3 * max(b - g, 0.0), "step_ms": 1e3 * s,
               "samples_per_s": B / (b + s),
               "peak_gib": torch.cuda.max_memory_allocated(dev) / 2**30 if dev.type == "cuda" else None}
        results["batches"].append(row)
        print(json.dumps(row))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
