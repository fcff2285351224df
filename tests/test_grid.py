"""a3d.eval.grid: the grid index scores patch-periodic patterns high and direction-free images about 1, is
unchanged by 90° rotations and mirrors, and measures a head's back view."""
import math
import statistics

import pytest
import torch

from a3d.data.synth import SyntheticHeads
from a3d.eval.grid import GRID_SIZE, back_view_grid_index, grid_index, luminance

S = 256
_y, _x = torch.meshgrid(torch.arange(S) + 0.5, torch.arange(S) + 0.5, indexing="ij")
HEAD = ((((_x - 128) / 100) ** 2 + ((_y - 120) / 110) ** 2) < 1).float()  # a head-sized ellipse as the alpha


def _rgb(gray: torch.Tensor) -> torch.Tensor:
    return gray.expand(3, S, S).contiguous()


def test_patch_tiled_pattern_scores_high_at_its_period():
    """Every 8 × 8 patch given the same colours (the decoder's failure), over noise: the index is in the
    thousands and peaks at the patch period or its harmonic."""
    gen = torch.Generator().manual_seed(1)
    tile = 0.5 + 0.3 * torch.rand(3, 8, 8, generator=gen).repeat(1, S // 8, S // 8) + 0.1 * torch.rand(3, S, S,
                                                                                                        generator=gen)
    g = grid_index(tile, HEAD)
    assert g.index > 100 and g.period in (8.0, 4.0)
    assert g.index == max(g.ratios.values()) and g.ratios[g.period] == g.index
    assert min(g.ratios) == 4.0 and max(g.ratios) == 32.0 and len(g.ratios) == 57  # k = 8 … 64 bins at 256²
    woven = _rgb(0.5 + 0.2 * (torch.cos(2 * math.pi * _x / 16) + torch.cos(2 * math.pi * _y / 16)))
    g = grid_index(woven, HEAD)
    assert g.index > 1000 and g.period == 16.0


def test_direction_free_images_score_about_one():
    noise = torch.rand(3, S, S, generator=torch.Generator().manual_seed(0))
    g = grid_index(noise, HEAD)
    assert g.index < 6  # the largest of 57 ratios, each of two independent on-axis powers
    assert 0.6 < statistics.median(g.ratios.values()) < 1.5
    gradient = _rgb(0.2 + 0.5 * _x / S + 0.3 * _y / S)
    assert grid_index(gradient, HEAD).index < 4
    # a checkerboard's fundamental sits on the diagonals: not a grid by this measure
    checker = _rgb(((_x // 4 + _y // 4) % 2).float())
    assert grid_index(checker, HEAD).index < 1


def test_rotations_and_mirrors():
    gen = torch.Generator().manual_seed(2)
    img = 0.5 + 0.3 * torch.rand(3, 8, 8, generator=gen).repeat(1, S // 8, S // 8) + 0.2 * torch.rand(3, S, S,
                                                                                                       generator=gen)
    ref = grid_index(img, HEAD).index
    for rgb, alpha in ((img.rot90(1, (1, 2)), HEAD.rot90(1, (0, 1))), (img.flip(-1), HEAD.flip(-1)),
                       (img.flip(-2), HEAD.flip(-2))):
        assert grid_index(rgb, alpha).index == pytest.approx(ref, rel=1e-9)
    # the same woven pattern turned by 45°: its power leaves the axes
    u, v = (_x + _y) / math.sqrt(2), (_x - _y) / math.sqrt(2)
    turned = _rgb(0.5 + 0.2 * (torch.cos(2 * math.pi * u / 16) + torch.cos(2 * math.pi * v / 16)))
    assert grid_index(turned, HEAD).index < 2


def test_outside_the_head_does_not_count():
    """Pixels at alpha ≤ 0.5 are zeroed: a grid painted only outside the matte leaves the index of the inside."""
    noise = torch.rand(3, S, S, generator=torch.Generator().manual_seed(3))
    lines = ((_x % 8 < 1) | (_y % 8 < 1)).float().expand(3, S, S)
    inside = HEAD.bool().expand(3, S, S)
    assert grid_index(torch.where(inside, noise, lines), HEAD).index == pytest.approx(grid_index(noise, HEAD).index)
    assert grid_index(torch.where(inside, lines, noise), HEAD).index > 100


def test_luminance_and_argument_checks():
    torch.testing.assert_close(luminance(torch.ones(2, 3, 4, 4)), torch.ones(2, 4, 4))
    assert float(luminance(torch.tensor([0.0, 1.0, 0.0]).view(3, 1, 1))) == pytest.approx(0.587)
    with pytest.raises(ValueError, match="rgb"):
        grid_index(torch.rand(3, S, S // 2), HEAD)
    with pytest.raises(ValueError, match="too small"):
        grid_index(torch.rand(3, 32, 32), torch.ones(32, 32))
    with pytest.raises(ValueError, match="alpha"):
        grid_index(torch.rand(3, S, S), HEAD[:-1])
    with pytest.raises(ValueError, match="no head"):
        grid_index(torch.rand(3, S, S), torch.zeros(S, S))


def test_back_view_of_a_head():
    heads = SyntheticHeads("cpu", seed=5, num_gaussians=3000, image_size=64).sample(2).gaussians
    g = back_view_grid_index(heads.scene(0))
    assert math.isfinite(g.index) and g.index > 0 and 4.0 <= g.period <= 32.0
    assert len(g.ratios) == GRID_SIZE // 4 - GRID_SIZE // 32 + 1
    assert g.as_dict() == {"grid_index": g.index, "grid_period": g.period}
    with pytest.raises(ValueError, match="one head"):
        back_view_grid_index(heads)
