"""The generator of synthetic heads, :class:`SyntheticHeads`: a batch of heads built at once on the
morphable head basis (skin and face here, hair in :mod:`.hair`, accessories in :mod:`.accessories`),
framed by the face anchors, lit, with their cameras (:mod:`.cameras`); :func:`render_views` renders them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ...core import framing
from ...core.cameras import Cameras
from ...core.gaussians import Gaussians
from ...errors import check_int
from ..device_constants import on_device
from ..head_basis import HeadBasis, load_head_basis
from .accessories import AccessoryParts
from .attributes import (EARRINGS, HAIR_STYLES, HATS, HeadAttributes, SynthConfig, check_overrides, draw_attributes,
                         expression_table)
from .cameras import INPUT_VIEW, NUM_FIXED_VIEWS, fixed_cameras, random_views
from .draws import HeadRandom, Noises, head_keys, normal_quantile
from .geometry import PROFILE_BINS, R2, Splats, frame_quats, gather_rows, interp, smoothstep, umeyama
from .hair import HairParts

__all__ = ["SyntheticHeads", "HeadSample", "render_views"]


@dataclass
class HeadSample:
    """A batch of synthetic heads and their cameras.

    Attributes:
        gaussians: Gaussians [B, N, ...] (activated values, a3d framing).
        cameras: Cameras [B, C, ...]: the 40 fixed views (:func:`fixed_cameras`) then the random views.
        view_names: C names ("000", ...), the image stems of an exported head.
        input_view: index of the front canonical camera among the views (the input portrait).
        head_ids: [B] int64 head indices (head ``i`` of a seed is always the same head).
        vertices: [B, V, 3] the framed head meshes (faces: the basis's ``faces``), without hair
            and accessories.
        attributes: :class:`HeadAttributes` of the batch (``attributes.head(i)``: one head's, by name).
    """

    gaussians: Gaussians
    cameras: Cameras
    view_names: list[str]
    input_view: int
    head_ids: Tensor
    vertices: Tensor
    attributes: HeadAttributes

    @property
    def batch_size(self) -> int:
        return self.gaussians.means.shape[0]


# =================================================================================================
# The generator
# =================================================================================================
_PARTS = ("face", "shell", "curtain", "fringe", "bun", "ponytail", "hat_shell", "visor", "brim_crown", "brim_top",
          "brim", "frame", "lens", "earring")
"""The parts of a head, in the order of its Gaussians."""
_HAIR_FRACTION = {"bald": 0.0, "buzz": 0.12, "short": 0.3, "bob": 0.4, "long": 0.45, "bun": 0.33, "ponytail": 0.35,
                  "curly": 0.42, "shoulder": 0.43}
_HAT_BANDS = {"none": (0.0, 0.0), "beanie": (0.22, 0.42), "cap": (0.3, 0.35), "brimmed": (0.3, 0.3)}
"""Per hat: height of the lower edge at the front, and how much lower it is at the back."""


def _part_counts(N: int, style: str, hat: str, glasses: bool, earrings: str, fringe: bool) -> list[int]:
    """Gaussians of each part of :data:`_PARTS` for a head of N Gaussians with these attributes."""
    c = dict.fromkeys(_PARTS, 0)
    hair = int(round(N * _HAIR_FRACTION[style]))
    if fringe and style not in ("bald", "buzz"):
        c["fringe"] = int(round(N * 0.05))
    if style in ("bob", "long", "shoulder"):
        c["curtain"] = int(hair * 0.55)
    if style in ("bun", "ponytail"):
        c[style] = int(hair * 0.3)
    c["shell"] = hair - c["curtain"] - c["bun"] - c["ponytail"]
    n_hat = int(round(N * 0.12)) if hat != "none" else 0
    if hat == "beanie":
        c["hat_shell"] = n_hat
    elif hat == "cap":
        c["hat_shell"] = int(n_hat * 0.7)
        c["visor"] = n_hat - c["hat_shell"]
    elif hat == "brimmed":
        c["brim_crown"], c["brim_top"] = int(n_hat * 0.55), int(n_hat * 0.1)
        c["brim"] = n_hat - c["brim_crown"] - c["brim_top"]
    n_glasses = int(round(N * 0.05)) if glasses else 0
    c["lens"] = int(n_glasses * 0.5)
    c["frame"] = n_glasses - c["lens"]
    c["earring"] = int(round(N * 0.006)) if earrings != "none" else 0
    c["face"] = N - sum(c.values())
    return [c[p] for p in _PARTS]


class SyntheticHeads(HairParts, AccessoryParts):
    """Random AnyHead-style heads as Gaussians, built a batch at a time, torch-native.

    Args:
        device: torch device everything is built on (``"cuda"`` during training).
        seed: stream seed; head ``i`` depends on ``(seed, i)`` only.
        config: :class:`SynthConfig` (defaults if None); keyword overrides of its fields may be
            passed instead, e.g. ``SyntheticHeads("cuda", num_gaussians=150_000)``.
        basis: a :class:`HeadBasis` (the bundled one if None).
    """

    def __init__(self, device: str | torch.device = "cpu", seed: int = 0, config: SynthConfig | None = None,
                 basis: HeadBasis | None = None, **overrides) -> None:
        if config is None:
            config = SynthConfig(**overrides)
        elif overrides:
            raise ValueError("pass either config or keyword overrides, not both")
        check_int(seed, "seed", 0, 2**31 - 1)
        self.device = dev = torch.device(device)
        self.seed = seed
        self.config = config
        self.basis = b = (basis or load_head_basis()).to(dev)
        self._next = 0
        self._anchors = torch.tensor([framing.FACE_ANCHORS_3D[n] for n in ("right_eye", "left_eye", "mouth")],
                                     dtype=torch.float64, device=dev)
        self._lm = {n: i for i, n in enumerate(b.landmark_names)}
        fixed = fixed_cameras(config.image_size).to(dev)
        self._fixed = (fixed.viewmats, fixed.Ks)
        self._view_names = [f"{i:03d}" for i in range(NUM_FIXED_VIEWS + config.num_random_views)]
        self._expressions = expression_table(b, dev)
        self._components = torch.cat([b.shape_basis, b.expr_basis]).flatten(1)  # [K + E, V * 3]
        # part counts of every combination of (hair style, hat, glasses, earrings)
        N = config.num_gaussians
        self._counts = torch.tensor([[[[[_part_counts(N, s, h, g, e, f) for f in (False, True)] for e in EARRINGS]
                                       for g in (False, True)] for h in HATS] for s in HAIR_STYLES],
                                    dtype=torch.int64, device=dev)
        self._hat_bands = torch.tensor([_HAT_BANDS[h] for h in HATS], device=dev)  # [4, 2]
        # vertex normals without atomics (deterministic on every device): each vertex sums the normals
        # of its faces, listed in a padded table (pad = an extra zero face)
        Fn = b.faces.shape[0]
        vid = b.faces.reshape(-1).cpu()
        order = torch.argsort(vid, stable=True)
        deg = torch.bincount(vid, minlength=b.num_vertices)
        slot = torch.arange(len(vid)) - torch.repeat_interleave(torch.cumsum(deg, 0) - deg, deg)
        table = torch.full((b.num_vertices, int(deg.max())), Fn, dtype=torch.int64)
        table[vid[order], slot] = order // 3
        self._vertex_faces = table.to(dev)
        # per-triangle constants of the canonical (mean) mesh
        self._canon_centroid = b.mean[b.faces].mean(1)  # [F, 3]
        reg = b.regions[b.faces].mean(1)  # [F, R]
        r = b.region
        # sampling density per unit area: hidden inner surfaces get fewer Gaussians
        self._face_density = 1.0 - 0.7 * (reg[:, r("sockets")] + reg[:, r("mouth")] + reg[:, r("tongue")]).clamp(0, 1)
        self._not_ears = 1 - reg[:, r("ears")]
        self._vfeat = self._vertex_features()
        # per vertex: where hair never grows (features, ears, neck)
        hairless = ("ears", "eyes", "sockets", "mouth", "tongue", "lips", "brows", "eyelids")
        features = b.regions[:, [r(k) for k in hairless]]
        self._hairless = (1 - features.sum(-1).clamp(0, 1)) * (1 - b.regions[:, r("neck")])
        # the hairline's height over each vertex's azimuth (0 front, pi back) is h0 + hairline * h1: the
        # front part follows the sampled hairline, the temples, sideburns, ears and nape are fixed
        phi = torch.atan2(b.mean[:, 0], b.mean[:, 2]).abs()
        knots = [0.0, 0.5, 1.0, 1.3, 1.55, 1.85, 2.3, math.pi]
        self._hairline = (interp(phi, knots, [0.0, 0.02, -0.06, 0.02, 0.12, 0.08, -0.2, -0.36]),
                          interp(phi, knots, [1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0]))

    # ---- public API ---------------------------------------------------------------------------
    def sample(self, batch: int, head_ids: Sequence[int] | Tensor | None = None,
               overrides: dict | None = None) -> HeadSample:
        """Sample ``batch`` heads (the next ones of the stream, or the given ``head_ids``).

        ``overrides`` sets attributes of every head while keeping the rest of each head (identity,
        colours, hair, lighting, cameras) as drawn: ``"expression"`` (a name of :data:`EXPRESSIONS`),
        ``"expression_intensity"`` (0–1), ``"glasses"`` and ``"sunglasses"`` (bools; sunglasses imply
        glasses), ``"hat"`` (:data:`HATS`), ``"earrings"`` (:data:`EARRINGS`); :data:`ACCESSORIES`
        names useful sets. A hat turns a bun or a ponytail into short hair.
        """
        check_overrides(overrides)
        check_int(batch, "batch", 1, 4096)
        if head_ids is None:
            ids = torch.arange(self._next, self._next + batch, dtype=torch.int64)
            self._next += batch
        else:
            ids = torch.as_tensor(head_ids if isinstance(head_ids, Tensor) else list(head_ids),
                                  dtype=torch.int64).reshape(-1).cpu()
            if len(ids) != batch or int(ids.min()) < 0:
                raise ValueError(f"head_ids: expected {batch} non-negative ids, got {ids.tolist()}")
        return self._build(ids, overrides)

    # ---- construction -------------------------------------------------------------------------
    @torch.no_grad()
    def _build(self, ids: Tensor, overrides: dict | None) -> HeadSample:
        cfg, b, dev = self.config, self.basis, self.device
        B = len(ids)
        rng = HeadRandom(head_keys(self.seed, ids.to(dev)))
        a = draw_attributes(rng, cfg, b, self._expressions, overrides)
        # shape, then the similarity that puts the pupils and mouth on the face anchors
        raw = self._vertices(a)
        lm = self._landmarks(raw)
        s, R, t = umeyama(lm[:, :3].double(), self._anchors.expand(B, 3, 3))
        A = (s[:, None, None] * R).float()
        verts = raw @ A.transpose(1, 2) + t.float()[:, None]
        geo = self._measure(verts, a)
        # the Gaussians of every part, then each head's own counts of them
        counts = self._counts[a.hair_style, a.hat, a.glasses.long(), a.earrings, a.fringe.long()]  # [B, P]
        widest_dev = counts.amax(0)
        widest = widest_dev.tolist()  # the one wait for the device
        normals = self._vertex_normals(verts)
        area = 0.5 * torch.linalg.cross(verts[:, b.faces[:, 1]] - verts[:, b.faces[:, 0]],
                                        verts[:, b.faces[:, 2]] - verts[:, b.faces[:, 0]], dim=-1).norm(dim=-1)
        mesh = (verts, normals, area)
        parts = []
        for k, name in enumerate(_PARTS):
            if widest[k]:
                parts.append(getattr(self, "_" + name)(rng, a, mesh, geo, counts[:, k], widest[k]))
        splats = Splats.cat(parts)
        starts = widest_dev.cumsum(0) - widest_dev  # each part's first column (absent parts: width 0)
        end = counts.cumsum(1)
        slot = torch.arange(cfg.num_gaussians, device=dev).expand(B, -1).contiguous()
        part = torch.searchsorted(end, slot, right=True)  # [B, N]: (right: parts a head lacks are skipped)
        index = starts[part] + slot - (end - counts).gather(1, part)
        g = self._finish(splats.gather(index), a)
        # cameras: the fixed ring, then each head's random views
        vm, K = (x.expand(B, -1, -1, -1) for x in self._fixed)
        if cfg.num_random_views:
            rvm, rK = random_views(rng, cfg.num_random_views, cfg.image_size)
            vm, K = torch.cat([vm, rvm], 1), torch.cat([K, rK], 1)
        cameras = Cameras(vm.contiguous(), K.contiguous(), cfg.image_size, cfg.image_size)
        return HeadSample(g, cameras, list(self._view_names), INPUT_VIEW, ids.clone(), verts, a)

    def _vertices(self, a: HeadAttributes) -> Tensor:
        """[B, V, 3] unframed vertices. A batched product (one same-shaped product a head, not one
        matrix product for the batch), so a head's vertices do not depend on the batch it comes in."""
        coeffs = torch.cat([a.identity, a.expression_coeffs], 1)[:, None]  # [B, 1, K + E]
        offsets = torch.bmm(coeffs, self._components.expand(len(a), -1, -1))
        return self.basis.mean + offsets.reshape(len(a), -1, 3)

    def _landmarks(self, verts: Tensor) -> Tensor:
        """[B, L, 3] landmarks of [B, V, 3] vertices."""
        b = self.basis
        return (verts[:, b.landmark_index] * b.landmark_weight[..., None]).sum(-2)

    def _vertex_normals(self, v: Tensor) -> Tensor:
        """[B, V, 3] unit area-weighted vertex normals."""
        f = self.basis.faces
        fn = torch.linalg.cross(v[:, f[:, 1]] - v[:, f[:, 0]], v[:, f[:, 2]] - v[:, f[:, 0]], dim=-1)
        fn = torch.cat([fn, fn.new_zeros(fn.shape[0], 1, 3)], 1)
        return F.normalize(fn[:, self._vertex_faces].sum(2), dim=-1, eps=1e-12)

    # ---- measurements of a framed head that place hair and accessories ----------------------------
    def _measure(self, verts: Tensor, a: HeadAttributes) -> dict:
        lm = self._landmarks(verts)
        x, y, z = verts.unbind(-1)
        eye_level = ((y - 0.03).abs() < 0.05) & (z > 0.1)
        half_width = torch.where(eye_level, x.abs(), 0.0).amax(1)
        band = self._hat_bands[a.hat, 0]
        hat_top = band + torch.where(a.hat == 3, 0.1, 0.05)
        return {
            "lm": lm, "half_width": half_width,
            "prof_curtain": self._head_profile(verts, torch.full_like(band, -0.15), torch.full_like(band, 0.25)),
            "prof_hat": self._head_profile(verts, band - 0.05, hat_top),
            "back_bun": self._back_point(verts, a.bun[:, 0]),
            "back_tail": self._back_point(verts, a.ponytail[:, 0]),
        }

    @staticmethod
    def _head_profile(verts: Tensor, y0: Tensor, y1: Tensor) -> Tensor:
        """[B, 64] largest horizontal distance from the y axis of the vertices with y in (y0, y1) [B],
        per azimuth bin."""
        B = verts.shape[0]
        y = verts[..., 1]
        sel = (y > y0[:, None]) & (y < y1[:, None])
        phi = torch.atan2(verts[..., 0], verts[..., 2])
        k = ((phi + math.pi) / (2 * math.pi) * PROFILE_BINS).long().clamp(0, PROFILE_BINS - 1)
        r = torch.hypot(verts[..., 0], verts[..., 2]) * sel
        prof = verts.new_zeros(B, PROFILE_BINS).scatter_reduce(1, k, r, reduce="amax", include_self=True)
        for _ in range(4):  # fill empty bins from their neighbours
            prof = torch.where(prof > 0, prof, torch.maximum(prof.roll(1, 1), prof.roll(-1, 1)))
        return prof

    @staticmethod
    def _back_point(verts: Tensor, y: Tensor) -> Tensor:
        """[B, 3] the back of each head at height y [B] on the midline (the rearmost vertex near (0, y))."""
        sel = (verts[..., 0].abs() < 0.06) & ((verts[..., 1] - y[:, None]).abs() < 0.06)
        z = torch.where(sel, verts[..., 2], float("inf"))
        best = gather_rows(verts, z.argmin(1))
        fallback = torch.stack([torch.zeros_like(y), y, torch.full_like(y, -0.5)], -1)
        return torch.where(sel.any(1)[:, None], best, fallback)

    # ---- lighting ---------------------------------------------------------------------------------
    def _finish(self, sp: Splats, a: HeadAttributes) -> Gaussians:
        """[B, N] splats -> Gaussians: frames to quaternions, and the lighting baked into the colours.

        Lighting: wrapped Lambert from each head's key light (warm to cool), a fill light from the
        other side, sometimes a rim light from behind, plus an ambient term a little brighter from
        above (sky) than from below; on skin, shadows turn warmer (red light scatters further under
        the skin), by raising the shading to a per-channel power."""
        light_dir, light_col = a.light_dir[:, None], a.light_colour[:, None]
        amb = a.ambient[:, None, None]
        normal = F.normalize(sp.normals, dim=-1)
        ndl = (normal * light_dir).sum(-1, keepdim=True)
        wrap = ((ndl + 0.15) / 1.15).clamp(min=0)  # slightly wrapped Lambert: softer terminator, like skin
        # a fill light from the mirrored direction, and a rim light from behind that outlines the head
        fill_dir = light_dir * self._vec(-1.0, 0.3, 1.0)
        fill = a.fill[:, None, None] * (normal * F.normalize(fill_dir, dim=-1)).sum(-1, keepdim=True).clamp(min=0)
        rim = a.rim[:, None, None] * (normal * a.rim_dir[:, None]).sum(-1, keepdim=True).clamp(min=0) ** 2
        shade = amb * (0.75 + 0.25 * normal[..., 1:2]) + (1 - amb) * (wrap + fill) * light_col + rim
        power = on_device(shade.device, (0.8, 1.0, 1.1))
        warm = shade.clamp(1e-4, 1.0) ** power * shade.clamp(min=1.0)
        shade = torch.where(sp.skin[..., None] > 0, warm, shade)
        colors = (sp.albedo.clamp(0, 1) * shade * sp.occlusion[..., None]).clamp(0.0, 1.0)
        return Gaussians(sp.means, frame_quats(sp.tangents, normal), sp.scales, sp.opacities, colors)

    # ---- sampling the surface -----------------------------------------------------------------------
    def _scalp_mask(self, a: HeadAttributes) -> Tensor:
        """[B, V] soft mask of where hair grows, from canonical (mean-mesh) coordinates."""
        h = self._hairline[0] + a.hairline[:, None] * self._hairline[1]
        return smoothstep(h - 0.015, h + 0.025, self.basis.mean[:, 1]) * self._hairless

    def _hat_band(self, a: HeadAttributes, canon: Tensor) -> Tensor:
        """[B, n] height of the hat's lower edge above canonical points [n, 3] or [B, n, 3]: lower toward
        the back."""
        front, drop = self._hat_bands[a.hat].unbind(-1)
        phi = torch.atan2(canon[..., 0], canon[..., 2]).abs()
        return front[:, None] - drop[:, None] * (phi / math.pi) ** 2

    def _sample_mesh(self, rng: HeadRandom, name: str, mesh: tuple, weight: Tensor, n: Tensor, M: int):
        """Up to M points a head spread over its mesh with density ∝ ``weight`` [B, F] per unit area;
        head b's first n[b] points are its sample (the rest are to be dropped).

        Stratified, so the surface has no holes: systematic sampling gives each triangle the floor or
        the ceiling of its expected count, and a triangle's points follow a randomly shifted R2
        low-discrepancy sequence folded into the triangle.

        Returns (barycentrics [B, M, 3], triangle vertex ids [B, M, 3], positions [B, M, 3],
        interpolated unit normals [B, M, 3], spacing [B, M] = 1/sqrt(points per unit area there)).
        """
        verts, normals, area = mesh
        B, Fn = area.shape
        dev = area.device
        w = (area * weight).clamp(min=0).double()
        cdf = torch.cumsum(w, 1)
        total = cdf[:, -1:].clamp(min=1e-30)
        nn = n.clamp(min=1)[:, None].double()
        shift = rng.uniform(name + ".shift", Fn + 1, 2)  # per triangle, and (last row) the systematic offset
        pos = (torch.arange(M, device=dev, dtype=torch.float64) + shift[:, Fn:, 0].double()) * (total / nn)  # [B, M]
        fi = torch.searchsorted(cdf, pos, right=True).clamp(max=Fn - 1)  # ascending
        start = torch.searchsorted(fi, torch.arange(Fn, device=dev).expand(B, Fn).contiguous())  # first point
        j = torch.arange(M, device=dev) - start.gather(1, fi)  # index of the point within its triangle
        u = torch.frac(gather_rows(shift, fi) + j[..., None].float() * on_device(dev, R2))
        flip = u.sum(-1) > 1
        u = torch.where(flip[..., None], 1 - u, u)
        bary = torch.stack([1 - u[..., 0] - u[..., 1], u[..., 0], u[..., 1]], -1)
        tri = self.basis.faces[fi]  # [B, M, 3]
        p = (gather_rows(verts, tri) * bary[..., None]).sum(-2)
        nrm = F.normalize((gather_rows(normals, tri) * bary[..., None]).sum(-2), dim=-1, eps=1e-12)
        density = (nn * weight.gather(1, fi) / total).float()  # points per unit area around each sample
        spacing = density.clamp(min=1e-12).rsqrt()
        return bary, tri, p, nrm, spacing

    # columns of the per-vertex features interpolated at every skin sample (see __init__)
    _VF = {name: i for i, name in enumerate(
        ("x", "y", "z", "eye_u", "eye_v", "red", "beard", "front", "neck", "lips", "eyelid_dark", "eyes", "sockets",
         "mouth", "tongue", "teeth", "occlusion"))}

    def _vertex_features(self) -> Tensor:
        """[V, 17] what the skin shader needs of the canonical mesh, per vertex (columns: _VF)."""
        b = self.basis
        c, reg = b.mean, b.regions
        r = lambda name: reg[:, b.region(name)]  # noqa: E731
        x, y, z = c.unbind(-1)
        cheeks = torch.exp(-(((x.abs() - 0.22) ** 2 + (y + 0.14) ** 2) / 0.012)) * (z > 0.2)
        nose = torch.exp(-((x ** 2 + (y + 0.2) ** 2) / 0.006)) * (z > 0.4)
        red = 0.12 * (cheeks + nose + r("ears"))
        beard = smoothstep(-0.12, -0.2, y) * smoothstep(-0.05, 0.15, z) * (1 - r("neck")) \
            * (1 - smoothstep(0.2, 0.6, r("lips")))
        front = (z / c[:, [0, 2]].norm(dim=-1).clamp(min=1e-6)).clamp(min=0) ** 2
        m = self._landmarks(b.mean[None])[0, self._lm["mouth"]]
        teeth = ((z > m[2] - 0.07) & ((y - m[1]).abs() < 0.06) & (x.abs() < 0.13)).float()
        occlusion = 1 - 0.5 * (r("sockets") + r("mouth") + r("tongue")).clamp(0, 1)
        cols = [x, y, z, b.eye_coord[:, 0], b.eye_coord[:, 1], red, beard, front, r("neck"),
                smoothstep(0.25, 0.7, r("lips")), 1 - 0.12 * smoothstep(0.2, 0.8, r("eyelids")),
                smoothstep(0.5, 0.95, r("eyes")), r("sockets"), r("mouth"), r("tongue"), teeth, occlusion]
        return torch.stack(cols, -1)

    # ---- the parts: each returns [B, M] splats of which head b keeps the first n[b] ----------------
    def _vec(self, *xs: float) -> Tensor:
        return on_device(self.device, xs)

    def _face(self, rng, a, mesh, geo, n, M) -> Splats:
        """The skin and the face's other surfaces as flat discs, with the procedural albedo."""
        B = len(a)
        bary, tri, pos, nrm, spacing = self._sample_mesh(rng, "face", mesh, self._face_density.expand(B, -1), n, M)
        f = (self._vfeat[tri] * bary[..., None]).sum(-2)  # [B, M, 17]: every feature interpolated at once
        scalp = (gather_rows(self._scalp_mask(a), tri) * bary).sum(-1)
        col = lambda name: f[..., self._VF[name]]  # noqa: E731
        per_head = lambda x: x[:, None, None] if x.dim() == 1 else x[:, None]  # noqa: E731
        canon = f[..., :3]
        low, mid, high, spots = Noises(rng, "face.noise", (6.0, 25.0, 140.0, 260.0))(canon).unbind(-1)
        skin = per_head(a.skin) * (1 + 0.035 * low + 0.015 * mid + 0.02 * high)[..., None]
        skin = skin * (1 - (col("red") * a.redness[:, None])[..., None] * self._vec(0.0, 0.25, 0.22))
        # freckles over the cheeks and nose, a few moles anywhere
        freckle = smoothstep(0.9, 1.4, spots) * (col("red") * 4 + 0.15).clamp(max=1) \
            + smoothstep(2.1, 2.4, low + spots)
        skin = skin * (1 - 0.35 * (a.freckles[:, None] * freckle).clamp(max=1)[..., None] * self._vec(0.6, 0.9, 1.0))
        beard = col("beard") * (0.75 + 0.25 * mid).clamp(0, 1)  # stubble on the lower face
        stubble = torch.minimum(per_head(a.hair) * 0.6, skin * 0.7)
        skin = torch.lerp(skin, stubble, (a.stubble[:, None] * beard)[..., None])
        # clothing at the bottom of the neck: a crew, scoop or V neckline (lower at the front) or a high
        # collar; plain or striped fabric
        v_shape = (1 - canon[..., 0].abs() / 0.3).clamp(min=0) * (canon[..., 2] > 0)
        front = torch.where(a.v_neck[:, None], v_shape, col("front"))
        line = a.neckline[:, None] - a.neckline_scoop[:, None] * front
        shirt = smoothstep(line + 0.012, line - 0.012, canon[..., 1]) * col("neck")
        strength, freq, mix = (x[:, None] for x in a.shirt_pattern.unbind(-1))
        stripes = strength * smoothstep(-0.3, 0.3, torch.sin(canon[..., 1] * freq))
        fabric = per_head(a.shirt) * (1 + 0.05 * mid)[..., None]
        second = torch.lerp(fabric * 0.35, self._vec(0.92, 0.92, 0.9).expand_as(fabric), mix[..., None])
        fabric = torch.lerp(fabric, second, stripes[..., None])
        albedo = torch.lerp(skin, fabric, shirt[..., None])
        # scalp under hair: the hair colour shows through the gaps
        under_hair = 0.9 * scalp * (a.hair_style > 0)[:, None]
        albedo = torch.lerp(albedo, per_head(a.hair) * 0.8, under_hair[..., None])
        albedo = torch.lerp(albedo, per_head(a.lips) * (1 + 0.05 * high)[..., None], col("lips")[..., None])
        albedo = torch.lerp(albedo, per_head(a.brow).expand_as(albedo),
                            (self._brows(a, canon) * (0.77 + 0.13 * high))[..., None])
        albedo = albedo * col("eyelid_dark")[..., None]
        # eyes: sclera, iris with radial streaks and a dark limbus, pupil
        eu, ev = col("eye_u"), col("eye_v")
        rad = torch.sqrt(eu * eu + ev * ev)
        ang = torch.atan2(ev, eu)
        iris_r = 0.45
        streak = 1 + 0.2 * torch.sin(ang * 23 + 4 * rad) * torch.sin(ang * 7)
        sclera = self._vec(0.93, 0.9, 0.86) * (1 - 0.15 * smoothstep(0.6, 1.0, rad)[..., None])
        iris = per_head(a.iris) * (streak * (1 - 0.5 * smoothstep(iris_r - 0.08, iris_r, rad)))[..., None]
        eye_col = torch.where((rad < iris_r)[..., None], iris, sclera)
        eye_col = torch.where((rad < 0.18)[..., None], torch.full_like(eye_col, 0.02), eye_col)
        albedo = torch.lerp(albedo, eye_col, col("eyes")[..., None])
        # inside: sockets, mouth (teeth at its front), tongue
        dark = self._vec(0.35, 0.12, 0.12)
        albedo = torch.lerp(albedo, (per_head(a.skin) * 0.45 + dark * 0.2).expand_as(albedo), col("sockets")[..., None])
        mouth_col = torch.lerp(dark * 0.6, self._vec(0.88, 0.85, 0.76), col("teeth")[..., None])
        albedo = torch.lerp(albedo, mouth_col, col("mouth")[..., None])
        albedo = torch.lerp(albedo, self._vec(0.72, 0.36, 0.36).expand_as(albedo), col("tongue")[..., None])
        # flat discs in the tangent plane, random in-plane orientation
        jit = rng.uniform("face.discs", M, 5)
        tang = torch.linalg.cross(nrm, normal_quantile(jit[..., 2:]), dim=-1)
        s_t = spacing * (0.9 + 0.2 * jit[..., 0])  # σ ≈ the spacing: no gaps where a triangle got one point less
        scales = torch.stack([s_t, s_t * (0.8 + 0.2 * jit[..., 1]), 0.08 * s_t], -1)
        return Splats.make(pos, tang, nrm, scales, 0.97, albedo, col("occlusion"), skin=True)

    def _brows(self, a: HeadAttributes, canon: Tensor) -> Tensor:
        """[B, M] brow mask at canonical positions: an arched band above each eye, thinning outward."""
        thickness, arch, height = (x[:, None] for x in a.brow_shape.unbind(-1))
        u = (canon[..., 0].abs() - 0.035) / 0.25  # 0 at the inner end, 1 at the outer end
        yc = 0.1 + height + arch * 0.035 * torch.sin(math.pi * (u * 1.15).clamp(0, 1)) - 0.015 * u
        half = (0.016 + 0.02 * thickness) * (1 - 0.55 * u.clamp(0, 1))
        m = smoothstep(half + 0.006, half - 0.006, (canon[..., 1] - yc).abs())
        return m * smoothstep(-0.06, 0.02, u) * smoothstep(1.05, 0.9, u) * (canon[..., 2] > 0.28)


# =================================================================================================
# Rendering
# =================================================================================================
def render_views(sample: HeadSample, views: Sequence[int] | Tensor | None = None,
                 background: Sequence[float] | Tensor | None = framing.BACKGROUND):
    """Render views of every head of ``sample``: :func:`a3d.core.rendering.render` of its Gaussians from
    ``sample.cameras`` (all views, or the indices ``views``) over ``background`` (default the
    framing's model background; None renders over black, i.e. premultiplied colour).

    Returns:
        :class:`a3d.core.rendering.RenderOutput` with rgb [B, C', H, W, 3], alpha and depth [B, C', H, W, 1].
    """
    from ...core.rendering import render

    cams = sample.cameras
    if views is not None:
        idx = torch.as_tensor(views, dtype=torch.long).reshape(-1)
        if len(idx) == 0 or int(idx.min()) < 0 or int(idx.max()) >= len(cams):
            raise ValueError(f"views: expected indices in [0, {len(cams)}), got {idx.tolist()}")
        idx = idx.to(cams.viewmats.device)
        cams = Cameras(cams.viewmats.index_select(-3, idx), cams.Ks.index_select(-3, idx), cams.width, cams.height)
    return render(sample.gaussians, cams, background)
