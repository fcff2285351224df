"""What the splat file formats share: the up axis of files (:data:`UP_CHOICES`, :func:`flip_yz`), the
checked numpy copy of a scene, and the quantisation of the compressed web formats (:mod:`a3d.io.spz`,
:mod:`a3d.io.compressed_ply`, :mod:`a3d.io.sog`): the scene prepared for a web file (turned to the file's
up axis, its SH degree set, faint Gaussians dropped), Morton order, smallest-three quaternions and a
1-D k-means codebook.

**Faint Gaussians.** A Gaussian under 1/255 opacity (:data:`WEB_MIN_OPACITY`) adds less than one
8-bit step to any pixel, and a3d's rasterizer culls it (:data:`a3d.core.contract.ALPHA_MIN`); the web
writers drop such Gaussians by default (``min_opacity=``), which shrinks the bundled model's files by
about a third. The Inria PLY and ``.splat`` writers keep every Gaussian.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from ..core.contract import ALPHA_MIN
from ..core.gaussians import Gaussians
from ..errors import InputError

__all__ = ["UP_CHOICES", "DEFAULT_UP", "MAX_HEADER_BYTES", "flip_yz", "turned_to_face", "GSPLAT_CAMERA", "resolve_up",
           "WEB_MIN_OPACITY", "prepare", "morton_order", "smallest_three", "from_smallest_three", "kmeans_1d"]

MAX_HEADER_BYTES = 64 * 1024
"""A PLY header longer than this is refused (real ones are a few hundred bytes)."""

UP_CHOICES = ("+y", "-y")
"""The world up axis of a file. ``"-y"`` (the default, :data:`DEFAULT_UP`) is the y-down world of
COLMAP-trained 3DGS scenes, which the Inria code, SuperSplat/PlayCanvas, gsplat.js (and so gradio's
Model3D) and nerfstudio's exports follow: a3d's head turned 180° about x (:func:`flip_yz`), face toward
−z. ``"+y"`` is a3d's own world (y up, face toward +z), which three.js viewers without a scene-specific
turn (Spark, @mkkellogg/gaussian-splats-3d) show upright. tests/test_viewer_browser.py checks each
viewer with its default camera in headless Chromium."""

DEFAULT_UP = "-y"
"""The up axis a3d's splat writers use unless told otherwise (:data:`UP_CHOICES`): the one that most
3DGS viewers show upright. The PLY writers record it in a header comment (``comment up -y``), which
the PLY readers follow; the other readers assume it."""

_MAX_SH_DEGREE = 4


def _as_numpy(gaussians: Gaussians, what: str) -> dict[str, np.ndarray]:
    """Float64 numpy copies of the fields of a single scene, checked finite."""
    if not isinstance(gaussians, Gaussians):
        raise InputError(f"gaussians: expected an a3d.core.gaussians.Gaussians, got {type(gaussians).__name__}")
    if gaussians.means.dim() != 2:
        raise InputError(f"gaussians: {what} writes one scene [N, ...] without batch dims, got batch shape "
                         f"{tuple(gaussians.batch_shape)}; pick one with gaussians.scene(b)")
    out = {}
    for name in ("means", "quats", "scales", "opacities", "colors", "sh_rest"):
        t = getattr(gaussians, name)
        if t is None:
            continue
        a = t.detach().to("cpu", torch.float64).numpy()
        if not np.isfinite(a).all():
            raise InputError(f"gaussians.{name}: contains NaN or inf; drop such Gaussians first (gaussians.prune())")
        out[name] = a
    if (out["scales"] <= 0).any():
        raise InputError("gaussians.scales: must be positive (the file stores their log); "
                         "drop zero-scale Gaussians first (gaussians.prune())")
    return out


def flip_yz(gaussians: Gaussians, inverse: bool = False) -> Gaussians:
    """The same scene turned 180° about the x axis (y -> −y, z -> −z), any batch dims.

    This converts between a3d's world (y up, face toward +z) and the y-down world of COLMAP-trained
    3DGS scenes (see :data:`UP_CHOICES`). Means flip, quaternions are premultiplied by the turn,
    (w, x, y, z) -> (−x, w, −z, y), and the higher SH coefficients change sign where their basis
    function is odd in (y, z) (:func:`a3d.core.sh.flip_signs`). Turning twice gives the same scene with
    negated quaternions (the same rotations); ``inverse=True`` turns by −180°, (w, x, y, z) -> (x, −w, z, −y),
    which undoes a flip bit for bit (the readers use it, so files round-trip exactly).
    """
    from ..core.sh import flip_signs

    if not isinstance(gaussians, Gaussians):
        raise ValueError(f"gaussians: expected an a3d.core.gaussians.Gaussians, got {type(gaussians).__name__}")
    g = gaussians
    w, x, y, z = g.quats.unbind(-1)
    sh_rest = g.sh_rest
    if sh_rest is not None:
        sh_rest = sh_rest * flip_signs(sh_rest.shape[-2], sh_rest.dtype).to(sh_rest.device)[:, None]
    quats = torch.stack([x, -w, z, -y] if inverse else [-x, w, -z, y], -1)
    return Gaussians(means=g.means * g.means.new_tensor([1.0, -1.0, -1.0]), quats=quats,
                     scales=g.scales, opacities=g.opacities, colors=g.colors, sh_rest=sh_rest)


GSPLAT_CAMERA = (math.sin(0.5) * math.cos(0.5), -math.sin(0.5), -math.cos(0.5) * math.cos(0.5))
"""Where gsplat.js puts its camera by default, as a direction from the origin in the file's world: its
OrbitControls start at yaw = pitch = 0.5 rad, radius 5, and gradio's Model3D (which ignores its
``camera_position`` for splats) keeps them. ``turned_to_face(g, GSPLAT_CAMERA, (0, -1, 0))`` written
with ``up="+y"`` shows the face straight on there (screen up is −y in gsplat.js)."""


def turned_to_face(gaussians: Gaussians, direction: Sequence[float], up: Sequence[float]) -> Gaussians:
    """The head turned so that its face (+z of a3d's world) points along ``direction`` and its crown (+y)
    toward ``up`` (made perpendicular to ``direction``): for viewers whose default camera cannot be set,
    such as gradio's Model3D, a file that shows the face straight on from where their camera stands.
    One scene or any batch dims; higher SH are dropped (they would need turning too)."""
    from ..core.rotations import rotmat_to_quat

    d = torch.nn.functional.normalize(torch.as_tensor(direction, dtype=torch.float64), dim=0)
    u = torch.as_tensor(up, dtype=torch.float64)
    u = torch.nn.functional.normalize(u - (u @ d) * d, dim=0)
    turn = torch.stack([torch.linalg.cross(u, d), u, d], -1)  # columns: where x, y and z go
    g = gaussians
    turn = turn.to(g.means.dtype)
    w1, v1 = rotmat_to_quat(turn).to(g.quats)[0], rotmat_to_quat(turn).to(g.quats)[1:]
    w2, v2 = g.quats[..., :1], g.quats[..., 1:]
    quats = torch.cat([w1 * w2 - (v2 * v1).sum(-1, keepdim=True),
                       w1 * v2 + w2 * v1 + torch.linalg.cross(v1.expand_as(v2), v2, dim=-1)], -1)  # turn ⊗ q
    return Gaussians(means=g.means @ turn.T, quats=quats, scales=g.scales, opacities=g.opacities, colors=g.colors)


def resolve_up(up: str | None, declared: str | None = None) -> str:
    """The up axis a reader uses: ``up`` if given, else what the file declares, else :data:`DEFAULT_UP`."""
    up = up if up is not None else declared if declared is not None else DEFAULT_UP
    if up not in UP_CHOICES:
        raise ValueError(f"up: expected one of {', '.join(map(repr, UP_CHOICES))} or None, got {up!r}")
    return up


def _oriented(gaussians: Gaussians, up: str, from_file: bool = False) -> Gaussians:
    """a3d's world -> a file's ``up`` axis, or (``from_file``) back."""
    if up not in UP_CHOICES:
        raise ValueError(f"up: expected one of {', '.join(map(repr, UP_CHOICES))}, got {up!r}")
    if up == "-y" and isinstance(gaussians, Gaussians):
        return flip_yz(gaussians, inverse=from_file)
    return gaussians


def _with_degree(gaussians: Gaussians, sh_degree: int | None) -> Gaussians:
    """Gaussians whose sh_rest holds exactly the coefficients of ``sh_degree`` (zeros padded, higher
    ones dropped); None keeps what they carry."""
    if sh_degree is None or not isinstance(gaussians, Gaussians):
        return gaussians
    if isinstance(sh_degree, bool) or not isinstance(sh_degree, int) or not 0 <= sh_degree <= _MAX_SH_DEGREE:
        raise ValueError(f"sh_degree: expected None or an int in 0..{_MAX_SH_DEGREE}, got {sh_degree!r}")
    k = (sh_degree + 1) ** 2 - 1
    g = gaussians
    have = g.sh_rest if g.sh_rest is not None else g.means.new_zeros(g.means.shape[:-1] + (0, 3))
    if have.shape[-2] >= k:
        rest = have[..., :k, :]
    else:
        rest = torch.cat([have, have.new_zeros(have.shape[:-2] + (k - have.shape[-2], 3))], -2)
    return Gaussians(g.means, g.quats, g.scales, g.opacities, g.colors, rest if k else None)


WEB_MIN_OPACITY = float(ALPHA_MIN)
"""The web writers' default ``min_opacity``: 1/255, the rasterizer's cull threshold."""


def prepare(gaussians: Gaussians, what: str, up: str, sh_degree: int | None, min_opacity: float
            ) -> dict[str, np.ndarray]:
    """One scene as float64 numpy arrays (means [N, 3], quats [N, 4] normalised w x y z, scales [N, 3],
    opacities [N], colors [N, 3], sh_rest [N, K, 3] or absent), turned to ``up``, with ``sh_degree``
    coefficients (None: as carried) and without Gaussians below ``min_opacity``. Raises InputError
    for batched Gaussians, non-finite values, non-positive scales or zero quaternions."""
    if isinstance(min_opacity, bool) or not isinstance(min_opacity, (int, float)) or not 0 <= min_opacity < 1:
        raise InputError(f"min_opacity: expected a number in [0, 1), got {min_opacity!r}")
    g = _as_numpy(_oriented(_with_degree(gaussians, sh_degree), up), what)
    keep = g["opacities"] >= min_opacity
    g = {k: v[keep] for k, v in g.items()}
    qn = np.linalg.norm(g["quats"], axis=-1, keepdims=True)
    if (qn == 0).any():
        raise InputError("gaussians.quats: zero quaternions cannot be normalised; drop them first (gaussians.prune())")
    g["quats"] = g["quats"] / qn
    return g


def _spread_bits(v: np.ndarray) -> np.ndarray:
    """Put the 10 low bits of each value 3 apart (bit i -> bit 3i), for a 30-bit Morton code."""
    v = v.astype(np.uint64) & np.uint64(0x3FF)
    for shift, mask in ((16, 0x30000FF), (8, 0x300F00F), (4, 0x30C30C3), (2, 0x9249249)):
        v = (v | (v << np.uint64(shift))) & np.uint64(mask)
    return v


def morton_order(means: np.ndarray) -> np.ndarray:
    """[N] indices that sort the points ``means`` [N, 3] along a Morton (Z-order) curve over their
    bounding box, 1024 cells an axis: near points get near indices, so per-block bounds are tight and
    image codecs see smooth textures."""
    if len(means) == 0:
        return np.zeros(0, np.int64)
    lo, hi = means.min(0), means.max(0)
    cells = np.clip((means - lo) / np.maximum(hi - lo, 1e-12) * 1023.0, 0, 1023).astype(np.uint64)
    code = _spread_bits(cells[:, 0]) << np.uint64(2) | _spread_bits(cells[:, 1]) << np.uint64(1) \
        | _spread_bits(cells[:, 2])
    return np.argsort(code, kind="stable")


def smallest_three(quats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit quaternions [N, 4] -> (index of the largest component [N] in 0..3, the other three [N, 3]
    in their original order, signs set so that the largest is positive; each in [-1/√2, 1/√2])."""
    largest = np.abs(quats).argmax(-1)
    sign = np.where(np.take_along_axis(quats, largest[:, None], -1) < 0, -1.0, 1.0)
    q = quats * sign
    others = np.array([[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]])[largest]
    return largest, np.take_along_axis(q, others, -1)


def from_smallest_three(largest: np.ndarray, rest: np.ndarray) -> np.ndarray:
    """The inverse of :func:`smallest_three`: [N] indices and [N, 3] components -> quaternions [N, 4]."""
    q = np.zeros((len(largest), 4))
    others = np.array([[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]])[largest]
    np.put_along_axis(q, others, rest, -1)
    np.put_along_axis(q, largest[:, None], np.sqrt(np.clip(1.0 - (rest ** 2).sum(-1), 0.0, 1.0))[:, None], -1)
    return q


def kmeans_1d(values: np.ndarray, k: int = 256, iterations: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """A codebook of ``k`` sorted values for ``values`` (any shape) and each value's label (uint8 for
    k <= 256): Lloyd's iterations on the line, started from quantiles (dense where the data are)."""
    flat = values.reshape(-1).astype(np.float64)
    if flat.size == 0:
        return np.zeros(k), np.zeros(values.shape, np.uint8)
    centres = np.quantile(flat, (np.arange(k) + 0.5) / k)
    for _ in range(iterations):
        centres = np.unique(centres)
        cuts = (centres[1:] + centres[:-1]) / 2
        labels = np.searchsorted(cuts, flat)
        sums = np.bincount(labels, flat, len(centres))
        counts = np.bincount(labels, minlength=len(centres))
        centres = np.where(counts > 0, sums / np.maximum(counts, 1), centres)
    centres = np.sort(np.unique(centres))
    centres = np.concatenate([centres, np.full(k - len(centres), centres[-1])])  # pad a short codebook
    labels = np.searchsorted((centres[1:] + centres[:-1]) / 2, flat)
    return centres, labels.reshape(values.shape).astype(np.uint8 if k <= 256 else np.uint16)

