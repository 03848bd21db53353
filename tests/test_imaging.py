"""fit_image: resize to cover the frame, then centre-crop; exact output size for every input size."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from magicinfinite_core.errors import InputError
from magicinfinite_core.imaging import fit_image


@settings(max_examples=40, deadline=None)
@given(
    src_h=st.integers(1, 64), src_w=st.integers(1, 64), height=st.integers(1, 48), width=st.integers(1, 48)
)
def test_output_has_exact_size_and_stays_in_range(src_h: int, src_w: int, height: int, width: int) -> None:
    image = torch.rand(2, src_h, src_w, 3)
    out = fit_image(image, width, height)
    assert out.shape == (2, height, width, 3)
    assert out.min() >= image.min() - 1e-6 and out.max() <= image.max() + 1e-6


def test_same_size_is_unchanged() -> None:
    image = torch.rand(1, 12, 20, 3)
    assert torch.equal(fit_image(image, 20, 12), image)


def test_wider_source_is_trimmed_left_and_right_evenly() -> None:
    # 8 x 16 source into an 8 x 8 frame: the centre 8 columns survive untouched (no resize needed).
    image = torch.arange(16.0).expand(1, 8, 16).unsqueeze(-1)
    out = fit_image(image, 8, 8)
    assert torch.equal(out[0, 0, :, 0], torch.arange(4.0, 12.0))


def test_taller_source_is_trimmed_top_and_bottom_then_resized() -> None:
    # A 40 x 20 source whose middle 20 rows are 1: covering a 10 x 10 frame keeps just those rows.
    image = torch.zeros(1, 40, 20, 1)
    image[:, 10:30] = 1.0
    out = fit_image(image, 10, 10)
    assert torch.allclose(out, torch.ones(1, 10, 10, 1))


def test_keeps_dtype() -> None:
    image = torch.rand(1, 30, 30, 3).to(torch.bfloat16)
    assert fit_image(image, 16, 16).dtype == torch.bfloat16


@pytest.mark.parametrize("shape", [(8, 8, 3), (1, 1, 8, 8, 3)])
def test_wrong_rank_is_an_input_error(shape: tuple[int, ...]) -> None:
    with pytest.raises(InputError, match=r"\[N, H, W, C\]"):
        fit_image(torch.zeros(shape), 8, 8)


def test_bad_size_is_an_input_error() -> None:
    with pytest.raises(InputError, match="positive integers"):
        fit_image(torch.zeros(1, 8, 8, 3), 0, 8)
