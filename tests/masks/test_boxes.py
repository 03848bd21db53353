"""Boxes `x,y,w,h` in pixels or in fractions of the reference image draw the same region."""

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from magicinfinite_core.errors import InputError
from magicinfinite_core.masks.boxes import box_mask, parse_box


@settings(max_examples=60, deadline=None)
@given(
    canvas_w=st.integers(2, 300),
    canvas_h=st.integers(2, 300),
    x=st.floats(0, 0.95),
    y=st.floats(0, 0.95),
    w=st.floats(0.01, 1),
    h=st.floats(0.01, 1),
)
def test_fractions_and_pixels_agree(
    canvas_w: int, canvas_h: int, x: float, y: float, w: float, h: float
) -> None:
    in_pixels = (x * canvas_w, y * canvas_h, w * canvas_w, h * canvas_h)
    assume(max(in_pixels) > 1)  # numbers all within 0..1 read as fractions, whatever was meant
    from_pixels = box_mask(",".join(repr(v) for v in in_pixels), canvas_w, canvas_h)
    from_fractions = box_mask(f"{x!r},{y!r},{w!r},{h!r}", canvas_w, canvas_h)
    assert torch.allclose(from_pixels, from_fractions, atol=1e-5)


def test_a_whole_pixel_box_covers_exactly_its_pixels() -> None:
    mask = box_mask("2, 1, 3, 2", 8, 4)
    expected = torch.zeros(4, 8)
    expected[1:3, 2:5] = 1.0
    assert torch.equal(mask, expected)


def test_a_box_edge_between_pixels_covers_them_partly() -> None:
    mask = box_mask("0.25,0,0.5,1", 6, 1)  # columns 1.5 .. 4.5 of 6
    assert mask[0].tolist() == [0.0, 0.5, 1.0, 1.0, 0.5, 0.0]


def test_a_box_past_the_edge_is_clipped() -> None:
    assert box_mask("4,0,100,100", 8, 8).sum().item() == 4 * 8


def test_whitespace_and_semicolons_separate_fields() -> None:
    assert parse_box(" 1 2;3 , 4 ", 10, 10) == (1.0, 2.0, 3.0, 4.0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1,2,3", "four numbers"),
        ("a,b,c,d", "must be a number"),
        ("-1,0,4,4", "zero or positive"),
        ("0,0,0,4", "greater than zero"),
        ("nan,0,4,4", "NaN"),
        ("20,0,4,4", "starts outside the 10x10 image"),
        ("1,0,0.5,0.5", "starts outside"),  # fractions: x = 1 is the right edge
    ],
)
def test_bad_boxes_are_errors(text: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_box(text, 10, 10)
