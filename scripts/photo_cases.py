"""Photos as phones and people hand them over, built from the images the repository ships: what preprocessing
and the bundled model make of each (docs/eval.md, "Photos as people take them").

    python scripts/photo_cases.py out/photo_cases          # writes the cases, frames and evaluates each

Every case is built in code from the example portraits (demo/examples/astronaut.jpg, examples/photos/*.jpg,
public domain / CC0), scikit-image's CC0 sample images (the cat, textures for the scenes) and the synthetic
head generator (a3d.data.synth, for glasses and hats), so no new image files are needed; tests/test_photo_cases.py
builds the same cases. For each case the script records what preprocessing did (the face it framed, or the
error) and, where it framed one, dlib's identity distance between the framed photo and the reconstruction
rendered from the front (yaw 0, a3d.eval.evaluate.evaluate_photo), and writes a Markdown table.
"""
from __future__ import annotations

import argparse
import io
import json
import sys
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
ASTRONAUT = REPO / "demo" / "examples" / "astronaut.jpg"
GRACE_HOPPER = REPO / "examples" / "photos" / "grace_hopper.jpg"
ASTRONAUT_FACE = (0.44, 0.22)  # the astronaut's face centre (nose tip) as fractions of her photo's width, height


def _photo(path: Path = ASTRONAUT) -> Image.Image:
    return Image.open(path).convert("RGB")


def _scene(width: int, height: int) -> Image.Image:
    """A room: a brick wall above a grass-green floor (scikit-image's CC0 textures, tiled)."""
    from skimage import data

    wall = Image.fromarray(data.brick()).convert("RGB").resize((256, 256))
    floor = Image.fromarray(data.grass()).convert("RGB").resize((256, 256))
    scene = Image.new("RGB", (width, height))
    horizon = int(height * 0.7)
    for v in range(0, height, 256):
        for u in range(0, width, 256):
            scene.paste(wall if v < horizon else floor, (u, v))
    return scene


def full_body(face_fraction: float = 0.05) -> tuple[np.ndarray, tuple[float, float]]:
    """A portrait pasted small into a large scene (1500 × 2000, portrait orientation like a phone's), its face
    ``face_fraction`` of the image height, and the cat (scikit-image's CC0 'chelsea', a face-like pattern a
    detector may score as a face) pasted larger beside it. Returns the image (uint8 [H, W, 3]) and the
    portrait's face centre in pixels."""
    from skimage import data

    W, H = 1500, 2000
    scene = _scene(W, H)
    cat = Image.fromarray(data.chelsea()).convert("RGB").resize((600, 400))
    scene.paste(cat, (820, 1150))
    photo = _photo()
    side = int(round(face_fraction * H / 0.2))  # the astronaut's face is about a fifth of her photo's height
    photo = photo.resize((side, side), Image.LANCZOS)
    u, v = 300, 500
    scene.paste(photo, (u, v))
    return np.asarray(scene), (u + ASTRONAUT_FACE[0] * side, v + ASTRONAUT_FACE[1] * side)


def exif_rotated(orientation: int) -> bytes:
    """The astronaut stored as a phone stores a photo taken with the phone turned: pixels rotated, and the EXIF
    orientation tag (3: 180°, 6: display turned 90° clockwise, 8: 90° counter-clockwise) saying how to show
    it upright. JPEG bytes."""
    undo = {3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}[orientation]
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    _photo().transpose(undo).save(buf, "JPEG", quality=92, exif=exif)
    return buf.getvalue()


def rolled(degrees: float) -> np.ndarray:
    """The astronaut's head rolled by ``degrees`` (counter-clockwise in the image), the photo turned inside a
    larger canvas of its own edge colour."""
    photo = _photo()
    canvas = Image.new("RGB", (720, 720), (40, 40, 40))
    canvas.paste(photo, (104, 104))
    return np.asarray(canvas.rotate(degrees, resample=Image.BICUBIC, fillcolor=(40, 40, 40)))


def cut_by_frame(part: str) -> np.ndarray:
    """The astronaut's photo cut by the frame's edge: 'crown' (the top of the head and forehead gone, a close
    selfie), 'chin' (cut just below the mouth) or 'half' (the frame's edge through the middle of the face)."""
    a = np.asarray(_photo())
    if part == "crown":
        return a[int(0.14 * a.shape[0]):]
    if part == "chin":
        return a[:int(0.31 * a.shape[0]), :]
    if part == "half":
        return a[:, int(0.44 * a.shape[1]):]
    raise ValueError(f"part: expected 'crown', 'chin' or 'half', got {part!r}")


def tiny(side: int) -> np.ndarray:
    """The astronaut's head and shoulders (a 240² crop around her face) shrunk to ``side``² pixels: her face then
    spans about 0.4 ``side``."""
    return np.asarray(_photo().crop((105, 15, 345, 255)).resize((side, side), Image.LANCZOS))


def low_light(gain: float = 0.12, seed: int = 0) -> np.ndarray:
    """Grace Hopper's portrait as a dim room gives it: linear light scaled by ``gain``, then sensor noise (shot
    noise plus read noise at that level) and the camera's gamma again."""
    rng = np.random.default_rng(seed)
    lin = (np.asarray(_photo(GRACE_HOPPER), np.float32) / 255) ** 2.2 * gain
    noisy = lin + rng.normal(0, 1, lin.shape) * np.sqrt(lin * 0.002 + 0.0002 ** 2)
    return (np.clip(noisy, 0, 1) ** (1 / 2.2) * 255).round().astype(np.uint8)


def synthetic(accessory: str, seed: int = 3) -> np.ndarray:
    """A synthetic head (a3d.data.synth) wearing ``accessory`` (a key of a3d.data.synth.ACCESSORIES: 'glasses',
    'sunglasses', 'beanie', 'cap', 'brimmed_hat', ...) rendered from the front at 384² over a grey-blue backdrop,
    shoulders cut by the frame like a portrait."""
    import torch

    from a3d.core import framing
    from a3d.core.cameras import canonical_cameras
    from a3d.core.rendering import render
    from a3d.data.synth import ACCESSORIES, SyntheticHeads

    S = 384
    heads = SyntheticHeads("cpu", seed=seed, num_gaussians=60_000, image_size=S)
    g = heads.sample(1, overrides=ACCESSORIES[accessory]).gaussians
    with torch.no_grad():
        out = render(g, canonical_cameras(S)[0:1], framing.BACKGROUND)
    rgb, alpha = out.rgb[0, 0].clamp(0, 1), out.alpha[0, 0, ..., 0].clamp(0, 1)
    backdrop = torch.tensor([0.42, 0.5, 0.62])
    white = torch.tensor(framing.BACKGROUND)
    photo = rgb - white * (1 - alpha[..., None]) + backdrop * (1 - alpha[..., None])  # re-composite over the backdrop
    return (photo.clamp(0, 1).numpy() * 255).round().astype(np.uint8)


CASES: dict[str, Callable[[], object]] = {
    "full-body shot (face 5% of the height) with a cat beside": lambda: full_body()[0],
    "EXIF orientation 6 (phone turned)": lambda: exif_rotated(6),
    "EXIF orientation 8": lambda: exif_rotated(8),
    "EXIF orientation 3 (upside down)": lambda: exif_rotated(3),
    "head rolled +30°": lambda: rolled(30),
    "head rolled −30°": lambda: rolled(-30),
    "crown cut by the frame": lambda: cut_by_frame("crown"),
    "chin cut by the frame": lambda: cut_by_frame("chin"),
    "face half outside the frame": lambda: cut_by_frame("half"),
    "tiny image, 110 px": lambda: tiny(110),
    "tiny image, 48 px": lambda: tiny(48),
    "low light (12% of the light, sensor noise)": low_light,
    "synthetic head with glasses": lambda: synthetic("glasses"),
    "synthetic head with sunglasses": lambda: synthetic("sunglasses"),
    "synthetic head with a cap": lambda: synthetic("cap"),
    "synthetic head with a brimmed hat": lambda: synthetic("brimmed_hat"),
    "synthetic head, no accessory": lambda: synthetic("none"),
}
"""Each case's builder: an image (uint8 array) or an image file's bytes."""


def write_case(image: object, path: Path) -> Path:
    """Write a case's image (array or JPEG bytes) to ``path`` (.png for arrays, .jpg for bytes); the path."""
    if isinstance(image, bytes):
        path = path.with_suffix(".jpg")
        path.write_bytes(image)
    else:
        path = path.with_suffix(".png")
        Image.fromarray(image).save(path)
    return path


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path)
    p.add_argument("--only", default=None, help="run only the cases whose name contains this")
    args = p.parse_args(argv)
    import a3d
    from a3d.eval.evaluate import evaluate_photo
    from a3d.inference.preprocess import preprocess

    args.out.mkdir(parents=True, exist_ok=True)
    model = a3d.load_model()
    rows = []
    for i, (name, build) in enumerate(CASES.items()):
        if args.only and args.only not in name:
            continue
        path = write_case(build(), args.out / f"case{i:02d}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                pre = preprocess(path, 256)
            except ValueError as e:
                rows.append({"case": name, "file": path.name, "error": f"{type(e).__name__}: {e}"})
                print(f"{name}: {type(e).__name__}", flush=True)
                continue
            res = evaluate_photo(path, model, size=256)
        f = pre.face
        rows.append({"case": name, "file": path.name, "face_box": [round(v) for v in f.box],
                     "scores": f.scores, "plausible_faces": pre.faces, "candidates": len(pre.candidates),
                     "identity_yaw0": round(res["distances"][next(iter(res["distances"]))], 3)})
        print(f"{name}: identity {rows[-1]['identity_yaw0']}", flush=True)
    (args.out / "cases.json").write_text(json.dumps(rows, indent=1))
    lines = ["| case | what preprocessing does | identity at yaw 0 |", "|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['case']} | {r['error'].split(':')[0]} | — |")
        else:
            u0, v0, u1, v1 = r["face_box"]
            lines.append(f"| {r['case']} | frames the face at ({u0}, {v0}), {u1 - u0} px ({r['plausible_faces']} "
                         f"plausible of {r['candidates']} candidates) | {r['identity_yaw0']:.2f} |")
    (args.out / "cases.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
