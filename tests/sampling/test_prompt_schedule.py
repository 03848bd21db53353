"""Prompt schedules: parsing "seconds: prompt" entries and picking the prompt at a window's centre."""

import pytest
import torch

from magicinfinite_core.errors import InputError
from magicinfinite_core.sampling.text import TextConditioning, parse_prompt_schedule


def test_entries_on_lines_or_separated_by_slashes() -> None:
    expected = ((0.0, "calm"), (12.5, "laughing"))
    assert parse_prompt_schedule("0: calm / 12.5: laughing") == expected
    assert parse_prompt_schedule("0: calm\n12.5: laughing\n") == expected


def test_a_plain_prompt_is_one_entry_at_zero_even_with_colons_and_slashes() -> None:
    text = "A woman talks: warm light, 35mm / shallow depth"
    assert parse_prompt_schedule(text) == ((0.0, text),)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("3: late start\n5: later", "start at 0"),
        ("0: a\n5: b\n4: c", "increase"),
        ("0: a\nno time here", "seconds: prompt"),
    ],
)
def test_bad_schedules_are_refused(text, message) -> None:
    with pytest.raises(InputError, match=message):
        parse_prompt_schedule(text)


def test_context_at_takes_the_entry_in_force() -> None:
    a, b, c = (torch.full((1, 2, 4), float(i)) for i in range(3))
    text = TextConditioning(((0.0, a), (2.0, b), (5.5, c)))
    assert text.context_at(0.0) is a and text.context_at(1.99) is a
    assert text.context_at(2.0) is b and text.context_at(5.49) is b
    assert text.context_at(100.0) is c


def test_conditioning_must_start_at_zero_and_have_3d_contexts() -> None:
    with pytest.raises(InputError, match="0 seconds"):
        TextConditioning(((1.0, torch.zeros(1, 2, 4)),))
    with pytest.raises(InputError, match="tokens, width"):
        TextConditioning.single(torch.zeros(2, 4))
