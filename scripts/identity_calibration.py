"""Where a3d.perception.identity's numbers come from: the port against dlib, CHIP_ANCHORS, and distance calibration.

    python scripts/identity_calibration.py            # needs dlib-bin, face-recognition-models, ai-edge-litert

For each portrait that dlib's HOG detector finds (astronaut, Grace Hopper; the cameraman's face is too
small for it) and its mirror image:

1. dlib's own 150² chip (5-point landmarks, padding 0.25) and descriptor; the port's descriptor of the
   same chip (max |Δ|);
2. MediaPipe's eye and mouth keypoints on that chip: their mean over the photos and mirrors, made
   symmetric, is ``a3d.perception.identity.CHIP_ANCHORS``;
3. the descriptor of a3d's own crop (photo framed by a3d.inference.preprocess at 256², cropped from the camera)
   against dlib's chip: how much a3d's landmark-free alignment costs;
4. the same chip blurred (σ = 2 px) and resized (to 64² and back), and the distances between people.
"""
import itertools
from pathlib import Path

import dlib
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from a3d.core.cameras import canonical_cameras
from a3d.perception.identity import FaceEmbedder, crop_faces, face_crop_affines, model_path
from a3d.inference.preprocess import detect_face, preprocess

ROOT = Path(__file__).resolve().parent.parent
PHOTOS = [ROOT / "demo/examples/astronaut.jpg", ROOT / "examples/photos/grace_hopper.jpg",
          ROOT / "examples/photos/cameraman.jpg"]


def blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    r = int(3 * sigma + 0.999)
    g = torch.exp(-torch.arange(-r, r + 1.0) ** 2 / (2 * sigma ** 2))
    g = g / g.sum()
    x = F.pad(x, (r, r, r, r), mode="replicate")
    x = F.conv2d(x, g.view(1, 1, 1, -1).expand(3, 1, 1, -1), groups=3)
    return F.conv2d(x, g.view(1, 1, -1, 1).expand(3, 1, -1, 1), groups=3)


def main() -> None:
    folder = model_path().parent
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(folder / "shape_predictor_5_face_landmarks.dat"))
    recognizer = dlib.face_recognition_model_v1(str(folder / "dlib_face_recognition_resnet_model_v1.dat"))
    emb = FaceEmbedder()
    front = canonical_cameras(256)[0:1]
    A = face_crop_affines(front.viewmats, front.Ks)
    keypoints, people = [], {}
    for path in PHOTOS:
        img = np.asarray(Image.open(path).convert("RGB"))
        for mirror in (False, True):
            src = np.ascontiguousarray(img[:, ::-1]) if mirror else img
            boxes = detector(src, 1)
            if not boxes:
                print(f"{path.stem}{' (mirrored)' if mirror else ''}: dlib finds no face")
                continue
            box = max(boxes, key=lambda b: b.area())
            chip = dlib.get_face_chip(src, predictor(src, box), size=150, padding=0.25)
            ref = torch.tensor(recognizer.compute_face_descriptor(chip))
            x = torch.from_numpy(chip).permute(2, 0, 1)[None].float() / 255
            with torch.no_grad():
                ours = emb(x)[0]
                blurred = emb(blur(x, 2.0))[0]
                small = emb(F.interpolate(F.interpolate(x, size=(64, 64), mode="bilinear", antialias=True),
                                          size=(150, 150), mode="bilinear"))[0]
                framed = preprocess(Image.fromarray(src), 256).image[None]
                own = emb(crop_faces(framed, A))[0]
            face = detect_face(chip.astype(np.float32) / 255)
            if face is not None:
                keypoints.append(face.keypoints[[0, 1, 3]])
            name = path.stem + (" (mirrored)" if mirror else "")
            if not mirror:
                people[path.stem] = ref
            print(f"{name}: port vs dlib max |Δ| {float((ours.double() - ref).abs().max()):.2e}; "
                  f"a3d's crop vs dlib's chip {float(torch.dist(own.double(), ref)):.3f}; "
                  f"blur σ2 {float(torch.dist(blurred.double(), ref)):.3f}; "
                  f"resize 64² {float(torch.dist(small.double(), ref)):.3f}")
    for (a, da), (b, db) in itertools.combinations(people.items(), 2):
        print(f"different people: {a} vs {b}: {float(torch.dist(da, db)):.3f}")
    k = np.mean(keypoints, 0)
    half = (k[1, 0] - k[0, 0]) / 2
    eye_v = (k[0, 1] + k[1, 1]) / 2
    print(f"CHIP_ANCHORS from {len(keypoints)} chips: right_eye ({75 - half:.1f}, {eye_v:.1f}), "
          f"left_eye ({75 + half:.1f}, {eye_v:.1f}), mouth (75.0, {k[2, 1]:.1f})")


if __name__ == "__main__":
    main()
