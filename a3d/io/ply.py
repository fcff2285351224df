"""Gaussian-splat files: the Inria 3DGS PLY (read and write) and the 32-byte ``.splat`` (read and write).

**PLY layout** (what the Inria 3DGS code, SIBR, SuperSplat and most viewers read and write): a
``binary_little_endian 1.0`` file with one ``vertex`` element whose float32 properties are, in order::

    x y z                     centre                      = means
    nx ny nz                  unused normals (zeros)
    f_dc_0 f_dc_1 f_dc_2      DC colour coefficient       colors = 0.5 + SH_C0 * f_dc
    f_rest_0 .. f_rest_{3K-1} higher SH, channel-major: f_rest_{c*K + k} = sh_rest[n, k, c]
    opacity                   logit                       opacities = sigmoid(opacity)
    scale_0 scale_1 scale_2   log standard deviations     scales = exp(scale_i)
    rot_0 rot_1 rot_2 rot_3   quaternion w x y z (stored as given, not normalised)

:func:`save_ply` writes exactly this order, then (with ``confidence=``) a3d's own extra property
``confidence`` (per-Gaussian, :mod:`a3d.inference.confidence`; :func:`load_confidence` reads it).
:func:`load_ply` accepts the properties in any order, with or without ``nx ny nz`` and
``confidence``, and with 3K ``f_rest_*`` for K + 1 a square (K = 0, 3, 8, 15, 24 for SH degree
0..4); it refuses any other property (an error names them), any other element, any
non-float32 type, ASCII or big-endian files, a header over 64 KiB, a vertex count above
``max_vertices`` or larger than the file, trailing bytes, NaN/inf values and log scales outside
[-80, 80] (whose exp is no positive float32); the error, an :class:`a3d.errors.InputError`, names
the file and the field. It checks the header against the file size before reading any vertex data, so a bogus
header never makes it read or allocate gigabytes.

Round trip: ``means``, ``quats`` and ``sh_rest`` are stored as given and come back bit for bit;
``colors``, ``opacities`` and ``scales`` pass through their encodings (SH DC, logit, log) computed
in float64, so they come back to float32 rounding (relative error about 1e-6). Opacities are
clamped to ``[1e-6, 1 - 1e-6]`` before the logit (0 and 1 have no finite logit); scales must be
positive and every value finite, else :func:`save_ply` raises (``Gaussians.prune`` drops such
Gaussians).

**.splat layout** (the antimatter15 WebGL viewer and its followers): 32 bytes a splat, little endian,
no header::

    0..11  x y z          float32
    12..23 scale 0..2     float32, linear
    24..27 R G B A        uint8: colour and opacity times 255, rounded and clamped to [0, 255]
    28..31 rot w x y z    uint8: (q / |q|) * 128 + 128, rounded and clamped to [0, 255]

sorted by descending ``scale_0 * scale_1 * scale_2 * opacity`` (the viewer draws the first
splats first while the rest streams in).

**SH degree.** :func:`save_ply` writes the degree the Gaussians carry (a3d's model: 0) unless
``sh_degree`` asks for another: ``sh_degree=3`` pads ``f_rest_*`` with zeros to the 45 of the Inria
files, for loaders that require them. :func:`load_ply` reads degrees 0 to 4 and keeps ``sh_rest``;
:func:`a3d.render` shades degrees 1 to 3 per camera (:mod:`a3d.core.sh`).

**Up axis** (``up=`` of the save and load functions, :data:`UP_CHOICES`). a3d's world is y up, face
toward +z; files are written in the y-down world of COLMAP-trained scenes by default
(:data:`DEFAULT_UP` = ``"-y"``, the head turned 180° about x, :func:`flip_yz`), which SuperSplat,
gsplat.js (and gradio's Model3D) show upright with their default cameras; ``up="+y"`` writes a3d's
world, which Spark and @mkkellogg/gaussian-splats-3d show upright (tests/test_viewer_browser.py).
:func:`save_ply` records the axis in the header (``comment up -y``); :func:`load_ply` with ``up=None``
follows that comment, reads a PLY of an older a3d (``comment written by a3d`` and no axis) as ``"+y"``,
and any other PLY as ``"-y"``, the 3DGS convention; an explicit ``up`` overrides.
"""
from __future__ import annotations

import math
import os
import re

import numpy as np
import torch

from ..core.files import atomic_write
from ..core.gaussians import SH_C0, Gaussians
from ..errors import InputError, check_int
from .splat_codec import (_MAX_SH_DEGREE, DEFAULT_UP, MAX_HEADER_BYTES, UP_CHOICES, _as_numpy, _oriented,
                          _with_degree, flip_yz, resolve_up)

__all__ = ["save_ply", "load_ply", "load_confidence", "save_splat", "load_splat", "flip_yz", "UP_CHOICES",
           "DEFAULT_UP", "MAX_HEADER_BYTES", "OPACITY_EPS", "CONFIDENCE"]

CONFIDENCE = "confidence"
"""The extra vertex property a3d writes and reads beside the Inria layout: per-Gaussian confidence in [0, 1]."""

OPACITY_EPS = 1e-6
"""Opacities are clamped to [OPACITY_EPS, 1 - OPACITY_EPS] before the logit when saving."""

_MAX_LOG_SCALE = 80.0  # exp(±80) ~ 5.5e34 / 1.8e-35: positive, finite float32 sizes
_FLOAT_TYPES = ("float", "float32")
_SPLAT_DTYPE = np.dtype([("means", "<f4", 3), ("scales", "<f4", 3), ("rgba", "u1", 4), ("rot", "u1", 4)])
assert _SPLAT_DTYPE.itemsize == 32


def _vertex_names(k: int) -> list[str]:
    """The property names of the Inria layout with ``k`` higher SH coefficients per channel, in order."""
    return (["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
            + [f"f_rest_{i}" for i in range(3 * k)]
            + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"])


def save_ply(gaussians: Gaussians, path: str | os.PathLike, sh_degree: int | None = None,
             up: str = DEFAULT_UP, confidence: torch.Tensor | None = None) -> None:
    """Write one scene of Gaussians (no batch dims: means [N, 3]) as an Inria 3DGS PLY.

    Args:
        gaussians: the scene.
        path: the file to write (replaced atomically).
        sh_degree: None writes the SH the Gaussians carry (a3d's model: degree 0); 0..4 writes that
            degree, padding the higher coefficients with zeros (``sh_degree=3`` gives the 45
            ``f_rest_*`` of the Inria layout, which some loaders require) or dropping extra ones.
        up: ``"-y"`` (the default) writes the y-down world of COLMAP-trained scenes (:func:`flip_yz`);
            ``"+y"`` keeps a3d's world (y up, face +z); see :data:`UP_CHOICES` for which viewer wants which.
            The header records it (``comment up ...``).
        confidence: optional [N] values in [0, 1] stored as an extra vertex property ``confidence``
            after ``rot_3`` (:mod:`a3d.inference.confidence`; viewers ignore properties they do not know,
            :func:`load_confidence` reads it).

    See the module docstring for the layout, the opacity clamp and what round-trips exactly.
    Raises ValueError for batched Gaussians, non-finite values or non-positive scales.
    """
    g = _as_numpy(_oriented(_with_degree(gaussians, sh_degree), up), "save_ply")
    n = g["means"].shape[0]
    k = 0 if g.get("sh_rest") is None else g["sh_rest"].shape[1]
    names = _vertex_names(k)
    if confidence is not None:
        conf = torch.as_tensor(confidence).detach().to("cpu", torch.float64).reshape(-1).numpy()
        if conf.shape != (n,) or not np.isfinite(conf).all():
            raise InputError(f"confidence: expected {n} finite values, got shape {conf.shape}")
        names = names + [CONFIDENCE]
    rec = np.zeros(n, dtype=np.dtype([(name, "<f4") for name in names]))
    for i, axis in enumerate("xyz"):
        rec[axis] = g["means"][:, i]
    f_dc = (g["colors"] - 0.5) / SH_C0
    for c in range(3):
        rec[f"f_dc_{c}"] = f_dc[:, c]
        for j in range(k):  # channel-major: all k coefficients of R, then G, then B
            rec[f"f_rest_{c * k + j}"] = g["sh_rest"][:, j, c]
    o = np.clip(g["opacities"], OPACITY_EPS, 1.0 - OPACITY_EPS)
    rec["opacity"] = np.log(o) - np.log1p(-o)
    log_s = np.log(g["scales"])
    for i in range(3):
        rec[f"scale_{i}"] = log_s[:, i]
    for i in range(4):
        rec[f"rot_{i}"] = g["quats"][:, i]
    if confidence is not None:
        rec[CONFIDENCE] = conf
    header = "".join(["ply\n", "format binary_little_endian 1.0\n", "comment written by a3d\n", f"comment up {up}\n",
                      f"element vertex {n}\n", *(f"property float {name}\n" for name in names), "end_header\n"])
    with atomic_write(path) as f:
        f.write(header.encode("ascii"))
        f.write(rec.view(np.uint8))


def declared_up(header_lines: list[str]) -> str | None:
    """The up axis a PLY header declares: its ``comment up AXIS``; ``"+y"`` for a file of an older a3d
    (``comment written by a3d`` and no axis, a3d's world); None when it says nothing."""
    comments = [line.split()[1:] for line in header_lines if line.startswith("comment")]
    for words in comments:
        if len(words) == 2 and words[0] == "up" and words[1] in UP_CHOICES:
            return words[1]
    return "+y" if ["written", "by", "a3d"] in comments else None


def _parse_header(path: str, f) -> tuple[int, list[str], int, str | None]:
    """Read and check the PLY header; returns (vertex count, property names, data offset, declared up axis)."""
    head = f.read(MAX_HEADER_BYTES + 1)
    if not head.startswith(b"ply\n") and not head.startswith(b"ply\r\n"):
        raise InputError(f"{path}: not a PLY file (it does not start with 'ply')")
    m = re.search(rb"(?:^|\n)end_header\r?\n", head)
    if m is None or m.end() > MAX_HEADER_BYTES:
        raise InputError(f"{path}: no 'end_header' within the first {MAX_HEADER_BYTES} bytes; "
                         f"refusing an oversized or malformed PLY header")
    try:
        lines = head[:m.start()].decode("ascii").splitlines()
    except UnicodeDecodeError:
        raise InputError(f"{path}: the PLY header is not ASCII text") from None
    fmt, count, props, element = None, None, [], None
    for line in lines[1:]:
        tok = line.split()
        if not tok or tok[0] in ("comment", "obj_info"):
            continue
        if tok[0] == "format":
            fmt = " ".join(tok[1:])
            if fmt != "binary_little_endian 1.0":
                raise InputError(f"{path}: PLY format {fmt!r} is not supported; expected "
                                 f"'binary_little_endian 1.0' (the Inria 3DGS layout)")
        elif tok[0] == "element":
            if len(tok) != 3:
                raise InputError(f"{path}: malformed PLY header line {line!r}")
            if element is not None:
                raise InputError(f"{path}: PLY element {tok[1]!r} after 'vertex'; expected a single 'vertex' "
                                 f"element (the Inria 3DGS layout)")
            if tok[1] != "vertex":
                raise InputError(f"{path}: PLY element {tok[1]!r} is not supported; expected a single 'vertex' "
                                 f"element (the Inria 3DGS layout)")
            if not tok[2].isdigit():
                raise InputError(f"{path}: vertex count {tok[2]!r} is not a non-negative integer")
            element, count = tok[1], int(tok[2])
        elif tok[0] == "property":
            if element is None:
                raise InputError(f"{path}: PLY property before any element: {line!r}")
            if len(tok) != 3 or tok[1] == "list":
                raise InputError(f"{path}: PLY property {line!r} is not supported; expected 'property float NAME'")
            if tok[1] not in _FLOAT_TYPES:
                raise InputError(f"{path}: property {tok[2]!r} has type {tok[1]!r}; expected float (float32)")
            if tok[2] in props:
                raise InputError(f"{path}: property {tok[2]!r} appears twice")
            props.append(tok[2])
        else:
            raise InputError(f"{path}: unexpected PLY header line {line!r}")
    if fmt is None:
        raise InputError(f"{path}: the PLY header has no 'format' line")
    if count is None:
        raise InputError(f"{path}: the PLY header has no 'element vertex N' line")
    return count, props, m.end(), declared_up(lines)


def _sh_rest_count(path: str, props: list[str]) -> int:
    """Check the property names against the Inria layout; returns K (higher SH coefficients per channel)."""
    rest = [p for p in props if p.startswith("f_rest_")]
    k3 = len(rest)
    k = k3 // 3
    if k3 % 3 or math.isqrt(k + 1) ** 2 != k + 1 or math.isqrt(k + 1) - 1 > _MAX_SH_DEGREE:
        raise InputError(f"{path}: {k3} f_rest_* properties; expected 3*((d+1)^2 - 1) for an SH degree d "
                         f"in 0..{_MAX_SH_DEGREE} (0, 9, 24, 45 or 72)")
    known = set(_vertex_names(k)) | {CONFIDENCE}
    extra = [p for p in props if p not in known]
    if extra:
        raise InputError(f"{path}: unknown vertex properties {extra}; expected only those of the Inria 3DGS "
                         f"layout (x y z, nx ny nz, f_dc_0..2, f_rest_*, opacity, scale_0..2, rot_0..3)")
    missing = [p for p in _vertex_names(k) if p not in props and p not in ("nx", "ny", "nz")]
    if missing:
        raise InputError(f"{path}: missing vertex properties {missing} of the Inria 3DGS layout")
    return k


def load_ply(path: str | os.PathLike, max_vertices: int = 50_000_000, up: str | None = None) -> Gaussians:
    """Read an Inria 3DGS PLY (from a3d, the Inria code, SuperSplat, ...) into activated Gaussians; a
    PlayCanvas compressed PLY goes to :func:`a3d.io.compressed_ply.load_compressed_ply`.

    Args:
        path: the .ply file.
        max_vertices: refuse files with more Gaussians than this (checked from the header, before
            reading any data).
        up: the file's up axis (:data:`UP_CHOICES`), turned into a3d's y-up world; None (the default)
            follows the header's ``comment up``, else ``"+y"`` for a file of an older a3d and ``"-y"``
            (the 3DGS convention) for any other.

    Returns:
        Gaussians with means [N, 3], quats [N, 4], scales [N, 3], opacities [N], colors [N, 3]
        (float32, CPU) and sh_rest [N, K, 3] when the file has f_rest_* properties.

    Raises:
        InputError (a ValueError) naming the file and what is wrong (see the module docstring for what
        is accepted).
    """
    from .compressed_ply import is_compressed_ply, load_compressed_ply

    check_int(max_vertices, "max_vertices", 0)
    resolve_up(up)  # check the argument before reading
    path = os.fspath(path)
    if os.path.isdir(path):
        raise InputError(f"{path}: expected a PLY file, found a folder")
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        if is_compressed_ply(f.read(MAX_HEADER_BYTES + 1)):
            return load_compressed_ply(path, max_vertices=max_vertices, up=up)
        f.seek(0)
        n, props, offset, declared = _parse_header(path, f)
        up = resolve_up(up, declared)
        k = _sh_rest_count(path, props)
        if n > max_vertices:
            raise InputError(f"{path}: {n} vertices exceed max_vertices={max_vertices}")
        dtype = np.dtype([(p, "<f4") for p in props])
        need = offset + n * dtype.itemsize
        if need > size:
            raise InputError(f"{path}: truncated: the header declares {n} vertices ({need} bytes in all) "
                             f"but the file has {size} bytes")
        if need < size:
            raise InputError(f"{path}: {size - need} unexpected bytes after the {n} vertices")
        rec = np.empty(n, dtype=dtype)
        f.seek(offset)
        if f.readinto(rec.view(np.uint8)) != n * dtype.itemsize:
            raise InputError(f"{path}: truncated while reading the vertex data")
    for p in props:
        if not np.isfinite(rec[p]).all():
            bad = int(np.flatnonzero(~np.isfinite(rec[p]))[0])
            raise InputError(f"{path}: property {p!r} holds NaN or inf (first at vertex {bad})")

    def cols(names: list[str]) -> np.ndarray:  # [N, len(names)] float32
        return np.stack([rec[c] for c in names], axis=-1) if names else np.zeros((n, 0), np.float32)

    f_dc = cols(["f_dc_0", "f_dc_1", "f_dc_2"]).astype(np.float64)
    logit = rec["opacity"].astype(np.float64)
    log_s = cols(["scale_0", "scale_1", "scale_2"]).astype(np.float64)
    out_of_range = (np.abs(log_s) > _MAX_LOG_SCALE).any(-1)
    if out_of_range.any():  # exp would overflow float32 to inf or underflow to a zero size
        bad = int(np.flatnonzero(out_of_range)[0])
        raise InputError(f"{path}: a scale_* value outside [-{_MAX_LOG_SCALE:g}, {_MAX_LOG_SCALE:g}] (vertex {bad}): "
                         f"its exp, the Gaussian's size, is not a positive float32")
    sh_rest = None
    if k:  # f_rest_{c*K + j} -> sh_rest[:, j, c]
        rest = cols([f"f_rest_{i}" for i in range(3 * k)]).reshape(n, 3, k)  # [N, channel, coefficient]
        sh_rest = torch.from_numpy(rest.transpose(0, 2, 1).copy())
    return _oriented(Gaussians(
        means=torch.from_numpy(cols(["x", "y", "z"])),
        quats=torch.from_numpy(cols(["rot_0", "rot_1", "rot_2", "rot_3"])),
        scales=torch.from_numpy(np.exp(log_s).astype(np.float32)),
        opacities=torch.from_numpy((0.5 * (1.0 + np.tanh(0.5 * logit))).astype(np.float32)),  # sigmoid, no overflow
        colors=torch.from_numpy((0.5 + SH_C0 * f_dc).astype(np.float32)),
        sh_rest=sh_rest,
    ), up, from_file=True)


def load_confidence(path: str | os.PathLike) -> torch.Tensor | None:
    """The ``confidence`` vertex property of an a3d PLY ([N] float32 in [0, 1], in the file's vertex order,
    which :func:`load_ply` keeps), or None when the file has none. The header and size are checked as by
    :func:`load_ply`."""
    path = os.fspath(path)
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        n, props, offset, _ = _parse_header(path, f)
        if CONFIDENCE not in props:
            return None
        dtype = np.dtype([(p, "<f4") for p in props])
        if offset + n * dtype.itemsize != size:
            raise InputError(f"{path}: the header declares {offset + n * dtype.itemsize} bytes but the file has {size}")
        f.seek(offset)
        rec = np.frombuffer(f.read(n * dtype.itemsize), dtype=dtype)
    conf = rec[CONFIDENCE].astype(np.float32)
    if not np.isfinite(conf).all():
        raise InputError(f"{path}: the confidence property holds NaN or inf")
    return torch.from_numpy(conf.clip(0.0, 1.0))


def save_splat(gaussians: Gaussians, path: str | os.PathLike, up: str = DEFAULT_UP) -> None:
    """Write one scene of Gaussians (no batch dims) as a ``.splat`` file (32 bytes a splat, see the
    module docstring); higher SH are dropped; ``up`` as in :func:`save_ply`. Raises ValueError for
    batched Gaussians, non-finite values, non-positive scales or zero quaternions."""
    g = _as_numpy(_oriented(gaussians, up), "save_splat")
    qn = np.linalg.norm(g["quats"], axis=-1, keepdims=True)
    if (qn == 0).any():
        raise InputError("gaussians.quats: zero quaternions cannot be normalised; drop them first (gaussians.prune())")
    o = np.clip(g["opacities"], 0.0, 1.0)
    order = np.argsort(-(g["scales"].prod(-1) * o), kind="stable")
    rec = np.empty(len(order), dtype=_SPLAT_DTYPE)
    rec["means"] = g["means"][order]
    rec["scales"] = g["scales"][order]
    rgba = np.concatenate([g["colors"], o[:, None]], -1)[order]
    rec["rgba"] = np.clip(np.rint(rgba * 255.0), 0, 255).astype(np.uint8)
    rec["rot"] = np.clip(np.rint((g["quats"] / qn)[order] * 128.0 + 128.0), 0, 255).astype(np.uint8)
    with atomic_write(path) as f:
        f.write(rec.view(np.uint8))


def load_splat(path: str | os.PathLike, max_vertices: int = 50_000_000, up: str | None = None) -> Gaussians:
    """Read a ``.splat`` file into Gaussians (float32, CPU; colours and opacities quantised to 1/255,
    quaternions to 1/128). ``up`` is the file's up axis (None: :data:`DEFAULT_UP`; the format has no
    header to say). Raises InputError for a size that is not a multiple of 32 bytes, more than
    ``max_vertices`` splats, NaN/inf positions or sizes, or sizes that are not positive."""
    check_int(max_vertices, "max_vertices", 0)
    up = resolve_up(up)
    path = os.fspath(path)
    if os.path.isdir(path):
        raise InputError(f"{path}: expected a .splat file, found a folder")
    size = os.path.getsize(path)
    if size % _SPLAT_DTYPE.itemsize:
        raise InputError(f"{path}: {size} bytes is not a multiple of the 32-byte .splat record")
    n = size // _SPLAT_DTYPE.itemsize
    if n > max_vertices:
        raise InputError(f"{path}: {n} splats exceed max_vertices={max_vertices}")
    rec = np.fromfile(path, dtype=_SPLAT_DTYPE, count=n)
    for name in ("means", "scales"):
        if not np.isfinite(rec[name]).all():
            raise InputError(f"{path}: {name} hold NaN or inf")
    bad = (rec["scales"] <= 0).any(-1)
    if bad.any():
        raise InputError(f"{path}: scales must be positive (splat {int(np.flatnonzero(bad)[0])})")
    rgba = rec["rgba"].astype(np.float32) / 255.0
    return _oriented(Gaussians(
        means=torch.from_numpy(rec["means"].copy()),
        quats=torch.from_numpy((rec["rot"].astype(np.float32) - 128.0) / 128.0),
        scales=torch.from_numpy(rec["scales"].copy()),
        opacities=torch.from_numpy(rgba[:, 3].copy()),
        colors=torch.from_numpy(rgba[:, :3].copy()),
    ), up, from_file=True)
