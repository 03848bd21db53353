"""Per-speaker inputs (mask, box, nothing) become one Regions value on the reference image's canvas."""

import pytest
import torch

from magicinfinite_core.errors import InputError
from magicinfinite_core.masks import RegionSource, build_regions


def test_missing_sources_get_the_automatic_split() -> None:
    regions = build_regions(64, 32, 2)
    assert regions.masks.shape == (2, 32, 64)
    assert regions.masks[0, :, :32].min() == 1 and regions.masks[0, :, 32:].max() == 0


def test_mask_box_and_split_can_be_mixed() -> None:
    mask = torch.zeros(16, 32)  # half the canvas resolution, same aspect
    mask[:, :8] = 1.0
    regions = build_regions(64, 32, 3, [RegionSource(mask=mask), RegionSource(box="0.5,0,0.25,1")],
                            split_layout="left to right")
    # upscaled 2x: the edge between pixels 15 and 16 is softened by the bilinear resize
    assert regions.masks[0, :, :15].min() == 1 and regions.masks[0, :, 17:].max() == 0
    assert regions.masks[1, :, 32:48].min() == 1 and regions.masks[1].sum() == 32 * 16
    third = regions.masks[2]  # speaker 3 of 3: the right third
    assert third[:, 43:].min() == 1 and third[:, :42].max() == 0


def test_a_mask_batch_is_merged_into_one_region() -> None:
    frames = torch.zeros(3, 8, 8)
    frames[0, :, :2] = 1.0
    frames[2, :, 6:] = 1.0
    merged = build_regions(8, 8, 1, [RegionSource(mask=frames)]).masks[0]
    assert merged[:, :2].min() == 1 and merged[:, 6:].min() == 1 and merged[:, 2:6].max() == 0


def test_a_mask_and_a_box_for_one_speaker_is_an_error() -> None:
    with pytest.raises(InputError, match="Speaker 1 has both a mask and a box"):
        build_regions(8, 8, 1, [RegionSource(mask=torch.ones(8, 8), box="0,0,4,4")])


def test_inputs_beyond_num_speakers_are_an_error() -> None:
    sources = [RegionSource(), RegionSource(), RegionSource(box="0,0,4,4")]
    with pytest.raises(InputError, match="speaker 3 but num_speakers is 2"):
        build_regions(8, 8, 2, sources)


def test_bad_box_errors_name_the_speaker() -> None:
    with pytest.raises(InputError, match="Speaker 2: Box '1,2': expected four numbers"):
        build_regions(8, 8, 2, [RegionSource(), RegionSource(box="1,2")])


@pytest.mark.parametrize(
    ("mask", "message"),
    [
        (torch.ones(1, 1, 8, 8), r"\[height, width\] or \[frames, height, width\]"),
        (torch.full((8, 8), float("nan")), "Speaker 1's mask contains NaN"),
        (torch.zeros(8, 8), "Speaker 1's mask is empty"),
    ],
)
def test_bad_masks_are_errors(mask: torch.Tensor, message: str) -> None:
    with pytest.raises(InputError, match=message):
        build_regions(8, 8, 1, [RegionSource(mask=mask)])


def test_shrinking_a_region_away_is_an_error() -> None:
    with pytest.raises(InputError, match="empty after shrinking by 3 pixels"):
        build_regions(32, 32, 1, [RegionSource(box="10,10,4,4")], grow_px=-3)


def test_grow_then_feather_are_applied() -> None:
    regions = build_regions(64, 64, 1, [RegionSource(box="20,20,8,8")], grow_px=4, feather_px=2)
    row = regions.masks[0, 24]
    assert row[16:32].min() > 0.4 and row[:12].max() < 0.01 and 0 < row[15].item() < 1


@pytest.mark.parametrize("count", [0, 5])
def test_speaker_count_out_of_range_is_an_error(count: int) -> None:
    with pytest.raises(InputError, match="num_speakers must be 1 to 4"):
        build_regions(8, 8, count)
