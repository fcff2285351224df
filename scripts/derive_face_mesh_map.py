"""Derive a3d/assets/mediapipe/face_mesh_map.json: where MediaPipe's 468 face-mesh points sit on the morphable head.

    python scripts/derive_face_mesh_map.py [--heads 24] [-o a3d/assets/mediapipe/face_mesh_map.json]

Synthetic heads (a3d.data.synth; no accessories, neutral, short or no hair) are rendered from the front and
turned ±20°; MediaPipe's landmark model (a3d.animation.face_mesh) reads their face mesh; each point's camera
ray is cast onto the head's own mesh (the basis's outer triangles), and the hit is carried to the mean head
by its triangle and barycentric coordinates. Per point, the hits of all heads and views are averaged on the
mean head and snapped to its nearest outer triangle (not on the eyeballs); the spread (standard deviation,
head units) is kept as a measure of how well the point is pinned to the surface. Last, the rotation that
a3d.animation.driver.fit_clip reports for the heads seen from the front is stored as the map's rest rotation
(fit_clip takes it away).
Deterministic (fixed seeds); CPU, a minute or two.
"""
from __future__ import annotations

import argparse
import json

import numpy as np
import torch
from PIL import Image

from a3d.animation.bind import _nearest_triangles, bindable_faces
from a3d.animation.driver import fit_clip
from a3d.animation.face_mesh import FACE_MESH_MAP, _box_of, _read_map, face_mesh, track
from a3d.animation.pose import pose_from_matrix, pose_matrix
from a3d.core.cameras import orbit_cameras
from a3d.core.rendering import render, to_uint8
from a3d.data.synth import ACCESSORIES, HAIR_STYLES, SyntheticHeads


def cast(origins: torch.Tensor, dirs: torch.Tensor, tris: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """First hits of rays [R, 3] on triangles [T, 3, 3] (Möller–Trumbore): ([R] triangle or -1, [R, 3] bary)."""
    a, b, c = tris.unbind(1)
    e1, e2 = b - a, c - a  # [T, 3]
    p = torch.linalg.cross(dirs[:, None], e2[None], dim=-1)  # [R, T, 3]
    det = (e1[None] * p).sum(-1)
    inv = 1 / torch.where(det.abs() < 1e-12, torch.full_like(det, 1e-12), det)
    s = origins[:, None] - a[None]
    u = (s * p).sum(-1) * inv
    q = torch.linalg.cross(s, e1[None].expand_as(s), dim=-1)
    v = (dirs[:, None] * q).sum(-1) * inv
    t = (e2[None] * q).sum(-1) * inv
    hit = (u >= 0) & (v >= 0) & (u + v <= 1) & (t > 1e-6) & (det.abs() > 1e-12)
    t = torch.where(hit, t, torch.full_like(t, float("inf")))
    k = t.argmin(1)
    ok = torch.isfinite(t.gather(1, k[:, None]))[:, 0]
    r = torch.arange(len(origins))
    bary = torch.stack([1 - u[r, k] - v[r, k], u[r, k], v[r, k]], -1)
    return torch.where(ok, k, -1), bary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--heads", type=int, default=24, help="synthetic heads to draw (those with long hair are skipped)")
    ap.add_argument("-o", "--output", default=str(FACE_MESH_MAP))
    args = ap.parse_args()
    gen = SyntheticHeads("cpu", seed=11, num_gaussians=80_000, image_size=256, num_random_views=0)
    basis = gen.basis
    outer = torch.nonzero(bindable_faces(basis))[:, 0]
    sample = gen.sample(args.heads, overrides={**ACCESSORIES["none"], "expression": "neutral"})
    keep = [i for i in range(args.heads) if HAIR_STYLES[int(sample.attributes.hair_style[i])] in
            ("bald", "buzz", "short", "bun", "ponytail") and not bool(sample.attributes.fringe[i])]
    cams = orbit_cameras(0, size=256, azimuths=[-20.0, 0.0, 20.0])
    hits: list[list[np.ndarray]] = [[] for _ in range(468)]
    front: list = []  # each head's face mesh seen from the front
    for i in keep:
        verts = sample.vertices[i]
        tris = verts[basis.faces[outer]]
        images = to_uint8(render(sample.gaussians.scene(i), cams, (1.0, 1.0, 1.0)).rgb)
        meshes = track(list(images))
        for c, mesh in enumerate(meshes):
            if mesh is None:
                continue
            # a second read in the crop around the first one's points, as tracking would do on the next frame
            mesh = face_mesh(Image.fromarray(images[c]), _box_of(mesh.points))
            if c == 1:
                front.append(mesh)
            K, vm = cams.Ks[c], cams.viewmats[c]
            pix = torch.tensor(np.c_[mesh.points[:, :2], np.ones(468)], dtype=torch.float32)
            d_cam = pix @ torch.linalg.inv(K).T
            c2w = torch.linalg.inv(vm)
            dirs = torch.nn.functional.normalize(d_cam @ c2w[:3, :3].T, dim=-1)
            origin = c2w[:3, 3].expand(468, 3)
            k, bary = cast(origin, dirs, tris)
            for j in torch.nonzero(k >= 0)[:, 0].tolist():
                f = basis.faces[outer[k[j]]]
                hits[j].append((bary[j][:, None] * basis.mean[f]).sum(0).numpy())
        print(f"head {i}: {sum(m is not None for m in meshes)}/{len(meshes)} views read")
    missing = [j for j in range(468) if not hits[j]]
    if missing:
        raise SystemExit(f"no hits for points {missing[:10]}...: use more heads")
    centre = torch.tensor(np.stack([np.mean(h, 0) for h in hits]), dtype=torch.float32)
    spread = [float(np.sqrt(np.mean(np.sum((np.stack(h) - np.mean(h, 0)) ** 2, -1)))) for h in hits]
    # snapped to the skin, lids and lips: not to the eyeballs, which a blink does not move (MediaPipe's eye
    # contours are the lids' margins)
    eyeball = basis.regions[:, basis.region("eyes")][basis.faces].mean(1) > 0.5
    tri, bary = _nearest_triangles(centre, basis.mean, basis.faces, bindable_faces(basis) & ~eyeball)
    doc = {"format": "a3d-face-mesh-map", "points": 468,
           "source": "scripts/derive_face_mesh_map.py: MediaPipe face_landmark.tflite on a3d synthetic heads "
                     f"(seed 11, {len(keep)} heads, azimuths -20/0/20)",
           "triangle": tri.tolist(), "bary": [[round(float(x), 5) for x in b] for b in bary],
           "spread": [round(s, 5) for s in spread]}
    with open(args.output, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
    # the rotation fit_clip reports for these heads facing the camera: an offset of the orthographic fit on
    # this map (MediaPipe's depth and the outline's points), which fit_clip takes away
    _read_map.cache_clear()
    rests = [fit_clip([m], basis) for m in front if m is not None]
    R = torch.stack([pose_matrix(c.poses[0]) for c in rests])
    U, _, Vh = torch.linalg.svd(R.mean(0))  # the mean rotation (projected onto the rotations)
    doc["rest_rotation"] = [[round(float(x), 6) for x in row] for row in (U @ Vh).tolist()]
    with open(args.output, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
    print(f"wrote {args.output}: median spread {np.median(spread):.4f} head units, max {max(spread):.4f}; "
          f"rest pose {pose_from_matrix(U @ Vh).numpy().round(2).tolist()} (yaw, pitch, roll °) over "
          f"{len(rests)} heads")


if __name__ == "__main__":
    main()
