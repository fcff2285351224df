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
    "mesh": "a3d.cli",
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


def add_mesh_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("mesh", help="Gaussian-splat PLY -> watertight coloured triangle mesh (.glb, .obj, .ply)")
    p.add_argument("ply", help="input PLY in the Inria 3DGS layout (e.g. head.ply of `a3d reconstruct`)")
    p.add_argument("-o", "--output", default="head.glb",
                   help="output mesh; the extension picks the format: .glb (default), .obj (+ .mtl + .png), .ply")
    p.add_argument("--resolution", type=int, default=256, help="voxels along the head's longest side (default 256)")
    p.add_argument("--faces", type=int, default=100_000, help="target triangle count (default 100000)")
    p.add_argument("--views", type=int, default=24, help="views rendered for fusion and colour (default 24)")
    p.add_argument("--texture-size", type=int, default=None, metavar="TEXELS",
                   help="bake a texture atlas of this size from the renders (GLB then carries it instead of vertex "
                        "colours; OBJ without it gets one baked from the vertex colours)")
    p.add_argument("--scale", type=float, default=1.0,
                   help="multiply coordinates (1 = head units, about 21 cm; 0.21 for metres)")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")


def cmd_mesh(args: argparse.Namespace) -> int:
    import torch

    from .io_ply import load_ply
    from .mesh import extract
    from .mesh_io import MESH_FORMATS

    if not args.output.lower().endswith(MESH_FORMATS):
        raise ValueError(f"-o/--output: expected a file ending in {', '.join(MESH_FORMATS)}, got {args.output!r}")
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    gaussians = load_ply(args.ply).to(device)
    mesh = extract(gaussians, resolution=args.resolution, faces=args.faces, views=args.views,
                   texture_size=args.texture_size)
    path = mesh.save(args.output, scale=args.scale)
    m = mesh.metadata
    print(f"wrote {path} ({m['faces']:,} faces, {m['vertices']:,} vertices, "
          f"{'watertight' if m['watertight'] else 'NOT watertight'}, {m['timings_s']['total']:.2f} s)")
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
