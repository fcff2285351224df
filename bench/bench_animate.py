"""Head animation measured (BENCHMARKS.md "Head animation", docs/animation.md).

    python bench/bench_animate.py                         # the example photos, on the CPU, 256² frames
    python bench/bench_animate.py --device cuda --size 512 --speed-frames 240   # the GPU figures

For each photo (reconstructed with the bundled model, not timed): the rig's time (fit + bind + mouth); identity
(dlib's descriptor distance between the photo and the front render, 256², for neutral and each preset at its peak;
< 0.6 = the same person); nothing moves that should not (the largest on-screen move, in pixels at 512² from the
front, of hair Gaussians (more than 0.05 units, 1 cm, from the fitted skin, above the brows) and shoulder Gaussians
(more than 0.3 units below the chin) between neutral and smile); speed (frames a second of deform + render at
--size, in batches of 8, after a warm-up; deform alone too). Expression transfer: a talking clip made by driving a
synthetic head (a3d.data.synth) with known weights and head turns is read by the driver (a3d.animation.driver), the
photo's head is animated with what it found and rendered, and MediaPipe's face mesh of those renders is compared
with the driver's: Pearson correlation over the clip of mouth opening (inner lips), smile width (mouth corners) and
eye opening (lids); widths over the eyes' distance, heights over the nose tip's height below the eyes. --images DIR
writes the pictures of docs/animation.md.
Prints one JSON object (also written to --out).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
PHOTOS = [REPO / "examples" / "photos" / "grace_hopper.jpg", REPO / "demo" / "examples" / "astronaut.jpg",
          REPO / "examples" / "photos" / "cameraman.jpg"]


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def identity(avatar, rig, photo, size: int = 256) -> dict[str, float]:
    from a3d.animation.drive import PRESETS, preset_weights
    from a3d.core import framing
    from a3d.core.cameras import canonical_cameras
    from a3d.core.rendering import render
    from a3d.inference.preprocess import preprocess
    from a3d.perception.identity import cached_embedder, crop_faces, face_crop_affines

    dev = rig.gaussians.device
    ref = preprocess(photo, size).image.to(dev)[None]
    front = canonical_cameras(size)[0:1].to(dev)
    A = face_crop_affines(front.viewmats, front.Ks)
    emb = cached_embedder(str(dev))
    d_ref = emb(crop_faces(ref, A))
    out = {}
    for name in PRESETS:
        w = preset_weights(name, 31, rig.names)
        peak = w[w.abs().sum(1).argmax()][None].to(dev)
        with torch.no_grad():
            img = render(rig.deform(peak).scene(0), front, framing.BACKGROUND).rgb[..., :3].permute(0, 3, 1, 2)
            out[name] = round(float(torch.linalg.vector_norm(emb(crop_faces(img.clamp(0, 1), A)) - d_ref)), 4)
    return out


def static_moves(rig, size: int = 512) -> dict[str, float]:
    from a3d.animation.drive import PRESETS, expression_tensor
    from a3d.core.cameras import canonical_cameras

    cam = canonical_cameras(size)[0].to(rig.gaussians.device)
    b = rig.basis
    n = rig.num_own
    g = rig.gaussians.index(slice(0, n))
    w = torch.cat([torch.zeros(1, 52), expression_tensor(PRESETS["smile"], rig.names)]).to(g.device)
    moved = rig.deform(w, mouth=False)
    p = moved.means @ cam.viewmats[0, :3, :3].T + cam.viewmats[0, :3, 3]
    uv = p @ cam.Ks[0].T
    uv = uv[..., :2] / uv[..., 2:]
    shift = (uv[1] - uv[0]).norm(dim=-1)
    dist = torch.cdist(g.means, rig.fit.vertices).min(1).values
    chin = float(b.landmarks(rig.fit.vertices)[b.landmark_names.index("chin"), 1])
    hair = (dist > 0.05) & (g.means[:, 1] > 0.1)
    shoulders = g.means[:, 1] < chin - 0.3
    face = (g.means - b.landmarks(rig.fit.vertices)[b.landmark_names.index("mouth")]).norm(dim=-1) < 0.12
    return {"hair_max_px": round(float(shift[hair].max()), 4) if hair.any() else None,
            "hair_gaussians": int(hair.sum()),
            "shoulders_max_px": round(float(shift[shoulders].max()), 4) if shoulders.any() else None,
            "shoulder_gaussians": int(shoulders.sum()), "mouth_area_max_px": round(float(shift[face].max()), 2)}


def speed(rig, size: int, frames: int) -> dict[str, float]:
    from a3d.animation.drive import preset_weights
    from a3d.core import framing
    from a3d.core.cameras import canonical_cameras
    from a3d.core.rendering import render

    dev = rig.gaussians.device
    cam = canonical_cameras(size)[0:1].to(dev)
    w = preset_weights("talk", frames, rig.names).to(dev)
    with torch.no_grad():
        render(rig.deform(w[:8]), cam, framing.BACKGROUND)  # warm-up
        sync(dev)
        t0 = time.perf_counter()
        for s in range(0, frames, 8):
            rig.deform(w[s:s + 8])
        sync(dev)
        t1 = time.perf_counter()
        for s in range(0, frames, 8):
            render(rig.deform(w[s:s + 8]), cam, framing.BACKGROUND)
        sync(dev)
        t2 = time.perf_counter()
    return {"size": size, "frames": frames, "deform_fps": round(frames / (t1 - t0), 2),
            "deform_render_fps": round(frames / (t2 - t1), 2)}


def driver_clip(frames: int, size: int = 256):
    """A synthetic head driven with known weights and head turns: (frames [F] uint8, weights [F, 52], poses)."""
    from a3d.animation.synthetic import talking_clip

    return talking_clip(frames, seed=3, size=size)


def face_measures(meshes) -> np.ndarray:
    """[F, 3] mouth opening (inner lips), smile width (mouth corners) and eye opening (lids; both eyes' mean); NaN
    without a face. Widths are over the eyes' distance; heights over the height of the nose tip below the eyes'
    line (both rigid under expressions, and each foreshortened like what it divides when the head turns or nods)."""
    from a3d.animation.face_mesh import MESH_POINTS as P

    out = []
    for m in meshes:
        if m is None:
            out.append([np.nan] * 3)
            continue
        p = m.points[:, :2]
        d = lambda a, b: float(np.linalg.norm(p[a] - p[b]))  # noqa: E731
        eyes = d(*P["eye_corners"])
        nose = float(np.linalg.norm(p[P["nose_tip"][0]] - (p[P["eye_corners"][0]] + p[P["eye_corners"][1]]) / 2))
        out.append([d(*P["lips_inner"]) / nose, d(*P["mouth_corners"]) / eyes,
                    (d(*P["right_eye_lids"]) + d(*P["left_eye_lids"])) / (2 * nose)])
    return np.array(out)


def transfer(rig, frames, size: int = 256, pixel_blinks: bool = True) -> tuple[dict, list, list]:
    from a3d.animation.driver import driven_frames, fit_clip
    from a3d.animation.face_mesh import track

    meshes = track(frames)
    clip = fit_clip(meshes, rig.basis, frames=frames if pixel_blinks else None)
    dev = rig.gaussians.device
    rendered = list(driven_frames(rig, clip.weights.to(dev), clip.poses.to(dev), size=size))
    a, b = face_measures(meshes), face_measures(track(rendered))
    ok = ~(np.isnan(a).any(1) | np.isnan(b).any(1))
    names = ("mouth_opening", "smile_width", "eye_opening")
    corr = {n: round(float(np.corrcoef(a[ok, i], b[ok, i])[0, 1]), 3) for i, n in enumerate(names)}
    corr["frames_compared"] = int(ok.sum())
    return corr, rendered, clip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("photos", nargs="*", default=[str(p) for p in PHOTOS])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--size", type=int, default=256, help="frame size of the speed figure")
    ap.add_argument("--speed-frames", type=int, default=48)
    ap.add_argument("--clip-frames", type=int, default=48, help="frames of the talking clip")
    ap.add_argument("--out", default="out/bench_animate.json")
    ap.add_argument("--images", default=None, metavar="DIR", help="write docs/animation.md's pictures here")
    ap.add_argument("--speed-only", action="store_true",
                    help="rig time, static check and speed only (no face models, dlib or driver clip needed)")
    ap.add_argument("--no-preprocess", action="store_true",
                    help="the photos are framed already (a3d.inference.preprocess's output): "
                         "reconstruct them as they are")
    ap.add_argument("--landmark-blinks", action="store_true",
                    help="the driver fits the blinks to the face mesh's lid points instead of reading the pixels")
    args = ap.parse_args()
    import a3d
    from a3d.core.ops import backend

    dev = torch.device(args.device)
    report: dict = {"device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
                    "threads": torch.get_num_threads(), "backend": str(backend(dev)), "photos": {}}
    if not args.speed_only:
        clip_frames, truth, poses = driver_clip(args.clip_frames)
    for photo in args.photos:
        avatar = a3d.reconstruct(photo, device=dev, seed=0, preprocess=not args.no_preprocess)
        sync(dev)
        t0 = time.perf_counter()
        rig = avatar.rig()
        sync(dev)
        entry = {"rig_s": round(time.perf_counter() - t0, 3), "fit": rig.fit.report,
                 "gaussians": rig.gaussians.num_gaussians, "mouth_gaussians": rig.num_mouth,
                 "lid_gaussians": rig.num_lids}
        if not args.speed_only:
            entry["identity"] = identity(avatar, rig, photo)
        entry["static"] = static_moves(rig)
        entry["speed"] = speed(rig, args.size, args.speed_frames)
        if not args.speed_only:
            entry["transfer"], rendered, clip = transfer(rig, clip_frames, pixel_blinks=not args.landmark_blinks)
        report["photos"][Path(photo).name] = entry
        print(json.dumps({Path(photo).name: entry}), flush=True)
        if args.images and not args.speed_only and photo == args.photos[0]:
            pictures(avatar, rig, clip_frames, rendered, Path(args.images))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1))
    print(json.dumps(report))


def pictures(avatar, rig, driver, rendered, folder: Path) -> None:
    """docs/animation.md's pictures: the presets at their peak, the head turned, and the driver beside the head."""
    from PIL import Image

    from a3d.animation.drive import PRESETS, preset_weights
    from a3d.core import framing
    from a3d.core.cameras import orbit_cameras
    from a3d.core.rendering import render, to_uint8

    folder.mkdir(parents=True, exist_ok=True)
    dev = rig.gaussians.device
    tiles = [to_uint8(avatar.input_image.permute(1, 2, 0).cpu())]
    tiles[0] = np.asarray(Image.fromarray(tiles[0]).resize((224, 224)))
    for name in PRESETS:
        w = preset_weights(name, 31, rig.names)
        peak = w[w.abs().sum(1).argmax()][None].to(dev)
        for az in (0.0, 30.0):
            cam = orbit_cameras(1, elevation=5.0, size=224, azimuths=[az]).to(dev)
            with torch.no_grad():
                tiles.append(to_uint8(render(rig.deform(peak).scene(0), cam, framing.BACKGROUND).rgb[0]))
    Image.fromarray(np.concatenate(tiles[:1] + tiles[1::2], 1)).save(folder / "animate_presets.jpg", quality=85)
    Image.fromarray(np.concatenate(tiles[:1] + tiles[2::2], 1)).save(folder / "animate_presets_turned.jpg",
                                                                      quality=85)
    picks = np.linspace(0, len(driver) - 1, 6).round().astype(int)
    top = np.concatenate([np.asarray(Image.fromarray(driver[i]).resize((192, 192))) for i in picks], 1)
    bottom = np.concatenate([np.asarray(Image.fromarray(rendered[i]).resize((192, 192))) for i in picks], 1)
    Image.fromarray(np.concatenate([top, bottom], 0)).save(folder / "animate_driver.jpg", quality=85)


if __name__ == "__main__":
    main()
