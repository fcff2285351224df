"""The ``a3d`` command line (also ``python -m a3d``).

Each subcommand lives beside the code it drives and contributes ``add_<name>_parser(subparsers)``
and ``cmd_<name>(args) -> int``; :data:`COMMANDS` lists them in one place.
"""
from __future__ import annotations

import argparse
import importlib
import platform
import sys

# name -> module that defines add_<name>_parser and cmd_<name>
COMMANDS: dict[str, str] = {
    "reconstruct": "a3d.api",
    "render": "a3d.cli",
    "synth": "a3d.synth",
    "train": "a3d.train",
    "eval": "a3d.cli",
    "info": "a3d.cli",
}


def add_render_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("render", help="render a Gaussian-splat PLY to a turntable video (.mp4 or .gif)")
    p.add_argument("ply", help="input PLY in the Inria 3DGS layout")
    p.add_argument("-o", "--output", default="orbit.mp4", help="output video path (.mp4 or .gif)")
    p.add_argument("--frames", type=int, default=120, help="frames for the full turn")
    p.add_argument("--fps", type=int, default=30)
    p.add_argument("--size", type=int, default=512, help="square frame size in pixels")
    p.add_argument("--elevation", type=float, default=10.0, help="camera elevation, degrees")
    p.add_argument("--background", type=float, nargs=3, default=(1.0, 1.0, 1.0), metavar=("R", "G", "B"))
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")


def cmd_render(args: argparse.Namespace) -> int:
    import torch

    from .io_ply import load_ply
    from .render import orbit_video

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    gaussians = load_ply(args.ply).to(device)
    path = orbit_video(gaussians, args.output, frames=args.frames, fps=args.fps, size=args.size,
                       elevation=args.elevation, background=tuple(args.background))
    print(f"wrote {path}")
    return 0


def add_eval_parser(sub: argparse._SubParsersAction) -> None:
    """``a3d eval``: photos and/or the synthetic held-out set and/or a dataset folder -> eval.json + report.md."""
    p = sub.add_parser("eval", help="measure a model: held-out PSNR/SSIM/LPIPS per view angle, identity per yaw",
                       description="Evaluate a model on photos (identity per yaw; needs `pip install a3d[eval]`), "
                                   "the synthetic held-out heads (--synthetic) and/or a dataset folder (--data). "
                                   "Writes OUT/eval.json (every number), OUT/report.md and a PNG a photo.")
    p.add_argument("photos", nargs="*", help="portrait files or folders of them")
    p.add_argument("--synthetic", action="store_true", help="the synthetic held-out heads (the trainer's eval set)")
    p.add_argument("--data", help="a dataset folder in the AnyHead layout (docs/dataset.md)")
    p.add_argument("-o", "--out", default="out/eval", help="output folder (default: out/eval)")
    p.add_argument("--model", default=None, help="model folder or Hub id (default: the bundled tiny model)")
    p.add_argument("--refine", nargs="?", type=int, const=-1, default=0, metavar="STEPS",
                   help="refine every reconstruction: reconstruct(refine=STEPS), the default steps without a number")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--heads", type=int, default=16, help="synthetic held-out heads (default 16)")
    p.add_argument("--views", type=int, default=16, help="views a synthetic head (default 16)")
    p.add_argument("--synth-gaussians", type=int, default=60_000,
                   help="Gaussians a synthetic head (default 60000, as the bundled model's training run)")
    p.add_argument("--synthetic-seed", type=int, default=None,
                   help="generator seed of the held-out heads (default: the trainer's eval_seed)")
    p.add_argument("--seed", type=int, default=0, help="seed of the reconstructions' noise (photos, folder)")
    p.add_argument("--size", type=int, default=256, help="render size for the identity views (default 256)")
    p.add_argument("--max-captures", type=int, default=0, help="with --data: evaluate at most this many captures")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def cmd_eval(args: argparse.Namespace) -> int:
    for name in ("heads", "views", "synth_gaussians", "size"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')}: expected a positive number, got {getattr(args, name)}")
    if args.refine < -1:
        raise ValueError(f"--refine: expected a number of steps >= 0, got {args.refine}")
    from pathlib import Path

    from .evaluate import run_eval

    seed_kw = {} if args.synthetic_seed is None else {"synthetic_seed": args.synthetic_seed}
    rep = run_eval(args.out, photos=args.photos, synthetic=args.synthetic, data=args.data, model=args.model,
                   refine=True if args.refine == -1 else args.refine, device=args.device, heads=args.heads,
                   views=args.views, synth_gaussians=args.synth_gaussians, seed=args.seed, size=args.size,
                   max_captures=args.max_captures, progress=not args.no_progress, **seed_kw)
    for key in ("synthetic", "folder"):
        if key in rep:
            a = rep[key]["all"]
            print(f"{key}: PSNR {a['psnr']:.2f} dB, SSIM {a['ssim']:.3f}, LPIPS {a['lpips']:.3f} "
                  f"over {a['count']} views")
    for p in rep.get("photos", []):
        if "error" not in p:
            print(f"{p['name']}: identity distance " + ", ".join(f"{k} {v:.2f}" for k, v in p["distances"].items()))
    print(f"wrote {Path(args.out) / 'eval.json'} and {Path(args.out) / 'report.md'} in {rep['seconds']:.1f} s")
    return 0


def add_info_parser(sub: argparse._SubParsersAction) -> None:
    sub.add_parser("info", help="print versions, the extension's state, the backend and devices")


def cmd_info(args: argparse.Namespace) -> int:
    import torch

    import a3d

    from . import ops

    print(f"a3d {a3d.__version__}")
    print(f"python {platform.python_version()} ({sys.executable})")
    print(f"torch {torch.__version__} (cuda {torch.version.cuda})")
    for key, value in ops.info().items():
        print(f"{key}: {value}")
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            print(f"device cuda:{i}: {torch.cuda.get_device_name(i)}")
    else:
        print("device: cpu only")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="a3d", description="a3d: one portrait in, a 3D Gaussian head out")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module in COMMANDS.items():
        getattr(importlib.import_module(module), f"add_{name}_parser")(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    run = getattr(importlib.import_module(COMMANDS[args.command]), f"cmd_{args.command}")
    try:
        return int(run(args) or 0)
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        # Bad input or a missing piece: one readable line, not a traceback.
        print(f"a3d {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
