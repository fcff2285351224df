"""One training batch, :class:`Batch`: the tensors the objective reads, whichever source made them.

Both sources build it: synthetic heads rendered on the fly (:func:`a3d.train.batches.render_batch`) and a
dataset folder (:class:`a3d.data.dataset.HeadDataset`, whose items are batches of one that
:meth:`Batch.cat` collates). It lives apart from both so that the dataset reader and the batch sources
share it without importing each other.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor

__all__ = ["Batch"]


@dataclass
class Batch:
    """B training samples at S² pixels, each with V supervision views; images are RGB in [0, 1] on
    :data:`a3d.core.framing.BACKGROUND`, cameras in the conventions of :mod:`a3d.core.cameras`.

    Fields:
        input: [B, 3, S, S] the network's input portrait (the front canonical view).
        input_mask: [B, 1, S, S] its matte (all ones for a photo without alpha).
        input_viewmat: [B, 4, 4], input_K: [B, 3, 3] its camera.
        images: [B, V, 3, S, S] the supervision views; masks: [B, V, 1, S, S] their mattes.
        viewmats: [B, V, 4, 4], Ks: [B, V, 3, 3] their cameras.
        canonical: [B, 4, 3, S, S] the 4 canonical views (front, left, right, back): the flow-matching
            target and the AVAS target; background where ``canonical_valid`` is False.
        canonical_valid: [B, 4] bool, which canonical views exist (a synthetic head has all four; a
            capture only those whose camera matches a canonical one).
        canonical_alpha: [B, 4, 1, S, S] the canonical views' coverage, canonical_depth: [B, 4, 1, S, S]
            their surface's camera z; both zeros where ``geometry_valid`` is False.
        geometry_valid: [B] bool, whether the two fields above hold a matte and depth (synthetic heads:
            yes; photos: no, and the loss terms that need them are off).
        ok: [B] bool, False for a sample without a readable input (the loss gives it no weight).
        skipped: [B] int64, images that failed to decode while building the sample.
    """

    input: Tensor
    input_mask: Tensor
    input_viewmat: Tensor
    input_K: Tensor
    images: Tensor
    masks: Tensor
    viewmats: Tensor
    Ks: Tensor
    canonical: Tensor
    canonical_valid: Tensor
    canonical_alpha: Tensor
    canonical_depth: Tensor
    geometry_valid: Tensor
    ok: Tensor
    skipped: Tensor

    def tensors(self) -> dict[str, Tensor]:
        """The fields by name."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        return Batch(**{k: v.to(device, non_blocking=non_blocking) for k, v in self.tensors().items()})

    def pin_memory(self) -> Batch:
        """Page-locked copies (a DataLoader with ``pin_memory=True`` calls this on what it yields)."""
        return Batch(**{k: v.pin_memory() for k, v in self.tensors().items()})

    @staticmethod
    def cat(batches: Sequence[Batch]) -> Batch:
        """One batch of all samples, in order (the DataLoader's collate for :class:`a3d.data.dataset.HeadDataset`)."""
        return Batch(**{f.name: torch.cat([getattr(b, f.name) for b in batches]) for f in dataclasses.fields(Batch)})
