"""Where training batches come from: :class:`SyntheticBatches` (heads of :mod:`a3d.data.synth` generated and
rendered on the training device) and :class:`FolderBatches` (a dataset folder, :mod:`a3d.data.dataset`, through a
DataLoader). Either gives the :class:`a3d.data.batch.Batch` of step ``k`` as a function of (seed, k), also in
a resumed run. :class:`StageClock` times the stages of a logged step; it is here because the sources
book their own stages (generation, ground-truth rendering, loading) and the loop the rest.
"""
from __future__ import annotations

import time

import torch

from ..core import framing
from ..data.batch import Batch
from ..core.cameras import Cameras, canonical_cameras
from ..errors import InputError
from ..core.gaussians import Gaussians
from ..core.rendering import channels_first, render
from ..core.seeding import mix_seed

__all__ = ["SyntheticBatches", "FolderBatches", "StageClock", "render_batch"]

_FIELDS = ("means", "quats", "scales", "opacities", "colors")
_SYNTH_CHUNK = 64  # heads a generator call (its cost hardly grows with the batch)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class StageClock:
    """Wall time per training stage on the steps that are logged: each :meth:`mark` synchronises the
    device and books the time since the previous mark to a stage, so the log shows where a step's
    time goes (generation, ground-truth rendering, network + loss, backward, optimizer) without
    synchronising on the other steps. A stage whose work is shared by several steps is booked with
    :meth:`add` instead: generation with ``ahead`` > 1 (:class:`SyntheticBatches`) books its amortised
    cost, the synchronised wall time of the generator call that made the step's heads divided by the
    steps that call serves, on every logged step of the group, also the first one, which paid it whole."""

    def __init__(self, device: torch.device):
        self.device = device
        self.seconds: dict[str, float] = {}
        _sync(device)
        self.last = time.perf_counter()

    def mark(self, stage: str) -> None:
        _sync(self.device)
        now = time.perf_counter()
        self.seconds[stage] = self.seconds.get(stage, 0.0) + now - self.last
        self.last = now

    def add(self, stage: str, seconds: float) -> None:
        """Book ``seconds`` measured elsewhere to ``stage``; the time since the last mark is dropped (the
        next mark counts from here)."""
        _sync(self.device)
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds
        self.last = time.perf_counter()


@torch.no_grad()
def render_batch(heads: Gaussians, canonical: Cameras, cams: Cameras) -> Batch:
    """Ground truth for Gaussians [B, N] (synthetic heads): the 4 canonical views (the front one is
    the input portrait) and supervision views from ``cams`` [B, V], with their mattes and depth."""
    B = heads.means.shape[0]
    bg = framing.BACKGROUND
    canon = render(heads, canonical, bg)  # [B, 4, S, S, ·]
    sup = render(heads, cams, bg)  # [B, V, S, S, ·]
    canon_rgb = channels_first(canon.rgb).clamp(0, 1)
    canon_alpha = channels_first(canon.alpha).contiguous()  # [B, 4, 1, S, S]
    dev = canon_rgb.device
    return Batch(
        input=canon_rgb[:, 0].contiguous(), input_mask=canon_alpha[:, 0],
        input_viewmat=canonical.viewmats[0].expand(B, 4, 4), input_K=canonical.Ks[0].expand(B, 3, 3),
        images=channels_first(sup.rgb).clamp(0, 1).contiguous(), masks=channels_first(sup.alpha),
        viewmats=cams.viewmats, Ks=cams.Ks,
        canonical=canon_rgb.contiguous(), canonical_valid=torch.ones(B, 4, dtype=torch.bool, device=dev),
        canonical_alpha=canon_alpha, canonical_depth=channels_first(canon.depth).contiguous(),  # camera z
        geometry_valid=torch.ones(B, dtype=torch.bool, device=dev),
        ok=torch.ones(B, dtype=torch.bool, device=dev), skipped=torch.zeros(B, dtype=torch.long, device=dev))


class SyntheticBatches:
    """Training batches rendered on the fly from :class:`a3d.data.synth.SyntheticHeads` on ``device``.

    Heads: step ``k`` takes heads ``k·B … k·B + B − 1`` of the generator's stream ``seed`` (a head is a
    function of its seed and index alone), fresh heads every step. ``ahead`` = A > 1: the generator's cost
    hardly grows with the batch, so one call on step g·A makes the heads of steps g·A … g·A + A − 1 (ids
    g·A·B … (g + 1)·A·B − 1, the same heads as with A = 1 but made together, so their last bits may differ
    from those of A calls) and each step of the group takes its B; a run resumed inside a group makes the
    group's call again, so it gets the same bits. Views: ``num_views`` of each head's 80 cameras (40 fixed
    circular + 40 random, paper App. C), the input view excluded, drawn by a generator seeded by (seed, k);
    the canonical views come from :func:`a3d.core.cameras.canonical_cameras`. A batch is a function of
    (seed, step) alone, so a resumed run sees the same data. ``augment``: each head gets a photo's colour
    rendition and framing error before it is rendered (:func:`a3d.data.augment.augment_heads`, drawn by the
    same generator after the views), so every view sees them; ``turn`` (max yaw, max pitch, degrees) turns
    each head too and frames it again by its face; ``turn_power`` bends the turns' draw toward none
    (:func:`a3d.data.augment.turn_angles`).
    """

    def __init__(self, size: int, batch: int, num_views: int, num_gaussians: int, seed: int, device: torch.device,
                 ahead: int = 1, augment: bool = False, turn: tuple[float, float] = (0.0, 0.0),
                 turn_power: float = 1.0, progress: bool = False):
        from ..data.synth import SyntheticHeads

        if not isinstance(ahead, int) or ahead < 1:
            raise ValueError(f"ahead: expected the number of steps (>= 1) whose heads one generator call makes, "
                             f"got {ahead!r}")
        if any(turn) and not augment:
            raise ValueError("turn: the heads are turned by their augmentation (augment=True)")
        self.batch, self.num_views, self.seed, self.device = batch, num_views, seed, device
        self.progress, self.ahead = progress, ahead
        self.augment, self.turn, self.turn_power = augment, turn, turn_power
        self.chunk = max(_SYNTH_CHUNK, ahead * batch) if ahead > 1 else _SYNTH_CHUNK  # a group is one call
        self.group: tuple[int, Gaussians, Cameras] | None = None  # with ahead > 1: (g, the heads of group g)
        self.group_seconds = 0.0  # the synchronised wall time of the call that made ``group``
        self.heads = SyntheticHeads(device, seed=seed, num_gaussians=num_gaussians, image_size=size)
        self.canonical = canonical_cameras(size).to(device)
        self.gen = torch.Generator(device=device)

    def _generate(self, ids: list[int]) -> tuple[Gaussians, Cameras]:
        from tqdm.auto import tqdm

        parts, chunk = [], self.chunk
        for start in tqdm(range(0, len(ids), chunk), desc="synthetic heads", unit="chunk",
                          disable=not self.progress or len(ids) <= chunk):
            parts.append(self.heads.sample(len(ids[start:start + chunk]), head_ids=ids[start:start + chunk]))
        self.input_view = parts[0].input_view
        g = Gaussians(**{k: torch.cat([getattr(p.gaussians, k) for p in parts]) for k in _FIELDS})
        cams = Cameras(torch.cat([p.cameras.viewmats for p in parts]), torch.cat([p.cameras.Ks for p in parts]),
                       parts[0].cameras.width, parts[0].cameras.height)
        return g, cams

    def _heads(self, step: int) -> tuple[Gaussians, Cameras]:
        if self.ahead > 1:
            return self._from_group(step)
        B = self.batch
        return self._generate(list(range(step * B, (step + 1) * B)))

    def _from_group(self, step: int) -> tuple[Gaussians, Cameras]:
        """The heads of ``step`` out of its group's call, made (and timed) when the step is the first of its
        group that this source sees: the group's first step, or a resumed run's first step."""
        A, B = self.ahead, self.batch
        g, k = divmod(step, A)
        if self.group is None or self.group[0] != g:
            self.group = None  # the previous group's memory is free before the next is made
            _sync(self.device)
            t0 = time.perf_counter()
            heads, cams = self._generate(list(range(g * A * B, (g + 1) * A * B)))
            _sync(self.device)
            self.group, self.group_seconds = (g, heads, cams), time.perf_counter() - t0
        _, heads, cams = self.group
        part = slice(k * B, (k + 1) * B)
        return (Gaussians(**{f: getattr(heads, f)[part] for f in _FIELDS}),
                Cameras(cams.viewmats[part], cams.Ks[part], cams.width, cams.height))

    def get(self, step: int, clock: StageClock | None = None) -> Batch:
        """The batch of optimizer step ``step``; ``clock`` (on logged steps) books generation and rendering."""
        B, V = self.batch, self.num_views
        self.gen.manual_seed(mix_seed(self.seed, step, bits=31))
        g, cams = self._heads(step)
        if clock is not None and self.ahead > 1:
            clock.add("generate", self.group_seconds / self.ahead)  # amortised over the group's steps
        elif clock is not None:
            clock.mark("generate")
        score = torch.rand(B, len(cams), generator=self.gen, device=self.device)
        score[:, self.input_view] = 2.0  # never the input view itself
        idx = score.argsort(dim=1)[:, :V]  # V distinct random views a head
        vm = cams.viewmats.gather(1, idx[..., None, None].expand(B, V, 4, 4))
        K = cams.Ks.gather(1, idx[..., None, None].expand(B, V, 3, 3))
        if self.augment:  # after the views' draw: the views do not depend on it
            from ..data.augment import augment_heads

            front = Cameras(self.canonical.viewmats[:1], self.canonical.Ks[:1], cams.width, cams.height)
            g = augment_heads(g, front, self.gen, turn=self.turn, turn_power=self.turn_power)
        batch = render_batch(g, self.canonical, Cameras(vm, K, cams.width, cams.height))
        if clock is not None:
            clock.mark("render_gt")
        return batch


class _ResumableSampler(torch.utils.data.DistributedSampler):
    """DistributedSampler that can start an epoch part-way (after a resume) without loading the
    skipped items."""

    def __init__(self, dataset, num_replicas: int, rank: int, seed: int):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=True)
        self.start = 0

    def __iter__(self):
        it = list(super().__iter__())
        return iter(it[self.start:])


class FolderBatches:
    """Training batches from a dataset folder (:class:`a3d.data.dataset.HeadDataset`) through a DataLoader;
    the batch of a step is a function of (seed, step), also after a resume."""

    def __init__(self, root: str, size: int, batch: int, num_views: int, seed: int, rank: int, world: int,
                 workers: int, device: torch.device):
        from ..data.dataset import HeadDataset

        self.dataset = HeadDataset(root, size=size, num_views=num_views, seed=seed)
        self.sampler = _ResumableSampler(self.dataset, world, rank, seed)
        self.per_epoch = len(self.sampler) // batch
        if self.per_epoch < 1:
            raise InputError(f"data: {len(self.dataset)} captures give no full batch of {batch} per rank "
                             f"over {world} ranks; lower batch_size")
        self.batch, self.workers, self.device = batch, workers, device
        self.iter = None
        self.epoch, self._next_step = -1, -1

    def _start(self, epoch: int, offset_batches: int) -> None:
        self.epoch = epoch
        self.sampler.set_epoch(epoch)
        self.dataset.set_epoch(epoch)
        self.sampler.start = offset_batches * self.batch
        # The loader's own generator: creating an iterator must not draw from the global RNG, or a
        # resumed run (which starts its iterator mid-epoch) would diverge from an uninterrupted one.
        gen = torch.Generator().manual_seed(mix_seed(self.sampler.seed, epoch, bits=31))
        loader = torch.utils.data.DataLoader(self.dataset, batch_size=self.batch, sampler=self.sampler,
                                             num_workers=self.workers, drop_last=True, generator=gen,
                                             pin_memory=self.device.type == "cuda", collate_fn=Batch.cat)
        self.iter = iter(loader)

    def get(self, step: int, clock: StageClock | None = None) -> Batch:
        epoch, k = divmod(step, self.per_epoch)
        if self.iter is None or epoch != self.epoch or self._next_step != step:
            self._start(epoch, k)
        self._next_step = step + 1
        batch = next(self.iter).to(self.device, non_blocking=True)
        if clock is not None:
            clock.mark("load")
        return batch
