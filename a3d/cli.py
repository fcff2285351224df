"""The ``a3d`` command line (also ``python -m a3d``): every subcommand's parser, in one place.

:data:`COMMANDS` lists each subcommand with its one-line help and the function that runs it; that
function's module is imported only when the command runs. A subcommand's flags are added only when
that subcommand is the one being parsed (the train flags come from TrainConfig, the synth choices from
the generator), so ``a3d --help`` imports no model, trainer or generator code (tests/test_cli.py).

Failures (docs/errors.md): one line on stderr, ``a3d COMMAND: error: ...``, no traceback, and the
exit code of :func:`a3d.errors.exit_code`: 2 for bad input, 3 for a bad environment, 1 for an
internal error; ``--debug`` (anywhere on the line) shows the traceback instead.
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import platform
import sys
import warnings
from typing import TYPE_CHECKING, Callable, NamedTuple

from . import limits
from .errors import EXIT_INPUT, EXIT_INTERNAL, EXIT_SETUP, InputError, check_device, exit_code, one_line

if TYPE_CHECKING:
    from .train.config import TrainConfig


class Command(NamedTuple):
    help: str  # the line ``a3d --help`` shows
    add_flags: Callable[[argparse.ArgumentParser], None]
    run: str  # "module:function" taking the parsed arguments and returning the exit status


def _reconstruct_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("images", nargs="*", metavar="IMAGE", help="portrait image files")
    p.add_argument("--view", action="append", default=[], metavar="NAME=FILE",
                   help="photos of one head's canonical views, e.g. --view front=a.jpg --view left=b.jpg "
                        "(front required; left = the subject's left side); replaces IMAGE")
    p.add_argument("--refine", nargs="?", type=limits.arg("refine_steps"), const=True, default=0, metavar="STEPS",
                   help="fit the Gaussians to the photo(s) after the network (default steps without a number)")
    p.add_argument("--face", type=limits.arg("face_index"), default=None, metavar="I",
                   help="which face to reconstruct when a photo holds several (0 = the largest plausible face; the "
                        "error or metadata lists the candidates)")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="output folder (one subfolder per image)")
    p.add_argument("--steps", type=limits.arg("denoise_steps"), default=1, help="denoising steps (default 1)")
    p.add_argument("--video", action="store_true", help="write orbit.mp4 (a 512² turntable; slow without a GPU)")
    p.add_argument("--ply", action="store_true", help="write head.ply")
    p.add_argument("--splat", action="store_true", help="write head.splat")
    # the names of a3d.io.splat_files.SPLAT_FORMATS (not imported: `a3d --help` loads no io code; a test compares)
    p.add_argument("--format", nargs="+", default=[],
                   choices=("ply", "compressed.ply", "splat", "spz", "sog", "glb"), metavar="FMT",
                   help="write head.FMT in each of these splat formats: ply, compressed.ply, splat, spz, sog, glb "
                        "(glTF KHR_gaussian_splatting, written head_splats.glb; the web formats leave out Gaussians "
                        "under 1/255 opacity)")
    p.add_argument("--mesh", action="store_true",
                   help="write head.glb, a watertight coloured triangle mesh (100k faces; `a3d mesh` has the options)")
    p.add_argument("--up", choices=("-y", "+y"), default="-y",
                   help="the splat files' up axis: -y (default; the 3DGS convention: SuperSplat, gsplat.js, gradio "
                        "show it upright) or +y (a3d's world: Spark, gaussian-splats-3d); write --up=+y")
    p.add_argument("--sh-degree", type=int, choices=range(5), default=None, metavar="D",
                   help="SH degree of head.ply, .spz and .compressed.ply: 3 pads to the 45 f_rest_* some Inria-style "
                        "loaders require (default: the model's, 0)")
    p.epilog = ("Without --ply/--splat/--format/--video/--mesh each image's folder gets head.ply, head.splat and "
                "grid.png; with any of them, just those. input.png, a3d_cameras.json and metadata.json are always "
                "written.")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--no-preprocess", action="store_true",
                   help="the images are already framed like the model's input: no face detection or masking")
    p.add_argument("--batch-size", type=limits.arg("batch_size"), default=4, help="images per network call")
    p.add_argument("--seed", type=limits.arg("seed"), default=0, help="noise seed (image i uses seed + i)")
    p.add_argument("--model", default=None, metavar="DIR", help="model folder (default: the bundled model)")


def _render_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("ply", help="input PLY in the Inria 3DGS layout (SH degree 0 to 3, from a3d or any 3DGS tool)")
    p.add_argument("-o", "--output", default="orbit.mp4", help="output video path (.mp4, .webm or .gif)")
    p.add_argument("--frames", type=limits.arg("video_frames"), default=120, help="frames for the full turn")
    p.add_argument("--fps", type=limits.arg("video_fps"), default=30, help="frames per second (default: 30)")
    p.add_argument("--size", type=limits.arg("video_size"), default=512, help="square frame size in pixels")
    p.add_argument("--elevation", type=limits.arg("elevation"), default=10.0, help="camera elevation, degrees")
    p.add_argument("--background", type=limits.arg("color"), nargs=3, default=(1.0, 1.0, 1.0), metavar=("R", "G", "B"),
                   help="background colour, each channel in [0, 1] (default: 1 1 1, white)")
    p.add_argument("--up", choices=("+y", "-y"), default=None,
                   help="the file's up axis (default: what an a3d PLY's header says, else -y, the y-down world of "
                        "COLMAP-trained scenes); +y (written --up=+y) for y-up files")
    p.add_argument("--fit", action="store_true",
                   help="orbit the scene's centre at a distance that frames it (for scenes other than a3d heads)")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")


def _synth_flags(p: argparse.ArgumentParser) -> None:
    from .data.synth import ACCESSORIES, EXPRESSIONS

    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--heads", type=limits.arg("synth_heads"), default=10, help="number of heads")
    p.add_argument("--views", type=limits.arg("synth_views"), default=80,
                   help="views per head (1-80; half ring views, half random)")
    p.add_argument("--size", type=limits.arg("synth_size"), default=512, help="square image size in pixels")
    p.add_argument("--seed", type=limits.arg("seed"), default=0,
                   help="generator seed: head i of a seed is always the same head (default: 0)")
    p.add_argument("--gaussians", type=limits.arg("synth_gaussians"), default=200_000, help="Gaussians per head")
    p.add_argument("--batch", type=limits.arg("synth_batch"), default=4, help="heads generated and rendered together")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    variants = p.add_mutually_exclusive_group()
    variants.add_argument("--expressions", nargs="+", choices=EXPRESSIONS, metavar="NAME",
                          help=f"one capture a head per expression, in HEAD_ID/EXPRESSION_ID/ "
                               f"({', '.join(EXPRESSIONS)})")
    variants.add_argument("--accessories", nargs="+", choices=tuple(ACCESSORIES), metavar="NAME",
                          help=f"one capture a head per accessory, in HEAD_ID/ACCESSORY_ID/ "
                               f"({', '.join(ACCESSORIES)})")


def _train_flags(p: argparse.ArgumentParser) -> None:
    """Every TrainConfig field but config_version is a flag (``--max-steps 100``, ``--no-bf16``); its help is the
    field's docstring (:func:`a3d.train.config.field_help`) and its default the recipe's."""
    from .train.config import TrainConfig, field_help

    p.description = ("Train A3DModel. The defaults are the recipe of the bundled model's last training run "
                     "(docs/training.md, Recipe); --config FILE.json overrides them and flags override both.")
    p.add_argument("--config", metavar="FILE", help="JSON file of TrainConfig fields (default: none)")
    p.add_argument("--export-only", action="store_true",
                   help="write the EMA weights of OUT_DIR/ckpt.pt to --export-dir and exit (default: off)")
    p.add_argument("--plot", metavar="PNG", help="after training, plot OUT_DIR/log.jsonl to this PNG (default: none)")
    docs, recipe = field_help(), TrainConfig()
    for f in dataclasses.fields(TrainConfig):
        if f.name == "config_version":
            continue
        flag = "--" + f.name.replace("_", "-")
        default = getattr(recipe, f.name)
        shown = json.dumps(default) if isinstance(default, (dict, str)) else default
        help_line = f"{docs[f.name]} (default: {shown})".replace("%", "%%")
        if f.type in ("bool", bool):
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_line)
        elif f.name == "model_overrides":
            p.add_argument(flag, type=json.loads, default=None, metavar="JSON", help=help_line)
        else:
            typ = {"int": int, "float": float, "str": str}[f.type if isinstance(f.type, str) else f.type.__name__]
            typ = limits.arg("seed") if f.name in ("seed", "eval_seed") else typ  # a3d.limits: seeds as everywhere
            p.add_argument(flag, type=typ, default=None, help=help_line)


def _eval_flags(p: argparse.ArgumentParser) -> None:
    p.description = ("Evaluate a model on photos (identity per yaw; needs `pip install a3d[eval]`), the synthetic "
                     "held-out heads (--synthetic) and/or a dataset folder (--data). Writes OUT/eval.json (every "
                     "number), OUT/report.md and a PNG a photo (docs/eval.md).")
    p.add_argument("photos", nargs="*", metavar="PHOTO", help="portrait files or folders of them")
    p.add_argument("--synthetic", action="store_true", help="the synthetic held-out heads (the trainer's eval set)")
    p.add_argument("--data", metavar="DIR", help="a dataset folder in the AnyHead layout (docs/dataset.md)")
    p.add_argument("-o", "--out", default="out/eval", metavar="DIR", help="output folder (default: out/eval)")
    p.add_argument("--model", default=None, metavar="DIR", help="model folder (default: the bundled model)")
    p.add_argument("--refine", nargs="?", type=limits.arg("refine_steps"), const=True, default=0, metavar="STEPS",
                   help="refine every reconstruction: reconstruct(refine=STEPS), the default steps without a number")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--heads", type=limits.arg("eval_heads"), default=16, help="synthetic held-out heads (default 16)")
    p.add_argument("--views", type=limits.arg("eval_views"), default=16, help="views a synthetic head (default 16)")
    p.add_argument("--synth-gaussians", type=limits.arg("synth_gaussians"), default=60_000,
                   help="Gaussians a synthetic head (default 60000, as the bundled model's training run)")
    p.add_argument("--synthetic-seed", type=limits.arg("seed"), default=None,
                   help="generator seed of the held-out heads (default: the trainer's eval_seed)")
    p.add_argument("--seed", type=limits.arg("seed"), default=0,
                   help="seed of the reconstructions' noise (photos, folder)")
    p.add_argument("--size", type=limits.arg("eval_size"), default=256,
                   help="render size of the identity views (default 256)")
    p.add_argument("--synthetic-size", type=limits.arg("eval_size"), default=None, metavar="PX",
                   help="render size of the synthetic held-out views (default: the model's input size; a larger "
                        "size scores what a turntable at that size shows)")
    p.add_argument("--synthetic-turn", type=limits.arg("synthetic_turn"), default=0.0, metavar="DEG",
                   help="turn the synthetic held-out heads away from the camera by ±DEG of yaw (alternating), "
                        "framed again by their faces as photos are (default 0: facing the camera)")
    p.add_argument("--max-captures", type=limits.arg("max_captures"), default=0,
                   help="with --data: evaluate at most this many captures")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def _mesh_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("ply", help="input PLY in the Inria 3DGS layout (e.g. head.ply of `a3d reconstruct`)")
    p.add_argument("-o", "--output", default="head.glb",
                   help="output mesh; the extension picks the format: .glb (default), .obj (+ .mtl + .png), .ply")
    p.add_argument("--resolution", type=limits.arg("mesh_resolution"), default=256,
                   help="voxels along the head's longest side (default 256)")
    p.add_argument("--faces", type=limits.arg("mesh_faces"), default=100_000,
                   help="target triangle count (default 100000)")
    p.add_argument("--views", type=limits.arg("mesh_views"), default=24,
                   help="views rendered for fusion and colour (default 24)")
    p.add_argument("--texture-size", type=limits.arg("texture_size"), default=1024, metavar="TEXELS",
                   help="texels a side of the texture atlas baked from the renders, where the face's detail lives "
                        "(default 1024)")
    p.add_argument("--vertex-colors", action="store_true",
                   help="no texture: vertex colours only (faster; the face blurs at game-engine face counts)")
    p.add_argument("--scale", type=limits.arg("mesh_scale"), default=None,
                   help="multiply the head-unit coordinates (a head unit is about 21 cm; default: metres for .glb, "
                        "head units for .obj and .ply)")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")


def _animate_flags(p: argparse.ArgumentParser) -> None:
    from .animation.drive import PRESETS

    p.description = ("Reconstruct PHOTO, fit the morphable head to it and animate it: a preset expression over a slow "
                     "orbit (OUT/NAME.mp4), or the expressions and head pose of a talking video (OUT/driven.mp4 "
                     "beside the driver, with its audio; OUT/weights.json and weights.csv, ARKit names).")
    p.add_argument("photo", metavar="PHOTO", help="portrait image file")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--preset", choices=tuple(PRESETS), help="an expression clip: " + ", ".join(PRESETS))
    what.add_argument("--driver", metavar="CLIP", help="a video of a talking face (.mp4, .mov, .webm, ...)")
    p.add_argument("--glb", action="store_true",
                   help="also write OUT/head_arkit.glb: the head's mesh with the 52 ARKit morph targets")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="output folder")
    p.add_argument("--frames", type=limits.arg("video_frames"), default=90, help="frames of a preset clip (default 90)")
    p.add_argument("--fps", type=limits.arg("video_fps"), default=30,
                   help="frames per second of a preset clip (default 30)")
    p.add_argument("--size", type=limits.arg("video_size"), default=256,
                   help="rendered frame size in pixels (default 256)")
    p.add_argument("--refine", nargs="?", type=limits.arg("refine_steps"), const=True, default=0, metavar="STEPS",
                   help="refine the reconstruction first (the default steps without a number)")
    p.add_argument("--seed", type=limits.arg("seed"), default=0, help="noise seed of the reconstruction")
    p.add_argument("--model", default=None, metavar="DIR", help="model folder (default: the bundled model)")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")


def _no_flags(p: argparse.ArgumentParser) -> None:
    pass


COMMANDS: dict[str, Command] = {
    "reconstruct": Command("portraits → 3D Gaussian heads (PLY, .splat, turntable video)", _reconstruct_flags,
                           "a3d.api:cmd_reconstruct"),
    "render": Command("render a Gaussian-splat PLY to a turntable video (.mp4, .webm or .gif)", _render_flags,
                      "a3d.cli:cmd_render"),
    "synth": Command("export synthetic AnyHead-style heads (multi-view PNGs + cameras)", _synth_flags,
                     "a3d.cli:cmd_synth"),
    "train": Command("train the reconstruction model (torchrun for several GPUs)", _train_flags,
                     "a3d.cli:cmd_train"),
    "eval": Command("measure a model: PSNR/SSIM/LPIPS per view angle, identity per yaw (eval.json + report.md)",
                    _eval_flags, "a3d.cli:cmd_eval"),
    "mesh": Command("Gaussian-splat PLY -> watertight coloured triangle mesh (.glb, .obj, .ply)", _mesh_flags,
                    "a3d.cli:cmd_mesh"),
    "animate": Command("animate a portrait's head: a preset expression, or the face of a talking video", _animate_flags,
                       "a3d.animation.clips:cmd_animate"),
    "info": Command("print versions, the extension's state, the backend and devices", _no_flags, "a3d.cli:cmd_info"),
}


def cmd_render(args: argparse.Namespace) -> int:
    import torch

    from .io.ply import load_ply
    from .io.video import fit_orbit, orbit_video

    device = check_device(args.device) if args.device else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    gaussians = load_ply(args.ply, up=args.up).to(device)
    extra = {}
    if args.fit:
        extra["center"], extra["radius"] = fit_orbit(gaussians)
    path = orbit_video(gaussians, args.output, frames=args.frames, fps=args.fps, size=args.size,
                       elevation=args.elevation, background=tuple(args.background), **extra)
    print(f"wrote {path}")
    return 0


def cmd_mesh(args: argparse.Namespace) -> int:
    import torch

    from .io.ply import load_ply
    from .io.mesh import extract
    from .io.mesh_file import MESH_FORMATS

    from .core.files import check_writable

    if not args.output.lower().endswith(MESH_FORMATS):
        raise InputError(f"-o/--output: expected a file ending in {', '.join(MESH_FORMATS)}, got {args.output!r}")
    check_writable(args.output, "-o/--output")  # before the extraction's minutes, not after
    device = check_device(args.device) if args.device else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    gaussians = load_ply(args.ply).to(device)
    mesh = extract(gaussians, resolution=args.resolution, faces=args.faces, views=args.views,
                   texture_size=None if args.vertex_colors else args.texture_size, progress=True)
    path = mesh.save(args.output, scale=args.scale)
    m = mesh.metadata
    print(f"wrote {path} ({m['faces']:,} faces, {m['vertices']:,} vertices, "
          f"{'watertight' if m['watertight'] else 'NOT watertight'}, {m['timings_s']['total']:.2f} s)")
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    from .data.dataset import export_dataset

    dirs = export_dataset(args.out, args.heads, views=args.views, size=args.size, seed=args.seed,
                          device=args.device, num_gaussians=args.gaussians, batch=args.batch,
                          expressions=args.expressions, accessories=args.accessories)
    print(f"wrote {len(dirs)} captures of {args.heads} heads to {args.out}")
    return 0


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig of ``a3d train``'s arguments: the defaults, then ``--config``, then the flags given."""
    from .train.config import TrainConfig

    d = dataclasses.asdict(TrainConfig.from_json(args.config) if args.config else TrainConfig())
    for f in dataclasses.fields(TrainConfig):
        v = getattr(args, f.name, None)
        if v is not None:
            d[f.name] = v
    return TrainConfig.from_dict(d)


def cmd_train(args: argparse.Namespace) -> int:
    import os

    from .train.loop import CKPT_NAME, LOG_NAME, dist_info, train

    cfg = config_from_args(args)
    if args.export_only:
        from .train.checkpoint import export_checkpoint

        if not cfg.export_dir:
            raise InputError("--export-only needs --export-dir")
        step, folder = export_checkpoint(os.path.join(cfg.out_dir, CKPT_NAME), cfg.export_dir, with_avas=cfg.avas,
                                         dtype=cfg.export_dtype)
        print(f"exported step {step} to {folder}")
        return 0
    res = train(cfg)
    master = dist_info()[0] == 0
    if res and master:
        print(json.dumps(res, indent=1))
    if args.plot and master:
        from .eval.evaluate import plot_log

        print(f"wrote {plot_log(os.path.join(cfg.out_dir, LOG_NAME), args.plot)}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .eval.evaluate import run_eval

    device = str(check_device(args.device)) if args.device else None
    seed_kw = {} if args.synthetic_seed is None else {"synthetic_seed": args.synthetic_seed}
    rep = run_eval(args.out, photos=args.photos, synthetic=args.synthetic, data=args.data, model=args.model,
                   refine=args.refine, device=device, heads=args.heads,
                   views=args.views, synth_gaussians=args.synth_gaussians, seed=args.seed, size=args.size,
                   max_captures=args.max_captures, progress=not args.no_progress,
                   synthetic_size=args.synthetic_size, synthetic_turn=args.synthetic_turn, **seed_kw)
    for key in ("synthetic", "folder"):
        if key in rep:
            a = rep[key]["all"]
            outline = (f", silhouette IoU {a['silhouette_iou']:.3f} (PSNR {a['psnr_silhouette_right']:.2f} dB if it "
                       f"were right)" if "silhouette_iou" in a else "")
            grid = rep[key].get("grid")
            truth = rep[key].get("grid_truth")
            grid = (f", grid index mean {grid['mean']:.1f} max {grid['max']:.1f}" if grid else "") + (
                f" (their truth's {truth['mean']:.1f}, {truth['max']:.1f})" if truth else "")
            print(f"{key}: PSNR {a['psnr']:.2f} dB, SSIM {a['ssim']:.3f}, LPIPS {a['lpips']:.3f}{outline}{grid} "
                  f"over {a['count']} views")
    for p in rep.get("photos", []):
        if "error" not in p:
            print(f"{p['name']}: identity distance " + ", ".join(f"{k} {v:.2f}" for k, v in p["distances"].items())
                  + f"; grid index {p['grid_index']:.1f} (period {p['grid_period']:.1f} px)")
    print(f"wrote {Path(args.out) / 'eval.json'} and {Path(args.out) / 'report.md'} in {rep['seconds']:.1f} s")
    # what could not be evaluated is said on stderr and in the exit status, not only inside eval.json
    for p in rep.get("photos", []):
        if "error" in p:
            print(f"a3d eval: error: {p['path']}: {p['error']}", file=sys.stderr)
    if rep.get("failed"):
        print(f"a3d eval: error: {len(rep['failed'])} of {len(rep['photos'])} photos could not be evaluated "
              f"(the others were; eval.json lists them)", file=sys.stderr)
        return EXIT_INPUT
    if "identity_skipped" in rep:
        print(f"a3d eval: error: the photos were not evaluated: {rep['identity_skipped']}", file=sys.stderr)
        return EXIT_SETUP
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    import torch

    from .core.ops import info
    from .version import __version__

    print(f"a3d {__version__}")
    print(f"python {platform.python_version()} ({sys.executable})")
    print(f"torch {torch.__version__} (cuda {torch.version.cuda})")
    for key, value in info().items():
        print(f"{key}: {value}")
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            print(f"device cuda:{i}: {torch.cuda.get_device_name(i)}")
    else:
        print("device: cpu only")
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse with docs/errors.md's one-line errors: a usage error is ``a3d CMD: error: ...`` on one line
    (no usage block), exit code 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see {self.prog} --help)\n")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``a3d`` parser. Only the subcommand named ``command`` gets its flags (adding them may import its
    module); the others carry just their help line, which is all ``a3d --help`` prints."""
    parser = _Parser(prog="a3d", description="a3d: one portrait in, a 3D Gaussian head out",
                                     epilog="Exit codes: 0 done, 1 internal error (a bug: please report it with "
                                            "the output of --debug), 2 bad input, 3 bad environment.")
    parser.add_argument("--debug", action="store_true", help="on an error, show the full traceback")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, spec in COMMANDS.items():
        p = sub.add_parser(name, help=spec.help)
        if name == command:
            spec.add_flags(p)
        # --debug also after the command; SUPPRESS keeps the top-level value
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    # The top-level parser's only options are --help and --debug, so the first word that is not an option
    # is the command.
    command = next((a for a in argv if not a.startswith("-")), None)
    try:
        args = build_parser(command).parse_args(argv)
    except SystemExit as e:  # --help (0) or a usage error argparse has printed (2): the status, as a return value
        return e.code if isinstance(e.code, int) else EXIT_INPUT
    module, function = COMMANDS[args.command].run.split(":")

    def warn_on_one_line(message, category, filename, lineno, file=None, line=None) -> None:
        """Warnings as the errors are: one line naming the command, without file, line or source (written
        through tqdm, which clears a progress bar first and redraws it below)."""
        from tqdm import tqdm

        text = one_line(message) if isinstance(message, Warning) else " ".join(str(message).split())
        tqdm.write(f"a3d {args.command}: warning: {text}", file=sys.stderr)

    try:
        run = getattr(importlib.import_module(module), function)
        with warnings.catch_warnings():  # restores the hook afterwards (main() is also called from tests)
            if not args.debug:
                warnings.showwarning = warn_on_one_line
            return int(run(args) or 0)
    except (Exception, KeyboardInterrupt) as e:  # SystemExit passes: argparse and commands exit on purpose
        if args.debug:
            raise
        code = exit_code(e)
        kind = "internal error" if code == EXIT_INTERNAL else "error"
        detail = f"{type(e).__name__}: {one_line(e)}" if code == EXIT_INTERNAL else one_line(e)
        hint = (" (this is a bug in a3d: run again with --debug and report the traceback)"
                if code == EXIT_INTERNAL else "")
        print(f"a3d {args.command}: {kind}: {detail}{hint}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
