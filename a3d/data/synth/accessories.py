"""The accessories of a synthetic head: :class:`AccessoryParts`, the builders of hats (beanie, cap with
visor, brimmed hat), glasses (frame tubes and tinted lenses) and earrings (studs, hoops), mixed into
:class:`a3d.data.synth.heads.SyntheticHeads`, whose mesh sampling and measurements they use. Each part
returns [B, M] splats of which head b keeps the first n[b].
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ..device_constants import on_device
from .attributes import HeadAttributes
from .draws import Noises, normal_quantile
from .geometry import PROFILE_BINS, R2, Splats, gather_rows

__all__ = ["AccessoryParts"]


class AccessoryParts:
    """Builders of the accessory parts of :class:`a3d.data.synth.heads.SyntheticHeads`."""

    def _discs(self, rng, name, p, nrm, spacing, albedo, opacity) -> Splats:
        """Flat discs at ``p`` [B, M, 3] facing ``nrm``, σ = 0.75 ``spacing``."""
        B, M = p.shape[:2]
        tang = torch.linalg.cross(nrm.expand(B, M, 3), rng.normal(name + ".tangent", M, 3), dim=-1)
        s = (0.75 * spacing).expand(B, M)
        return Splats.make(p, tang, nrm, torch.stack([s, s, 0.08 * s], -1), opacity, albedo)

    def _tube(self, rng, name, start, end, radius, n, M, colour, opacity) -> Splats:
        """Gaussians along the segments start → end [B, S, 3] (a frame, an arm, a hoop), filling tubes of
        ``radius`` [B, S]; segments are picked in proportion to their length."""
        seg = end - start
        cdf = torch.cumsum(seg.norm(dim=-1), 1)
        total = cdf[:, -1:]
        u = rng.uniform(name, M, 6)
        si = torch.searchsorted(cdf, (u[..., 0] * total).contiguous(), right=True).clamp(max=seg.shape[1] - 1)
        s = gather_rows(seg, si)
        centre = gather_rows(start, si) + s * u[..., 1:2]
        tang = F.normalize(s, dim=-1)
        off = F.normalize(torch.linalg.cross(tang, normal_quantile(u[..., 3:]), dim=-1), dim=-1)
        r = radius.gather(1, si)
        p = centre + off * (r * u[..., 2].sqrt())[..., None]
        along = torch.maximum(2 * total / n.clamp(min=1)[:, None], r)
        scales = torch.stack([along, 0.5 * r, 0.5 * r], -1)
        return Splats.make(p, tang, off, scales, opacity, colour[:, None] * (1 + 0.08 * off[..., 1:2]))

    # hats --------------------------------------------------------------------------------------------
    def _hat_shell(self, rng, a, mesh, geo, n, M) -> Splats:
        """A beanie (with a folded cuff) or the crown of a cap: a shell over the head and its hair."""
        c = self._canon_centroid
        weight = (c[:, 1] > self._hat_band(a, c)).float() * self._not_ears
        hair_t = (a.hair_thickness + 0.025)[:, None]
        bary, tri, pos, nrm, spacing = self._sample_mesh(rng, "hat", mesh, weight, n, M)
        canon = (self.basis.mean[tri] * bary[..., None]).sum(-2)
        cuff = (canon[..., 1] < self._hat_band(a, canon) + 0.08).float()
        p = pos + nrm * (hair_t + 0.012 * cuff)[..., None]
        colour = a.hat_colours[:, None, 0]
        rib = 1 + 0.12 * torch.sin(torch.atan2(p[..., 0], p[..., 2]) * 90)
        beanie = colour * torch.where(cuff > 0, 1.0, rib * 0.92)[..., None]
        cap = colour * (1 + 0.04 * rng.normal("hat.shade", M, 1))
        albedo = torch.where((a.hat == 1)[:, None, None], beanie, cap)
        return self._discs(rng, "hat", p, nrm, spacing * 1.1, albedo, 0.98)

    def _visor(self, rng, a, mesh, geo, n, M) -> Splats:
        """A cap's visor, drooping about 24°."""
        prof = geo["prof_hat"]
        band = self._hat_bands[a.hat, 0][:, None]
        hair_t = (a.hair_thickness + 0.025)[:, None]
        u = rng.uniform("visor", M, 2)
        ang = (u[..., 0] * 2 - 1) * 1.2
        k = ((ang + math.pi) / (2 * math.pi) * PROFILE_BINS).long().clamp(0, PROFILE_BINS - 1)
        out = u[..., 1] * 0.28 * torch.cos(ang * 0.9)  # the visor's length, shorter at its sides
        rr = prof.gather(1, k) + hair_t + out
        y = band + 0.02 - 0.45 * out
        p = torch.stack([rr * torch.sin(ang), y, rr * torch.cos(ang)], -1)
        nrm = F.normalize(torch.stack([0.3 * torch.sin(ang), torch.ones_like(ang), 0.3 * torch.cos(ang)], -1), dim=-1)
        sp = torch.sqrt(0.28 * 2.4 * 0.5 / n.clamp(min=1)[:, None])
        return self._discs(rng, "visor", p, nrm, sp * 1.3, a.hat_colours[:, None, 1], 0.98)

    def _brimmed(self, a: HeadAttributes, geo: dict) -> tuple[Tensor, ...]:
        """A brimmed hat's half axes rx, rz, the height of its top and of its band, its brim width: [B, 1]."""
        prof = geo["prof_hat"]
        hair_t = (a.hair_thickness + 0.025)[:, None]
        rx = (prof[:, PROFILE_BINS // 4] + prof[:, 3 * PROFILE_BINS // 4])[:, None] / 2 + hair_t + 0.03  # azimuth ±90°
        rz = (prof[:, 0] + prof[:, PROFILE_BINS // 2] + prof[:, PROFILE_BINS - 1])[:, None] / 3 + hair_t + 0.03
        top = geo["lm"][:, self._lm["crown"], 1:2] + hair_t + a.hat_size[:, :1]
        y_band = self._hat_bands[a.hat, 0][:, None] - 0.06
        return rx, rz, top, y_band, a.hat_size[:, 1:]

    def _brim_crown(self, rng, a, mesh, geo, n, M) -> Splats:
        """A brimmed hat's crown: an elliptic surface of revolution with a ribbon at its band."""
        rx, rz, top, y_band, _ = self._brimmed(a, geo)
        u = rng.uniform("brim_crown", M, 2)
        th = u[..., 0] * 2 * math.pi
        y = y_band + (top - y_band) * u[..., 1]
        taper = 1 - 0.12 * (y - y_band) / (top - y_band)
        p = torch.stack([rx * taper * torch.sin(th), y, rz * taper * torch.cos(th)], -1)
        nrm = torch.stack([torch.sin(th) / rx, torch.zeros_like(th), torch.cos(th) / rz], -1)
        ribbon = (y < y_band + 0.05).float()[..., None]
        albedo = a.hat_colours[:, None, 0] * (1 - ribbon) + a.hat_colours[:, None, 1] * ribbon
        area = 2 * math.pi * 0.5 * (rx + rz) * (top - y_band)
        return self._felt(rng, "brim_crown", p, nrm, area, n, albedo)

    def _brim_top(self, rng, a, mesh, geo, n, M) -> Splats:
        rx, rz, top, _, _ = self._brimmed(a, geo)
        u = rng.uniform("brim_top", M, 2)
        rt, tt = u[..., 0].sqrt() * 0.88, u[..., 1] * 2 * math.pi
        p = torch.stack([rx * rt * torch.sin(tt), top.expand_as(tt), rz * rt * torch.cos(tt)], -1)
        return self._felt(rng, "brim_top", p, self._vec(0.0, 1.0, 0.0), math.pi * rx * rz, n,
                          a.hat_colours[:, None, 0])

    def _brim(self, rng, a, mesh, geo, n, M) -> Splats:
        rx, rz, _, y_band, width = self._brimmed(a, geo)
        u = rng.uniform("brim", M, 2)
        tb = u[..., 0] * 2 * math.pi
        rb = 1 + (width / torch.minimum(rx, rz)) * u[..., 1].sqrt()
        p = torch.stack([rx * rb * torch.sin(tb), y_band - 0.04 * (rb - 1), rz * rb * torch.cos(tb)], -1)
        area = math.pi * ((rx + width) * (rz + width) - rx * rz)
        return self._felt(rng, "brim", p, self._vec(0.0, 1.0, 0.0), area, n, a.hat_colours[:, None, 0])

    def _felt(self, rng, name, p, nrm, area, n, albedo) -> Splats:
        """Discs covering ``area`` [B, 1] with n [B] points, with a little colour noise."""
        sp = torch.sqrt(area / n.clamp(min=1)[:, None])
        albedo = albedo * (1 + 0.05 * Noises(rng, name + ".noise", (60.0,))(p))
        return self._discs(rng, name, p, nrm, sp * 1.2, albedo, 0.98)

    # glasses and earrings ------------------------------------------------------------------------------
    def _glasses_layout(self, a: HeadAttributes, geo: dict) -> dict:
        """The glasses' frame, per head [B, 1]: lens centre offsets xc, height yc, depth z_lens, half
        width and height, superellipse exponent, frame thickness."""
        lm = geo["lm"]
        re_, le = lm[:, self._lm["right_eye"]], lm[:, self._lm["left_eye"]]
        dz, dy, dx, half_h, expo, thick = (x[:, None] for x in a.glasses_shape.unbind(-1))
        xc = (le[:, :1] - re_[:, :1]) / 2 + dx
        half_w = (geo["half_width"][:, None] + 0.02 - xc).clamp(0.09, 0.15)
        return {"z_lens": (re_[:, 2:] + le[:, 2:]) / 2 + dz, "yc": (re_[:, 1:2] + le[:, 1:2]) / 2 + dy, "xc": xc,
                "half_w": half_w, "half_h": half_h, "expo": expo, "thick": thick}

    @staticmethod
    def _lens_z(g: dict, x: Tensor, sign: float | Tensor) -> Tensor:
        """Depth of the lens plane at x: wrapping a little toward the temples."""
        return g["z_lens"] - 0.02 * (x - sign * g["xc"]) * sign / g["half_w"] - 0.03 * x ** 2

    def _frame(self, rng, a, mesh, geo, n, M) -> Splats:
        """Rims, bridge and temple arms as tubes."""
        g = self._glasses_layout(a, geo)
        B, dev = len(a), self.device
        xc, yc, half_w, half_h = g["xc"], g["yc"], g["half_w"], g["half_h"]
        th = torch.linspace(0, 2 * math.pi, 65, device=dev)
        ex = torch.cos(th).abs() ** (2 / g["expo"]) * torch.sign(torch.cos(th))
        ey = torch.sin(th).abs() ** (2 / g["expo"]) * torch.sign(torch.sin(th))
        lines = []
        for sign in (-1.0, 1.0):
            x = sign * xc + half_w * ex
            lines.append(torch.stack([x, (yc + half_h * ey).expand_as(x), self._lens_z(g, x, sign)], -1))
        inner = xc - half_w + 0.002
        t9 = torch.linspace(-1, 1, 9, device=dev)
        bridge_x = inner * t9
        lines.append(torch.stack([bridge_x, yc + 0.3 * half_h + 0.012 * torch.cos(1.5 * t9),
                                  (g["z_lens"] + 0.005).expand_as(bridge_x)], -1))
        lm = geo["lm"]
        for sign, ear in ((-1.0, lm[:, self._lm["right_ear"]]), (1.0, lm[:, self._lm["left_ear"]])):
            x0 = sign * (xc + half_w)
            hinge = torch.cat([x0, yc + 0.3 * half_h, self._lens_z(g, x0, sign)], -1)
            tip = torch.stack([sign * (ear[:, 0].abs() - 0.02), ear[:, 1] + 0.1, ear[:, 2] - 0.03], -1)
            lines.append(torch.stack([hinge, tip, tip + self._vec(0.0, -0.08, -0.06)], 1))
        start = torch.cat([q[:, :-1] for q in lines], 1)
        end = torch.cat([q[:, 1:] for q in lines], 1)
        radius = torch.cat([g["thick"].expand(B, 128), 0.8 * g["thick"].expand(B, start.shape[1] - 128)], 1)
        return self._tube(rng, "frame", start, end, radius, n, M, a.frame_colour, 0.95)

    def _lens(self, rng, a, mesh, geo, n, M) -> Splats:
        """Lenses: faint (or, for sunglasses, dark) discs on an R2 low-discrepancy sequence over the lens's
        box, randomly shifted, keeping the points inside the superellipse: even coverage, so a dark lens has
        no see-through blotches. Overlapping faint discs compose like an absorbing layer: 1 − T ≈ 1 − exp(−Σ α).
        A disc of opacity o and std σ adds o·2πσ² to Σα per unit area, and there are 1/sp² discs per unit
        area, so o = −ln(1 − target)·sp² / (2πσ²) gives the lens the target opacity."""
        g = self._glasses_layout(a, geo)
        dev = self.device
        first = (n // 2)[:, None]  # the right lens's points, then the left's
        count = int((M + 1) // 2 * 1.45) + 16
        j = torch.arange(count, device=dev)
        uv = 2 * torch.frac(a.lens_shift[:, None] + j[:, None] * on_device(dev, R2)) - 1  # [B, count, 2]
        expo = g["expo"]
        inside = (uv.abs() ** expo[..., None]).sum(-1) <= 0.97 ** expo
        order = torch.argsort(torch.where(inside, j, j + count), 1)  # the inside points first, in sequence order
        uv = gather_rows(uv, order)
        s = torch.arange(M, device=dev)[None]
        left = s >= first
        local = (s - first * left).clamp(max=count - 1)
        uvs = gather_rows(uv, local)
        sign = torch.where(left, 1.0, -1.0)
        x = sign * g["xc"] + g["half_w"] * uvs[..., 0]
        p = torch.stack([x, g["yc"] + g["half_h"] * uvs[..., 1], self._lens_z(g, x, sign)], -1)
        per_lens = torch.where(left, n[:, None] - first, first).clamp(min=1)
        sp = torch.sqrt(4 * g["half_w"] * g["half_h"] * inside.float().mean(1, keepdim=True) / per_lens)
        sigma_over_sp = 0.975
        opacity = (-torch.log(1 - a.lens_opacity) / (2 * math.pi * sigma_over_sp ** 2)).clamp(max=0.95)[:, None]
        return self._discs(rng, "lens", p, self._vec(0.0, 0.0, 1.0), sp * sigma_over_sp / 0.75,
                           a.lens_tint[:, None], opacity)

    def _earring(self, rng, a, mesh, geo, n, M) -> Splats:
        """Studs (small metal balls) or hoops hanging from the ear lobes, sideways."""
        dev = self.device
        first = (n // 2)[:, None]
        left = torch.arange(M, device=dev)[None] >= first
        sign = torch.where(left, 1.0, -1.0)
        lm = geo["lm"]
        lobe = torch.where(left[..., None], lm[:, None, self._lm["left_earlobe"]],
                           lm[:, None, self._lm["right_earlobe"]])
        lobe = lobe + torch.stack([sign * 0.012, torch.full_like(sign, -0.01), torch.zeros_like(sign)], -1)
        per_ear = torch.where(left, n[:, None] - first, first).clamp(min=1)
        metal = a.earring_metal[:, None]
        u = rng.uniform("earring", M, 9)
        rad = 0.012
        d = F.normalize(normal_quantile(u[..., 3:6]), dim=-1)
        p = lobe + d * rad * u[..., :1] ** 0.3
        sp = torch.sqrt(4 * math.pi * rad * rad / per_ear)
        studs = self._discs(rng, "earring", p, d, sp * 1.5, metal * (0.8 + 0.3 * d[..., 1:2]), 0.98)
        rad = 0.045  # a hoop in the plane facing sideways
        th = u[..., 1] * 2 * math.pi
        zero = torch.zeros_like(th)
        centre = lobe + torch.stack([zero, -rad + rad * torch.cos(th), rad * torch.sin(th)], -1)
        tang = torch.stack([zero, -torch.sin(th), torch.cos(th)], -1)
        off = F.normalize(torch.linalg.cross(tang, normal_quantile(u[..., 6:9]), dim=-1), dim=-1)
        p = centre + off * (0.004 * u[..., 2].sqrt())[..., None]
        along = (4 * math.pi * rad / per_ear).clamp(min=0.004)
        scales = torch.stack([along, torch.full_like(along, 0.002), torch.full_like(along, 0.002)], -1)
        hoops = Splats.make(p, tang, off, scales, 0.98, metal * (1 + 0.08 * off[..., 1:2]))
        return studs.where(a.earrings == 1, hoops)
