"""Grow, shrink and feather move or soften region edges by the stated number of pixels."""

import pytest
import torch

from magicinfinite_core.errors import InputError
from magicinfinite_core.masks.morphology import feather, grow


def rectangle(top: int, left: int, height: int, width: int, size: int = 64) -> torch.Tensor:
    mask = torch.zeros(1, size, size)
    mask[0, top : top + height, left : left + width] = 1.0
    return mask


@pytest.mark.parametrize("pixels", [1, 5, 12])
def test_grow_and_shrink_move_every_edge_by_the_given_pixels(pixels: int) -> None:
    assert torch.equal(grow(rectangle(20, 20, 20, 10), pixels), rectangle(20 - pixels, 20 - pixels,
                                                                         20 + 2 * pixels, 10 + 2 * pixels))
    assert torch.equal(grow(rectangle(20, 20, 30, 30), -pixels), rectangle(20 + pixels, 20 + pixels,
                                                                          30 - 2 * pixels, 30 - 2 * pixels))


def test_a_region_at_the_image_edge_does_not_shrink_away_from_it() -> None:
    left_half = rectangle(0, 0, 64, 32)
    assert torch.equal(grow(left_half, -4), rectangle(0, 0, 64, 28))


def test_zero_leaves_masks_unchanged() -> None:
    mask = torch.rand(2, 10, 10)
    assert torch.equal(grow(mask, 0), mask) and torch.equal(feather(mask, 0), mask)


def test_feather_softens_an_edge_around_its_old_place() -> None:
    soft = feather(rectangle(0, 0, 64, 32), 6)[0, 10]
    assert soft[:20].min() == pytest.approx(1.0, abs=1e-4) and soft[45:].max() == pytest.approx(0.0, abs=1e-4)
    assert 0.0 < soft[34].item() < soft[31].item() < 1.0  # a ramp across the old edge
    assert soft[31].item() + soft[32].item() == pytest.approx(1.0, abs=1e-3)  # symmetric: edge stays put
    assert soft.min() >= 0 and soft.max() <= 1


def test_negative_feather_is_an_error() -> None:
    with pytest.raises(InputError, match="feather_px"):
        feather(torch.ones(1, 4, 4), -1)
