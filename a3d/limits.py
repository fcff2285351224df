"""The range of every number a user gives a3d, in one table shared by the API and the command line.

:data:`LIMITS` maps a quantity (``"video_frames"``, ``"seed"``, ...) to its kind and bounds. The API
checks its arguments with :func:`check` (an :class:`a3d.errors.InputError` naming the argument), and
the command line parses the matching flags with :func:`arg`, so that argparse refuses the same
values (usage error, exit 2) before any work starts. tests/test_reliability.py holds each flag to its
table row both ways: the CLI refuses exactly what the API refuses.

Floats must be finite (NaN and infinity are refused everywhere); ints must be ints (not bools, not
3.0). This module imports nothing heavy (``a3d --help`` imports it).
"""
from __future__ import annotations

import argparse
import math
from typing import Any, Callable, NamedTuple

from .errors import InputError, check_int, check_number

__all__ = ["Limit", "LIMITS", "check", "check_color", "arg"]


class Limit(NamedTuple):
    """One quantity's range: ``kind`` int or float, bounds inclusive (None: unbounded)."""

    kind: type
    lo: float | None
    hi: float | None
    what: str  # for the CLI's help and messages


MAX_SEED = 2**31 - 1

LIMITS: dict[str, Limit] = {
    # reconstruction (a3d.reconstruct, a3d reconstruct)
    "seed": Limit(int, 0, MAX_SEED, "random seed"),
    "denoise_steps": Limit(int, 1, 1000, "denoising steps"),
    "refine_steps": Limit(int, 0, 10_000, "refinement steps"),
    "batch_size": Limit(int, 1, 4096, "images per network call"),
    "face_index": Limit(int, 0, 999, "face index (0 = the largest)"),
    # refinement settings (RefineSettings)
    "refine_lr": Limit(float, 1e-6, 10.0, "learning rate"),
    "refine_weight": Limit(float, 0.0, 1000.0, "loss weight"),
    "refine_background_weight": Limit(float, 0.0, 1.0, "background weight"),
    "refine_max_offset": Limit(float, 0.0, 1.0, "offset bound, head units"),
    "refine_anchor_every": Limit(int, 1, 10_000, "steps between anchor renders"),
    # turntables (orbit_video, a3d render, Avatar.save)
    "video_frames": Limit(int, 1, 100_000, "frames"),
    "video_fps": Limit(int, 1, 240, "frames per second"),
    "video_size": Limit(int, 16, 8192, "frame size, pixels"),
    "elevation": Limit(float, -89.0, 89.0, "elevation, degrees"),
    "color": Limit(float, 0.0, 1.0, "colour channel"),
    # meshes (a3d.io.mesh.extract, a3d mesh)
    "mesh_resolution": Limit(int, 16, 1024, "voxels along the longest side"),
    "mesh_faces": Limit(int, 100, 10_000_000, "triangles"),
    "mesh_views": Limit(int, 8, 256, "views"),
    "texture_size": Limit(int, 64, 8192, "texels a side"),
    "mesh_scale": Limit(float, 1e-6, 1e6, "coordinate scale"),
    # synthetic heads (export_dataset, a3d synth)
    "synth_heads": Limit(int, 1, 1_000_000, "heads"),
    "synth_views": Limit(int, 1, 80, "views a head"),
    "synth_size": Limit(int, 8, 4096, "image size, pixels"),
    "synth_gaussians": Limit(int, 2_000, 4_000_000, "Gaussians a head"),
    "synth_batch": Limit(int, 1, 4096, "heads a batch"),
    # evaluation (run_eval, a3d eval)
    "eval_heads": Limit(int, 1, 10_000, "held-out heads"),
    "eval_views": Limit(int, 1, 1000, "views a head"),
    "eval_size": Limit(int, 16, 2048, "render size, pixels"),
    "max_captures": Limit(int, 0, 10_000_000, "captures (0 = all)"),
    "synthetic_turn": Limit(float, 0.0, 90.0, "turn, degrees"),
}
"""Every user-facing number's range (see the module docstring)."""


def check(quantity: str, value: Any, name: str | None = None) -> Any:
    """``value`` (an int, or a float for float quantities) if it lies in ``LIMITS[quantity]``;
    else InputError naming ``name`` (default: the quantity)."""
    lim = LIMITS[quantity]
    name = name or quantity
    if lim.kind is int:
        return check_int(value, name, lim.lo, lim.hi)
    return check_number(value, name, lim.lo, lim.hi)


def check_color(value: Any, name: str = "background") -> tuple[float, float, float]:
    """Three finite numbers in [0, 1] (an RGB colour) as a tuple, else InputError naming ``name``."""
    try:
        rgb = tuple(float(v) if not isinstance(v, bool) else math.nan for v in value)
    except (TypeError, ValueError):
        rgb = ()
    if len(rgb) != 3 or not all(math.isfinite(c) and 0.0 <= c <= 1.0 for c in rgb):
        raise InputError(f"{name}: expected three numbers in [0, 1] (R, G, B), got {_short(value)}")
    return rgb


def _short(value: Any) -> str:
    text = repr(list(value) if isinstance(value, tuple) else value)
    return text if len(text) <= 80 else text[:77] + "..."


def arg(quantity: str) -> Callable[[str], Any]:
    """An argparse ``type=`` that parses a flag's text as ``LIMITS[quantity]`` and refuses a value out
    of range (argparse then prints a usage error and exits 2, before any work)."""
    lim = LIMITS[quantity]

    def parse(text: str):
        try:
            value = lim.kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an int' if lim.kind is int else 'a number'}, "
                                             f"got {text!r}") from None
        try:
            return check(quantity, value, lim.what)
        except InputError as e:  # argparse names the flag: keep "expected ..., got ..."
            raise argparse.ArgumentTypeError(str(e).split(": ", 1)[-1]) from None

    parse.__name__ = lim.kind.__name__  # argparse names the type in its messages
    return parse
