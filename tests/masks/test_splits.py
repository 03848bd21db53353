"""Automatic splits: equal strips, speaker 1 first, together covering the image exactly once."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from magicinfinite_core.errors import InputError
from magicinfinite_core.masks import Regions
from magicinfinite_core.masks.splits import SPLIT_LAYOUTS, split_mask


def split_masks(count: int, layout: str, width: int, height: int) -> torch.Tensor:
    """All `count` strips [count, height, width], as the region builder asks for them one by one."""
    return torch.stack([split_mask(i, count, layout, width, height) for i in range(count)])


@settings(max_examples=40, deadline=None)
@given(
    count=st.integers(1, 4), layout=st.sampled_from(SPLIT_LAYOUTS), width=st.integers(1, 200),
    height=st.integers(1, 200),
)
def test_strips_cover_every_pixel_exactly_once(count: int, layout: str, width: int, height: int) -> None:
    strips = split_masks(count, layout, width, height)
    assert strips.shape == (count, height, width)
    assert torch.allclose(strips.sum(dim=0), torch.ones(height, width), atol=1e-5)
    assert torch.allclose(strips.sum(dim=(1, 2)), torch.full((count,), width * height / count), rtol=1e-4)


def test_two_speakers_left_to_right_are_the_left_and_right_halves_on_the_token_grid() -> None:
    classes = Regions(split_masks(2, "left to right", 200, 100)).token_classes(64, 32)
    assert classes.tolist() == [[1, 1, 2, 2]] * 2


def test_top_to_bottom_puts_speaker_1_on_top() -> None:
    top = split_mask(0, 2, "top to bottom", 4, 4)
    assert top[:2].sum() == 8 and top[2:].sum() == 0


def test_an_odd_token_column_between_halves_goes_to_speaker_1() -> None:
    classes = Regions(split_masks(2, "left to right", 48, 16)).token_classes(48, 16)
    assert classes.tolist() == [[1, 1, 2]]


def test_unknown_layout_is_an_error() -> None:
    with pytest.raises(InputError, match="left to right, top to bottom"):
        split_mask(0, 2, "diagonal", 8, 8)  # type: ignore[arg-type]
