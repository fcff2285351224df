"""Input-view augmentation (a3d.augment): shapes and range, determinism by generator, the background
stays the framing background where the matte says so, JPEG and blur do what they say, bad input."""
import pytest
import torch

from a3d.augment import augment_inputs, gaussian_blur, jpeg_compress


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
