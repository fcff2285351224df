"""Every Gaussian-splat file a3d writes and reads, chosen by the file's name.

- ``.ply``: the Inria 3DGS PLY, read by every desktop 3DGS tool (:mod:`a3d.io.ply`); keeps faint Gaussians.
- ``.compressed.ply``: PlayCanvas' compressed PLY, SuperSplat's (:mod:`a3d.io.compressed_ply`).
- ``.splat``: 32 bytes a splat, the antimatter15 viewer's and its followers' (:mod:`a3d.io.ply`).
- ``.spz``: Niantic's gzip-packed format (:mod:`a3d.io.spz`).
- ``.sog``: PlayCanvas' WebP textures in a zip, the smallest (:mod:`a3d.io.sog`).
- ``.glb``: glTF 2.0 with KHR_gaussian_splatting (:mod:`a3d.io.gltf_splats`; glTF's frame, a3d's world, in
  metres: ``up`` does not apply). The triangle mesh is ``Avatar.save_mesh``'s, a separate GLB.

Faint Gaussians, under 1/255 opacity (:data:`a3d.io.splat_codec.WEB_MIN_OPACITY`), show in no pixel;
the web formats leave them out unless ``min_opacity=0``. Every format but glTF uses the same
``up`` axis (:data:`a3d.io.ply.UP_CHOICES`).
"""
from __future__ import annotations

import os

from ..core.gaussians import Gaussians
from ..errors import InputError
from .ply import load_ply, load_splat, save_ply, save_splat
from .splat_codec import DEFAULT_UP, WEB_MIN_OPACITY

__all__ = ["SPLAT_FORMATS", "splat_format", "save_splats", "load_splats"]

SPLAT_FORMATS = ("ply", "compressed.ply", "splat", "spz", "sog", "glb")
"""The formats by the ending of their file names (without the dot)."""


def splat_format(path: str | os.PathLike) -> str:
    """The format of ``path`` by its name (one of :data:`SPLAT_FORMATS`); InputError for another name."""
    name = os.path.basename(os.fspath(path)).lower()
    for fmt in sorted(SPLAT_FORMATS, key=len, reverse=True):  # compressed.ply before ply
        if name.endswith("." + fmt):
            return fmt
    raise InputError(f"{os.fspath(path)}: the name does not say which splat format to write; end it with one of "
                     f"{', '.join('.' + f for f in SPLAT_FORMATS)}")


def save_splats(gaussians: Gaussians, path: str | os.PathLike, *, up: str = DEFAULT_UP, sh_degree: int | None = None,
                min_opacity: float | None = None) -> str:
    """Write one scene (means [N, 3]) in the format its name asks for (module docstring).

    Args:
        gaussians: the scene.
        path: the file; its ending picks the format (``head.spz``, ``head.compressed.ply``, ...).
        up: the file's up axis (:data:`a3d.io.ply.UP_CHOICES`).
        sh_degree: None writes the SH the Gaussians carry; a number pads or drops coefficients (``.ply``
            0..4, ``.spz`` and ``.compressed.ply`` 0..3; ``.splat`` and ``.sog`` hold the DC colour only).
        min_opacity: leave out Gaussians under this opacity; None: 1/255 for the web formats, keep all
            for ``.ply``.
    Returns:
        The path written (as a string).
    """
    fmt = splat_format(path)
    path = os.fspath(path)
    if fmt == "ply":
        if min_opacity:
            gaussians = gaussians.index(gaussians.opacities >= min_opacity)
        save_ply(gaussians, path, sh_degree=sh_degree, up=up)
        return path
    floor = WEB_MIN_OPACITY if min_opacity is None else min_opacity
    if fmt == "splat":
        save_splat(gaussians.index(gaussians.opacities >= floor) if floor else gaussians, path, up=up)
    elif fmt == "spz":
        from .spz import save_spz
        save_spz(gaussians, path, up=up, sh_degree=sh_degree, min_opacity=floor)
    elif fmt == "compressed.ply":
        from .compressed_ply import save_compressed_ply
        save_compressed_ply(gaussians, path, up=up, sh_degree=sh_degree, min_opacity=floor)
    elif fmt == "sog":
        from .sog import save_sog
        save_sog(gaussians, path, up=up, min_opacity=floor)
    else:
        from .gltf_splats import save_gltf_splats
        save_gltf_splats(gaussians, path, sh_degree=sh_degree, min_opacity=floor)
    return path


def load_splats(path: str | os.PathLike, *, up: str | None = None, max_vertices: int = 50_000_000) -> Gaussians:
    """Read any format of :data:`SPLAT_FORMATS` into Gaussians (float32, CPU); a ``.ply`` may be either the
    Inria layout or a compressed one, whatever its name. ``up`` is the file's up axis (None: what a PLY
    header declares, else :data:`a3d.io.splat_codec.DEFAULT_UP`)."""
    fmt = splat_format(path)
    if fmt in ("ply", "compressed.ply"):
        return load_ply(path, max_vertices=max_vertices, up=up)
    if fmt == "splat":
        return load_splat(path, max_vertices=max_vertices, up=up)
    if fmt == "spz":
        from .spz import load_spz
        return load_spz(path, max_vertices=max_vertices, up=up)
    if fmt == "glb":
        from .gltf_splats import load_gltf_splats
        return load_gltf_splats(path, max_vertices=max_vertices)
    from .sog import load_sog
    return load_sog(path, max_vertices=max_vertices, up=up)

