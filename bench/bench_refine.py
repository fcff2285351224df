"""Feed-forward vs refined, one photo vs four: held-out synthetic heads and the bundled astronaut.

For a model (default: the bundled one) this measures, side by side in one run:

- held-out synthetic heads (the trainer's 16 × 16 set: a3d.eval.evaluate.synthetic_eval_set), all views
  and per bucket: feed-forward from the front photo; refined on the front photo; feed-forward from
  the 4 canonical photos; refined on the 4 photos (the last two only for models with the input decoder);
- the astronaut (demo/examples/astronaut.jpg, preprocessed as reconstruct() does): PSNR of the front
  render against the model's input inside the foreground matte, before and after refinement;
- the time of each refinement (median over the heads), on the device it ran on.

    python bench/bench_refine.py [--model DIR] [--device cuda] [--steps 40] [--heads 16] [--json out.json]
                                 [--settings '{"max_offset": 0.02}']

Refinement runs with the device's defaults (`RefineSettings.for_device`), changed by ``--settings`` (a JSON
object of RefineSettings fields), and with each photo's matte, as `reconstruct()` refines a matted photo.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import a3d  # noqa: E402
from a3d import framing  # noqa: E402
from a3d.core.cameras import Cameras, canonical_cameras  # noqa: E402
from a3d.eval.evaluate import _image_metrics, summarize, synthetic_eval_set  # noqa: E402
from a3d.inference.refinement import RefineSettings, refine_gaussians  # noqa: E402
from a3d.core.rendering import render  # noqa: E402


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def heldout(model, dev: torch.device, heads: int, views: int, settings: RefineSettings, lpips_net: str) -> dict:
    S = model.config.image_size
    es = synthetic_eval_set(heads, views, S, dev)
    canon = canonical_cameras(S, radius=model.config.camera_radius, fov=model.config.camera_fov_deg).to(dev)
    photos_all = es["canonical"]  # [H, 4, 3, S, S], the front one is the input
    cams = Cameras(es["viewmats"], es["Ks"], S, S)
    arms = {"feed-forward, front": (False, False), "refined, front": (True, False),
            "feed-forward, 4 photos": (False, True), "refined, 4 photos": (True, True)}
    out, times = {}, {}
    g0 = model.noise(heads, torch.Generator().manual_seed(0))
    for name, (do_refine, four) in arms.items():
        rows = {"psnr": [], "ssim": [], "lpips": []}
        secs = []
        for h in range(heads):
            given = torch.tensor([True, four, four, four], device=dev)
            kw = {"photos": photos_all[h:h + 1], "given": given[None]} if four else {}
            kw["masks"] = es["canonical_alpha"][h:h + 1]
            with torch.no_grad(), torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
                g = model.one_step(es["input"][h:h + 1], g0[h:h + 1], **kw).float().scene(0)
            if do_refine:
                _sync(dev)
                t0 = time.perf_counter()
                g, _ = refine_gaussians(g, canon, photos_all[h], given.cpu(), es["canonical_alpha"][h], settings)
                _sync(dev)
                secs.append(time.perf_counter() - t0)
            with torch.no_grad():
                pred = render(g, cams, framing.BACKGROUND).rgb.permute(0, 3, 1, 2).clamp(0, 1)
                m = _image_metrics(pred, es["views"][h], lpips_net)
            for k in rows:
                rows[k].append(m[k].view(1, -1))
        out[name] = summarize({k: torch.cat(v) for k, v in rows.items()}, [float(a) for a in es["azimuths"]])
        if secs:
            times[name] = statistics.median(secs)
    return {"heldout": out, "refine_seconds_median": times}


def astronaut(model, dev: torch.device, settings: RefineSettings) -> dict:
    from a3d.inference.preprocess import preprocess

    S = model.config.image_size
    pre = preprocess(str(REPO / "demo" / "examples" / "astronaut.jpg"), S)
    av = a3d.reconstruct(str(REPO / "demo" / "examples" / "astronaut.jpg"), model, seed=0, device=dev)
    mask = (pre.mask if pre.mask is not None else torch.ones(S, S)).to(dev) > 0.5

    def front_psnr(g) -> float:
        with torch.no_grad():
            rgb = render(g, av.cameras[[0]], framing.BACKGROUND).rgb[0].permute(2, 0, 1)
        err = ((rgb - pre.image.to(dev)) ** 2).mean(0)[mask].mean()
        return float(-10 * torch.log10(err))

    _sync(dev)
    t0 = time.perf_counter()
    ref = a3d.refine(av, settings, progress=False)
    _sync(dev)
    return {"front_psnr_in_mask": {"feed-forward": front_psnr(av.gaussians), "refined": front_psnr(ref.gaussians)},
            "refine_seconds": time.perf_counter() - t0, "preprocess": pre.mode}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--steps", type=int, default=RefineSettings().steps)
    ap.add_argument("--settings", default="{}", help="JSON object of RefineSettings fields over the device's defaults")
    ap.add_argument("--heads", type=int, default=16)
    ap.add_argument("--views", type=int, default=16)
    ap.add_argument("--lpips-net", default="alex")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    dev = torch.device(args.device)
    model = a3d.load_model(args.model, device=dev)
    settings = dataclasses.replace(RefineSettings.for_device(dev, args.steps), **json.loads(args.settings))
    res = {"device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu", "model": str(args.model),
           "steps": args.steps, "settings": vars(settings),
           **heldout(model, dev, args.heads, args.views, settings, args.lpips_net),
           "astronaut": astronaut(model, dev, settings)}
    print(f"{'arm':26s} {'all':>7s} {'front':>7s} {'side':>7s} {'back':>7s}  SSIM   LPIPS")
    for name, r in res["heldout"].items():
        print(f"{name:26s} " + " ".join(f"{r[b]['psnr']:7.2f}" if b in r else "      -"
                                         for b in ("all", "front", "side", "back"))
              + f"  {r['all']['ssim']:.3f}  {r['all']['lpips']:.3f}")
    print("refine seconds (median):", {k: round(v, 3) for k, v in res["refine_seconds_median"].items()})
    print("astronaut:", json.dumps(res["astronaut"]))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
