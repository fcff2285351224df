"""The hair of a synthetic head: :class:`HairParts`, the builders of its hair parts (the shell over the
scalp, the curtain of long hair, the fringe, the bun, the ponytail), mixed into
:class:`a3d.data.synth.heads.SyntheticHeads`, whose mesh sampling and measurements they use. Each returns
[B, M] splats of which head b keeps the first n[b].
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .attributes import STYLE_INDEX
from .draws import Noises, normal_quantile
from .geometry import PROFILE_BINS, Splats, gather_rows, smoothstep

__all__ = ["HairParts"]


class HairParts:
    """Builders of the hair parts of :class:`a3d.data.synth.heads.SyntheticHeads`."""

    def _strands(self, rng, name, a, p, nrm, flow, spacing, layer, length, opacity) -> Splats:
        """Hair Gaussians at ``p`` [B, M, 3]: needles along ``flow``, darker in the inner ``layer`` (0)
        than the outer (1)."""
        B, M = p.shape[:2]
        u = rng.uniform(name + ".strand", M, 2)
        strand = 0.75 + 0.25 * Noises(rng, name + ".strands", (90.0,))(p) + 0.12 * normal_quantile(u[..., :1])
        albedo = a.hair[:, None] * strand * (0.55 + 0.45 * layer[..., None])
        s_across = (0.45 * spacing).clamp(max=0.01).expand(B, M)
        lengths = length * (0.6 + 0.8 * u[..., 1])
        return Splats.make(p, flow, nrm, torch.stack([lengths, s_across, 0.6 * s_across], -1), opacity, albedo)

    def _shell(self, rng, a, mesh, geo, n, M) -> Splats:
        """Hair as a volume over the scalp: needles offset along the normals, along a flow field."""
        scalp = self._scalp_mask(a)
        weight = scalp[:, self.basis.faces].mean(-1)  # [B, F]
        weight = torch.where(weight > 0.3, weight, 0.0)
        c = self._canon_centroid
        under_hat = c[:, 1] < self._hat_band(a, c) + 0.05  # no need to spend hair under the hat's crown
        weight = torch.where((a.hat > 0)[:, None], weight * under_hat, weight) + 1e-6 * (c[:, 1] > 0)  # never all 0
        bary, tri, pos, nrm, spacing = self._sample_mesh(rng, "shell", mesh, weight, n, M)
        scal = (gather_rows(scalp, tri) * bary).sum(-1)
        thick = a.hair_thickness.clamp(min=0.004)[:, None]
        u = rng.uniform("shell.depth", M, 4)
        curly = (a.hair_style == STYLE_INDEX["curly"])[:, None]
        # curly hair: a cloud of tight curls, in clumps (the depth varies over the scalp), every
        # needle turned its own way
        clumps = (0.75 + 0.35 * Noises(rng, "shell.clumps", (18.0,))(pos)[..., 0]).clamp(0.4, 1.2)
        depth = u[..., 0] ** 0.7 * thick * (0.35 + 0.65 * smoothstep(0.3, 0.9, scal)) * torch.where(curly, clumps, 1.0)
        p = pos + nrm * (depth + 0.002)[..., None]
        p = p + torch.where(curly, 0.012, 0.0)[..., None] * normal_quantile(u[..., 1:])
        style = a.hair_style[:, None, None]
        # pulled back toward the tie (bun, ponytail); away from a whorl at the crown (short, buzz) or
        # a parting on top (longer styles)
        tie = geo["lm"][:, self._lm["crown"], None] + self._vec(0.0, -0.2, -0.5)
        whorl = torch.where((style == 1) | (style == 2), self._vec(0.0, 0.45, -0.3), self._vec(0.0, 0.7, 0.15))
        centre = torch.where((style == 5) | (style == 6), tie, whorl)
        flow = p - centre + self._vec(0.0, -0.3, 0.0)
        flow = torch.where(curly[..., None], normal_quantile(u[..., 1:]), flow)
        buzz = (a.hair_style == 1)[:, None]
        length = torch.where(buzz, 0.012, torch.where(curly, 0.022, 0.035))
        opacity = torch.where(buzz, 0.8, 0.9)
        # flyaways: a few long, faint hairs standing out of the outer layer, so the silhouette is soft
        v = rng.uniform("shell.flyaway", M, 2)
        fly = (v[..., 0] < 0.06) & ~buzz
        p = p + nrm * (fly * (0.008 + 0.03 * v[..., 1]))[..., None]
        flow = torch.where(fly[..., None], flow + 0.8 * flow.norm(dim=-1, keepdim=True) * nrm, flow)
        g = self._strands(rng, "shell", a, p, nrm, flow, spacing, (depth / thick).clamp(max=1),
                          length=torch.where(fly, 0.07, length), opacity=torch.where(fly, 0.45, opacity))
        g.scales = torch.where(fly[..., None], g.scales * self._vec(1.0, 0.5, 0.5), g.scales)  # thinner
        return g

    def _curtain(self, rng, a, mesh, geo, n, M) -> Splats:
        """Long hair hanging from the sides and the back of the head down to ``hair_length``."""
        prof = geo["prof_curtain"]
        y_top, y_end, front = 0.2, a.hair_length[:, None], a.curtain_front[:, None]
        thick = a.hair_thickness.clamp(min=0.004)[:, None]
        u = rng.uniform("curtain", M, 4)
        phi = torch.sign(u[..., 0] - 0.5) * (front + (math.pi - front) * (2 * (u[..., 0] - 0.5)).abs())
        k = ((phi + math.pi) / (2 * math.pi) * PROFILE_BINS).long().clamp(0, PROFILE_BINS - 1)
        ragged = 0.04 * torch.sin(phi * 9 + 1.3) + 0.05 * u[..., 2] \
            + 0.1 * (1 - (phi.abs() - front) / (math.pi - front))
        ring = torch.stack([torch.sin(phi), torch.zeros_like(phi), torch.cos(phi)], -1)
        # under a hat the hair comes out under its edge
        top = torch.where((a.hat > 0)[:, None], (self._hat_band(a, ring) - 0.03).clamp(max=y_top), y_top)
        y = top - u[..., 1] * (top - (y_end + ragged))
        depth = u[..., 3] * (thick + 0.02)
        radius = prof.gather(1, k) + thick + 0.01 - depth + 0.04 * (y_top - y).clamp(min=0)
        # waves down the length, and shoulder-length hair flicking out where it meets the shoulders
        radius = radius + a.hair_wave[:, None] * torch.sin(y * 28 + phi * 2 + 6 * a.curtain_front[:, None])
        flick = (a.hair_style == STYLE_INDEX["shoulder"])[:, None] * smoothstep(y_end + 0.18, y_end, y)
        radius = radius + 0.09 * flick
        p = torch.stack([radius * torch.sin(phi), y, radius * torch.cos(phi)], -1)
        nrm = torch.stack([torch.sin(phi), torch.full_like(phi, 0.15), torch.cos(phi)], -1)
        area = 2 * (math.pi - front) * prof.mean(1, keepdim=True) * (y_top - y_end)
        spacing = torch.sqrt(area * 2.5 / n.clamp(min=1)[:, None])
        flow = nrm * 0.1 + self._vec(0.0, -1.0, 0.0)
        g = self._strands(rng, "curtain", a, p, nrm, flow, spacing, 1 - depth / (thick + 0.02), length=0.05,
                          opacity=0.85)
        end_fade = smoothstep(y_end - 0.02, y_end + 0.12, y)
        g.opacities = (g.opacities * (0.3 + 0.7 * end_fade)).clamp(0.05, 0.99)
        return g

    def _fringe(self, rng, a, mesh, geo, n, M) -> Splats:
        """Bangs: hair hanging over the forehead from the hairline, swept a little to one side."""
        c = self._canon_centroid
        end, half_width, sweep = (x[:, None] for x in a.fringe_shape.unbind(-1))
        top = 0.3 + 0.15 * a.hairline[:, None]
        # under a hat the fringe comes out below its edge
        top = torch.where((a.hat > 0)[:, None], torch.minimum(top, self._hat_bands[a.hat, :1] - 0.01), top)
        weight = ((c[:, 0].abs() < half_width) & (c[:, 1] > end) & (c[:, 1] < top) & (c[:, 2] > 0.15)).float()
        weight = weight + 1e-6 * (c[:, 1] > 0)
        bary, tri, pos, nrm, spacing = self._sample_mesh(rng, "fringe", mesh, weight, n, M)
        u = rng.uniform("fringe.depth", M)
        thick = a.hair_thickness.clamp(0.01, 0.04)[:, None]
        p = pos + nrm * (0.004 + u * thick)[..., None]
        zero = torch.zeros_like(sweep)
        flow = torch.stack([sweep, -torch.ones_like(sweep), zero], -1) + 0.2 * nrm
        return self._strands(rng, "fringe", a, p, nrm, flow, spacing, u, length=0.04, opacity=0.9)

    def _bun(self, rng, a, mesh, geo, n, M) -> Splats:
        rad = a.bun[:, 1, None]  # [B, 1]
        lift = torch.stack([torch.zeros_like(rad), torch.full_like(rad, 0.02), -0.6 * rad], -1)
        centre = geo["back_bun"][:, None] + lift
        u = rng.uniform("bun", M, 4)
        d = F.normalize(normal_quantile(u[..., :3]), dim=-1)
        rr = rad * (1 - 0.35 * u[..., 3] ** 2)
        p = centre + d * rr[..., None] * self._vec(1.1, 0.9, 0.8)
        flow = torch.linalg.cross(d, self._vec(0.0, 0.0, 1.0).expand_as(d), dim=-1) + 0.2 * d
        spacing = torch.sqrt(4 * math.pi * rad * rad * 1.5 / n.clamp(min=1)[:, None])
        return self._strands(rng, "bun", a, p, d, flow, spacing, rr / rad, length=0.03, opacity=0.9)

    def _ponytail(self, rng, a, mesh, geo, n, M) -> Splats:
        length, r0 = a.ponytail[:, 1, None], a.ponytail[:, 2, None]
        u = rng.uniform("ponytail", M, 3)
        s = u[..., 0]
        # a curve from the attachment falling down and slightly back
        centre = geo["back_tail"][:, None] + torch.stack([torch.zeros_like(s), -length * s ** 1.3 + 0.05 * s,
                                                          -0.05 - 0.18 * torch.sin(s * math.pi * 0.7)], -1)
        tang = F.normalize(torch.stack([torch.zeros_like(s), -1.3 * length * s.clamp(min=0.05) ** 0.3 + 0.05,
                                        -0.18 * 0.7 * math.pi * torch.cos(s * math.pi * 0.7)], -1), dim=-1)
        th = u[..., 1] * 2 * math.pi
        ex = self._vec(1.0, 0.0, 0.0).expand_as(tang)
        side = F.normalize(torch.linalg.cross(tang, ex, dim=-1), dim=-1)
        radial = torch.cos(th)[..., None] * ex + torch.sin(th)[..., None] * side
        rr = r0 * (1 - 0.6 * s) * u[..., 2].sqrt()
        p = centre + radial * rr[..., None]
        spacing = torch.sqrt(2 * math.pi * r0 * length / n.clamp(min=1)[:, None])
        return self._strands(rng, "ponytail", a, p, radial, tang, spacing, rr / r0, length=0.05, opacity=0.9)
