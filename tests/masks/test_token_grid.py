"""Regions on the token grid: same tokens at any mask resolution, half-coverage rule, overlaps, errors."""

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from magicinfinite_core.errors import InputError
from magicinfinite_core.imaging import fit_image
from magicinfinite_core.masks import COVERAGE_THRESHOLD, Regions


@st.composite
def token_patterns(draw) -> torch.Tensor:
    """A class grid [h, w] (0 = background, 1..S) in which every speaker owns at least one token."""
    grid_h, grid_w = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    speakers = draw(st.integers(1, min(4, grid_h * grid_w)))
    cells = draw(st.lists(st.integers(0, speakers), min_size=grid_h * grid_w, max_size=grid_h * grid_w))
    grid = torch.tensor(cells).view(grid_h, grid_w)
    assume(all((grid == s).any() for s in range(1, speakers + 1)))
    return grid


def draw_pattern(grid: torch.Tensor, cell_px: int) -> torch.Tensor:
    """Speaker masks [S, h*cell_px, w*cell_px] with each token cell drawn as cell_px x cell_px pixels."""
    speakers = int(grid.max())
    one_hot = torch.stack([(grid == s).float() for s in range(1, speakers + 1)])
    return one_hot.repeat_interleave(cell_px, dim=1).repeat_interleave(cell_px, dim=2)


@settings(max_examples=30, deadline=None)
@given(grid=token_patterns())
def test_grid_aligned_mask_at_three_resolutions_gives_the_same_tokens(grid: torch.Tensor) -> None:
    width, height = 16 * grid.shape[1], 16 * grid.shape[0]
    expected = torch.stack([(grid == s).float() for s in range(1, int(grid.max()) + 1)])
    for cell_px in (16, 24, 40):  # drawn at 1x, 1.5x and 2.5x the video resolution
        regions = Regions(draw_pattern(grid, cell_px))
        assert torch.equal(regions.token_masks(width, height), expected), cell_px
        assert torch.equal(regions.token_classes(width, height), grid), cell_px


@settings(max_examples=30, deadline=None)
@given(
    grid_h=st.integers(1, 5), grid_w=st.integers(1, 5), speakers=st.integers(1, 4), seed=st.integers(0, 2**16)
)
def test_token_masks_are_binary_and_disjoint_for_any_soft_masks(
    grid_h: int, grid_w: int, speakers: int, seed: int
) -> None:
    generator = torch.Generator().manual_seed(seed)
    masks = torch.rand(speakers, 13 + seed % 50, 17 + seed % 31, generator=generator)
    try:
        tokens = Regions(masks).token_masks(16 * grid_w, 16 * grid_h)
    except InputError as error:  # random masks may leave a speaker without tokens: that must be the reason
        assert "empty on the" in str(error)
        return
    assert tokens.shape == (speakers, grid_h, grid_w)
    assert set(tokens.unique().tolist()) <= {0.0, 1.0}
    assert tokens.sum(dim=0).max() <= 1


@pytest.mark.parametrize(("covered_rows", "joins"), [(7, False), (8, True), (9, True)])
def test_a_token_joins_a_region_at_half_coverage(covered_rows: int, joins: bool) -> None:
    mask = torch.zeros(1, 32, 16)
    mask[0, :16] = 1.0  # token (0, 0) fully covered, so the speaker is never empty
    mask[0, 16 : 16 + covered_rows] = 1.0  # token (1, 0) covered covered_rows / 16
    assert COVERAGE_THRESHOLD == 0.5
    assert Regions(mask).token_masks(16, 32)[0, 1, 0].item() == float(joins)


def test_overlap_goes_to_the_larger_coverage() -> None:
    masks = torch.zeros(2, 16, 48)
    masks[0, :, 0:16] = 1.0  # token 0: speaker 1 only
    masks[0, :, 16:28] = 1.0  # token 1: speaker 1 covers 75 % ...
    masks[1, :, 16:48] = 1.0  # ... speaker 2 covers 100 %; token 2: speaker 2 only
    assert Regions(masks).token_classes(48, 16).tolist() == [[1, 2, 2]]


def test_an_exact_tie_goes_to_the_lower_numbered_speaker() -> None:
    masks = torch.zeros(2, 16, 48)
    masks[0, :, 0:24] = 1.0  # speaker 1: token 0 and half of token 1
    masks[1, :, 24:48] = 1.0  # speaker 2: the other half of token 1 and token 2
    assert Regions(masks).token_classes(48, 16).tolist() == [[1, 1, 2]]


def test_masks_get_the_same_centre_crop_as_the_reference_image() -> None:
    # A 2:1 canvas into a square video: the centre half of the width is kept, for image and mask alike.
    image = torch.zeros(1, 64, 128, 1)
    image[:, :, 32:64] = 1.0  # left half of the kept centre
    mask = image[..., 0]
    fitted_image = fit_image(image, 32, 32)[0, :, :, 0]
    image_tokens = (torch.nn.functional.avg_pool2d(fitted_image[None], 16)[0] >= 0.5).float()
    tokens = Regions(mask).token_masks(32, 32)[0]
    assert tokens.tolist() == [[1.0, 0.0], [1.0, 0.0]]
    assert torch.equal(tokens, image_tokens)


def test_regions_can_differ_in_resolution_from_the_video() -> None:
    masks = torch.zeros(2, 90, 160)
    masks[0, :, :80] = 1.0
    masks[1, :, 80:] = 1.0
    classes = Regions(masks).token_classes(832, 480)
    assert classes.shape == (30, 52)
    assert (classes[:, :26] == 1).all() and (classes[:, 26:] == 2).all()


def test_a_region_too_small_for_the_grid_is_an_error_suggesting_a_larger_region() -> None:
    masks = torch.zeros(2, 64, 64)
    masks[0, :, :32] = 1.0
    masks[1, 40:44, 40:44] = 1.0  # 4 x 4 pixels: a quarter of a token's side
    with pytest.raises(InputError, match=r"Speaker 2's region is empty on the 4x4 token grid.*larger region"):
        Regions(masks).token_masks(64, 64)


def test_a_region_hidden_under_another_names_the_other_speaker() -> None:
    masks = torch.zeros(2, 32, 32)
    masks[0] = 1.0
    masks[1, :16, :16] = 1.0  # speaker 1 covers this token as much: the tie goes to speaker 1
    with pytest.raises(InputError, match=r"Speaker 2's region is empty.*as much by speaker 1 \(overlaps"):
        Regions(masks).token_masks(32, 32)


@pytest.mark.parametrize(("width", "height"), [(100, 64), (64, 0), (64, 40)])
def test_a_video_size_off_the_16_pixel_grid_is_an_error(width: int, height: int) -> None:
    with pytest.raises(InputError, match="multiples of 16"):
        Regions(torch.ones(1, 8, 8)).token_masks(width, height)
