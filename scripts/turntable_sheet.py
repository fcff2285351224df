"""A contact sheet of turntable frames for comparing models by eye: one row per (photo, model), one column
per azimuth, rendered at 256².

    python scripts/turntable_sheet.py OUT.jpg --models bundled runs/gen2a_2 --photos a.jpg b.jpg [--seed 0]

'bundled' names the bundled model; any other name is a model folder. Each row starts with the model's
framed input. Writes a JPEG (quality 88).
"""
from __future__ import annotations

import argparse

import numpy as np
import torch
from PIL import Image, ImageDraw

import a3d
from a3d.core.cameras import orbit_cameras
from a3d.core.rendering import to_uint8

AZIMUTHS = (0, 45, 90, 135, 180, 225, 270, 315)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--models", nargs="+", default=["bundled"])
    ap.add_argument("--photos", nargs="+", required=True)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    cams = orbit_cameras(len(AZIMUTHS), azimuths=AZIMUTHS, size=args.size)
    rows = []
    for photo in args.photos:
        for name in args.models:
            model = a3d.load_model(None if name == "bundled" else name)
            av = a3d.reconstruct(photo, model, seed=args.seed, device="cpu")
            rgb = to_uint8(av.render(cams).rgb)  # [C, S, S, 3]
            inp = Image.fromarray(to_uint8(av.input_image.permute(1, 2, 0))).resize((args.size, args.size))
            row = Image.fromarray(np.concatenate([np.asarray(inp), *rgb], 1))
            ImageDraw.Draw(row).text((4, 4), f"{photo.split('/')[-1]} | {name}", fill=(255, 0, 0))
            rows.append(row)
    sheet = Image.new("RGB", (rows[0].width, sum(r.height for r in rows)))
    y = 0
    for r in rows:
        sheet.paste(r, (0, y))
        y += r.height
    sheet.save(args.out, quality=88)
    print(f"wrote {args.out}: {len(rows)} rows × {len(AZIMUTHS)} azimuths {AZIMUTHS}")


if __name__ == "__main__":
    main()
