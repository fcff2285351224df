"""PlayCanvas' SOG (spatially ordered Gaussians, version 2; read and write): the smallest of the web
formats, read by SuperSplat, the PlayCanvas engine and splat-transform.

**Layout**: a ``.sog`` file is a zip archive (stored, not deflated: its members are already
compressed) of ``meta.json`` and five lossless WebP images of W x H pixels, W = 4·ceil(√N / 4),
H = 4·ceil(N / W / 4); Gaussian i, in Morton order (:func:`a3d.io.splat_codec.morton_order`), is pixel i
in row-major order::

    means_l.webp, means_u.webp   low and high bytes (RGB = x y z) of a 16-bit position: each coordinate
                                 goes through sign(v)·log(|v| + 1), then into meta's [mins, maxs]
    quats.webp                   smallest three: RGB the three smaller of (w, x, y, z) in order, each
                                 255·(v·√2/2 + 0.5) with the largest made positive; A = 252 + its index
    scales.webp                  RGB: labels into meta's 256-entry codebook of log scales
    sh0.webp                     RGB: labels into meta's codebook of SH DC coefficients (f_dc);
                                 A: opacity · 255

``meta.json``: ``{"version": 2, "count": N, "means": {"mins", "maxs", "files"}, "scales": {"codebook",
"files"}, "quats": {"files"}, "sh0": {"codebook", "files"}}``. The codebooks are 1-D k-means over all
three columns (:func:`a3d.io.splat_codec.kmeans_1d`). Higher SH are dropped (a3d's model has none;
SOG keeps them as a palette, which is not written). Axes and ``up`` as :func:`a3d.io.ply.save_ply`;
faint Gaussians are dropped (``min_opacity``).
"""
from __future__ import annotations

import io
import json
import math
import os
import zipfile

import numpy as np
import torch
from PIL import Image

from ..core.files import atomic_write
from ..core.gaussians import SH_C0, Gaussians
from ..errors import InputError, check_int
from .splat_codec import (DEFAULT_UP, WEB_MIN_OPACITY, _oriented, from_smallest_three, kmeans_1d, morton_order, prepare,
                          resolve_up, smallest_three)

__all__ = ["save_sog", "load_sog", "texture_size"]

_FILES = {"means": ["means_l.webp", "means_u.webp"], "scales": ["scales.webp"], "quats": ["quats.webp"],
          "sh0": ["sh0.webp"]}
_MAX_META_BYTES = 1 << 20


def texture_size(n: int) -> tuple[int, int]:
    """(width, height) of the textures that hold ``n`` Gaussians."""
    width = max(4, math.ceil(math.sqrt(n) / 4) * 4)
    return width, max(4, math.ceil(n / width / 4) * 4)


def _log_transform(v: np.ndarray) -> np.ndarray:
    return np.sign(v) * np.log1p(np.abs(v))


def _webp(rgba: np.ndarray, width: int, height: int) -> bytes:
    """[N, 4] uint8 pixels, padded to width·height, as a lossless WebP that keeps RGB under A = 0."""
    img = np.zeros((width * height, 4), np.uint8)
    img[:len(rgba)] = rgba
    buf = io.BytesIO()
    # a low effort: on these textures as small as the highest (quality=100) and six times faster
    Image.fromarray(img.reshape(height, width, 4), "RGBA").save(buf, "WEBP", lossless=True, exact=True, quality=25,
                                                                method=3)
    return buf.getvalue()


def save_sog(gaussians: Gaussians, path: str | os.PathLike, up: str = DEFAULT_UP,
             min_opacity: float = WEB_MIN_OPACITY) -> int:
    """Write one scene (means [N, 3], no batch dims) as a bundled ``.sog`` (see the module docstring);
    ``up`` and ``min_opacity`` as :func:`a3d.io.spz.save_spz`. Returns the number of Gaussians written."""
    g = prepare(gaussians, "save_sog", up, 0, min_opacity)
    order = morton_order(g["means"])
    g = {name: v[order] for name, v in g.items()}
    n = len(order)
    width, height = texture_size(n)
    opaque = np.full((n, 1), 255, np.uint8)

    logged = _log_transform(g["means"])
    mins, maxs = (logged.min(0), logged.max(0)) if n else (np.zeros(3), np.zeros(3))
    span = np.where(maxs > mins, maxs - mins, 1.0)
    q16 = np.clip(np.rint((logged - mins) / span * 65535.0), 0, 65535).astype(np.uint32)
    means_l = np.concatenate([(q16 & 0xFF).astype(np.uint8), opaque], -1)
    means_u = np.concatenate([(q16 >> 8).astype(np.uint8), opaque], -1)

    largest, rest = smallest_three(g["quats"])
    quats = np.concatenate([np.clip(np.rint(255.0 * (rest * (np.sqrt(2) / 2) + 0.5)), 0, 255).astype(np.uint8),
                            (252 + largest).astype(np.uint8)[:, None]], -1)

    scale_book, scale_labels = kmeans_1d(np.log(g["scales"]))
    color_book, color_labels = kmeans_1d((g["colors"] - 0.5) / SH_C0)
    alpha = np.clip(np.rint(g["opacities"] * 255.0), 0, 255).astype(np.uint8)[:, None]

    meta = {"version": 2, "asset": {"generator": "a3d"}, "count": n,
            "means": {"mins": mins.tolist(), "maxs": maxs.tolist(), "files": _FILES["means"]},
            "scales": {"codebook": scale_book.tolist(), "files": _FILES["scales"]},
            "quats": {"files": _FILES["quats"]},
            "sh0": {"codebook": color_book.tolist(), "files": _FILES["sh0"]}}
    members = {"meta.json": json.dumps(meta).encode(),
               "means_l.webp": _webp(means_l, width, height), "means_u.webp": _webp(means_u, width, height),
               "quats.webp": _webp(quats, width, height),
               "scales.webp": _webp(np.concatenate([scale_labels, opaque], -1), width, height),
               "sh0.webp": _webp(np.concatenate([color_labels, alpha], -1), width, height)}
    with atomic_write(path) as f, zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as z:
        for name, data in members.items():
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))  # reproducible bytes
            z.writestr(info, data)
    return n


def _read_image(path: str, z: zipfile.ZipFile, name: str, width: int, height: int) -> np.ndarray:
    """Member ``name`` decoded to [width·height, 4] uint8, its size checked before decoding."""
    try:
        info = z.getinfo(name)
    except KeyError:
        raise InputError(f"{path}: the SOG archive has no {name!r}") from None
    if info.file_size > 8 * width * height + (1 << 16):  # a lossless WebP is never this much larger
        raise InputError(f"{path}: {name} is {info.file_size:,} bytes, too large for {width}x{height} pixels")
    try:
        img = Image.open(io.BytesIO(z.read(name)))
        if img.format != "WEBP" or img.size[0] * img.size[1] < width * height \
                or img.size[0] * img.size[1] > 4 * width * height:
            raise InputError(f"{path}: {name} is a {img.format} of {img.size}, expected a WebP of {width}x{height}")
        return np.asarray(img.convert("RGBA")).reshape(-1, 4)
    except (OSError, zipfile.BadZipFile) as e:
        raise InputError(f"{path}: {name} cannot be decoded ({e})") from None


def load_sog(path: str | os.PathLike, max_vertices: int = 50_000_000, up: str | None = None) -> Gaussians:
    """Read a bundled ``.sog`` of version 2 (module docstring) into Gaussians (float32, CPU; the SH DC
    colour only). ``up`` is the file's up axis.

    Raises InputError naming the file for something that is not a zip with a version-2 meta.json, a
    count over ``max_vertices``, images too small or too large for the count, or codebooks of the wrong
    length."""
    check_int(max_vertices, "max_vertices", 0)
    up = resolve_up(up)
    path = os.fspath(path)
    if os.path.isdir(path):
        raise InputError(f"{path}: expected a .sog file, found a folder")
    try:
        z = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise InputError(f"{path}: not a .sog file (not a zip archive)") from None
    with z:
        try:
            info = z.getinfo("meta.json")
        except KeyError:
            raise InputError(f"{path}: the SOG archive has no meta.json") from None
        if info.file_size > _MAX_META_BYTES:
            raise InputError(f"{path}: meta.json is {info.file_size:,} bytes; at most {_MAX_META_BYTES:,}")
        try:
            meta = json.loads(z.read("meta.json"))
            n = meta["count"]
            if meta.get("version") != 2 or not isinstance(n, int) or n < 0:
                raise InputError(f"{path}: SOG meta.json version {meta.get('version')!r} is not supported (2 is)")
            mins = np.asarray(meta["means"]["mins"], np.float64)
            maxs = np.asarray(meta["means"]["maxs"], np.float64)
            scale_book = np.asarray(meta["scales"]["codebook"], np.float64)
            color_book = np.asarray(meta["sh0"]["codebook"], np.float64)
            files = {key: meta[key]["files"] for key in _FILES}
        except (ValueError, KeyError, TypeError) as e:
            raise InputError(f"{path}: meta.json is not SOG's ({type(e).__name__}: {e})") from None
        if n > max_vertices:
            raise InputError(f"{path}: {n} Gaussians exceed max_vertices={max_vertices}")
        if mins.shape != (3,) or maxs.shape != (3,) or len(scale_book) != 256 or len(color_book) != 256 \
                or not all(np.isfinite(a).all() for a in (mins, maxs, scale_book, color_book)):
            raise InputError(f"{path}: meta.json's bounds or codebooks have the wrong length or are not finite")
        width, height = texture_size(n)
        lo, hi = (_read_image(path, z, name, width, height)[:n] for name in files["means"])
        quats_px = _read_image(path, z, files["quats"][0], width, height)[:n]
        scales_px = _read_image(path, z, files["scales"][0], width, height)[:n]
        sh0_px = _read_image(path, z, files["sh0"][0], width, height)[:n]
    q16 = lo[:, :3].astype(np.float64) + 256.0 * hi[:, :3]
    logged = mins + (maxs - mins) * q16 / 65535.0
    means = np.sign(logged) * np.expm1(np.abs(logged))
    tag = quats_px[:, 3].astype(np.int64)
    rest = (quats_px[:, :3] / 255.0 * 2.0 - 1.0) / np.sqrt(2.0)
    quats = from_smallest_three(np.clip(tag - 252, 0, 3), rest)
    quats[(tag < 252)] = (1.0, 0.0, 0.0, 0.0)  # as the reference reader: an unknown tag is no rotation
    return _oriented(Gaussians(
        means=torch.from_numpy(means.astype(np.float32)), quats=torch.from_numpy(quats.astype(np.float32)),
        scales=torch.from_numpy(np.exp(scale_book[scales_px[:, :3]]).astype(np.float32)),
        opacities=torch.from_numpy((sh0_px[:, 3] / 255.0).astype(np.float32)),
        colors=torch.from_numpy((0.5 + SH_C0 * color_book[sh0_px[:, :3]]).astype(np.float32))), up, from_file=True)
