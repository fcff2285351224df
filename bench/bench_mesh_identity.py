"""Does the mesh keep the person? The mesh's front render against the splat's, by `a3d eval`'s identity measure.

    python bench/bench_mesh_identity.py HEAD.ply [--resolution 128 --faces 20000 --views 12] [--texture-size 1024]

HEAD.ply: a reconstruction (``a3d reconstruct photo.jpg -o out --ply`` writes out/photo/head.ply). The Gaussians
and the extracted mesh (textured unless --texture-size 0) are rendered from the front canonical camera at 256²
over white; both renders are cropped to the 150² face chip of a3d.perception.identity (the same crop as
`a3d eval`) and embedded by dlib's face-recognition ResNet; the number is the Euclidean distance of the two
descriptors (dlib: the same person below 0.6). Prints one JSON line with the distance, the extraction's stages
and seconds, and writes the two renders side by side to --png if given. Needs the eval extra.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from PIL import Image

from a3d.core.cameras import canonical_cameras
from a3d.core.rendering import render
from a3d.io.mesh import extract
from a3d.io.mesh_render import render_mesh
from a3d.io.ply import load_ply
from a3d.perception.identity import cached_embedder, crop_faces, face_crop_affines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("ply")
    ap.add_argument("--resolution", type=int, default=128)
    ap.add_argument("--faces", type=int, default=20_000)
    ap.add_argument("--views", type=int, default=12)
    ap.add_argument("--texture-size", type=int, default=1024, help="0: vertex colours only")
    ap.add_argument("--png", default=None, help="write the splat's and the mesh's front renders here")
    args = ap.parse_args()
    g = load_ply(args.ply)
    t0 = time.perf_counter()
    mesh = extract(g, resolution=args.resolution, faces=args.faces, views=args.views,
                   texture_size=args.texture_size or None)
    seconds = time.perf_counter() - t0
    cams = canonical_cameras(256)[:1]
    with torch.no_grad():
        splat = render(g, cams, (1.0, 1.0, 1.0)).rgb.permute(0, 3, 1, 2)
    tri = render_mesh(mesh, cams, background=(1.0, 1.0, 1.0), use_texture=mesh.texture is not None)
    tri = tri.rgb.permute(0, 3, 1, 2).float()
    A = face_crop_affines(cams.viewmats, cams.Ks)
    with torch.no_grad():
        distance = float(cached_embedder("cpu").distance(crop_faces(splat, A), crop_faces(tri, A)))
    if args.png:
        both = torch.cat([splat[0], tri[0]], 2).permute(1, 2, 0).clamp(0, 1)
        Image.fromarray((both * 255 + 0.5).byte().numpy()).save(args.png)
    print(json.dumps({"identity_distance": round(distance, 4), "seconds": round(seconds, 2),
                      "settings": {k: getattr(args, k) for k in ("resolution", "faces", "views", "texture_size")},
                      "faces": mesh.num_faces, "watertight": mesh.is_watertight(),
                      "stages_s": mesh.metadata["timings_s"], "torch_threads": torch.get_num_threads(),
                      "colour_range": [float(np.min(mesh.vertex_colors)), float(np.max(mesh.vertex_colors))]}))


if __name__ == "__main__":
    main()
