"""How much of a photo's background stays in the fringe of the matte, before and after foreground estimation.

    python bench/bench_matte_edges.py                     # 8 heads × 6 backgrounds at 256²
    python bench/bench_matte_edges.py --heads 4 --json out.json

Synthetic heads (a3d.data.synth: hair, shoulders, accessories; their exact alpha from the renderer) are
composited over saturated backgrounds (red, green, blue, cyan, magenta, yellow), as a portrait in front of a
coloured curtain. The model's input is the head over white (a3d.core.framing.BACKGROUND); it is made from the
coloured photo by compositing it over white with a matte:

* before: the photo's own colours, I α + W (1 − α) (what preprocessing did until foreground estimation);
* after: the estimated foreground colour, F̂ α + W (1 − α) (a3d.inference.matte.estimate_foreground).

The reference is the head rendered over white directly. Errors are measured in the edge band (0.05 < α <
0.95 of the true alpha) as the mean absolute error in 8-bit levels and as the background's share left (the
error's projection on the background-minus-white direction, over that direction's length: 0 = none of the
background left, (1 − α) averaged = all of it). Two mattes: the renderer's true alpha (the colour estimate
alone) and the selfie segmenter's (what preprocessing sees: a3d.inference.matte.segment_person).
"""
import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from a3d.core import framing  # noqa: E402
from a3d.core.cameras import canonical_cameras  # noqa: E402
from a3d.core.rendering import render  # noqa: E402
from a3d.data.synth import SyntheticHeads  # noqa: E402
from a3d.inference.matte import estimate_foreground, segment_person  # noqa: E402

BACKGROUNDS = {"red": (1.0, 0.0, 0.0), "green": (0.0, 0.8, 0.0), "blue": (0.0, 0.2, 1.0),
               "cyan": (0.0, 0.9, 0.9), "magenta": (0.9, 0.0, 0.9), "yellow": (1.0, 0.9, 0.0)}


def heads_over_white(n: int, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n synthetic heads from the front: RGB over white [n, 3, S, S] and alpha [n, S, S]."""
    g = SyntheticHeads("cpu", seed=seed, num_gaussians=60_000, image_size=size).sample(n).gaussians
    with torch.no_grad():
        out = render(g, canonical_cameras(size)[0:1], framing.BACKGROUND)
    return out.rgb[:, 0].permute(0, 3, 1, 2).clamp(0, 1), out.alpha[:, 0, ..., 0].clamp(0, 1)


def measure(heads: int, size: int, seed: int) -> dict:
    ref, alpha = heads_over_white(heads, size, seed)
    white = torch.tensor(framing.BACKGROUND).reshape(3, 1, 1)
    rows = {}
    seconds = []
    for name, colour in BACKGROUNDS.items():
        bg = torch.tensor(colour).reshape(3, 1, 1)
        acc = {k: [] for k in ("before_true", "after_true", "before_seg", "after_seg")}
        share = {k: [] for k in acc}
        for i in range(heads):
            a = alpha[i]
            photo = (ref[i] - white * (1 - a) + bg * (1 - a)).clamp(0, 1)  # the same head over the colour
            band = (a > 0.05) & (a < 0.95)
            seg = torch.from_numpy(segment_person(photo.permute(1, 2, 0).contiguous().numpy()))
            for matte_name, m in (("true", a), ("seg", seg)):
                t0 = time.perf_counter()
                fg = estimate_foreground(photo, m)
                seconds.append(time.perf_counter() - t0)
                for when, colours in (("before", photo), ("after", fg)):
                    out = colours * m + white * (1 - m)
                    err = out - ref[i]
                    acc[f"{when}_{matte_name}"].append(float(err.abs().mean(0)[band].mean()) * 255)
                    direction = (bg - white).reshape(3)
                    left = (err.permute(1, 2, 0)[band] @ direction) / float(direction @ direction)
                    share[f"{when}_{matte_name}"].append(float(left.mean()))
        rows[name] = {k: round(sum(v) / len(v), 2) for k, v in acc.items()}
        rows[name].update({f"{k}_share": round(sum(v) / len(v), 3) for k, v in share.items()})
    mean = {k: round(sum(r[k] for r in rows.values()) / len(rows), 3) for k in next(iter(rows.values()))}
    return {"per_background": rows, "mean": mean, "heads": heads, "size": size, "seed": seed,
            "estimate_seconds_median": round(sorted(seconds)[len(seconds) // 2], 4)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    torch.set_num_threads(1)  # the timing: one thread, comparable on a shared machine
    res = measure(args.heads, args.size, args.seed)
    print("| background | true α: before | after | segmenter's α: before | after |")
    print("|---|---|---|---|---|")
    for name, r in [*res["per_background"].items(), ("mean", res["mean"])]:
        print(f"| {name} | {r['before_true']:.1f} ({r['before_true_share']:.2f}) | {r['after_true']:.1f} "
              f"({r['after_true_share']:.2f}) | {r['before_seg']:.1f} ({r['before_seg_share']:.2f}) | "
              f"{r['after_seg']:.1f} ({r['after_seg_share']:.2f}) |")
    print(f"estimate_foreground at {args.size}²: {res['estimate_seconds_median'] * 1000:.1f} ms (median)")
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
