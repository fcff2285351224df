"""Memory and time of `a3d.inference.preprocess.load_image` on a 50 MP phone photo (8160 x 6120 JPEG), baseline
and progressive, each measured in a fresh process (growth of the peak RSS, Linux), against a plain
full-size decode to float32 (the cost that load_image's reduced-size JPEG decoding avoids).

    python bench/bench_large_photo.py
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image

_MEASURE = """
import sys, time
import numpy as np
from PIL import Image
from a3d.inference.preprocess import load_image
def peak_mib():
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM")) // 1024
open("/proc/self/clear_refs", "w").write("5")  # Linux: restart the peak RSS count (the imports' peak is not ours)
before = peak_mib()
t = time.perf_counter()
if sys.argv[2] == "a3d":
    rgb, _ = load_image(sys.argv[1])
else:  # the whole image, decoded and converted to float32 as load_image does for smaller files
    rgb = np.asarray(Image.open(sys.argv[1]).convert("RGB"), dtype=np.float32) / 255
print(f"{rgb.shape[1]}x{rgb.shape[0]}", f"{time.perf_counter() - t:.2f}", peak_mib() - before)
"""


def photo(W: int = 8160, H: int = 6120) -> Image.Image:
    """A smooth gradient with sensor-like noise: compresses like a photo (about 10 MiB at quality 90)."""
    y, x = np.mgrid[0:H, 0:W].astype(np.float32)
    img = np.stack([x / W * 255, y / H * 255, (x + y) / (W + H) * 255], -1)
    img += np.random.default_rng(0).normal(0, 6, img.shape).astype(np.float32)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def main() -> None:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root, OMP_NUM_THREADS="1")
    with tempfile.TemporaryDirectory() as tmp:
        img = photo()
        files = {"baseline": os.path.join(tmp, "b.jpg"), "progressive": os.path.join(tmp, "p.jpg")}
        img.save(files["baseline"], quality=90)
        img.save(files["progressive"], quality=90, progressive=True)
        del img
        print("| JPEG | reader | decoded size | seconds | peak RSS growth MiB |\n|---|---|---|---|---|")
        for kind, path in files.items():
            for reader in ("a3d", "full"):
                r = subprocess.run([sys.executable, "-c", _MEASURE, path, reader], env=env, capture_output=True,
                                   text=True, check=True)
                size, secs, mib = r.stdout.split()
                name = "load_image (draft)" if reader == "a3d" else "full decode to float32"
                print(f"| {kind}, {os.path.getsize(path) / 2**20:.1f} MiB | {name} | {size} | {secs} | {mib} |")


if __name__ == "__main__":
    main()
