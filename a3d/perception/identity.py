"""Face identity: dlib's 128-D face-recognition ResNet ported to PyTorch, aligned crops, identity distance.

    emb = FaceEmbedder()                       # weights read from the installed face-recognition-models
    d = emb.distance(crops_a, crops_b)         # [B]; crops [B, 3, 150, 150] RGB in [0, 1]

The network is dlib's ``dlib_face_recognition_resnet_model_v1`` (Davis King, 2017; the architecture of
dlib's ``dnn_face_recognition_ex.cpp``: a 29-conv ResNet on 150 × 150 aligned faces, 128-D output). Its
weights are read from the ``.dat`` file by :func:`read_dlib_resnet`, a parser of dlib's serialisation
format written here (no pickle, no dlib needed); the forward pass reproduces dlib's to float precision
(tests/test_identity.py checks max |Δ| ≤ 1e-4 against dlib's own descriptors where ``dlib-bin`` is
installed) and is differentiable, so an identity term can be a loss. Two descriptors of one person are
usually within Euclidean distance 0.6 (dlib's threshold, 99.38% on LFW); see docs/eval.md for the
calibration on a3d's photos. :class:`ViewIdentity` holds one portrait's descriptor for a loop that compares
renders with it many times (refinement's identity term, :mod:`a3d.inference.refinement`).

Weights: the ``.dat`` file ships in the registry package ``face-recognition-models==0.3.0`` (the
``eval`` extra: ``pip install a3d[eval]``), models by Davis King released into the public domain (CC0);
only the recognition ResNet is used here (and, by tests, the 5-point landmark model, also CC0; the
68-point model in the same package is not for commercial use and nothing in a3d reads it). Without the
package :class:`IdentityModelMissing` says how to install it.

Alignment (:func:`face_crop_affines`): a3d does not detect landmarks on renders. Every image compared
here is framed by :mod:`a3d.core.framing` (the preprocessed photo puts the detected eyes and mouth on
:data:`a3d.core.framing.FACE_ANCHORS_3D`'s projection; a render's camera projects those 3D anchors), so the
crop follows from the camera: the eyes and mouth are mapped onto where dlib's own 150² chips (padding
0.25) put them (:data:`CHIP_ANCHORS`, measured with dlib's 5-point model and MediaPipe's keypoints on
real portraits, see docs/eval.md). For views turned away from the camera the scale and rotation of the
front view are kept and only the shift follows the projected anchors, because turned eyes crowd together
and a fitted scale would blow the crop up.
"""
from __future__ import annotations

import functools
import importlib.util
import io
import math
import os
from pathlib import Path
from typing import BinaryIO

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import InputError, SetupError

__all__ = ["IdentityModelMissing", "FaceEmbedder", "read_dlib_resnet", "model_path", "has_identity_model",
           "face_crop_affines", "crop_faces", "identity_distance", "ViewIdentity", "cached_embedder", "CHIP_SIZE",
           "CHIP_ANCHORS", "SAME_PERSON_THRESHOLD"]

CHIP_SIZE = 150
"""Side of the aligned face crop the network reads, pixels."""

SAME_PERSON_THRESHOLD = 0.6
"""dlib's decision threshold: descriptors closer than this are taken for one person."""

CHIP_ANCHORS: dict[str, tuple[float, float]] = {
    "right_eye": (49.0, 46.3),
    "left_eye": (101.0, 46.3),
    "mouth": (75.0, 101.5),
}
"""Where a dlib 150² face chip (padding 0.25) puts the pupils and the mouth centre (u right, v down,
pixels, pixel centres at +0.5): MediaPipe's keypoints measured on dlib chips of real portraits,
averaged and symmetrised (docs/eval.md, "Alignment")."""

_MODEL_FILE = "dlib_face_recognition_resnet_model_v1.dat"
_PACKAGE = "face_recognition_models"
MAX_MODEL_BYTES = 64 * 2**20  # the shipped file is 22.5 MB; refuse anything far larger before reading it


class IdentityModelMissing(SetupError):
    """The face-recognition weights (package ``face-recognition-models``) are not installed."""


# ---- dlib's serialisation format --------------------------------------------------------------------
# Integers: one control byte (low 4 bits: byte count, 0x80: negative), then that many bytes little-endian.
# Strings: an integer length, then the bytes. Bools: the ASCII byte '0' or '1'. Floats: an int64 mantissa
# and an int16 exponent (value = mantissa · 2**exponent). Tensors: version 2, four dims (n, k, nr, nc),
# then n·k·nr·nc little-endian float32. A network is nested: every layer writes its version, then the
# whole sub-network below it, then its own details, so the stream holds the wrapper versions from the
# loss down to the input and then the layers' details from the input up.

class _Reader:
    def __init__(self, f: BinaryIO, name: str):
        self.f, self.name = f, name

    def fail(self, what: str) -> InputError:
        return InputError(f"{self.name}: not dlib's face-recognition ResNet ({what} at byte {self.f.tell()})")

    def bytes(self, n: int) -> bytes:
        b = self.f.read(n)
        if len(b) != n:
            raise self.fail("unexpected end of file")
        return b

    def int(self) -> int:
        ctrl = self.bytes(1)[0]
        size = ctrl & 0x0F
        if size == 0 or size > 8 or ctrl & 0x70:
            raise self.fail(f"bad integer control byte {ctrl:#x}")
        v = int.from_bytes(self.bytes(size), "little")
        return -v if ctrl & 0x80 else v

    def string(self) -> str:
        n = self.int()
        if not 0 <= n <= 256:
            raise self.fail(f"implausible string length {n}")
        return self.bytes(n).decode("latin-1")

    def bool(self) -> bool:
        c = self.bytes(1)
        if c not in (b"0", b"1"):
            raise self.fail(f"bad bool byte {c!r}")
        return c == b"1"

    def float(self) -> float:
        mantissa, exponent = self.int(), self.int()
        if exponent >= 32000:  # dlib's codes for inf, -inf, nan
            return {32000: math.inf, 32001: -math.inf}.get(exponent, math.nan)
        return math.ldexp(mantissa, exponent)

    def version(self, allowed: tuple[int, ...], what: str) -> int:
        v = self.int()
        if v not in allowed:
            raise self.fail(f"{what} version {v}, expected one of {allowed}")
        return v

    def tensor(self) -> Tensor:
        self.version((2,), "tensor")
        shape = [self.int() for _ in range(4)]
        count = math.prod(shape)
        if any(s < 0 for s in shape) or count > 16_000_000:
            raise self.fail(f"implausible tensor shape {shape}")
        data = self.bytes(4 * count)
        return torch.frombuffer(bytearray(data), dtype=torch.float32).reshape(shape) if count else torch.zeros(shape)

    def alias(self) -> tuple[int, ...]:
        self.version((1,), "alias_tensor")
        return tuple(self.int() for _ in range(4))


# The network as dlib builds it, from the input up: ("con", filters, kernel, stride), ("affine",), ("relu",),
# ("max_pool", kernel, stride), ("avg_pool", kernel, stride), ("avg_pool_everything",), ("fc", outputs),
# ("tag", n) and ("skip", n) (dlib's tagN / skipN wrappers, which hold no details), ("add_prev", n).

def _block(n: int, stride: int) -> list[tuple]:
    return [("con", n, 3, stride), ("affine",), ("relu",), ("con", n, 3, 1), ("affine",)]


def _ares(n: int) -> list[tuple]:
    return [("tag", 1), *_block(n, 1), ("add_prev", 1), ("relu",)]


def _ares_down(n: int) -> list[tuple]:
    return [("tag", 1), *_block(n, 2), ("tag", 2), ("skip", 1), ("avg_pool", 2, 2), ("add_prev", 2), ("relu",)]


LAYERS: tuple[tuple, ...] = (
    ("con", 32, 7, 2), ("affine",), ("relu",), ("max_pool", 3, 2),
    *_ares(32), *_ares(32), *_ares(32),
    *_ares_down(64), *_ares(64), *_ares(64), *_ares(64),
    *_ares_down(128), *_ares(128), *_ares(128),
    *_ares_down(256), *_ares(256), *_ares(256),
    *_ares_down(256),
    ("avg_pool_everything",), ("fc", 128),
)
"""dlib's ``anet_type`` of dnn_face_recognition_ex.cpp, flattened, input side first."""


def _read_details(r: _Reader, layer: tuple, index: int, out: dict[str, Tensor]) -> None:
    kind = layer[0]
    version = r.string()
    if kind == "con":
        if version not in ("con_4", "con_5", "con_6"):
            raise r.fail(f"layer {index}: expected a con_ layer, found {version!r}")
        params = r.tensor()
        filters = r.int()
        nr, nc, sy, sx, py, px = (r.int() for _ in range(6))
        fshape, _ = r.alias(), r.alias()  # filters, biases
        for _ in range(4):  # learning-rate and weight-decay multipliers
            r.float()
        use_bias = r.bool() if version in ("con_5", "con_6") else True
        if version == "con_6":
            r.bool()  # use_relu (a fused ReLU, off in this model: checked below)
        _, want_filters, k, stride = layer
        if (filters, nr, nc, sy, sx) != (want_filters, k, k, stride, stride):
            raise r.fail(f"layer {index}: con {filters}x{nr}x{nc}/{sy} where {want_filters}x{k}x{k}/{stride} "
                         "was expected")
        pad = 0 if stride != 1 else k // 2  # dlib's default padding, which the model was built with
        if (py, px) != (pad, pad):
            raise r.fail(f"layer {index}: con padding {(py, px)}, expected {(pad, pad)}")
        flat = params.flatten()
        nw = math.prod(fshape)
        out[f"{index}.weight"] = flat[:nw].reshape(fshape).clone()
        out[f"{index}.bias"] = flat[nw:nw + filters].clone() if use_bias else torch.zeros(filters)
        if flat.numel() != nw + (filters if use_bias else 0):
            raise r.fail(f"layer {index}: con params of {flat.numel()} values for filters {fshape}")
    elif kind == "affine":
        if version in ("bn_con2", "bn_fc2"):
            raise r.fail(f"layer {index}: a batch-norm layer (training snapshot), expected affine_")
        if version not in ("affine_", "affine_2"):
            raise r.fail(f"layer {index}: expected an affine_ layer, found {version!r}")
        params = r.tensor().flatten()
        gshape, _ = r.alias(), r.alias()
        mode = r.int()
        if version == "affine_2" and r.bool():
            raise r.fail(f"layer {index}: a disabled affine layer")
        k = math.prod(gshape)
        if mode != 0 or params.numel() != 2 * k:  # 0: CONV_MODE, one gamma and beta a channel
            raise r.fail(f"layer {index}: affine mode {mode} with {params.numel()} params")
        out[f"{index}.gamma"], out[f"{index}.beta"] = params[:k].clone(), params[k:].clone()
    elif kind == "relu":
        if version not in ("relu_", "relu_2"):
            raise r.fail(f"layer {index}: expected relu_, found {version!r}")
        if version == "relu_2" and r.bool():
            raise r.fail(f"layer {index}: a disabled relu")
    elif kind in ("max_pool", "avg_pool", "avg_pool_everything"):
        want = "max_pool_2" if kind == "max_pool" else "avg_pool_2"
        if version != want:
            raise r.fail(f"layer {index}: expected {want}, found {version!r}")
        nr, nc, sy, sx, py, px = (r.int() for _ in range(6))
        expect = (0, 0, 1, 1, 0, 0) if kind == "avg_pool_everything" else (layer[1], layer[1], layer[2], layer[2], 0, 0)
        if (nr, nc, sy, sx, py, px) != expect:
            raise r.fail(f"layer {index}: pooling {(nr, nc, sy, sx, py, px)}, expected {expect}")
    elif kind == "add_prev":
        if version != "add_prev_":
            raise r.fail(f"layer {index}: expected add_prev_, found {version!r}")
    elif kind == "fc":
        if version not in ("fc_2", "fc_3"):
            raise r.fail(f"layer {index}: expected fc_, found {version!r}")
        outputs, inputs = r.int(), r.int()
        params = r.tensor().flatten()
        r.alias(), r.alias()  # weight and bias shapes
        bias_mode = r.int()
        for _ in range(4):
            r.float()
        if version == "fc_3":
            r.bool()
        if bias_mode != 1 or outputs != layer[1] or params.numel() != inputs * outputs:  # 1: FC_NO_BIAS
            raise r.fail(f"layer {index}: fc {inputs}->{outputs} bias mode {bias_mode}")
        out[f"{index}.weight"] = params.reshape(inputs, outputs).t().contiguous()  # dlib: out = x · W
    else:  # pragma: no cover - LAYERS holds no other kind
        raise AssertionError(kind)


def read_dlib_resnet(path: str | os.PathLike) -> dict[str, Tensor]:
    """Read the weights of ``dlib_face_recognition_resnet_model_v1.dat`` (dlib's own serialisation).

    Returns:
        ``"{i}.weight"``/``"{i}.bias"`` [out, in, k, k] / [out] for each conv of :data:`LAYERS` (index ``i``),
        ``"{i}.gamma"``/``"{i}.beta"`` [C] for each affine layer, ``"{i}.weight"`` [128, 256] for the final
        fully connected layer; and ``"input_mean"`` [3], dlib's RGB means on the 0–255 scale.
    Raises:
        InputError (a ValueError) naming the file when its structure is not that network's.
    """
    path = Path(path)
    size = path.stat().st_size
    if size > MAX_MODEL_BYTES:
        raise InputError(f"{path}: {size} bytes, more than the {MAX_MODEL_BYTES} a face-recognition model has")
    with open(path, "rb") as fh:
        r = _Reader(io.BytesIO(fh.read()), str(path))
    out: dict[str, Tensor] = {}
    r.version((1,), "add_loss_layer")
    loss = r.string()
    if loss == "loss_metric_2":
        r.float(), r.float()  # margin, distance threshold: training-only
    elif loss != "loss_metric_":
        raise r.fail(f"loss {loss!r}, expected loss_metric_")
    # Wrapper versions, from the output down; the bottom layer (the first con) sits on the input.
    versions: dict[int, int] = {}
    for index in range(len(LAYERS) - 1, 0, -1):
        kind = LAYERS[index][0]
        if kind in ("tag", "skip"):
            r.version((1,), kind)
        else:
            versions[index] = r.version((1, 2), "add_layer")
    bottom_version = r.version((2, 3), "input add_layer")
    if r.string() != "input_rgb_image_sized":
        raise r.fail("input layer is not input_rgb_image_sized")
    out["input_mean"] = torch.tensor([r.float() for _ in range(3)], dtype=torch.float32)
    if (r.int(), r.int()) != (CHIP_SIZE, CHIP_SIZE):
        raise r.fail(f"input size is not {CHIP_SIZE}²")
    for index in range(len(LAYERS)):
        kind = LAYERS[index][0]
        if kind in ("tag", "skip"):
            continue
        _read_details(r, LAYERS[index], index, out)
        for _ in range(3):  # this_layer_setup_called, gradient_input_is_stale, output/gradient disabled
            r.bool()
        r.tensor(), r.tensor()  # x_grad, cached_output (empty in a saved model)
        if index == 0:
            r.tensor()  # grad_final
            if bottom_version >= 3:
                r.int()  # sample expansion factor
        elif versions[index] == 2:
            r.tensor()  # params_grad
    if r.f.read(1):
        raise r.fail("trailing bytes after the network")
    return out


# ---- where the weights are installed ----------------------------------------------------------------

def model_path() -> Path:
    """Path of the recognition model inside the installed ``face-recognition-models`` package (found
    without importing it: its ``__init__`` needs setuptools' pkg_resources). Raises
    :class:`IdentityModelMissing` when it is not installed."""
    spec = importlib.util.find_spec(_PACKAGE)
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        candidate = Path(folder) / "models" / _MODEL_FILE
        if candidate.is_file():
            return candidate
    raise IdentityModelMissing(
        "identity metrics need dlib's face-recognition weights from the package face-recognition-models "
        "(public domain, 100 MB download, no network at run time afterwards): pip install 'a3d[eval]'")


def has_identity_model() -> bool:
    """Whether :func:`model_path` finds the weights."""
    try:
        model_path()
    except IdentityModelMissing:
        return False
    return True


# ---- the network --------------------------------------------------------------------------------------

def _add_padded(a: Tensor, b: Tensor) -> Tensor:
    """dlib's add_prev: the sum over the larger shape, each input zero-padded at the end of every dim."""
    shape = [max(x, y) for x, y in zip(a.shape, b.shape)]

    def pad(t: Tensor) -> Tensor:
        gaps = [g for d in range(3, 0, -1) for g in (0, shape[d] - t.shape[d])]
        return F.pad(t, gaps) if any(gaps) else t
    return pad(a) + pad(b)


class FaceEmbedder(nn.Module):
    """dlib's face-recognition ResNet in PyTorch: aligned 150² crops -> 128-D descriptors.

    Args:
        path: the ``.dat`` file (default: :func:`model_path`).

    ``forward(crops)``: crops [B, 3, 150, 150] RGB in [0, 1] (dlib's chips /255) -> [B, 128] float32,
    differentiable with respect to the crops; parameters are frozen. Other sizes are resized bilinearly
    (antialiased) to 150² first.
    """

    def __init__(self, path: str | os.PathLike | None = None) -> None:
        super().__init__()
        state = read_dlib_resnet(model_path() if path is None else path)
        self.register_buffer("input_mean", state.pop("input_mean").view(1, 3, 1, 1), persistent=False)
        self.convs = nn.ModuleDict()
        self.affines = nn.ParameterDict()
        for index, layer in enumerate(LAYERS):
            if layer[0] == "con":
                w = state[f"{index}.weight"]
                conv = nn.Conv2d(w.shape[1], w.shape[0], w.shape[2], stride=layer[3],
                                 padding=0 if layer[3] != 1 else layer[2] // 2)
                conv.weight.data.copy_(w)
                conv.bias.data.copy_(state[f"{index}.bias"])
                self.convs[str(index)] = conv
            elif layer[0] == "affine":
                self.affines[f"{index}_gamma"] = nn.Parameter(state[f"{index}.gamma"].view(1, -1, 1, 1))
                self.affines[f"{index}_beta"] = nn.Parameter(state[f"{index}.beta"].view(1, -1, 1, 1))
            elif layer[0] == "fc":
                self.fc = nn.Parameter(state[f"{index}.weight"])
        self.requires_grad_(False)
        self.eval()

    def forward(self, crops: Tensor) -> Tensor:
        if not isinstance(crops, Tensor) or crops.dim() != 4 or crops.shape[1] != 3 or not crops.is_floating_point():
            raise InputError(f"crops: expected a floating tensor [B, 3, H, W] RGB in [0, 1], got "
                             f"{tuple(crops.shape) if isinstance(crops, Tensor) else type(crops).__name__}")
        x = crops.to(self.fc.dtype)
        if x.shape[-2:] != (CHIP_SIZE, CHIP_SIZE):
            x = F.interpolate(x, size=(CHIP_SIZE, CHIP_SIZE), mode="bilinear", align_corners=False, antialias=True)
        x = (x * 255.0 - self.input_mean) / 256.0  # dlib's input_rgb_image: (pixel - mean) / 256
        tags: dict[int, Tensor] = {}
        for index, layer in enumerate(LAYERS):
            kind = layer[0]
            if kind == "con":
                x = self.convs[str(index)](x)
            elif kind == "affine":
                x = x * self.affines[f"{index}_gamma"] + self.affines[f"{index}_beta"]
            elif kind == "relu":
                x = F.relu(x)
            elif kind == "max_pool":
                x = F.max_pool2d(x, layer[1], layer[2])
            elif kind == "avg_pool":
                x = F.avg_pool2d(x, layer[1], layer[2])
            elif kind == "tag":
                tags[layer[1]] = x
            elif kind == "skip":
                x = tags[layer[1]]
            elif kind == "add_prev":
                x = _add_padded(x, tags[layer[1]])
            elif kind == "avg_pool_everything":
                x = x.mean(dim=(2, 3))
            elif kind == "fc":
                x = x @ self.fc.t()
        return x

    def distance(self, a: Tensor, b: Tensor) -> Tensor:
        """Euclidean distance of the descriptors of crop batches ``a`` and ``b`` ([B, 3, H, W] each, or
        one of them [1, 3, H, W], broadcast) -> [B]."""
        return torch.linalg.vector_norm(self(a) - self(b), dim=-1)


@functools.lru_cache(maxsize=4)
def cached_embedder(device: str = "cpu") -> FaceEmbedder:
    """One :class:`FaceEmbedder` a device (the weights are read once)."""
    return FaceEmbedder().to(device)


# ---- alignment ----------------------------------------------------------------------------------------

def _similarity(src: Tensor, dst: Tensor) -> Tensor:
    """Least-squares similarity (scale, rotation, shift) taking points ``src`` [P, 2] to ``dst`` [P, 2];
    returns the 2×3 matrix A with dst ≈ A[:, :2] @ src + A[:, 2]."""
    ms, md = src.mean(0), dst.mean(0)
    s, d = src - ms, dst - md
    denom = (s ** 2).sum()
    a = (s * d).sum() / denom
    b = (s[:, 0] * d[:, 1] - s[:, 1] * d[:, 0]).sum() / denom
    R = torch.stack([torch.stack([a, -b]), torch.stack([b, a])])
    return torch.cat([R, (md - R @ ms)[:, None]], 1)


def _project(viewmats: Tensor, Ks: Tensor, points: Tensor) -> Tensor:
    """Pixel positions [C, P, 2] of world points [P, 3] in OpenCV cameras viewmats [C, 4, 4], Ks [C, 3, 3]."""
    cam = points @ viewmats[:, :3, :3].transpose(1, 2) + viewmats[:, None, :3, 3]
    uvw = cam @ Ks.transpose(1, 2)
    return uvw[..., :2] / uvw[..., 2:3]


def face_crop_affines(viewmats: Tensor, Ks: Tensor) -> Tensor:
    """Affine maps [C, 2, 3] from chip pixels to image pixels for cameras viewmats [C, 4, 4], Ks [C, 3, 3]
    of images framed by :mod:`a3d.core.framing`: ``image_uv = A[:, :2] @ chip_uv + A[:, 2]``.

    Scale and rotation come from the front camera at the same distance and intrinsics (the similarity
    that puts the projected eyes and mouth of :data:`a3d.core.framing.FACE_ANCHORS_3D` on
    :data:`CHIP_ANCHORS`); the shift puts each camera's projected anchors' centroid on the chips'.
    """
    from ..core import framing

    viewmats, Ks = viewmats.float().cpu(), Ks.float().cpu()
    names = list(CHIP_ANCHORS)
    world = torch.tensor([framing.FACE_ANCHORS_3D[n] for n in names])
    chip = torch.tensor([CHIP_ANCHORS[n] for n in names])
    # the front camera at each camera's distance from the head: eye on +z, looking at the origin
    dist = torch.linalg.vector_norm(viewmats[:, :3, 3], dim=-1)
    front = torch.eye(4).repeat(len(viewmats), 1, 1)
    front[:, 1, 1] = front[:, 2, 2] = -1.0  # OpenCV axes: x right, y down, z forward (toward -z world)
    front[:, 2, 3] = dist
    out = []
    uv_front, uv_view = _project(front, Ks, world), _project(viewmats, Ks, world)
    for i in range(len(viewmats)):
        M = _similarity(chip, uv_front[i] - 0.5)  # chip -> image, pixel centres at +0.5 on both sides
        M[:, 2] += uv_view[i].mean(0) - uv_front[i].mean(0)
        out.append(M)
    return torch.stack(out)


def crop_faces(images: Tensor, affines: Tensor, size: int = CHIP_SIZE) -> Tensor:
    """Resample face chips from images [B, 3, H, W] with affines [B, 2, 3] (chip px -> image px, as
    :func:`face_crop_affines`) -> [B, 3, size, size], bilinear, differentiable; outside -> white."""
    B, _, H, W = images.shape
    A = affines.to(images.device, images.dtype)
    # affine_grid (align_corners=False): normalised chip coordinate x -> 150² chip pixels 75·(x + 1) (a chip
    # of any size covers the same region) -> image pixels through A -> normalised image coordinates.
    lin = A[:, :, :2] * (CHIP_SIZE / 2)
    off = A[:, :, :2].sum(2, keepdim=True) * (CHIP_SIZE / 2) + A[:, :, 2:]
    norm = torch.tensor([[2.0 / W, 0.0], [0.0, 2.0 / H]], dtype=images.dtype, device=images.device)
    theta = torch.cat([norm @ lin, norm @ off - 1.0], dim=2)
    grid = F.affine_grid(theta, [B, 3, size, size], align_corners=False)
    return F.grid_sample(images - 1.0, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + 1.0


class ViewIdentity:
    """Identity distances of renders from fixed cameras to one framed portrait, for a loop that asks many times
    (refinement's identity term): the portrait's descriptor and the cameras' crop affines are computed once.

    Args:
        image: [3, H, W] RGB in [0, 1] framed like the model's input (the front canonical camera of H = W).
        viewmats: [V, 4, 4], Ks: [V, 3, 3] the renders' cameras (OpenCV, intrinsics of the renders' size).
        embedder: a :class:`FaceEmbedder` (default: one cached per device of ``image``).

    ``view_identity(renders)``: renders [V, 3, h, w] RGB in [0, 1] -> [V] descriptor distances, differentiable
    with respect to the renders (the crops are :func:`crop_faces`'s bilinear resampling through fixed affines).
    """

    def __init__(self, image: Tensor, viewmats: Tensor, Ks: Tensor, embedder: FaceEmbedder | None = None) -> None:
        from ..core.cameras import canonical_cameras

        if image.dim() != 3 or image.shape[0] != 3 or image.shape[1] != image.shape[2]:
            raise InputError(f"image: expected a square [3, H, W] portrait, got {tuple(image.shape)}")
        self.embedder = embedder if embedder is not None else cached_embedder(str(image.device))
        front = canonical_cameras(image.shape[-1])[0:1]
        self.reference = self.embedder(crop_faces(image[None], face_crop_affines(front.viewmats, front.Ks)))  # [1, 128]
        self.affines = face_crop_affines(viewmats, Ks)  # [V, 2, 3], chip px -> render px

    def __call__(self, renders: Tensor) -> Tensor:
        if renders.dim() != 4 or len(renders) != len(self.affines):
            raise InputError(f"renders: expected [{len(self.affines)}, 3, h, w] (one a camera), got "
                             f"{tuple(renders.shape)}")
        views = self.embedder(crop_faces(renders, self.affines))
        return torch.linalg.vector_norm(views - self.reference.to(views.device), dim=-1)


def identity_distance(image: Tensor, renders: Tensor, viewmats: Tensor, Ks: Tensor,
                      embedder: FaceEmbedder | None = None) -> Tensor:
    """Identity distance between a framed portrait and renders of its reconstruction.

    Args:
        image: [3, H, W] RGB in [0, 1] framed like the model's input (the front canonical view of
            :mod:`a3d.core.framing`, e.g. ``a3d.inference.preprocess.preprocess(photo, H).image``), H = W.
        renders: [V, 3, h, w] RGB in [0, 1] (NCHW) of the head from cameras ``viewmats`` [V, 4, 4],
            ``Ks`` [V, 3, 3] (OpenCV, intrinsics of the h × w renders).
        embedder: a :class:`FaceEmbedder` (default: one cached per device).
    Returns:
        [V] Euclidean descriptor distances (< 0.6: dlib would call them one person), differentiable with
        respect to ``image`` and ``renders``: usable as a loss.
    """
    if image.dim() != 3 or renders.dim() != 4 or len(renders) != len(viewmats):
        raise InputError(f"image, renders: expected [3, H, W] and [V, 3, h, w] with V cameras, got "
                         f"{tuple(image.shape)}, {tuple(renders.shape)} and {len(viewmats)} cameras")
    emb = embedder if embedder is not None else cached_embedder(str(renders.device))
    return ViewIdentity(image, viewmats, Ks, emb)(renders)
