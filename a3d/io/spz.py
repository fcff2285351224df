"""Niantic's ``.spz``, version 3 (read and write): about a tenth of the Inria PLY.

**Layout** (little endian; the whole file is one gzip stream)::

    header, 16 bytes     magic 0x5053474E ("NGSP"), version u32 = 3, count u32,
                         SH degree u8, fractional bits u8, flags u8 (1 = antialiased), reserved u8
    positions   9 B/G    x y z as signed 24-bit fixed point with that many fractional bits
    alphas      1 B/G    opacity * 255
    colours     3 B/G    f_dc * 0.15 * 255 + 127.5  (f_dc: the SH DC coefficient, colour = 0.5 + SH_C0 f_dc)
    scales      3 B/G    (log scale + 10) * 16
    rotations   4 B/G    smallest three: 2 bits index of the largest of (x, y, z, w), then the other
                         three in order, each 9 bits |v| / (1/√2) * 511 and a sign bit, largest > 0
    SH          3K B/G   coefficient-major (k0 r g b, k1 r g b, ...), round(v * 128) + 128, degree 1
                         to 5 bits, higher degrees to 4 bits (the reference encoder's buckets)

each quantity rounded to nearest and clamped to its byte range. The reference library calls its
stored axes RUB; PlayCanvas' splat-transform, SuperSplat and the web viewers pass the axes through
as they are, like a PLY's, so :func:`save_spz` writes the same ``up`` as :func:`a3d.io.ply.save_ply`
(:data:`a3d.io.ply.UP_CHOICES`) and a3d's ``head.spz`` and ``splat-transform head.ply head.spz``
agree. Faint Gaussians (under ``min_opacity``) are dropped (:mod:`a3d.io.splat_codec`).

Precision: positions to 2^-fractional_bits (12 bits, 0.24 mm a head unit, unless the scene is over 2048
units across, when fewer are used), scales to 1/16 in log (6%), colours to 1/38 of a SH unit (about
1/135 of the colour range), opacity to 1/255, rotations to about 0.1°.
"""
from __future__ import annotations

import gzip
import io
import os

import numpy as np
import torch

from ..core.files import atomic_write
from ..core.gaussians import SH_C0, Gaussians
from ..errors import InputError, check_int
from .splat_codec import (DEFAULT_UP, WEB_MIN_OPACITY, _oriented, from_smallest_three, prepare, resolve_up,
                          smallest_three)

__all__ = ["save_spz", "load_spz", "SPZ_VERSION"]

SPZ_VERSION = 3
_MAGIC = 0x5053474E
_HEADER = np.dtype([("magic", "<u4"), ("version", "<u4"), ("count", "<u4"), ("sh_degree", "u1"),
                    ("fractional_bits", "u1"), ("flags", "u1"), ("reserved", "u1")])
_COLOR_SCALE = 0.15
_SQRT1_2 = np.sqrt(0.5)


def _u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _fractional_bits(means: np.ndarray) -> int:
    """12 bits, or fewer when the largest coordinate would not fit a signed 24-bit integer."""
    big = float(np.abs(means).max()) if means.size else 0.0
    for bits in range(12, -1, -1):
        if big * (1 << bits) < (1 << 23) - 1:
            return bits
    raise InputError(f"gaussians.means: a coordinate of {big:g} does not fit .spz's 24-bit positions (|x| < 8388607)")


def save_spz(gaussians: Gaussians, path: str | os.PathLike, up: str = DEFAULT_UP, sh_degree: int | None = None,
             min_opacity: float = WEB_MIN_OPACITY) -> int:
    """Write one scene (means [N, 3], no batch dims) as ``.spz`` version 3 (see the module docstring).

    Args:
        gaussians: the scene.
        path: the file to write (replaced atomically).
        up: the file's up axis, as :func:`a3d.io.ply.save_ply`.
        sh_degree: None writes the SH the Gaussians carry; 0..3 that degree (zeros padded).
        min_opacity: Gaussians fainter than this are left out (0 keeps all).
    Returns:
        The number of Gaussians written.
    """
    if sh_degree is not None and not (isinstance(sh_degree, int) and 0 <= sh_degree <= 3):
        raise InputError(f"sh_degree: .spz holds SH degrees 0..3; got {sh_degree!r}")
    g = prepare(gaussians, "save_spz", up, sh_degree, min_opacity)
    n = len(g["means"])
    k = 0 if "sh_rest" not in g else g["sh_rest"].shape[1]
    degree = int(round((k + 1) ** 0.5)) - 1
    if degree > 3:
        raise InputError(f"gaussians.sh_rest: .spz holds SH degrees 0..3, the Gaussians carry {degree}; "
                         f"pass sh_degree=3")
    bits = _fractional_bits(g["means"])
    header = np.zeros(1, _HEADER)
    header[0] = (_MAGIC, SPZ_VERSION, n, degree, bits, 0, 0)
    fixed = np.rint(g["means"] * (1 << bits)).astype(np.int64) & 0xFFFFFF  # two's complement, 24 bits
    positions = np.stack([(fixed >> s) & 0xFF for s in (0, 8, 16)], -1).astype(np.uint8)  # [N, 3, 3]
    alphas = _u8(g["opacities"] * 255.0)
    f_dc = (g["colors"] - 0.5) / SH_C0
    colors = _u8(f_dc * (_COLOR_SCALE * 255.0) + 127.5)
    scales = _u8((np.log(g["scales"]) + 10.0) * 16.0)
    largest, rest = smallest_three(g["quats"][:, [1, 2, 3, 0]])  # the file's order is x y z w
    packed = largest.astype(np.uint32) << np.uint32(30)
    for j in range(3):  # the first of the three lands in the highest bits
        mag = np.clip(np.rint(np.abs(rest[:, j]) / _SQRT1_2 * 511.0), 0, 511).astype(np.uint32)
        word = mag | (rest[:, j] < 0).astype(np.uint32) << np.uint32(9)
        packed |= word << np.uint32(10 * (2 - j))
    parts = [header.tobytes(), positions.tobytes(), alphas.tobytes(), colors.tobytes(), scales.tobytes(),
             packed.astype("<u4").tobytes()]
    if k:
        q = np.rint(g["sh_rest"] * 128.0) + 128.0  # [N, K, 3], coefficient-major as the file
        bucket = np.where(np.arange(k) < 3, 8.0, 16.0)[None, :, None]  # 5 bits for degree 1, 4 above
        q = np.floor((q + bucket / 2) / bucket) * bucket
        parts.append(_u8(q).tobytes())
    with atomic_write(path) as f, gzip.GzipFile(fileobj=f, mode="wb", compresslevel=9, mtime=0) as z:
        for part in parts:
            z.write(part)
    return n


def load_spz(path: str | os.PathLike, max_vertices: int = 50_000_000, up: str | None = None) -> Gaussians:
    """Read a ``.spz`` file (versions 2 and 3, SH degree 0..3) into Gaussians (float32, CPU;
    sh_rest [N, K, 3] when the degree is above 0). ``up`` is the file's up axis.

    Raises InputError naming the file for one that is not gzip, a wrong magic or version, more than
    ``max_vertices`` Gaussians, or a payload shorter or longer than the header declares (it reads no
    more than the declared size, so a small file cannot inflate into gigabytes)."""
    check_int(max_vertices, "max_vertices", 0)
    up = resolve_up(up)
    path = os.fspath(path)
    if os.path.isdir(path):
        raise InputError(f"{path}: expected a .spz file, found a folder")
    with open(path, "rb") as raw:
        start = raw.read(8)
        if start[:4] == b"NGSP" and int.from_bytes(start[4:8], "little") >= 4:  # a plain header, then ZSTD streams
            raise InputError(f"{path}: .spz version {int.from_bytes(start[4:8], 'little')} (ZSTD streams) is not "
                             f"supported; a3d reads versions 2 and 3 (convert with `splat-transform in.spz out.ply`)")
        if start[:2] != b"\x1f\x8b":
            raise InputError(f"{path}: not a .spz file (it is not gzip-compressed)")
        raw.seek(0)
        try:
            with gzip.GzipFile(fileobj=raw, mode="rb") as z:
                head = z.read(_HEADER.itemsize)
                if len(head) < _HEADER.itemsize:
                    raise InputError(f"{path}: truncated .spz header")
                h = np.frombuffer(head, _HEADER)[0]
                if int(h["magic"]) != _MAGIC:
                    raise InputError(f"{path}: not a .spz file (wrong magic number)")
                version, n, degree = int(h["version"]), int(h["count"]), int(h["sh_degree"])
                if version not in (2, 3):
                    raise InputError(f"{path}: .spz version {version} is not supported (2 and 3 are)")
                if degree > 3:
                    raise InputError(f"{path}: SH degree {degree} is not supported (0..3)")
                if n > max_vertices:
                    raise InputError(f"{path}: {n} Gaussians exceed max_vertices={max_vertices}")
                k = (degree + 1) ** 2 - 1
                rot_bytes = 3 if version == 2 else 4
                need = n * (9 + 1 + 3 + 3 + rot_bytes + 3 * k)
                body = z.read(need + 1)
        except (OSError, EOFError) as e:
            raise InputError(f"{path}: the .spz's gzip stream is damaged ({e})") from None
    if len(body) != need:
        raise InputError(f"{path}: the header declares {n} Gaussians ({need} bytes) but the payload has "
                         f"{'more' if len(body) > need else len(body)} bytes")
    buf = io.BytesIO(body)

    def take(count: int, shape: tuple[int, ...]) -> np.ndarray:
        return np.frombuffer(buf.read(count), np.uint8).reshape(shape)

    p = take(9 * n, (n, 3, 3)).astype(np.int64)
    fixed = p[..., 0] | p[..., 1] << 8 | p[..., 2] << 16
    fixed = np.where(fixed & 0x800000, fixed - (1 << 24), fixed)
    means = fixed / float(1 << int(h["fractional_bits"]))
    alphas = take(n, (n,)) / 255.0
    f_dc = (take(3 * n, (n, 3)) / 255.0 - 0.5) / _COLOR_SCALE
    scales = np.exp(take(3 * n, (n, 3)) / 16.0 - 10.0)
    if version == 2:  # x y z as bytes, w >= 0 from the norm
        xyz = take(3 * n, (n, 3)) / 127.5 - 1.0
        quats = np.concatenate([np.sqrt(np.clip(1.0 - (xyz ** 2).sum(-1, keepdims=True), 0, 1)), xyz], -1)
    else:
        packed = np.frombuffer(buf.read(4 * n), "<u4").astype(np.uint32)
        rest = np.stack([(packed >> np.uint32(10 * (2 - j))) & np.uint32(0x3FF) for j in range(3)], -1)
        values = (rest & 0x1FF) / 511.0 * _SQRT1_2 * np.where(rest & 0x200, -1.0, 1.0)
        xyzw = from_smallest_three((packed >> np.uint32(30)).astype(np.int64), values)
        quats = xyzw[:, [3, 0, 1, 2]]
    sh_rest = None
    if k:
        sh_rest = torch.from_numpy(((take(3 * k * n, (n, k, 3)) - 128.0) / 128.0).astype(np.float32))
    return _oriented(Gaussians(
        means=torch.from_numpy(means.astype(np.float32)), quats=torch.from_numpy(quats.astype(np.float32)),
        scales=torch.from_numpy(scales.astype(np.float32)), opacities=torch.from_numpy(alphas.astype(np.float32)),
        colors=torch.from_numpy((0.5 + SH_C0 * f_dc).astype(np.float32)), sh_rest=sh_rest), up, from_file=True)
