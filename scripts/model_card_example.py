"""Write a model card's example picture into a model folder: the input photo beside turntable frames.

    python scripts/model_card_example.py MODEL_DIR [PHOTO] [--frames 4] [--size 256]

Reconstructs PHOTO (default: demo/examples/astronaut.jpg) with the model in MODEL_DIR, writes
MODEL_DIR/example.jpg (the framed input, then ``--frames`` views of the turntable from the front around
the head) and records ``"example": "example.jpg"`` in MODEL_DIR/metrics.json, which a3d.model.card reads:
the card written by ``save_pretrained`` / ``push_to_hub`` then shows the picture. The folder must already
have a metrics.json (an evaluated model); copy example.jpg along when you copy the folder.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    import a3d
    from a3d.core import framing
    from a3d.core.cameras import orbit_cameras
    from a3d.core.files import atomic_path, atomic_write
    from a3d.core.rendering import to_uint8
    from a3d.model.card import METRICS_FILE

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model_dir", type=Path)
    p.add_argument("photo", nargs="?", default=str(REPO / "demo" / "examples" / "astronaut.jpg"))
    p.add_argument("--frames", type=int, default=4)
    p.add_argument("--size", type=int, default=256)
    args = p.parse_args()
    metrics_path = args.model_dir / METRICS_FILE
    if not metrics_path.is_file():
        raise SystemExit(f"{metrics_path}: missing; the card shows an example only for an evaluated model")
    avatar = a3d.reconstruct(args.photo, model=args.model_dir, seed=0)
    inp = Image.fromarray(to_uint8(avatar.input_image.permute(1, 2, 0))).resize((args.size, args.size))
    views = to_uint8(avatar.render(orbit_cameras(args.frames, elevation=10.0, size=args.size),
                                   background=framing.BACKGROUND).rgb)
    sheet = np.concatenate([np.asarray(inp), *views], axis=1)
    with atomic_path(args.model_dir / "example.jpg") as tmp:
        Image.fromarray(sheet).save(tmp, format="JPEG", quality=90)
    metrics = json.loads(metrics_path.read_text())
    metrics["example"] = "example.jpg"
    with atomic_write(metrics_path, "w") as f:
        f.write(json.dumps(metrics, indent=1))
    print(f"wrote {args.model_dir / 'example.jpg'} and recorded it in {metrics_path}")


if __name__ == "__main__":
    main()
