"""Input-view augmentation: make a rendered synthetic portrait look like a preprocessed photo.

Training renders its input view cleanly; the photos a3d reconstructs from went through a camera
(exposure, white balance, blur, sensor noise, JPEG) and through preprocessing (a matte whose edge is
a little too tight or too loose, a face detector whose crop is a little off in position, scale and
roll). :func:`augment_inputs` imitates both on a batch of input images, so the network learns to read
a real photo. It is batched torch on any device, draws every random number from the given generator
(a batch is a function of its images and the generator's state) and is applied to the network's input
only: the supervision views stay clean.

The order follows a photo's life: the camera's degradations act on the person (the foreground), the
matte edge and the composite onto the framing background come next, the crop last.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ..core import framing as framing_
from ..core.cameras import Cameras
from ..core.gaussians import Gaussians
from ..core.rotations import quat_multiply, rotmat_to_quat
from .device_constants import on_device

__all__ = ["augment_inputs", "augment_heads", "turn_heads", "uncomposite", "jpeg_compress", "gaussian_blur"]

# probabilities of each degradation, and their ranges
_P_COLOUR, _P_BLUR, _P_NOISE, _P_JPEG, _P_MATTE, _P_FRAMING = 0.8, 0.4, 0.5, 0.6, 0.5, 0.7
_MAX_BLUR_SIGMA = 1.2  # pixels at 256²; scaled with the image size
_JPEG_QUALITY = (25.0, 95.0)

# the JPEG standard's (Annex K) quantisation tables for quality 50
_LUMA_Q = torch.tensor([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99], dtype=torch.float32)
_CHROMA_Q = torch.tensor([
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99,
    47, 66, 99, 99, 99, 99, 99, 99] + [99] * 32, dtype=torch.float32)


def _dct_matrix(device: torch.device) -> Tensor:
    """[8, 8] orthonormal DCT-II matrix (rows: frequencies)."""
    k = torch.arange(8, dtype=torch.float32, device=device)
    m = torch.cos(math.pi * (2 * k[None, :] + 1) * k[:, None] / 16) * math.sqrt(2 / 8)
    m[0] /= math.sqrt(2)
    return m


def _check_images(images: Tensor, name: str = "images") -> None:
    if not isinstance(images, Tensor) or images.dim() != 4 or images.shape[1] != 3 or not images.is_floating_point():
        raise ValueError(f"{name}: expected a float tensor [B, 3, H, W], got "
                         f"{tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__}")


def gaussian_blur(images: Tensor, sigma: Tensor, radius: int | None = None) -> Tensor:
    """Blur [B, C, H, W] images with a per-image Gaussian of std ``sigma`` [B] pixels (0: unchanged);
    separable, reflect-padded, kernel ``radius`` pixels (default 3·max σ, which waits for the device;
    at most 8)."""
    B, C, H, W = images.shape
    if radius is None:
        radius = int(math.ceil(3 * float(sigma.max())))
    radius = max(1, min(8, radius, H - 1, W - 1))
    x = torch.arange(-radius, radius + 1, device=images.device, dtype=images.dtype)
    s = sigma.to(images.dtype).clamp(min=1e-3)[:, None]
    k = torch.exp(-0.5 * (x[None] / s) ** 2)
    k = (k / k.sum(1, keepdim=True)).repeat_interleave(C, 0)  # [B·C, 2r+1]
    y = F.pad(images.reshape(1, B * C, H, W), (radius, radius, radius, radius), mode="reflect")
    y = F.conv2d(y, k[:, None, None, :], groups=B * C)
    y = F.conv2d(y, k[:, None, :, None], groups=B * C)
    return y.reshape(B, C, H, W)


def jpeg_compress(images: Tensor, quality: Tensor) -> Tensor:
    """JPEG-like compression of [B, 3, H, W] images in [0, 1] at a per-image ``quality`` [B] (1–100,
    the libjpeg scale): YCbCr, 4:2:0 chroma, 8×8 DCT quantised with the standard tables scaled to the
    quality, and back. Differentiable almost nowhere; meant for data, not for gradients."""
    _check_images(images)
    B, _, H, W = images.shape
    dev = images.device
    x = images.float() * 255
    r, g, b = x.unbind(1)
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = 128 - 0.168736 * r - 0.331264 * g + 0.5 * b
    cr = 128 + 0.5 * r - 0.418688 * g - 0.081312 * b
    # 4:2:0: chroma at half resolution
    chroma = F.avg_pool2d(torch.stack([cb, cr], 1), 2, ceil_mode=True)
    q = quality.float().clamp(1, 100)
    scale = torch.where(q < 50, 5000 / q, 200 - 2 * q) / 100  # [B]
    luma_q = (_LUMA_Q.to(dev)[None] * scale[:, None]).round().clamp(1, 255)  # [B, 64]
    chroma_q = (_CHROMA_Q.to(dev)[None] * scale[:, None]).round().clamp(1, 255)
    y = _quantise_blocks(y[:, None] - 128, luma_q)[:, 0] + 128
    chroma = _quantise_blocks(chroma - 128, chroma_q) + 128
    chroma = F.interpolate(chroma, scale_factor=2, mode="bilinear", align_corners=False)[..., :H, :W]
    cb, cr = chroma.unbind(1)
    out = torch.stack([y + 1.402 * (cr - 128), y - 0.344136 * (cb - 128) - 0.714136 * (cr - 128),
                       y + 1.772 * (cb - 128)], 1)
    return (out / 255).clamp(0, 1).to(images.dtype)


def _quantise_blocks(x: Tensor, table: Tensor) -> Tensor:
    """[B, C, H, W] -> the same after an 8×8 DCT, rounding to multiples of ``table`` [B, 64], inverse DCT."""
    B, C, H, W = x.shape
    ph, pw = (-H) % 8, (-W) % 8
    xp = F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x
    Hp, Wp = xp.shape[-2:]
    blocks = xp.reshape(B, C, Hp // 8, 8, Wp // 8, 8).transpose(3, 4)  # [B, C, h, w, 8, 8]
    D = _dct_matrix(x.device)
    coef = D @ blocks @ D.T
    t = table.reshape(B, 1, 1, 1, 8, 8)
    coef = torch.round(coef / t) * t
    out = (D.T @ coef @ D).transpose(3, 4).reshape(B, C, Hp, Wp)
    return out[..., :H, :W]


def _rand(generator: torch.Generator | None, *shape: int, device: torch.device) -> Tensor:
    return torch.rand(shape, generator=generator, device=device)


def uncomposite(images: Tensor, alpha: Tensor) -> Tensor:
    """The straight (not premultiplied) foreground colour of images composited over
    :data:`a3d.core.framing.BACKGROUND`: images [..., 3, H, W] in [0, 1] and their alpha [..., 1, H, W] (or
    broadcastable) -> [..., 3, H, W] in [0, 1], which composited again gives the images back. Where alpha is
    ~0 the colour is the background's (any colour composites to the same there)."""
    bg = torch.tensor(framing_.BACKGROUND, dtype=images.dtype, device=images.device).reshape(3, 1, 1)
    a = alpha.to(images.dtype)
    fg = (images - (1 - a) * bg) / a.clamp_min(1e-6)
    return torch.where(a > 1e-6, fg, bg.expand_as(images)).clamp(0, 1)


def _camera_colour(fg: Tensor, u: Tensor) -> Tensor:
    """A camera's colour rendition of colours ``fg`` [B, 3, ...] in [0, 1]: exposure (±½ stop),
    saturation, white balance, contrast and gamma, drawn from ``u`` [B, 7] uniform in [0, 1)."""
    B = fg.shape[0]
    shape = (B, 1) + (1,) * (fg.dim() - 2)
    rng = lambda i, lo, hi: (lo + (hi - lo) * u[:, i]).reshape(shape)  # noqa: E731
    balance = (1 + 0.08 * (u[:, 3:6] - 0.5)).reshape((B, 3) + shape[2:])
    grey = fg.mean(1, keepdim=True)
    jittered = torch.lerp(grey, fg, rng(2, 0.7, 1.3)) * balance * torch.exp2(rng(0, -0.5, 0.5))
    return (0.5 + rng(1, 0.8, 1.2) * (jittered - 0.5)).clamp(0, 1) ** torch.exp(rng(6, -0.2, 0.2))


def _reframe_after_turn(turn: Tensor, front: Cameras, dtype: torch.dtype) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """A head turned by ``turn`` [B, 3, 3] (a rotation about the face anchors' centre) is framed again the
    way preprocessing frames a photo: the 2D similarity of the front image that puts the turned pupils and
    mouth back on their anchors (least squares over the three points, in complex form: x ↦ a·x + b).
    Returns (the turn's pivot [3], the similarity's roll [B] (radians, about the camera's forward axis),
    scale [B] and shift [B, 2] in half-widths of the view at the origin's depth, as ``augment_heads``
    applies its framing error)."""
    anchors = on_device(turn.device, tuple(framing_.FACE_ANCHORS_3D[n] for n in ("right_eye", "left_eye", "mouth")))
    anchors = anchors.to(dtype)
    pivot = anchors.mean(0)
    turned = (anchors - pivot) @ turn.transpose(1, 2) + pivot  # [B, 3, 3]
    viewmat, K = front.viewmats.reshape(4, 4).to(turn), front.Ks.reshape(3, 3).to(turn)
    half = front.width / 2

    def image(p: Tensor) -> Tensor:  # complex positions in half-widths from the principal point
        cam = p @ viewmat[:3, :3].T + viewmat[:3, 3]
        uv = cam[..., :2] / cam[..., 2:3] * K[[0, 1], [0, 1]] / half
        return torch.complex(uv[..., 0], uv[..., 1])

    target, moved = image(anchors), image(turned)  # [3], [B, 3]
    t0, m0 = target - target.mean(), moved - moved.mean(-1, keepdim=True)
    a = (m0.conj() * t0).sum(-1) / (m0.abs() ** 2).sum(-1)
    b = target.mean() - a * moved.mean(-1)
    return pivot, torch.angle(a), a.abs(), torch.stack([b.real, b.imag], -1)


def _turn_rotation(yaw: Tensor, pitch: Tensor) -> Tensor:
    """[B, 3, 3] rotations: ``pitch`` [B] about the world x axis (positive: the face tips down), then
    ``yaw`` [B] about the world y axis (up; positive: the face turns toward +x, the subject's left)."""
    cy, sy, cp, sp = torch.cos(yaw), torch.sin(yaw), torch.cos(pitch), torch.sin(pitch)
    one, zero = torch.ones_like(yaw), torch.zeros_like(yaw)
    R_yaw = torch.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], -1).reshape(-1, 3, 3)
    R_pitch = torch.stack([one, zero, zero, zero, cp, -sp, zero, sp, cp], -1).reshape(-1, 3, 3)
    return R_yaw @ R_pitch


def augment_heads(heads: Gaussians, front: Cameras, generator: torch.Generator | None = None,
                  turn: tuple[float, float] = (0.0, 0.0), turn_power: float = 1.0) -> Gaussians:
    """A photo's colour rendition and framing error given to the person: every view of the heads sees them.

    :func:`augment_inputs` alone changes the network's input and leaves the supervision views clean;
    for a reconstruction model that is a contradiction where the input's pixels become Gaussians
    (:mod:`a3d.model.given`): a darker or shifted photo, whose head must come back darker or
    shifted in the photo's own view, is scored against a clean, centred one, and the model learns to
    distrust the photo's colours (a guessed back that does not match the photographed hair). Applied to
    the heads before rendering, the same changes are consistent in every view: per head (independently,
    with the probabilities of :func:`augment_inputs`) the camera's colour rendition of its colours, and a
    framing error — roll about the front camera's optical axis (±4°), scale about the head's centre
    (±5%) and a shift across the front view (±4% of its width).

    ``turn`` (max yaw, max pitch, degrees; default none): the synthetic heads face the camera exactly, a
    photo's person seldom does. Each head (the whole person) is turned by a yaw and a pitch drawn uniformly
    within them, about the centre of its pupils and mouth, then framed again as preprocessing frames a
    photo, by the 2D similarity that puts those three points back on their anchors (:func:`turn_heads`);
    the framing error comes on top. The turn is drawn after the other numbers and only when asked, so that
    without it a batch is what it was. ``turn_power`` p >= 1 bends the draw toward the camera: each angle is
    max · sign(v) · |v|^p for v uniform in [-1, 1] (p = 1: uniform; p = 2: the median turn is a quarter of the
    maximum), as portraits are mostly taken nearly face on (:func:`turn_angles`).

    Args:
        heads: Gaussians [B, N] (synthetic heads, a3d framing: the head's centre at the origin).
        front: the front canonical camera (viewmats [1, 4, 4] or [4, 4], Ks alike).
        generator: torch.Generator on the heads' device (None: torch's default generator).
        turn: (max |yaw|, max |pitch|) in degrees, each in [0, 90].
        turn_power: the draw's bend toward no turn, in [1, 8].
    Returns:
        New Gaussians [B, N]; the inputs are not modified.
    """
    means = heads.means
    if means.dim() != 3:
        raise ValueError(f"heads: expected Gaussians [B, N], got means {tuple(means.shape)}")
    if len(turn) != 2 or not all(0.0 <= float(x) <= 90.0 for x in turn):
        raise ValueError(f"turn: expected (max yaw, max pitch) in degrees within [0, 90], got {turn!r}")
    if not 1.0 <= float(turn_power) <= 8.0:
        raise ValueError(f"turn_power: expected a number within [1, 8], got {turn_power!r}")
    B, dev = means.shape[0], means.device
    u = _rand(generator, B, 13, device=dev)
    colours = heads.colors.transpose(1, 2)  # [B, 3, N]
    colours = torch.where((u[:, 7] < _P_COLOUR).reshape(B, 1, 1), _camera_colour(colours, u[:, :7]), colours)
    framed = (u[:, 8] < _P_FRAMING).to(means.dtype)
    roll = torch.deg2rad(-4.0 + 8.0 * u[:, 9]) * framed  # [B]
    scale = 1 + (-0.05 + 0.1 * u[:, 10]) * framed
    shift_xy = (u[:, 11:13] * 0.16 - 0.08) * framed[:, None]  # ±4% of the width
    heads = Gaussians(means=means, quats=heads.quats, scales=heads.scales, opacities=heads.opacities,
                      colors=colours.transpose(1, 2).contiguous(), sh_rest=heads.sh_rest)
    if any(float(x) > 0 for x in turn):
        yaw, pitch = turn_angles(_rand(generator, B, 2, device=dev), turn, turn_power).unbind(1)
        heads = turn_heads(heads, front, yaw, pitch)
    return _front_similarity(heads, front, roll, scale, shift_xy)


def turn_angles(u: Tensor, turn: tuple[float, float], power: float = 1.0) -> Tensor:
    """Yaw and pitch [B, 2] (degrees) from uniform numbers ``u`` [B, 2] in [0, 1): each within ±its maximum of
    ``turn`` (max yaw, max pitch), max · sign(v) · |v|^power for v = 2u − 1 (power 1: uniform; larger: more
    heads near no turn, the same largest turn)."""
    v = u * 2 - 1
    bent = v if power == 1.0 else v.sign() * v.abs().pow(power)  # power 1: bit for bit the uniform draw
    return bent * torch.tensor([float(turn[0]), float(turn[1])], dtype=u.dtype, device=u.device)


def _front_similarity(heads: Gaussians, front: Cameras, roll: Tensor, scale: Tensor, shift: Tensor) -> Gaussians:
    """A 2D similarity of the front image given to the heads [B, N] in 3D: a roll [B] (radians) about the
    front camera's optical axis, a scale [B] about the origin (the head's centre) and a shift [B, 2] across
    the view, in half-widths of the view at the origin's depth (x right, y down)."""
    means = heads.means
    viewmat = front.viewmats.reshape(4, 4).to(means)
    R_cam = viewmat[:3, :3]  # rows: the camera's x (right), y (down), z (forward) in the world
    # tensors on the heads' device throughout: no step of the training loop waits for the GPU here
    tan_half = front.width / (2 * front.Ks.reshape(3, 3)[0, 0].to(means))
    distance = viewmat[:3, 3].norm()  # the camera's distance to the origin
    shift = (shift * (distance * tan_half)) @ R_cam[:2]  # [B, 3] world
    axis = R_cam[2]
    c, s = torch.cos(roll)[:, None, None], torch.sin(roll)[:, None, None]
    eye = torch.eye(3, device=means.device, dtype=means.dtype)
    K = torch.cross(axis.expand(3, 3), eye, dim=-1).T  # K v = axis × v (column j: axis × e_j)
    rot = eye + s * K + (1 - c) * (K @ K)  # [B, 3, 3] Rodrigues
    new_means = scale[:, None, None] * (means @ rot.transpose(1, 2)) + shift[:, None]
    half = roll[:, None] / 2
    q_roll = torch.cat([torch.cos(half), torch.sin(half) * axis], 1)[:, None]  # [B, 1, 4] (w, x, y, z)
    return Gaussians(means=new_means, quats=quat_multiply(q_roll, heads.quats),
                     scales=heads.scales * scale[:, None, None], opacities=heads.opacities,
                     colors=heads.colors, sh_rest=heads.sh_rest)


def turn_heads(heads: Gaussians, front: Cameras, yaw: Tensor | float, pitch: Tensor | float = 0.0) -> Gaussians:
    """Turn each head (the whole person) and frame it again by its face, as preprocessing frames a photo.

    The head turns by ``pitch`` about the world x axis (positive: the face tips down), then ``yaw`` about
    the world y axis (positive: toward +x, the subject's left), about the centre of its pupils and mouth
    (:data:`a3d.core.framing.FACE_ANCHORS_3D`); then the 2D similarity of the front image that puts those three
    points back on their anchors (least squares: a turned face's eyes come closer together, so the head is
    zoomed a little; what three points cannot match stays, as in a photo) is given to it in 3D.

    Args:
        heads: Gaussians [B, N] in the a3d framing.
        front: the front canonical camera (viewmats [1, 4, 4] or [4, 4], Ks alike).
        yaw, pitch: degrees, [B] tensors or numbers.
    Returns:
        New Gaussians [B, N].
    """
    means = heads.means
    if means.dim() != 3:
        raise ValueError(f"heads: expected Gaussians [B, N], got means {tuple(means.shape)}")
    B = means.shape[0]
    yaw, pitch = (torch.as_tensor(x, dtype=means.dtype, device=means.device).expand(B) for x in (yaw, pitch))
    R_turn = _turn_rotation(torch.deg2rad(yaw), torch.deg2rad(pitch))
    pivot, fit_roll, fit_scale, fit_shift = _reframe_after_turn(R_turn, front, means.dtype)
    turned = Gaussians(means=(means - pivot) @ R_turn.transpose(1, 2) + pivot,
                       quats=quat_multiply(rotmat_to_quat(R_turn)[:, None], heads.quats), scales=heads.scales,
                       opacities=heads.opacities, colors=heads.colors, sh_rest=heads.sh_rest)
    return _front_similarity(turned, front, fit_roll, fit_scale, fit_shift)


def augment_inputs(images: Tensor, alpha: Tensor | None = None,
                   generator: torch.Generator | None = None, return_alpha: bool = False,
                   colour: bool = True, framing: bool = True) -> Tensor | tuple[Tensor, Tensor | None]:
    """Photo-like degradations of a batch of input portraits composited on the framing background.

    Args:
        images: [B, 3, H, W] in [0, 1], the heads over :data:`a3d.core.framing.BACKGROUND`.
        alpha: [B, 1, H, W] their coverage in [0, 1] (the render's alpha), or None. With it the camera's
            degradations act on the person only and the matte's edge is eroded, dilated or feathered
            (a dilated edge shows a rim of a random "photo background" colour); without it (or for an
            image whose alpha is all zero, a photo without a matte) they act on the whole image and the
            matte is left alone.
        generator: torch.Generator on the images' device (None: torch's default generator).
        return_alpha: also return the matte that goes with the augmented images (its edge changed and
            framed as they are), as preprocessing hands a photo's matte to the model with the photo.
        colour, framing: the camera's colour rendition and the crop's framing error; off where the
            heads already carry them (:func:`augment_heads`), which every view then sees.

    Each image independently: exposure, contrast, saturation, white balance and gamma jitter (80%),
    Gaussian blur of σ up to 1.2 px at 256² (40%), signal-dependent sensor noise (50%), JPEG at
    quality 25–95 (60%), matte edge changes (50%), and a framing error of up to ±4% shift, ±5% scale
    and ±4° roll (70%).

    Returns:
        [B, 3, H, W] augmented images in [0, 1], the dtype and device of ``images``; with
        ``return_alpha`` the pair (images, their matte [B, 1, H, W], or None without ``alpha``).
    """
    _check_images(images)
    B, _, H, W = images.shape
    if alpha is not None and (not isinstance(alpha, Tensor) or alpha.shape != (B, 1, H, W)):
        raise ValueError(f"alpha: expected None or a tensor [{B}, 1, {H}, {W}], got "
                         f"{tuple(alpha.shape) if isinstance(alpha, Tensor) else type(alpha).__name__}")
    if generator is not None and generator.device.type != images.device.type:
        raise ValueError(f"generator: expected one on {images.device.type}, got one on {generator.device.type}")
    dev, dtype = images.device, images.dtype
    x = images.float().clamp(0, 1)
    bg = torch.tensor(framing_.BACKGROUND, device=dev).reshape(1, 3, 1, 1)
    # all the random numbers a batch needs, in one draw: the batch is a function of the generator
    u = _rand(generator, B, 24, device=dev)
    coin = lambda i, p: (u[:, i] < p).reshape(B, 1, 1, 1)  # noqa: E731
    rng = lambda i, lo, hi: lo + (hi - lo) * u[:, i]  # noqa: E731
    if alpha is not None:
        # an image whose alpha is empty has no matte (a captured photo): it is treated as fully covered
        a = alpha.float().clamp(0, 1)
        a = torch.where(a.flatten(1).amax(1).reshape(B, 1, 1, 1) > 1e-3, a, 1.0)
        fg = uncomposite(x, a)
        halo = _rand(generator, B, 3, device=dev).reshape(B, 3, 1, 1) * 0.6 + 0.2  # the photo's background
        fg = torch.where(a > 1e-3, fg, halo)
    else:
        a, fg = None, x
    # the camera: colour and exposure (unless the heads already carry it: augment_heads)
    if colour:
        fg = torch.where(coin(7, _P_COLOUR), _camera_colour(fg, u[:, :7]), fg)
    # blur, noise, JPEG
    sigma = rng(8, 0.2, _MAX_BLUR_SIGMA) * (H / 256) * (u[:, 9] < _P_BLUR)
    fg = gaussian_blur(fg, sigma, radius=math.ceil(3 * _MAX_BLUR_SIGMA * H / 256))
    noise_level = rng(10, 0.004, 0.03).reshape(B, 1, 1, 1) * coin(11, _P_NOISE)
    noise = torch.randn(fg.shape, generator=generator, device=dev)
    fg = (fg + noise * noise_level * (0.3 + fg).sqrt()).clamp(0, 1)
    quality = rng(12, *_JPEG_QUALITY)
    fg = torch.where(coin(13, _P_JPEG), jpeg_compress(fg, quality), fg)
    # the matte: eroded, dilated or feathered by a pixel or two, then the composite
    if a is not None:
        k = 3 if H < 384 else 5
        eroded = -F.max_pool2d(-a, k, 1, k // 2)
        dilated = F.max_pool2d(a, k, 1, k // 2)
        feathered = gaussian_blur(a, torch.full((B,), k / 3, device=dev), radius=k)
        kind = (u[:, 14] * 3).long().clamp(max=2).reshape(B, 1, 1, 1)
        changed = torch.where(kind == 0, eroded, torch.where(kind == 1, dilated, feathered))
        a = torch.where(coin(15, _P_MATTE), changed, a)
        x = fg * a + bg * (1 - a)
    else:
        x = fg
    # the crop: shift, scale and roll about the centre, the background filling what comes in
    roll = torch.deg2rad(rng(16, -4.0, 4.0))
    scale = rng(17, 0.95, 1.05)
    shift = torch.stack([rng(18, -0.04, 0.04), rng(19, -0.04, 0.04)], 1) * 2  # normalised coordinates
    c, s = torch.cos(roll) / scale, torch.sin(roll) / scale
    theta = torch.stack([torch.stack([c, -s, shift[:, 0]], 1), torch.stack([s, c, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, (B, 3, H, W), align_corners=False)
    warped = F.grid_sample(x - bg, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + bg
    framed = coin(20, _P_FRAMING) & framing
    x = torch.where(framed, warped, x)
    if not return_alpha:
        return x.clamp(0, 1).to(dtype)
    if a is not None:  # the same crop for the matte (nothing comes in from outside the photo)
        a = torch.where(framed, F.grid_sample(a, grid, mode="bilinear", padding_mode="zeros", align_corners=False),
                        a).clamp(0, 1).to(dtype)
    return x.clamp(0, 1).to(dtype), a
