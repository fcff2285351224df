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
    "synth": "a3d.cli",
    "train": "a3d.train",
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


def add_synth_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("synth", help="export synthetic AnyHead-style heads (multi-view PNGs + cameras)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--heads", type=int, default=10, help="number of heads")
    p.add_argument("--views", type=int, default=80, help="views per head (1-80; half ring views, half random)")
    p.add_argument("--size", type=int, default=512, help="square image size in pixels")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--gaussians", type=int, default=200_000, help="Gaussians per head")
    p.add_argument("--batch", type=int, default=4, help="heads generated and rendered together")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    # the names are checked by export_dataset, so that parsing imports no generator (a3d.synth lists them)
    variants = p.add_mutually_exclusive_group()
    variants.add_argument("--expressions", nargs="+", metavar="NAME",
                          help="one capture a head per expression, in HEAD_ID/EXPRESSION_ID/ (neutral, smile, ...: "
                               "a3d.synth.EXPRESSIONS)")
    variants.add_argument("--accessories", nargs="+", metavar="NAME",
                          help="one capture a head per accessory, in HEAD_ID/ACCESSORY_ID/ (none, glasses, ...: "
                               "a3d.synth.ACCESSORIES)")


def cmd_synth(args: argparse.Namespace) -> int:
    from .data import export_dataset

    dirs = export_dataset(args.out, args.heads, views=args.views, size=args.size, seed=args.seed,
                          device=args.device, num_gaussians=args.gaussians, batch=args.batch,
                          expressions=args.expressions, accessories=args.accessories)
    print(f"wrote {len(dirs)} captures of {args.heads} heads to {args.out}")
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
