"""Input-view augmentation (a3d.data.augment): shapes and range, determinism by generator, the background
stays the framing background where the matte says so, JPEG and blur do what they say, bad input; the
heads' augmentation (colour and framing every view sees) is a rigid roll, a uniform scale and a shift
across the front view, with one colour rendition a head; turned heads are framed again by their face."""
import math

import pytest
import torch
import torch.nn.functional as F

from a3d.data.augment import augment_heads, augment_inputs, gaussian_blur, jpeg_compress, turn_angles
from a3d.core.cameras import Cameras, canonical_cameras
from a3d.core.gaussians import Gaussians
from a3d.core.rotations import quat_to_rotmat


def _portraits(B=4, S=64):
    """Discs of random colour and texture over white: [B, 3, S, S] images and [B, 1, S, S] alpha."""
    g = torch.Generator().manual_seed(1)
    yy, xx = torch.meshgrid(torch.arange(S), torch.arange(S), indexing="ij")
    r = ((xx - S / 2 + 0.5) ** 2 + (yy - S / 2 + 0.5) ** 2).sqrt()
    alpha = (S * 0.3 - r).clamp(0, 1).expand(B, 1, S, S).contiguous()
    fg = torch.rand(B, 3, 1, 1, generator=g) * 0.7 + 0.1 + 0.1 * torch.rand(B, 3, S, S, generator=g)
    return fg * alpha + (1 - alpha), alpha


def test_shapes_range_and_determinism():
    img, alpha = _portraits()
    out = augment_inputs(img, alpha, torch.Generator().manual_seed(0))
    assert out.shape == img.shape and out.dtype == img.dtype
    assert (out >= 0).all() and (out <= 1).all()
    again = augment_inputs(img, alpha, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)
    other = augment_inputs(img, alpha, torch.Generator().manual_seed(1))
    assert not torch.equal(out, other)
    # it changes the images, but they stay the same portraits
    assert (out - img).abs().mean() > 0.005
    assert (out - img).abs().mean() < 0.2
    assert augment_inputs(img, None, torch.Generator().manual_seed(0)).shape == img.shape
    # an empty matte (a captured photo without one) keeps the photo: it is not composited away
    empty = augment_inputs(img, torch.zeros_like(alpha), torch.Generator().manual_seed(0))
    assert (empty - img).abs().mean() < 0.2 and (empty[..., 28:36, 28:36] < 0.95).any()


def test_background_corners_stay_background():
    img, alpha = _portraits(B=16)
    out = augment_inputs(img, alpha, torch.Generator().manual_seed(3))
    # far from the disc the matte is 0 and the crop error is small: the framing background (white)
    assert torch.allclose(out[..., :4, :4], torch.ones_like(out[..., :4, :4]), atol=1e-4)


def test_returned_matte_goes_with_the_augmented_images():
    img, alpha = _portraits(B=16)
    out, a = augment_inputs(img, alpha, torch.Generator().manual_seed(5), return_alpha=True)
    assert torch.equal(out, augment_inputs(img, alpha, torch.Generator().manual_seed(5)))  # same images
    assert a.shape == alpha.shape and (a >= 0).all() and (a <= 1).all()
    assert not torch.equal(a, alpha)  # edges and framing changed it for some of the 16
    # where the returned matte is empty the image is the framing background; where it is full, it is not
    empty, full = (a == 0).expand_as(out), (a > 0.999).expand_as(out)
    assert torch.allclose(out[empty], torch.ones_like(out[empty]), atol=1e-5)  # white: framing.BACKGROUND
    assert (out[full] < 0.999).float().mean() > 0.9
    assert augment_inputs(img, None, return_alpha=True)[1] is None


def test_jpeg_quality_orders_the_error():
    img, _ = _portraits(B=2)
    hi = jpeg_compress(img, torch.tensor([95.0, 95.0]))
    lo = jpeg_compress(img, torch.tensor([10.0, 10.0]))
    e_hi, e_lo = (hi - img).abs().mean(), (lo - img).abs().mean()
    assert e_hi < 0.02 and e_lo > e_hi * 1.5
    # odd sizes are padded to whole blocks and cropped back
    odd = jpeg_compress(img[..., :61, :59], torch.tensor([50.0, 50.0]))
    assert odd.shape == (2, 3, 61, 59)


def test_blur_keeps_the_mean_and_smooths():
    img, _ = _portraits(B=2)
    out = gaussian_blur(img, torch.tensor([0.0, 2.0]))
    assert torch.allclose(out[0], img[0], atol=1e-4)  # σ = 0: unchanged
    assert abs(float(out[1].mean() - img[1].mean())) < 1e-3
    tv = lambda x: (x[..., 1:, :] - x[..., :-1, :]).abs().mean()  # noqa: E731
    assert tv(out[1]) < 0.7 * tv(img[1])


def test_bad_input():
    img, alpha = _portraits()
    with pytest.raises(ValueError, match="images"):
        augment_inputs(img[:, :1])
    with pytest.raises(ValueError, match="alpha"):
        augment_inputs(img, alpha[:2])


def test_colour_and_framing_can_be_left_to_the_heads():
    img, alpha = _portraits(B=16)
    full = augment_inputs(img, alpha, torch.Generator().manual_seed(2))
    rest = augment_inputs(img, alpha, torch.Generator().manual_seed(2), colour=False, framing=False)
    assert not torch.equal(full, rest)
    # without colour and framing the disc stays where it was and keeps its mean colour (blur, noise and
    # JPEG change a pixel, not the picture's colour)
    inside = (alpha > 0.999).expand_as(img)
    assert (rest[inside] - img[inside]).mean().abs() < 0.01
    assert (full[inside] - img[inside]).abs().mean() > 2 * (rest[inside] - img[inside]).abs().mean()


def _heads(B=24, N=300):
    g = torch.Generator().manual_seed(4)
    q = torch.randn(B, N, 4, generator=g)
    return Gaussians(means=torch.randn(B, N, 3, generator=g) * 0.3, quats=q / q.norm(dim=-1, keepdim=True),
                     scales=torch.rand(B, N, 3, generator=g) * 0.02 + 0.001,
                     opacities=torch.rand(B, N, generator=g), colors=torch.rand(B, N, 3, generator=g))


def test_augment_heads_is_a_similarity_about_the_front_view():
    heads, canon = _heads(), canonical_cameras(64)
    front = Cameras(canon.viewmats[:1], canon.Ks[:1], 64, 64)
    before = {k: getattr(heads, k).clone() for k in ("means", "quats", "scales", "colors")}
    out = augment_heads(heads, front, torch.Generator().manual_seed(0))
    assert all(torch.equal(getattr(heads, k), v) for k, v in before.items())  # inputs untouched
    again = augment_heads(heads, front, torch.Generator().manual_seed(0))
    assert torch.equal(out.means, again.means) and torch.equal(out.colors, again.colors)
    assert torch.equal(out.opacities, heads.opacities)
    axis = canon.viewmats[0, 2, :3]  # the front camera's optical axis in the world
    moved = recoloured = 0
    for b in range(len(heads.means)):
        m0, m1 = heads.means[b], out.means[b]
        # a uniform scale within ±5%, the same for the Gaussians' sizes
        s = (m1[1:] - m1[:1]).norm(dim=-1) / (m0[1:] - m0[:1]).norm(dim=-1)
        assert torch.allclose(s, s.mean().expand_as(s), rtol=1e-4) and 0.95 - 1e-5 <= s.mean() <= 1.05 + 1e-5
        assert torch.allclose(out.scales[b], heads.scales[b] * s.mean(), rtol=1e-4)
        # the rotation (least squares on the centred points) is a roll about the optical axis within ±4°,
        # and the Gaussians' orientations turn with it
        A, B_ = m0 - m0.mean(0), (m1 - m1.mean(0)) / s.mean()
        U, _, Vh = torch.linalg.svd(A.T @ B_)
        R = (U @ Vh).T
        assert torch.allclose(R @ axis, axis, atol=1e-4)
        assert torch.acos(((torch.trace(R) - 1) / 2).clamp(-1, 1)) <= torch.deg2rad(torch.tensor(4.0)) + 1e-4
        assert torch.allclose(quat_to_rotmat(out.quats[b]), R @ quat_to_rotmat(heads.quats[b]), atol=1e-4)
        # the shift is across the front view (none along its axis) and within ±4% of its width
        shift = m1.mean(0) - s.mean() * (R @ m0.mean(0))
        half_width = float(canon.viewmats[0, :3, 3].norm()) * 32 / float(canon.Ks[0, 0, 0])  # at the head's centre
        assert abs(float(shift @ axis)) < 1e-4 and float(shift.norm()) <= 0.08 * half_width * 2 ** 0.5 + 1e-5
        moved += bool(shift.norm() > 1e-4)
        # one colour rendition a head: the colours change together or not at all
        recoloured += bool((out.colors[b] - heads.colors[b]).abs().max() > 1e-6)
        assert (out.colors[b] >= 0).all() and (out.colors[b] <= 1).all()
    assert 0 < moved < len(heads.means) and 0 < recoloured < len(heads.means)  # 70% and 80% of heads
    with pytest.raises(ValueError, match="heads"):
        augment_heads(Gaussians(**{k: getattr(heads, k)[0] for k in ("means", "quats", "scales", "opacities",
                                                                     "colors")}), front)


def _image(points: torch.Tensor, cam: Cameras) -> torch.Tensor:
    """Pixel positions [..., 2] of world points [..., 3] in the one camera ``cam``."""
    vm, K = cam.viewmats.reshape(4, 4), cam.Ks.reshape(3, 3)
    c = points @ vm[:3, :3].T + vm[:3, 3]
    return (c[..., :2] / c[..., 2:3]) @ K[:2, :2].T + K[:2, 2]


def test_turned_heads_are_framed_by_their_face():
    """turn: each head turns (the back of the head moves across the image, the face turns away from the
    camera) but its pupils and mouth come back to where the unturned head's are, within what the
    least-squares 2D framing of three points can do (a turned face's eyes come closer together; real
    photos are framed the same way); the rest of the augmentation is unchanged; bad turns fail."""
    from a3d.core import framing

    S, B = 128, 64
    front = canonical_cameras(S)[0:1]
    anchors = torch.tensor([framing.FACE_ANCHORS_3D[n] for n in ("right_eye", "left_eye", "mouth")])
    pts = torch.cat([anchors, torch.tensor([[0.0, 0.0, -0.5], [0.0, 0.0, 0.5]])])  # + back and front of the head
    heads = Gaussians(means=pts.expand(B, 5, 3).clone(), quats=torch.tensor([1.0, 0, 0, 0]).expand(B, 5, 4).clone(),
                      scales=torch.full((B, 5, 3), 0.01), opacities=torch.ones(B, 5), colors=torch.rand(B, 5, 3))
    plain = augment_heads(heads, front, torch.Generator().manual_seed(1))
    zero = augment_heads(heads, front, torch.Generator().manual_seed(1), turn=(0.0, 0.0))
    assert all(torch.equal(getattr(plain, k), getattr(zero, k)) for k in ("means", "quats", "scales", "colors"))
    turned = augment_heads(heads, front, torch.Generator().manual_seed(1), turn=(30.0, 10.0))
    assert torch.equal(turned.colors, plain.colors)  # the colour rendition is drawn first, as before
    moved = (_image(turned.means, front) - _image(plain.means, front)).norm(dim=-1)  # [B, 5] pixels
    assert moved[:, :3].mean() < 1.0 and moved[:, :3].max() < 2.5  # the face stays framed (fit: 0.65 / 2.0)
    assert moved[:, 3].mean() > 8 and moved[:, 3].max() > 25  # the back of the head swings (30° at 0.5 + pivot)
    # a similarity of each head: every distance scales by one factor, within what the reframing may zoom
    d0, d1 = torch.cdist(plain.means, plain.means), torch.cdist(turned.means, turned.means)
    off = ~torch.eye(5, dtype=torch.bool)
    ratio = d1[:, off] / d0[:, off]
    assert torch.allclose(ratio, ratio[:, :1].expand_as(ratio), rtol=1e-4)
    assert ratio.min() > 0.99 and ratio.max() < 1 / math.cos(math.radians(30)) + 0.02
    assert torch.allclose(turned.scales / plain.scales, ratio[:, :1, None].expand(B, 5, 3), rtol=1e-4)
    # the Gaussians turn with the points: the front point's direction from the pivot is rotated like its quaternion
    assert torch.allclose(turned.quats.norm(dim=-1), torch.ones(B, 5), atol=1e-5)
    R = quat_to_rotmat(turned.quats[:, 4]) @ quat_to_rotmat(plain.quats[:, 4]).transpose(1, 2)
    nose_dir = F.normalize(turned.means[:, 4] - turned.means[:, 3], dim=-1)
    plain_dir = F.normalize(plain.means[:, 4] - plain.means[:, 3], dim=-1)
    assert torch.allclose((R @ plain_dir[..., None])[..., 0], nose_dir, atol=1e-4)
    for bad in ((-1.0, 0.0), (0.0, 91.0), (10.0,)):
        with pytest.raises(ValueError, match="turn"):
            augment_heads(heads, front, turn=bad)


def test_turn_draw_bends_toward_facing_the_camera():
    """turn_power: power 1 is the uniform draw, bit for bit as before it existed; power 2 keeps the range and
    the sign's balance and puts the median turn at a quarter of the maximum (|v|² with v uniform: median ¼);
    the turned heads of augment_heads follow the same draw; powers outside [1, 8] fail."""
    u = torch.rand(200_000, 2, generator=torch.Generator().manual_seed(3))
    uniform = turn_angles(u, (30.0, 10.0))
    assert torch.equal(uniform, (u * 2 - 1) * torch.tensor([30.0, 10.0]))
    bent = turn_angles(u, (30.0, 10.0), 2.0)
    assert bent[:, 0].abs().max() <= 30.0 and bent[:, 1].abs().max() <= 10.0
    assert torch.equal(bent.sign(), uniform.sign())
    assert abs(bent[:, 0].abs().median().item() - 7.5) < 0.1 and abs(uniform[:, 0].abs().median().item() - 15) < 0.1
    assert abs((bent[:, 0].abs() < 5).float().mean().item() - math.sqrt(5 / 30)) < 0.005  # ~41% within 5°, not 17%
    front = canonical_cameras(64)[0:1]
    heads = Gaussians(means=torch.randn(8, 50, 3) * 0.3, quats=F.normalize(torch.randn(8, 50, 4), dim=-1),
                      scales=torch.full((8, 50, 3), 0.01), opacities=torch.ones(8, 50), colors=torch.rand(8, 50, 3))
    def turned(**power):  # the same generator state each time: only the bend differs
        return augment_heads(heads, front, torch.Generator().manual_seed(4), turn=(30.0, 10.0), **power)
    plain, one, two = turned(), turned(turn_power=1.0), turned(turn_power=2.0)
    assert torch.equal(one.means, plain.means)
    assert not torch.equal(two.means, plain.means) and torch.equal(two.colors, plain.colors)
    for bad in (0.5, 9.0):
        with pytest.raises(ValueError, match="turn_power"):
            augment_heads(heads, front, turn=(30.0, 0.0), turn_power=bad)
