"""Measuring reconstructions: image metrics per view angle, identity per yaw, and the ``a3d eval`` report.

Three kinds of test set, one module:

* **Synthetic held-out heads** (:func:`synthetic_eval_set`): heads of :mod:`a3d.data.synth` drawn with a seed
  no training run uses, each seen from ``views`` cameras on the horizontal circle at the canonical radius
  and field of view, at azimuths 11.25° + k·360°/views (the input, front view is never scored). The
  trainer's periodic evaluation is :func:`evaluate` on this set.
* **A dataset folder** in the AnyHead layout of :mod:`a3d.data.dataset` (:func:`evaluate_folder`): every
  capture's input view in, all its other views scored.
* **Photos** (:func:`evaluate_photo`): real portraits have no other views, so they are scored by
  identity: dlib's face-recognition descriptor (:mod:`a3d.perception.identity`) of the input against renders
  of the reconstruction at yaw 0, ±30, ±45, ±60, ±90 and at elevation ±15 (yaw 0).

Image metrics (per view, then averaged): PSNR in dB of [0, 1] images (capped at 100 for identical ones);
SSIM (Wang et al. 2004; Gaussian window 11, σ 1.5, constants for a data range of 1, valid region,
mean over channels and pixels); LPIPS v0.1 with AlexNet (:mod:`a3d.perception.lpips`). They are reported overall,
per bucket (front |azimuth| ≤ 45°, back ≥ 135°, side between) and per yaw bin of 22.5° (bins centred
on ±11.25°, ±33.75°, …, ±168.75°: the synthetic set's azimuths are the bin centres).

Silhouettes (synthetic heads, which have exact mattes; :func:`silhouette_metrics`): the IoU of the rendered
and true silhouettes (alpha > 0.5) and the PSNR the view would have if its silhouette were right (the pixels
where the two disagree taken from the ground truth) — the distance between the two PSNRs is what the outline
costs: on the models trained here about three quarters of the squared error lies there (docs/training.md).

The grid index (:mod:`a3d.eval.grid`): how strongly the back view (256²) shows an axis-aligned, patch-periodic
pattern; about 1-5 for natural hair, far above for the decoder's patch grid. Per held-out head (with its mean
and maximum) and per photo.

A training run's curve: :func:`plot_log` draws its loss and its evaluations' PSNR from ``log.jsonl``.

Identity distance: the Euclidean distance of two 128-D descriptors; dlib calls two faces one person
below 0.6. docs/eval.md holds the calibration (the same photo blurred or resized, different people).
"""
from __future__ import annotations

import dataclasses
import inspect
import json
import math
import os
import time
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ..core import framing
from ..core.cameras import Cameras, canonical_cameras, orbit_cameras
from ..core.files import atomic_path, atomic_write
from ..errors import InputError, SetupError, check_number, one_line
from ..core.gaussians import Gaussians
from .grid import back_view_grid_index, grid_summary
from ..io.image_files import expand_image_paths
from ..perception.lpips import lpips
from ..core.rendering import channels_first, render
from .metrics import gaussian_blur, psnr, silhouette_metrics, ssim

__all__ = ["ssim", "psnr", "silhouette_metrics", "eval_azimuths", "bucket", "yaw_bin", "synthetic_eval_set", "evaluate",
           "save_gallery", "plot_log", "evaluate_folder", "evaluate_photo", "IDENTITY_VIEWS", "run_eval"]

BUCKETS = ("all", "front", "side", "back")
YAW_STEP = 22.5
IDENTITY_VIEWS: tuple[tuple[float, float], ...] = (
    (0.0, 0.0), (30.0, 0.0), (-30.0, 0.0), (45.0, 0.0), (-45.0, 0.0), (60.0, 0.0), (-60.0, 0.0), (90.0, 0.0),
    (-90.0, 0.0), (0.0, 15.0), (0.0, -15.0))
"""(azimuth, elevation) in degrees of the renders compared with the input photo; azimuth +90 is the
camera on the subject's left (:mod:`a3d.core.framing`), elevation +15 looks down on the head."""

SYNTH_EVAL_SEED = 987_654_321
"""Generator seed of the held-out heads (the trainer's ``eval_seed`` default)."""


# ---- view angles --------------------------------------------------------------------------------------

def eval_azimuths(n: int) -> list[float]:
    """``n`` azimuths (degrees, in (-180, 180]) evenly around the head, offset by half a step so that
    none is the input (front) view."""
    return [((180.0 / n + 360.0 * k / n + 180.0) % 360.0) - 180.0 for k in range(n)]


def _wrap(azimuth: float) -> float:
    """An angle in degrees wrapped into [-180, 180)."""
    return ((azimuth + 180.0) % 360.0) - 180.0


def bucket(azimuth: float) -> str:
    """View-angle bucket of an azimuth in degrees: 'front' (|az| ≤ 45), 'back' (|az| ≥ 135), else 'side'."""
    a = abs(_wrap(azimuth))
    return "front" if a <= 45.0 else ("back" if a >= 135.0 else "side")


def yaw_bin(azimuth: float, step: float = YAW_STEP) -> float:
    """Centre of the ``step``-degree yaw bin holding ``azimuth``; bins start at -180, so for 22.5° the
    centres are ±11.25, ±33.75, …, ±168.75."""
    k = math.floor((_wrap(azimuth) + 180.0) / step)
    return round(-180.0 + (k + 0.5) * step, 4)


def _azimuths_of(viewmats: Tensor) -> list[float]:
    """Azimuths in degrees of OpenCV cameras viewmats [V, 4, 4] around the origin (0 = front, +z;
    +90 = on +x, the subject's left)."""
    R, t = viewmats[:, :3, :3].double(), viewmats[:, :3, 3].double()
    centres = -(R.transpose(1, 2) @ t[..., None])[..., 0]
    return [math.degrees(math.atan2(float(c[0]), float(c[2]))) for c in centres]


def summarize(metrics: dict[str, Tensor], azimuths: Sequence[float]) -> dict[str, Any]:
    """Means of per-view metrics {name: [N, V]} overall, per bucket and per yaw bin, given each of the V
    columns' azimuth. Returns ``{"all"|"front"|"side"|"back": {name: mean, "count": n}, "per_yaw":
    {bin centre (str): {...}}}``; buckets without views are left out."""
    out: dict[str, Any] = {}
    names = [bucket(a) for a in azimuths]
    for name in BUCKETS:
        cols = [j for j, b in enumerate(names) if name == "all" or b == name]
        if cols:
            n = next(iter(metrics.values())).shape[0]
            out[name] = {k: float(v[:, cols].mean()) for k, v in metrics.items()} | {"count": n * len(cols)}
    bins = [yaw_bin(a) for a in azimuths]
    per_yaw = {}
    for b in sorted(set(bins)):
        cols = [j for j, c in enumerate(bins) if c == b]
        n = next(iter(metrics.values())).shape[0]
        per_yaw[f"{b:g}"] = {k: float(v[:, cols].mean()) for k, v in metrics.items()} | {"count": n * len(cols)}
    out["per_yaw"] = per_yaw
    return out


def _image_metrics(pred: Tensor, gt: Tensor, lpips_net: str) -> dict[str, Tensor]:
    """PSNR, SSIM, LPIPS of [N, 3, S, S] pairs -> {name: [N]} on the CPU."""
    return {"psnr": psnr(pred, gt).cpu(), "ssim": ssim(pred, gt).float().cpu(),
            "lpips": lpips(pred, gt, lpips_net).float().cpu()}


# ---- synthetic held-out heads ---------------------------------------------------------------------------

@torch.no_grad()
def synthetic_eval_set(heads: int, views: int, size: int, device: torch.device | str = "cpu",
                       seed: int = SYNTH_EVAL_SEED, num_gaussians: int = 80_000,
                       view_size: int | None = None, turn: float = 0.0) -> dict[str, Tensor]:
    """Held-out synthetic heads and their ground truth: input [H, 3, S, S] (the front canonical view),
    views [H, V, 3, R, R] from :func:`eval_azimuths` at elevation 0 (canonical radius and field of
    view) at R = ``view_size`` pixels (default S, the model's size; larger shows what a turntable at
    that size shows), their viewmats [V, 4, 4] and Ks [V, 3, 3] (for R), azimuths [V], the 4 canonical
    views [H, 4, 3, S, S] (front, left, right, back: the photos of a multi-view reconstruction; the
    front one is ``input``), their mattes canonical_alpha [H, 4, S, S] and the views' alphas
    views_alpha [H, V, R, R], and grid_truth [H, 2]: the grid index and its period of each head's own back view
    (:func:`a3d.eval.grid.back_view_grid_index`; the generator's straight strands and hat brims are axis-aligned
    too, so a reconstruction's index is read against its truth's). ``turn`` (degrees, default 0): the heads
    turned away from the camera, the even ones by +turn of yaw and the odd ones by −turn, and framed again by
    their faces (:func:`a3d.data.augment.turn_heads`): the generator's heads face the camera exactly, photos
    seldom do."""
    from ..data.augment import turn_heads
    from ..data.synth import SyntheticHeads

    check_number(turn, "turn", -90.0, 90.0)
    device = torch.device(device)
    gen = SyntheticHeads(device, seed=seed, num_gaussians=num_gaussians, image_size=size)
    g = gen.sample(heads).gaussians
    canon = canonical_cameras(size).to(device)
    if turn:
        sign = 1.0 - 2.0 * (torch.arange(heads, device=device) % 2)
        g = turn_heads(g, canon[0:1], turn * sign)
    az = eval_azimuths(views)
    cams = orbit_cameras(len(az), size=view_size or size, azimuths=az).to(device)
    bg = framing.BACKGROUND
    canon_out = render(g, canon, bg)
    canonical = channels_first(canon_out.rgb).clamp(0, 1)
    views_out = render(g, cams, bg)
    gt = channels_first(views_out.rgb).clamp(0, 1)
    grids = [back_view_grid_index(g.scene(i)) for i in range(heads)]
    return {"input": canonical[:, 0].contiguous(), "views": gt, "viewmats": cams.viewmats, "Ks": cams.Ks,
            "views_alpha": channels_first(views_out.alpha)[:, :, 0].clamp(0, 1).contiguous(),
            "azimuths": torch.tensor(az), "canonical": canonical,
            "canonical_alpha": channels_first(canon_out.alpha)[:, :, 0].clamp(0, 1).contiguous(),
            "grid_truth": torch.tensor([[x.index, x.period] for x in grids], dtype=torch.float64)}


def _refine_kwargs(refine: bool | int) -> dict[str, bool | int]:
    """``{"refine": refine}`` (True: the default settings, an int: that many steps) for
    :func:`a3d.api.reconstruct` when asked for and supported."""
    if refine is False or refine == 0:
        return {}
    from ..api import reconstruct

    if "refine" not in inspect.signature(reconstruct).parameters:
        raise InputError(f"refine: {refine} refinement steps were asked for, but this a3d's reconstruct() has no "
                         "refine= option (refinement is not part of this version)")
    return {"refine": refine}


@torch.no_grad()
def _reconstruct_views(model, inputs: Tensor, g0: Tensor, cams: Cameras, refine: bool | int, seed: int,
                       masks: Tensor | None = None) -> tuple[Tensor, Tensor, Gaussians]:
    """Reconstruct inputs [h, 3, S, S] with their mattes ``masks`` [h, 4, S, S] (the front one is the
    input's; None: no matte) (one step from noise g0, or through :func:`a3d.api.reconstruct` with
    ``refine`` steps) and render cams (shared [V] or per head [h, V]) -> images [h, V, 3, H, W] in
    [0, 1], their alphas [h, V, H, W] and the Gaussians [h, N]."""
    if refine:
        from ..api import reconstruct
        from ..data.augment import uncomposite

        gs = []
        for i in range(inputs.shape[0]):
            # with its matte as an alpha channel, as a cut-out photo would come: straight (not premultiplied)
            # colour, which reconstruct() composites over the background again
            x = inputs[i] if masks is None else torch.cat([uncomposite(inputs[i], masks[i, :1]), masks[i, :1]])
            with torch.enable_grad():
                av = reconstruct(x, model, seed=seed + i, preprocess=False, **_refine_kwargs(refine))
            gs.append(av.gaussians.detach())
        g = Gaussians(**{f.name: torch.stack([getattr(x, f.name) for x in gs]) for f in dataclasses.fields(Gaussians)
                         if getattr(gs[0], f.name) is not None})
    else:
        g = model.one_step(inputs, g0, masks=masks).float()
    out = render(g, cams, framing.BACKGROUND)
    return channels_first(out.rgb).clamp(0, 1), out.alpha[..., 0].clamp(0, 1), g


@torch.no_grad()
def evaluate(model, eval_set: dict[str, Tensor], lpips_net: str = "alex", seed: int = 0, chunk: int = 4,
             refine: bool | int = 0, progress: bool = False) -> dict[str, Any]:
    """PSNR / SSIM / LPIPS of one-step reconstructions of an eval set (:func:`synthetic_eval_set`).

    The initial noise of all heads is drawn at once from a CPU generator seeded with ``seed``, so a
    head's reconstruction does not depend on ``chunk``. ``refine`` (True: the default settings, or a
    number of steps) reconstructs each head through :func:`a3d.api.reconstruct` with refinement instead.

    Returns:
        ``{"all"|"front"|"side"|"back": {"psnr", "ssim", "lpips", "count"}, "per_yaw": {bin: {...}},
        "heads": H, "views": V, "grid": {"mean", "max", "period_at_max", "per_head": [{"grid_index",
        "grid_period"}]}}`` (see :func:`summarize`; "grid": the back views' grid index, :mod:`a3d.eval.grid`); with
        the set's ``grid_truth`` also "grid_truth" (its summary) and each head's truth in "per_head"; with the
        set's ``views_alpha`` also "silhouette_iou" and "psnr_silhouette_right" (:func:`silhouette_metrics`).
    """
    from tqdm.auto import tqdm

    was_training = model.training
    model.eval()
    inp, views = eval_set["input"], eval_set["views"]
    H, V, _, R = views.shape[:4]  # views are R² (the model's size unless the set was made larger)
    cams = Cameras(eval_set["viewmats"], eval_set["Ks"], R, R)
    gen = torch.Generator().manual_seed(seed)
    g0_all = model.noise(H, generator=gen)
    rows: dict[str, list[Tensor]] = {}
    grids: list[dict[str, float]] = []
    for i in tqdm(range(0, H, chunk), desc="held-out heads", unit="chunk", disable=not progress):
        masks = eval_set["canonical_alpha"][i:i + chunk] if "canonical_alpha" in eval_set else None
        pred, alpha, g = _reconstruct_views(model, inp[i:i + chunk], g0_all[i:i + chunk], cams, refine, seed + i,
                                            masks)
        grids.extend(back_view_grid_index(g.scene(j)).as_dict() for j in range(g.means.shape[0]))
        pred, gt = pred.reshape(-1, 3, R, R), views[i:i + chunk].reshape(-1, 3, R, R)
        m = _image_metrics(pred, gt, lpips_net)
        if "views_alpha" in eval_set:
            true_alpha = eval_set["views_alpha"][i:i + chunk].reshape(-1, R, R)
            m.update(silhouette_metrics(pred, alpha.reshape(-1, R, R), gt, true_alpha))
        for k, v in m.items():
            rows.setdefault(k, []).append(v.view(-1, V))
    metrics = {k: torch.cat(v) for k, v in rows.items()}  # [H, V]
    result: dict[str, Any] = {"heads": H, "views": V}
    result.update(summarize(metrics, [float(a) for a in eval_set["azimuths"]]))
    if "grid_truth" in eval_set:  # each head's own back view: what its hair and hat score
        truth = [{"grid_index": float(x), "grid_period": float(p)} for x, p in eval_set["grid_truth"].tolist()]
        grids = [g | {"truth_" + k: v for k, v in t.items()} for g, t in zip(grids, truth)]
        result["grid_truth"] = grid_summary(truth)
    result["grid"] = {**grid_summary(grids), "per_head": grids}
    model.train(was_training)
    return result


@torch.no_grad()
def save_gallery(model, eval_set: dict[str, Tensor], path: str | os.PathLike, heads: Sequence[int],
                 every: int = 2, seed: int = 0) -> str:
    """A PNG of held-out heads: for each head a row of ground truth (the input portrait, then every
    ``every``-th eval view) above a row of the one-step reconstruction's renders of the same views
    (the input cell shows the reconstruction's front view)."""
    from PIL import Image

    S = model.config.image_size
    heads = [h for h in heads if h < eval_set["input"].shape[0]]
    idx = list(range(0, eval_set["views"].shape[1], every))
    cams = Cameras(eval_set["viewmats"][idx], eval_set["Ks"][idx], S, S)
    front = canonical_cameras(S).to(cams.device)[0:1]
    gen = torch.Generator().manual_seed(seed)
    g0 = model.noise(eval_set["input"].shape[0], generator=gen)[heads]
    was_training = model.training
    model.eval()
    masks = eval_set["canonical_alpha"][heads] if "canonical_alpha" in eval_set else None
    g = model.one_step(eval_set["input"][heads], g0, masks=masks).float()
    model.train(was_training)
    pred = channels_first(render(g, Cameras.cat([front, cams]), framing.BACKGROUND).rgb).clamp(0, 1)
    gt = torch.cat([eval_set["input"][heads][:, None], eval_set["views"][heads][:, idx]], 1)
    rows = torch.stack([gt, pred], 1).flatten(0, 1)  # [2·heads, 1 + len(idx), 3, S, S]
    grid = rows.permute(0, 3, 1, 4, 2).reshape(rows.shape[0] * S, rows.shape[1] * S, 3)
    with atomic_path(path) as tmp:
        Image.fromarray((grid * 255 + 0.5).to(torch.uint8).cpu().numpy()).save(tmp, format="PNG")
    return os.fspath(path)


# ---- a dataset folder -------------------------------------------------------------------------------------

@torch.no_grad()
def plot_log(log_path: str | os.PathLike, png_path: str | os.PathLike, size: tuple[int, int] = (900, 420)) -> str:
    """Plot a run's loss curve (and its evaluations' PSNR) from ``log.jsonl`` to a PNG with PIL."""
    from PIL import Image, ImageDraw, ImageFont

    steps, losses, ev = [], [], []
    with open(log_path) as f:
        for line in f:
            r = json.loads(line)
            if "loss" in r:
                steps.append(r["step"])
                losses.append(r["loss"])
            elif "eval" in r and "all" in r["eval"]:
                ev.append((r["step"], r["eval"]["all"]["psnr"]))
    if not steps:
        raise ValueError(f"log_path: {log_path} holds no logged loss")
    W, H = size
    img = Image.new("RGB", (W, H), "white")
    d = ImageDraw.Draw(img)
    try:
        d.font = ImageFont.load_default(size=13)  # a scalable font where PIL has FreeType
    except (TypeError, ImportError, OSError):
        pass  # PIL's small bitmap font
    L, R, T, B = 70, 70, 30, 50
    x0, x1 = 0, max(steps)
    lo, hi = min(losses), max(losses)
    span = max(math.log(hi) - math.log(lo), 1e-9)
    ly = lambda v: T + (H - T - B) * (1 - (math.log(v) - math.log(lo)) / span)  # noqa: E731
    lx = lambda s: L + (W - L - R) * (s - x0) / max(x1 - x0, 1)  # noqa: E731
    d.rectangle([L, T, W - R, H - B], outline="black")
    for k in range(5):  # y ticks (log scale)
        v = math.exp(math.log(lo) + (math.log(hi) - math.log(lo)) * k / 4)
        d.text((5, ly(v) - 6), f"{v:.3g}", fill="black")
        d.line([L - 4, ly(v), L, ly(v)], fill="black")
    for k in range(6):
        s = x0 + (x1 - x0) * k / 5
        d.text((lx(s) - 12, H - B + 6), f"{int(s)}", fill="black")
    d.text((W // 2 - 20, H - 22), "step", fill="black")
    d.text((L, 8), "training loss (Eq. 6, log scale)", fill=(30, 80, 200))
    d.line([(lx(s), ly(v)) for s, v in zip(steps, losses)], fill=(30, 80, 200), width=2)
    if ev:
        p_lo, p_hi = min(p for _, p in ev) - 0.5, max(p for _, p in ev) + 0.5
        py = lambda p: T + (H - T - B) * (1 - (p - p_lo) / (p_hi - p_lo))  # noqa: E731
        pts = [(lx(s), py(p)) for s, p in ev]
        if len(pts) > 1:
            d.line(pts, fill=(200, 60, 30), width=2)
        for x, y in pts:
            d.ellipse([x - 3, y - 3, x + 3, y + 3], fill=(200, 60, 30))
        for k in range(3):
            p = p_lo + (p_hi - p_lo) * k / 2
            d.text((W - R + 6, py(p) - 6), f"{p:.1f}", fill=(200, 60, 30))
        d.text((W - 260, 8), "held-out PSNR dB (EMA, right axis)", fill=(200, 60, 30))
    with atomic_path(png_path) as tmp:
        img.save(tmp, format="PNG")
    return os.fspath(png_path)


def evaluate_folder(model, root: str | os.PathLike, lpips_net: str = "alex", seed: int = 0, refine: bool | int = 0,
                    max_captures: int = 0, progress: bool = False) -> dict[str, Any]:
    """PSNR / SSIM / LPIPS on a dataset folder in the AnyHead layout (:mod:`a3d.data.dataset`): each capture's
    input view is reconstructed (one step, noise seeded by ``seed`` + capture index) and every other
    view is rendered and scored at the model's resolution. ``max_captures`` > 0 stops after that many.

    Returns :func:`summarize`'s dict over all scored views plus ``"captures"`` and ``"views"`` (total
    scored) and ``"skipped"`` (views whose image failed to decode).
    """
    from tqdm.auto import tqdm

    from ..data.dataset import _resize_intrinsics, find_captures, load_view

    captures, _ = find_captures(root)
    if not captures:
        raise InputError(f"root: no capture folder (CAMERA_PARAMETERS.json and images) below {os.fspath(root)!r}")
    if max_captures > 0:
        captures = captures[:max_captures]
    model.eval()
    S = model.config.image_size
    dev = next(model.parameters()).device
    values: dict[str, list[float]] = {"psnr": [], "ssim": [], "lpips": []}
    azimuths: list[float] = []
    skipped = 0
    for ci, cap in enumerate(tqdm(captures, desc="captures", unit="capture", disable=not progress)):
        wh = (cap.cameras.width, cap.cameras.height)
        try:
            inp, _ = load_view(cap.paths[cap.input_index], S, wh)
        except ValueError:
            skipped += len(cap.paths)
            continue
        Ks = _resize_intrinsics(cap.cameras.Ks, cap.cameras.width, cap.cameras.height, S)
        keep, gts = [], []
        for j, p in enumerate(cap.paths):
            if j == cap.input_index:
                continue
            try:
                gts.append(load_view(p, S, wh)[0])
                keep.append(j)
            except ValueError:
                skipped += 1
        if not keep:
            continue
        cams = Cameras(cap.cameras.viewmats[keep], Ks[keep], S, S).to(dev)
        g0 = model.noise(1, generator=torch.Generator().manual_seed(seed + ci))
        pred, _, _ = _reconstruct_views(model, inp[None].to(dev), g0.to(dev), cams, refine, seed + ci)
        pred = pred[0]
        m = _image_metrics(pred, torch.stack(gts).to(dev), lpips_net)
        for k, v in m.items():
            values[k].extend(v.tolist())
        azimuths.extend(_azimuths_of(cams.viewmats.cpu()))
    if not azimuths:
        raise InputError(f"root: no readable capture below {os.fspath(root)!r}")
    metrics = {k: torch.tensor(v)[None] for k, v in values.items()}  # [1, N]: every view its own column
    out = summarize(metrics, azimuths)
    out.update(captures=len(captures), views=len(azimuths), skipped=skipped)
    return out


# ---- photos: identity per yaw -----------------------------------------------------------------------------

def _identity_cameras(size: int) -> Cameras:
    parts = [orbit_cameras(1, size=size, azimuths=[az], elevation=el) for az, el in IDENTITY_VIEWS]
    return Cameras.cat(parts)


def _view_name(azimuth: float, elevation: float) -> str:
    return f"yaw{azimuth:+.0f}" + (f"_el{elevation:+.0f}" if elevation else "")


def evaluate_photo(photo, model, *, size: int = 256, seed: int = 0, refine: bool | int = 0,
                   device: str | torch.device | None = None) -> dict[str, Any]:
    """Reconstruct one portrait and measure identity per view.

    The photo is framed by :func:`a3d.inference.preprocess.preprocess` at ``size`` (the reference: the same
    framing the model sees, background removed) and reconstructed by :func:`a3d.api.reconstruct`;
    renders at :data:`IDENTITY_VIEWS` (``size``²) are cropped like dlib's chips from the cameras
    (:func:`a3d.perception.identity.face_crop_affines`) and compared with the reference's crop.

    Returns a dict: ``distances`` {view name: distance}, ``calibration`` (the reference against itself
    blurred with σ = 2 px and resized to 64² and back: what an identical face scores after losing
    detail), ``input_view`` (does the photo come back: PSNR in dB inside the matte of the render from the
    input camera at the model's resolution against the model's input, for all Gaussians ``full`` and for
    the front view's own set alone ``front_set``), ``grid`` (the back view's grid index and its period,
    :func:`a3d.eval.grid.back_view_grid_index`), ``descriptor`` (128 floats, for comparing photos), and
    images for the report: ``input`` [3, size, size], ``renders`` [V, 3, size, size], ``crops``
    [1 + V, 3, 150, 150]; ``seconds``.
    """
    from ..api import reconstruct
    from ..perception.identity import cached_embedder, crop_faces, face_crop_affines
    from ..inference.preprocess import preprocess

    start = time.perf_counter()
    avatar = reconstruct(photo, model, seed=seed, device=device, **_refine_kwargs(refine))
    dev = avatar.gaussians.means.device
    ref = preprocess(photo, size).image.to(dev)[None]  # [1, 3, size, size]
    cams = _identity_cameras(size).to(dev)
    with torch.no_grad():
        renders = channels_first(render(avatar.gaussians.detach(), cams, framing.BACKGROUND).rgb).clamp(0, 1)
        front = canonical_cameras(size)[0:1]
        A_ref = face_crop_affines(front.viewmats, front.Ks)
        A_views = face_crop_affines(cams.viewmats, cams.Ks)
        small = F.interpolate(F.interpolate(ref, size=(64, 64), mode="bilinear", antialias=True, align_corners=False),
                              size=(size, size), mode="bilinear", align_corners=False)
        refs = torch.cat([ref, gaussian_blur(ref, 2.0), small.clamp(0, 1)])
        crops_ref = crop_faces(refs, A_ref.expand(3, 2, 3))
        crops_views = crop_faces(renders, A_views)
        emb = cached_embedder(str(dev))
        d_ref = emb(crops_ref)
        d_views = emb(crops_views)
    dist = torch.linalg.vector_norm(d_views - d_ref[0:1], dim=-1).cpu()
    names = [_view_name(a, e) for a, e in IDENTITY_VIEWS]
    return {
        "distances": {n: float(d) for n, d in zip(names, dist)},
        "input_view": input_view_psnr(avatar),
        "grid": back_view_grid_index(avatar.gaussians.detach()).as_dict(),
        "calibration": {"blur_sigma2": float(torch.linalg.vector_norm(d_ref[1] - d_ref[0])),
                        "resize_64": float(torch.linalg.vector_norm(d_ref[2] - d_ref[0]))},
        "descriptor": d_ref[0].cpu().tolist(),
        "input": ref[0].cpu(), "renders": renders.cpu(), "crops": torch.cat([crops_ref[:1], crops_views]).cpu(),
        "seconds": time.perf_counter() - start,
    }


def input_view_psnr(avatar) -> dict[str, float]:
    """How well a reconstruction gives its photo back: PSNR (dB) inside the photo's matte (> 0.5) between the
    model's input (:attr:`a3d.api.Avatar.input_image`, [3, S, S]) and the render from the front canonical
    camera at S², for all Gaussians (``full``) and for the front view's own set alone (``front_set``: the first
    quarter, the Gaussians of the input's pixels). Without a matte the whole image counts."""
    g = avatar.gaussians.detach()
    S = avatar.input_image.shape[-1]
    inside = (avatar.masks[0] > 0.5) if avatar.masks is not None else torch.ones(S, S, dtype=torch.bool)
    inside = inside.to(g.means.device)
    target = avatar.input_image.to(g.means.device)
    front = avatar.cameras[0:1].to(g.means.device)
    own = Gaussians(**{k: getattr(g, k)[: S * S] for k in ("means", "quats", "scales", "opacities", "colors")})
    out = {}
    with torch.no_grad():
        for name, gs in (("full", g), ("front_set", own)):
            rgb = render(gs, front, framing.BACKGROUND).rgb[0].permute(2, 0, 1).clamp(0, 1)
            err = ((rgb - target) ** 2).mean(0)[inside].mean().clamp_min(1e-10)
            out[name] = float(-10 * torch.log10(err))
    return out


def photo_sheet(res: dict[str, Any], path: str | os.PathLike, cell: int = 128) -> str:
    """The report's picture of one photo: a row of the input and the renders at :data:`IDENTITY_VIEWS`,
    a row of the face crops the embedder saw, and each view's identity distance under it."""
    from PIL import Image, ImageDraw

    from ..core.rendering import to_uint8

    names = ["input"] + [_view_name(a, e) for a, e in IDENTITY_VIEWS]
    imgs = torch.cat([res["input"][None], res["renders"]])
    crops = res["crops"]
    cols = len(names)
    label = 30
    sheet = Image.new("RGB", (cols * cell, 2 * cell + label), "white")
    draw = ImageDraw.Draw(sheet)
    for j in range(cols):
        for r, src in enumerate((imgs[j], crops[j])):
            t = F.interpolate(src[None], size=(cell, cell), mode="bilinear", antialias=True, align_corners=False)[0]
            sheet.paste(Image.fromarray(to_uint8(t.permute(1, 2, 0).clamp(0, 1))), (j * cell, r * cell))
        text = names[j] if j == 0 else f"{names[j]} d={res['distances'][names[j]]:.2f}"
        draw.text((j * cell + 3, 2 * cell + 8), text, fill=(0, 0, 0))
    with atomic_path(path) as tmp:
        sheet.save(tmp, format="PNG")
    return os.fspath(path)


# ---- the report -------------------------------------------------------------------------------------------

GRID_DOC = "on-axis / diagonal spectral power, a3d.eval.grid"


def _list_photos(paths: Sequence[str | os.PathLike]) -> list[Path]:
    """The photos named by ``paths`` (files, folders, glob patterns: :mod:`a3d.io.image_files`); a name that
    is neither is an error, a folder without images adds none."""
    files, problems = expand_image_paths(paths)
    missing = [spec for spec, why in problems if not os.path.isdir(spec)]
    if missing:
        raise FileNotFoundError(f"photos: {missing[0]} is neither an image file nor a folder")
    return [Path(f) for f in files]


def _fmt(v: float, digits: int = 3) -> str:
    return f"{v:.{digits}f}"


def _metric_table(res: dict[str, Any]) -> list[str]:
    sil = "silhouette_iou" in res.get("all", {})
    extra = " silhouette IoU ↑ | PSNR if the silhouette were right |"
    lines = ["| views | count | PSNR (dB) ↑ | SSIM ↑ | LPIPS ↓ |" + (extra if sil else ""),
             "|---|---|---|---|---|" + ("---|---|" if sil else "")]
    rows = [(k, res[k]) for k in BUCKETS if k in res]
    rows += [(f"yaw {k}°", v) for k, v in sorted(res["per_yaw"].items(), key=lambda kv: float(kv[0]))]
    for name, r in rows:
        lines.append(f"| {name} | {r['count']} | {r['psnr']:.2f} | {r['ssim']:.3f} | {r['lpips']:.3f} |"
                     + (f" {r['silhouette_iou']:.3f} | {r['psnr_silhouette_right']:.2f} |" if sil else ""))
    return lines


def _grid_line(summary: dict[str, float], of: str) -> str:
    return (f"Grid index of the back view (256², {GRID_DOC}): mean {summary['mean']:.1f}, max {summary['max']:.1f} "
            f"(period {summary['period_at_max']:.1f} px) over the {of}; natural hair scores about 1-5.")


def write_report(report: dict[str, Any], out_dir: Path) -> Path:
    """Write ``report.md`` (tables, pictures) beside ``eval.json``; returns its path."""
    lines = ["# a3d eval", "", f"Model: `{report['model']['source']}` (weights sha256 "
             f"{str(report['model'].get('weights_sha256'))[:12]}…), device {report['settings']['device']}, "
             f"refine {report['settings']['refine']}, seed {report['settings']['seed']}.", ""]
    if "synthetic" in report:
        s = report["synthetic"]
        turn = report["settings"].get("synthetic_turn", 0.0)
        turned = f", turned ±{turn:g}° of yaw" if turn else ""
        lines += [f"## Synthetic held-out heads ({s['heads']} heads × {s['views']} views, seed "
                  f"{report['settings']['synthetic_seed']}{turned})", ""] + _metric_table(s) + [""]
        if "grid" in s:
            truth = s.get("grid_truth")
            lines += [_grid_line(s["grid"], "heads")
                      + (f" Their ground truth's back views: mean {truth['mean']:.1f}, max {truth['max']:.1f} (the "
                         "generator's straight strands and hat brims are axis-aligned too)." if truth else ""), ""]
    if "folder" in report:
        f = report["folder"]
        lines += [f"## Dataset folder `{report['settings']['data']}` ({f['captures']} captures, {f['views']} views)",
                  ""] + _metric_table(f) + [""]
    if report.get("photos"):
        names = [_view_name(a, e) for a, e in IDENTITY_VIEWS]
        lines += ["## Photos: identity distance per view (dlib descriptor, < 0.6 = same person)", "",
                  "| photo | " + " | ".join(names) + " | blur σ2 | resize 64² | input view dB (front set alone) "
                  "| grid index (period px) |",
                  "|---" * (len(names) + 5) + "|"]
        for p in report["photos"]:
            if "error" in p:
                lines.append(f"| {p['name']} | " + " | ".join(["–"] * (len(names) + 4)) + " |")
                continue
            d, c = p["distances"], p["calibration"]
            iv = p.get("input_view", {})
            lines.append(f"| {p['name']} | " + " | ".join(_fmt(d[n], 2) for n in names)
                         + f" | {c['blur_sigma2']:.2f} | {c['resize_64']:.2f} | "
                         + (f"{iv['full']:.1f} ({iv['front_set']:.1f})" if iv else "–")
                         + (f" | {p['grid_index']:.1f} ({p['grid_period']:.1f})" if "grid_index" in p else " | –")
                         + " |")
        ok = [p for p in report["photos"] if "error" not in p]
        if ok:
            mean = {n: sum(p["distances"][n] for p in ok) / len(ok) for n in names}
            lines.append(f"| **mean of {len(ok)}** | " + " | ".join(f"**{mean[n]:.2f}**" for n in names) + " | | | | |")
            grids = [{"grid_index": p["grid_index"], "grid_period": p["grid_period"]} for p in ok if "grid_index" in p]
            if grids:
                lines += ["", _grid_line(grid_summary(grids), "photos")]
        if report.get("different_people"):
            lines += ["", "Different photos (input against input): "
                      + ", ".join(f"{x['a']}–{x['b']} {x['distance']:.2f}" for x in report["different_people"])]
        lines.append("")
        for p in report["photos"]:
            lines += [f"### {p['name']}", ""]
            if "error" in p:
                lines += [f"Skipped: {p['error']}", ""]
                continue
            lines += [f"![{p['name']}]({p['image']})", "",
                      "Top: the framed input, then renders; bottom: the face crops compared. "
                      f"{p['seconds']:.1f} s.", ""]
    if report.get("identity_skipped"):
        lines += ["", f"Identity metrics skipped: {report['identity_skipped']}", ""]
    lines += [f"Total time {report['seconds']:.1f} s. Every number is in eval.json."]
    path = out_dir / "report.md"
    with atomic_write(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def run_eval(out_dir: str | os.PathLike, *, photos: Sequence[str | os.PathLike] = (), synthetic: bool = False,
             data: str | None = None, model: Any = None, refine: bool | int = 0, device: str | None = None,
             heads: int = 16, views: int = 16, synth_gaussians: int = 60_000, synthetic_seed: int = SYNTH_EVAL_SEED,
             seed: int = 0, size: int = 256, max_captures: int = 0, progress: bool = True,
             synthetic_size: int | None = None, synthetic_turn: float = 0.0) -> dict[str, Any]:
    """Everything ``a3d eval`` does (its parser is in :mod:`a3d.cli`): evaluate ``model`` on the chosen
    sets, write ``eval.json`` (every number), ``report.md`` and one PNG a photo into ``out_dir``;
    returns the report dict.

    Every argument is checked (:mod:`a3d.limits`) before any work. A photo that cannot be evaluated (not
    an image, no face) does not stop the others: its row in ``report["photos"]`` has an ``"error"``, and
    ``report["failed"]`` lists those rows' paths (``a3d eval`` prints them and exits 2)."""
    from tqdm.auto import tqdm

    from .. import limits
    from ..api import load_model
    from ..model.network import A3DModel

    start = time.perf_counter()
    for quantity, value, name in (("eval_heads", heads, "heads"), ("eval_views", views, "views"),
                                  ("synth_gaussians", synth_gaussians, "synth_gaussians"),
                                  ("seed", synthetic_seed, "synthetic_seed"), ("seed", seed, "seed"),
                                  ("eval_size", size, "size"), ("max_captures", max_captures, "max_captures"),
                                  ("synthetic_turn", synthetic_turn, "synthetic_turn")):
        limits.check(quantity, value, name)
    if synthetic_size is not None:
        limits.check("eval_size", synthetic_size, "synthetic_size")
    if not isinstance(refine, bool):
        limits.check("refine_steps", refine, "refine")
    if data is not None and not Path(data).is_dir():
        raise InputError(f"data: {data} is not a folder (expected a dataset folder, docs/dataset.md)")
    if Path(out_dir).exists() and not Path(out_dir).is_dir():
        raise InputError(f"out_dir: {out_dir} is a file; expected a folder (it is created if missing)")
    photo_paths = _list_photos(photos)
    if not (photo_paths or synthetic or data):
        raise InputError("nothing to evaluate: give photos (files or folders), --synthetic and/or --data DIR")
    _refine_kwargs(refine)  # fail before any work when refinement is unavailable
    dev = torch.device(device) if device else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    net = model if isinstance(model, A3DModel) else load_model(model, device=dev)
    net = net.to(dev)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "model": {"source": str(getattr(net, "source", model)), "weights_sha256": getattr(net, "weights_sha256", None),
                  "image_size": net.config.image_size},
        "settings": {"device": str(dev), "refine": refine, "seed": seed, "size": size, "data": data,
                     "synthetic_seed": synthetic_seed, "heads": heads, "views": views,
                     "synth_gaussians": synth_gaussians, "synthetic_size": synthetic_size or net.config.image_size,
                     "synthetic_turn": synthetic_turn},
    }
    if synthetic:
        t = time.perf_counter()
        es = synthetic_eval_set(heads, views, net.config.image_size, dev, synthetic_seed, synth_gaussians,
                                view_size=synthetic_size, turn=synthetic_turn)
        report["synthetic"] = evaluate(net, es, seed=synthetic_seed, refine=refine, progress=progress)
        report["synthetic"]["seconds"] = time.perf_counter() - t
    if data:
        t = time.perf_counter()
        report["folder"] = evaluate_folder(net, data, seed=seed, refine=refine, max_captures=max_captures,
                                           progress=progress)
        report["folder"]["seconds"] = time.perf_counter() - t
    if photo_paths:
        from ..perception import identity

        try:
            identity.model_path()
        except identity.IdentityModelMissing as e:
            report["identity_skipped"] = str(e)
            print(f"a3d eval: identity metrics skipped: {e}")
        else:
            rows = []
            descriptors = {}
            for k, p in enumerate(tqdm(photo_paths, desc="photos", unit="photo", disable=not progress)):
                name = p.stem
                try:
                    res = evaluate_photo(p, net, size=size, seed=seed, refine=refine, device=dev)
                except SetupError:  # the machine's fault, not the photo's: nothing else would go better
                    raise
                except (ValueError, OSError) as e:  # no face, not an image, unreadable
                    rows.append({"name": name, "path": str(p), "error": one_line(e)})
                    continue
                image = f"{k:02d}_{name}.png"
                photo_sheet(res, out / image)
                descriptors[name] = torch.tensor(res["descriptor"])
                rows.append({"name": name, "path": str(p), "image": image, "distances": res["distances"],
                             "calibration": res["calibration"], "input_view": res["input_view"], **res["grid"],
                             "seconds": res["seconds"]})
            report["photos"] = rows
            keys = list(descriptors)
            report["different_people"] = [
                {"a": a, "b": b, "distance": float(torch.linalg.vector_norm(descriptors[a] - descriptors[b]))}
                for i, a in enumerate(keys) for b in keys[i + 1:]]
    report["failed"] = [row["path"] for row in report.get("photos", []) if "error" in row]
    report["seconds"] = time.perf_counter() - start
    with atomic_write(out / "eval.json", "w") as f:
        f.write(json.dumps(report, indent=1))
    write_report(report, out)
    return report
