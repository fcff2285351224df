"""PlayCanvas' compressed PLY (``*.compressed.ply``; read and write): about a quarter of the Inria PLY,
read by SuperSplat, the PlayCanvas engine and splat-transform.

**Layout**: a ``binary_little_endian 1.0`` PLY with three elements. The Gaussians are sorted along a
Morton curve (:func:`a3d.io.splat_codec.morton_order`) and cut into blocks of 256; ``chunk`` holds each
block's bounds, ``vertex`` each Gaussian's four packed words, ``sh`` (only when the SH degree is above
0) its higher SH coefficients as bytes::

    element chunk ceil(N/256)   float min_x min_y min_z max_x max_y max_z,
                                min_scale_x .. max_scale_z (log scales, within [-20, 20]),
                                min_r min_g min_b max_r max_g max_b (DC colour, 0.5 + SH_C0 f_dc)
    element vertex N            uint packed_position  x 11 bits | y 10 | z 11, each normalised to the block's box
                                uint packed_rotation  2 bits index of the largest of (w, x, y, z), then the
                                                      other three in order, 10 bits each: v·√2/2 + 0.5
                                uint packed_scale     as packed_position, log scales in the block's range
                                uint packed_color     r g b (8 bits each, in the block's range), opacity · 255
    element sh N                uchar f_rest_0 .. f_rest_{3K-1} (the Inria order), trunc((v / 8 + 0.5) · 256)

Axes and ``up`` as :func:`a3d.io.ply.save_ply`; faint Gaussians are dropped (``min_opacity``).
:func:`a3d.io.ply.load_ply` reads these files too (it hands them to :func:`load_compressed_ply`).
"""
from __future__ import annotations

import os
import re

import numpy as np
import torch

from ..core.files import atomic_write
from ..core.gaussians import Gaussians
from ..errors import InputError, check_int
from .splat_codec import (DEFAULT_UP, MAX_HEADER_BYTES, UP_CHOICES, WEB_MIN_OPACITY, _oriented, from_smallest_three,
                          morton_order, prepare, resolve_up, smallest_three)

__all__ = ["save_compressed_ply", "load_compressed_ply", "is_compressed_ply", "BLOCK"]

BLOCK = 256
"""Gaussians a chunk (one set of bounds)."""

_CHUNK_PROPS = ["min_x", "min_y", "min_z", "max_x", "max_y", "max_z",
                "min_scale_x", "min_scale_y", "min_scale_z", "max_scale_x", "max_scale_y", "max_scale_z",
                "min_r", "min_g", "min_b", "max_r", "max_g", "max_b"]
_VERTEX_PROPS = ["packed_position", "packed_rotation", "packed_scale", "packed_color"]
_MAX_LOG_SCALE = 20.0
_SQRT2 = np.sqrt(2.0)


def _unorm(x: np.ndarray, bits: int) -> np.ndarray:
    top = (1 << bits) - 1
    return np.clip(np.floor(x * top + 0.5), 0, top).astype(np.uint32)


def _block_bounds(v: np.ndarray, n_blocks: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-block min and max [B, C] of values [N, C] in blocks of BLOCK rows (the last may be short)."""
    pad = n_blocks * BLOCK - len(v)
    full = np.concatenate([v, np.repeat(v[-1:], pad, 0)]) if pad else v  # the last row repeated: same bounds
    blocks = full.reshape(n_blocks, BLOCK, -1)
    return blocks.min(1), blocks.max(1)


def _normalised(v: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """v [N, C] into [0, 1] within its block's [lo, hi] [B, C] (0 where the range is empty)."""
    block = np.arange(len(v)) // BLOCK
    span = hi[block] - lo[block]
    return np.where(span > 1e-5, (v - lo[block]) / np.where(span > 1e-5, span, 1.0), 0.0).clip(0, 1)


def _pack_11_10_11(u: np.ndarray) -> np.ndarray:
    return _unorm(u[:, 0], 11) << np.uint32(21) | _unorm(u[:, 1], 10) << np.uint32(11) | _unorm(u[:, 2], 11)


def _unpack_11_10_11(w: np.ndarray) -> np.ndarray:
    return np.stack([(w >> 21) / 2047.0, ((w >> 11) & 0x3FF) / 1023.0, (w & 0x7FF) / 2047.0], -1)


def save_compressed_ply(gaussians: Gaussians, path: str | os.PathLike, up: str = DEFAULT_UP,
                        sh_degree: int | None = None, min_opacity: float = WEB_MIN_OPACITY) -> int:
    """Write one scene (means [N, 3], no batch dims) as a PlayCanvas compressed PLY (module docstring).

    ``up``, ``sh_degree`` (0..3) and ``min_opacity`` as :func:`a3d.io.spz.save_spz`. Returns the number
    of Gaussians written."""
    if sh_degree is not None and not (isinstance(sh_degree, int) and 0 <= sh_degree <= 3):
        raise InputError(f"sh_degree: a compressed PLY holds SH degrees 0..3; got {sh_degree!r}")
    g = prepare(gaussians, "save_compressed_ply", up, sh_degree, min_opacity)
    k = 0 if "sh_rest" not in g else g["sh_rest"].shape[1]
    if k > 15:
        raise InputError("gaussians.sh_rest: a compressed PLY holds SH degrees 0..3; pass sh_degree=3")
    order = morton_order(g["means"])
    g = {name: v[order] for name, v in g.items()}
    n = len(order)
    n_blocks = -(-n // BLOCK)
    log_s = np.clip(np.log(g["scales"]), -_MAX_LOG_SCALE, _MAX_LOG_SCALE)
    chunk = np.zeros((n_blocks, 18), np.float32)
    vertex = np.zeros((n, 4), np.uint32)
    if n:
        columns = []
        for c, v in enumerate((g["means"], log_s, g["colors"])):
            lo, hi = _block_bounds(v, n_blocks)
            chunk[:, 6 * c:6 * c + 3], chunk[:, 6 * c + 3:6 * c + 6] = lo, hi
            # normalise against the float32 bounds the file stores
            columns.append(_normalised(v, chunk[:, 6 * c:6 * c + 3].astype(np.float64),
                                       chunk[:, 6 * c + 3:6 * c + 6].astype(np.float64)))
        pos_u, scale_u, color_u = columns
        largest, rest = smallest_three(g["quats"])  # the file's order is w x y z, as the Inria PLY
        rot = largest.astype(np.uint32) << np.uint32(30)
        for j in range(3):
            rot |= _unorm(rest[:, j] * (_SQRT2 / 2) + 0.5, 10) << np.uint32(10 * (2 - j))
        vertex[:, 0] = _pack_11_10_11(pos_u)
        vertex[:, 1] = rot
        vertex[:, 2] = _pack_11_10_11(scale_u)
        vertex[:, 3] = (_unorm(color_u[:, 0], 8) << np.uint32(24) | _unorm(color_u[:, 1], 8) << np.uint32(16)
                        | _unorm(color_u[:, 2], 8) << np.uint32(8) | _unorm(g["opacities"], 8))
    lines = ["ply", "format binary_little_endian 1.0", "comment written by a3d",
             f"comment up {up}", f"element chunk {n_blocks}", *(f"property float {p}" for p in _CHUNK_PROPS),
             f"element vertex {n}", *(f"property uint {p}" for p in _VERTEX_PROPS)]
    sh = b""
    if k:
        lines += [f"element sh {n}", *(f"property uchar f_rest_{i}" for i in range(3 * k))]
        inria = g["sh_rest"].transpose(0, 2, 1).reshape(n, 3 * k)  # channel-major: f_rest_{c*K + j}
        sh = np.clip(np.trunc((inria / 8.0 + 0.5) * 256.0), 0, 255).astype(np.uint8).tobytes()
    with atomic_write(path) as f:
        f.write(("\n".join(lines) + "\nend_header\n").encode("ascii"))
        f.write(chunk.astype("<f4").tobytes())
        f.write(vertex.astype("<u4").tobytes())
        f.write(sh)
    return n


def is_compressed_ply(head: bytes) -> bool:
    """Whether the first bytes of a PLY (its header) describe PlayCanvas' compressed layout."""
    return b"\nelement chunk " in head and b"packed_position" in head


def _header(path: str, head: bytes) -> tuple[dict[str, tuple[int, list[str]]], int, str | None]:
    """Parse a compressed PLY's header -> ({element: (count, property names)}, data offset, declared up axis)."""
    m = re.search(rb"(?:^|\n)end_header\r?\n", head)
    if not head.startswith(b"ply") or m is None or m.end() > MAX_HEADER_BYTES:
        raise InputError(f"{path}: not a PLY with a header of at most {MAX_HEADER_BYTES} bytes")
    elements: dict[str, tuple[int, list[str]]] = {}
    current, up = None, None
    expected_type = {"chunk": "float", "vertex": "uint", "sh": "uchar"}
    for line in head[:m.start()].decode("ascii", "replace").splitlines()[1:]:
        tok = line.split()
        if tok[:2] == ["comment", "up"] and len(tok) == 3:
            up = tok[2]
        if not tok or tok[0] in ("comment", "obj_info"):
            continue
        if tok[0] == "format":
            if tok[1:] != ["binary_little_endian", "1.0"]:
                raise InputError(f"{path}: PLY format {' '.join(tok[1:])!r} is not supported")
        elif tok[0] == "element" and len(tok) == 3 and tok[1] in expected_type and tok[2].isdigit():
            if tok[1] in elements:
                raise InputError(f"{path}: element {tok[1]!r} appears twice")
            current = tok[1]
            elements[current] = (int(tok[2]), [])
        elif tok[0] == "property" and current is not None and len(tok) == 3 and tok[1] == expected_type[current]:
            elements[current][1].append(tok[2])
        else:
            raise InputError(f"{path}: unexpected line {line!r} in a compressed PLY header")
    return elements, m.end(), up if up in UP_CHOICES else None


def load_compressed_ply(path: str | os.PathLike, max_vertices: int = 50_000_000, up: str | None = None) -> Gaussians:
    """Read a PlayCanvas compressed PLY (module docstring) into Gaussians (float32, CPU; sh_rest
    [N, K, 3] when it has an ``sh`` element). ``up`` is the file's up axis (None: what its header's
    ``comment up`` says, else :data:`a3d.io.splat_codec.DEFAULT_UP`).

    Raises InputError naming the file for another layout, more than ``max_vertices`` Gaussians, a size
    that does not match the header, or non-finite bounds."""
    check_int(max_vertices, "max_vertices", 0)
    resolve_up(up)  # check the argument before reading
    path = os.fspath(path)
    if os.path.isdir(path):
        raise InputError(f"{path}: expected a compressed PLY file, found a folder")
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        elements, offset, declared = _header(path, f.read(MAX_HEADER_BYTES + 1))
        up = resolve_up(up, declared)
        if elements.get("chunk", (0, []))[1] != _CHUNK_PROPS or elements.get("vertex", (0, []))[1] != _VERTEX_PROPS:
            raise InputError(f"{path}: not PlayCanvas' compressed PLY layout (chunk bounds {_CHUNK_PROPS[:3]}..., "
                             f"vertex {_VERTEX_PROPS})")
        n_blocks, n = elements["chunk"][0], elements["vertex"][0]
        sh_names = elements.get("sh", (n, []))[1]
        k3 = len(sh_names)
        if n > max_vertices:
            raise InputError(f"{path}: {n} Gaussians exceed max_vertices={max_vertices}")
        if n_blocks != -(-n // BLOCK) or ("sh" in elements and elements["sh"][0] != n) \
                or sh_names != [f"f_rest_{i}" for i in range(k3)] or k3 not in (0, 9, 24, 45):
            raise InputError(f"{path}: inconsistent compressed PLY header ({n_blocks} chunks for {n} Gaussians, "
                             f"{k3} SH bytes)")
        need = offset + n_blocks * 18 * 4 + n * 16 + n * k3
        if need != size:
            raise InputError(f"{path}: the header declares {need} bytes but the file has {size}")
        f.seek(offset)
        chunk = np.frombuffer(f.read(n_blocks * 72), "<f4").reshape(n_blocks, 18).astype(np.float64)
        vertex = np.frombuffer(f.read(n * 16), "<u4").reshape(n, 4)
        sh = np.frombuffer(f.read(n * k3), np.uint8).reshape(n, k3)
    if not np.isfinite(chunk).all():
        raise InputError(f"{path}: the chunk bounds hold NaN or inf")
    block = np.arange(n) // BLOCK

    def unpack(words: np.ndarray, c: int) -> np.ndarray:
        lo, hi = chunk[block, 6 * c:6 * c + 3], chunk[block, 6 * c + 3:6 * c + 6]
        return lo + (hi - lo) * _unpack_11_10_11(words)

    rot = vertex[:, 1]
    rest = np.stack([((rot >> np.uint32(10 * (2 - j))) & np.uint32(0x3FF)) / 1023.0 for j in range(3)], -1)
    quats = from_smallest_three((rot >> np.uint32(30)).astype(np.int64), (rest - 0.5) * _SQRT2)
    col = vertex[:, 3]
    rgb = np.stack([(col >> np.uint32(s)) & np.uint32(0xFF) for s in (24, 16, 8)], -1) / 255.0
    colors = chunk[block, 12:15] + (chunk[block, 15:18] - chunk[block, 12:15]) * rgb
    sh_rest = None
    if k3:
        k = k3 // 3
        v = np.where(sh == 0, 0.0, np.where(sh == 255, 1.0, (sh + 0.5) / 256.0))
        sh_rest = torch.from_numpy(((v - 0.5) * 8.0).reshape(n, 3, k).transpose(0, 2, 1).astype(np.float32))
    return _oriented(Gaussians(
        means=torch.from_numpy(unpack(vertex[:, 0], 0).astype(np.float32)),
        quats=torch.from_numpy(quats.astype(np.float32)),
        scales=torch.from_numpy(np.exp(unpack(vertex[:, 2], 1)).astype(np.float32)),
        opacities=torch.from_numpy(((col & np.uint32(0xFF)) / 255.0).astype(np.float32)),
        colors=torch.from_numpy(colors.astype(np.float32)), sh_rest=sh_rest), up, from_file=True)
