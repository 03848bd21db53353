"""The Regions value refuses bad masks with messages naming the speaker, and binds region i to track i."""

import pytest
import torch

from magicinfinite_core.errors import InputError
from magicinfinite_core.masks import Regions, check_binding


def test_valid_masks_are_kept_as_float32() -> None:
    regions = Regions(torch.ones(2, 8, 8, dtype=torch.float64))
    assert regions.num_speakers == 2 and regions.masks.dtype == torch.float32


@pytest.mark.parametrize(
    ("masks", "message"),
    [
        (torch.ones(8, 8), r"\[speakers, height, width\].*\(8, 8\)"),
        (torch.ones(1, 2, 8, 8), r"\[speakers, height, width\].*\(1, 2, 8, 8\)"),
        (torch.ones(2, 0, 8), r"non-empty picture"),
        (torch.ones(0, 8, 8), r"1 to 4 speaker masks, got 0"),
        (torch.ones(5, 8, 8), r"1 to 4 speaker masks, got 5"),
    ],
)
def test_wrong_shape_or_count_is_an_error(masks: torch.Tensor, message: str) -> None:
    with pytest.raises(InputError, match=message):
        Regions(masks)


def test_nan_is_an_error_naming_the_speaker() -> None:
    masks = torch.ones(2, 8, 8)
    masks[1, 3, 3] = float("nan")
    with pytest.raises(InputError, match="Speaker 2's mask contains NaN"):
        Regions(masks)


def test_values_outside_0_1_are_an_error_with_the_range_found() -> None:
    masks = torch.ones(1, 8, 8) * 255
    with pytest.raises(InputError, match=r"Speaker 1's mask has values from 255 to 255; expected 0 to 1"):
        Regions(masks)


def test_the_range_error_prints_values_that_tell_them_from_0_and_1() -> None:
    masks = torch.ones(1, 8, 8)
    masks[0, 0, 0] = torch.nextafter(torch.tensor(1.0), torch.tensor(2.0)) + 1e-7  # 1.00000024
    masks[0, 0, 1] = -1e-8
    with pytest.raises(InputError, match=r"values from -9.99999994e-09 to 1.00000024; expected 0 to 1"):
        Regions(masks)


def test_an_all_zero_mask_is_an_error() -> None:
    masks = torch.ones(3, 8, 8)
    masks[2] = 0
    with pytest.raises(InputError, match="Speaker 3's mask is empty"):
        Regions(masks)


def test_not_a_tensor_is_an_error() -> None:
    with pytest.raises(InputError, match="got list"):
        Regions([[0.0]])  # type: ignore[arg-type]


def test_binding_accepts_equal_counts_and_no_regions() -> None:
    check_binding(Regions(torch.ones(2, 8, 8)), 2)
    check_binding(None, 3)


def test_binding_names_both_counts() -> None:
    with pytest.raises(InputError, match=r"3 speaker region\(s\) but the audio has 2 track\(s\)"):
        check_binding(Regions(torch.ones(3, 8, 8)), 2)
