"""Per-speaker inputs (mask, box, nothing) become one Regions value on the reference image's canvas."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st
from PIL import Image

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


def solid_mask(width: int, height: int, value: float = 1.0) -> torch.Tensor:
    """What ComfyUI's SolidMask gives: [1, height, width] filled with `value`."""
    return torch.full((1, height, width), value, dtype=torch.float32)


def load_image_alpha_mask(path) -> torch.Tensor:
    """What ComfyUI's LoadImage gives as MASK for a picture with alpha: 1 - alpha / 255, [1, H, W]."""
    alpha = np.array(Image.open(path).getchannel("A")).astype(np.float32) / 255.0
    return (1.0 - torch.from_numpy(alpha)).unsqueeze(0)


# (mask width, height) -> (reference image width, height): phone photos, square crops, video frames; all but
# the last gave an all-ones mask a value above 1 (1.0000002) after the antialiased resize.
SIZE_PAIRS = [((1024, 1024), (832, 480)), ((1280, 720), (512, 512)), ((1920, 1080), (512, 512)),
              ((1920, 1080), (1024, 1024)), ((1000, 1000), (832, 480)), ((4032, 3024), (1280, 720)),
              ((4032, 3024), (720, 1280)), ((4032, 3024), (512, 512)), ((512, 512), (832, 480))]


@pytest.mark.parametrize(("mask_size", "canvas"), SIZE_PAIRS)
def test_a_solid_mask_of_another_size_than_the_image_is_taken(mask_size, canvas) -> None:
    regions = build_regions(*canvas, 1, [RegionSource(mask=solid_mask(*mask_size))])
    assert regions.masks.shape == (1, canvas[1], canvas[0])
    assert regions.masks.min() >= 0 and regions.masks.max() == 1


@pytest.mark.parametrize(("mask_size", "canvas"), SIZE_PAIRS[:4])
def test_a_load_image_alpha_mask_of_another_size_is_taken(tmp_path, mask_size, canvas) -> None:
    width, height = mask_size
    pixels = np.zeros((height, width, 4), np.uint8)
    pixels[:, : width // 2, 3] = 255  # the left half opaque: LoadImage's mask is 1 on the transparent right
    Image.fromarray(pixels, "RGBA").save(tmp_path / "cut_out.png")
    mask = load_image_alpha_mask(tmp_path / "cut_out.png")
    regions = build_regions(*canvas, 2, [RegionSource(), RegionSource(mask=mask)])
    right = regions.masks[1]
    assert right.min() >= 0 and right.max() == 1 and right[:, : canvas[0] // 3].max() == 0


@hyp_settings(max_examples=60, deadline=None)
@given(st.integers(1, 160), st.integers(1, 160), st.integers(1, 160), st.integers(1, 160),
       st.floats(0.01, 1.0))
def test_a_mask_at_any_resolution_stays_within_0_1_on_any_canvas(mask_w, mask_h, width, height, value):
    regions = build_regions(width, height, 1, [RegionSource(mask=solid_mask(mask_w, mask_h, value))])
    assert regions.masks.min() >= 0 and regions.masks.max() <= 1
