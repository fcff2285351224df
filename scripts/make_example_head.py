"""Generate a3d/assets/example_head.ply: a small procedural Gaussian head for demos and tests.

    python scripts/make_example_head.py [-o a3d/assets/example_head.ply]

Deterministic (fixed seed; the same numpy gives the same file). The head follows the framing
convention of :mod:`a3d.core.framing`: centred at the origin, y up, face toward +z, an ellipsoid of
semi-axes 0.45 / 0.55 / 0.5 head units. It is made of flat Gaussian discs tangent to a few simple
surfaces: the skull with a painted face (skin, eyes with iris and pupil, brows, lips, a blush), a
hair shell over the top and back, a nose, ears and a neck, so that an orbit video reads as a head
from every side. It is a stand-in for a reconstructed avatar, not a likeness of anyone.
"""
from __future__ import annotations

import argparse
import os

import numpy as np
import torch

from a3d.core.gaussians import Gaussians
from a3d.io.ply import save_ply

AXES = np.array([0.45, 0.55, 0.5])  # head semi-axes x, y, z (framing convention)
SKIN = np.array([0.86, 0.67, 0.55])
HAIR = np.array([0.23, 0.14, 0.08])
SEED = 20260101
LIGHT = np.array([0.3, 0.6, 0.75]) / np.linalg.norm([0.3, 0.6, 0.75])


def fibonacci_sphere(n: int) -> np.ndarray:
    """[n, 3] nearly uniform unit vectors (no clumps or holes, unlike random samples)."""
    i = np.arange(n) + 0.5
    y = 1 - 2 * i / n
    r = np.sqrt(1 - y * y)
    phi = np.pi * (3 - np.sqrt(5)) * i
    return np.stack([r * np.cos(phi), y, r * np.sin(phi)], -1)


def ellipsoid_surface(dirs: np.ndarray, centre, axes) -> tuple[np.ndarray, np.ndarray]:
    """Points and outward unit normals of an axis-aligned ellipsoid at unit directions ``dirs``."""
    axes = np.asarray(axes, dtype=np.float64)
    p = np.asarray(centre) + dirs * axes
    nrm = dirs / axes
    return p, nrm / np.linalg.norm(nrm, axis=-1, keepdims=True)


def disc_quats(normals: np.ndarray) -> np.ndarray:
    """[N, 4] quaternions (w, x, y, z) turning the local z axis onto ``normals`` (flat axis = z)."""
    n = normals
    q = np.stack([1 + n[:, 2], -n[:, 1], n[:, 0], np.zeros(len(n))], -1)
    flip = q[:, 0] < 1e-6  # normal = -z: any half turn about x
    q[flip] = [0.0, 1.0, 0.0, 0.0]
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def ellipse(x, y, cx, cy, rx, ry) -> np.ndarray:
    """Normalised squared radius of (x, y) in an axis-aligned ellipse (< 1 inside)."""
    return ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2


def paint_face(p: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Colours [N, 3] of skull points ``p`` [N, 3]: skin with a face painted on the front."""
    x, y, z = p.T
    col = np.tile(SKIN, (len(p), 1))
    front = z > 0.2
    ax = np.abs(x)
    blush = front & (ellipse(ax, y, 0.2, -0.12, 0.08, 0.06) < 1)
    col[blush] = [0.9, 0.6, 0.52]
    sclera = front & (ellipse(ax, y, 0.16, 0.06, 0.068, 0.034) < 1)
    col[sclera] = [0.95, 0.94, 0.92]
    iris = front & (ellipse(ax, y, 0.16, 0.058, 0.03, 0.03) < 1)
    col[iris] = [0.3, 0.2, 0.12]
    pupil = front & (ellipse(ax, y, 0.16, 0.058, 0.013, 0.013) < 1)
    col[pupil] = [0.03, 0.03, 0.03]
    lid = front & (np.abs(ellipse(ax, y, 0.16, 0.06, 0.072, 0.038) - 1.1) < 0.15) & (y > 0.06)
    col[lid] = [0.45, 0.3, 0.24]
    brow = front & (ellipse(ax, y + 0.6 * (ax - 0.16) ** 2, 0.165, 0.145, 0.085, 0.016) < 1)
    col[brow] = [0.2, 0.12, 0.07]
    lips = front & (ellipse(x, y, 0.0, -0.265, 0.1, 0.035) < 1)
    col[lips] = [0.72, 0.33, 0.33]
    mouth = front & (np.abs(y + 0.265 - 0.25 * x ** 2) < 0.0045) & (np.abs(x) < 0.095)
    col[mouth] = [0.35, 0.12, 0.12]
    return col + rng.normal(0, 0.012, col.shape)  # a little texture


def hairline(z: np.ndarray) -> np.ndarray:
    """Height of the hair's lower edge as a function of depth: high on the forehead, low at the nape."""
    return np.interp(z / AXES[2], [-1.0, -0.3, 0.2, 0.6, 1.0], [-0.32, -0.1, 0.1, 0.25, 0.3])


def make_head(seed: int = SEED) -> Gaussians:
    rng = np.random.default_rng(seed)
    parts = []  # (means, normals, colours, tangent sigma, normal sigma, opacity)

    def add(p, nrm, col, sigma, thick=None, opacity=0.97):
        thick = sigma * 0.25 if thick is None else thick
        parts.append((p, nrm, col, np.full(len(p), sigma), np.full(len(p), thick), np.full(len(p), opacity)))

    # skull: even coverage everywhere, then a denser layer on the face where the details are
    p, nrm = ellipsoid_surface(fibonacci_sphere(24000), 0, AXES)
    keep = ~(p[:, 1] > hairline(p[:, 2]) + 0.03)  # the hair shell covers the rest
    add(p[keep], nrm[keep], paint_face(p[keep], rng), 0.0095)
    gx, gy = np.meshgrid(np.arange(-0.3, 0.3, 0.0062), np.arange(-0.42, 0.3, 0.0062))
    gx = gx.ravel() + rng.uniform(-0.002, 0.002, gx.size)
    gy = gy.ravel() + rng.uniform(-0.002, 0.002, gy.size)
    r2 = 1 - (gx / AXES[0]) ** 2 - (gy / AXES[1]) ** 2
    ok = r2 > (0.25 / AXES[2]) ** 2  # the front cap, z > 0.25
    d = np.stack([gx[ok] / AXES[0], gy[ok] / AXES[1], np.sqrt(r2[ok])], -1)
    p, nrm = ellipsoid_surface(d, 0, AXES)
    p = p + 0.002 * nrm  # just above the skull layer
    add(p, nrm, paint_face(p, rng), 0.0045)

    # hair: a shell slightly outside the skull above the hairline, with strands of lighter and darker brown
    d = fibonacci_sphere(9000)
    p, nrm = ellipsoid_surface(d, 0, AXES + 0.03)
    keep = p[:, 1] > hairline(p[:, 2])
    p, nrm = p[keep], nrm[keep]
    strand = np.sin(40 * np.arctan2(p[:, 0], p[:, 2]) + 10 * p[:, 1])[:, None]
    col = HAIR * (1 + 0.15 * strand) + rng.normal(0, 0.02, (len(p), 3))
    add(p, nrm, col, 0.013, opacity=0.98)

    # nose: a small ellipsoid on the face, tip pointing forward and a little down
    d = fibonacci_sphere(1400)
    p, nrm = ellipsoid_surface(d, [0.0, -0.06, 0.455], [0.042, 0.1, 0.07])
    keep = p[:, 2] > 0.44
    tip = np.exp(-ellipse(p[keep, 0], p[keep, 1], 0.0, -0.12, 0.04, 0.05))[:, None]
    add(p[keep], nrm[keep], SKIN * (1 - 0.06 * tip) + [0.03, -0.02, -0.02] * tip, 0.006)
    nostril = keep & (np.abs(p[:, 0]) > 0.012) & (np.abs(p[:, 0]) < 0.03) & (p[:, 1] < -0.145)
    if nostril.any():
        add(p[nostril] + 0.001 * nrm[nostril], nrm[nostril], np.tile([0.45, 0.28, 0.24], (nostril.sum(), 1)), 0.005)

    # ears: flattened ellipsoids on both sides, at eye height and a little behind the middle
    for side in (-1.0, 1.0):
        d = fibonacci_sphere(2400)
        p, nrm = ellipsoid_surface(d, [side * 0.45, -0.03, -0.04], [0.05, 0.11, 0.065])
        keep = side * p[:, 0] > 0.425
        rim = ellipse(p[keep, 1], p[keep, 2], -0.03, -0.045, 0.1, 0.055)
        col = np.where((rim < 0.55)[:, None], SKIN * 0.78, SKIN * 0.98)  # a darker hollow inside the rim
        add(p[keep], nrm[keep], col, 0.006)

    # neck: an elliptic cylinder under the head
    t = np.linspace(0, 2 * np.pi, 90, endpoint=False)
    h = np.linspace(-0.72, -0.3, 32)
    T, Hh = np.meshgrid(t, h)
    T = T.ravel() + rng.uniform(-0.02, 0.02, T.size)
    p = np.stack([0.2 * np.sin(T), Hh.ravel(), 0.2 * np.cos(T) - 0.04], -1)
    nrm = np.stack([np.sin(T), np.zeros_like(T), np.cos(T)], -1)
    add(p, nrm, SKIN * 0.93 + rng.normal(0, 0.01, (len(p), 3)), 0.013)

    means = np.concatenate([q[0] for q in parts])
    normals = np.concatenate([q[1] for q in parts])
    # baked soft light from above and in front: the renderer has no lighting, shapes need shading
    shade = np.clip(0.8 + 0.25 * normals @ LIGHT, 0.6, 1.05)[:, None]
    colors = np.clip(np.concatenate([q[2] for q in parts]) * shade, 0.0, 1.0)
    sig = np.concatenate([q[3] for q in parts])
    thick = np.concatenate([q[4] for q in parts])
    opac = np.concatenate([q[5] for q in parts])
    scales = np.stack([sig, sig, thick], -1) * rng.uniform(0.9, 1.1, (len(sig), 1))
    f32 = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))  # noqa: E731
    return Gaussians(means=f32(means), quats=f32(disc_quats(normals)), scales=f32(scales),
                     opacities=f32(opac), colors=f32(colors))


def main() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output", default=os.path.join(here, "..", "a3d", "assets", "example_head.ply"))
    args = ap.parse_args()
    g = make_head()
    save_ply(g, args.output)
    print(f"wrote {args.output}: {g.num_gaussians} Gaussians, {os.path.getsize(args.output) / 2**20:.2f} MiB")


if __name__ == "__main__":
    main()
