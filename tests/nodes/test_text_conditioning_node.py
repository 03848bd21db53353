"""MagicInfiniteTextConditioning: CONDITIONING in, or a CLIP that encodes a prompt schedule; MI_TEXT out."""

import pytest
import torch

from magicinfinite_core.errors import InputError
from nodes.text import NODE_CLASS_MAPPINGS, MagicInfiniteTextConditioning


class FakeClip:
    """The host CLIP's tokenize / encode_from_tokens, encoding a text as its length."""

    def __init__(self):
        self.encoded: list[str] = []

    def tokenize(self, text):
        return {"text": text}

    def encode_from_tokens(self, tokens):
        self.encoded.append(tokens["text"])
        return torch.full((1, 4, 8), float(len(tokens["text"])))


def conditioning(value: float):
    return [[torch.full((1, 4, 8), value), {"pooled_output": None}]]


def test_registered_with_tooltips() -> None:
    assert NODE_CLASS_MAPPINGS["MagicInfiniteTextConditioning"] is MagicInfiniteTextConditioning
    spec = MagicInfiniteTextConditioning.INPUT_TYPES()
    for name, (_, options) in {**spec["required"], **spec["optional"]}.items():
        assert options.get("tooltip"), name


def test_conditioning_inputs_give_one_prompt_and_the_negative() -> None:
    (text,) = MagicInfiniteTextConditioning().condition("ignored", "", positive=conditioning(1.0),
                                                       negative=conditioning(2.0))
    assert len(text.prompts) == 1 and text.context_at(99.0).eq(1.0).all() and text.negative.eq(2.0).all()


def test_a_clip_encodes_the_schedule_and_the_negative_prompt() -> None:
    clip = FakeClip()
    (text,) = MagicInfiniteTextConditioning().condition("0: calm\n12.5: laughing\n20: calm", "blurry",
                                                       clip=clip)
    assert [start for start, _ in text.prompts] == [0.0, 12.5, 20.0]
    assert text.context_at(13.0).eq(len("laughing")).all() and text.context_at(21.0).eq(len("calm")).all()
    assert text.negative.eq(len("blurry")).all()
    assert sorted(clip.encoded) == ["blurry", "calm", "laughing"]  # each prompt encoded once


def test_nothing_to_encode_is_a_clear_error() -> None:
    with pytest.raises(InputError, match="CLIP"):
        MagicInfiniteTextConditioning().condition("0: calm", "")


@pytest.mark.parametrize("name", ["positive", "negative"])
def test_a_combined_conditioning_of_several_prompts_is_refused_naming_the_input(name) -> None:
    combined = conditioning(1.0) + conditioning(2.0)  # what Conditioning (Combine) makes
    inputs = {"positive": conditioning(1.0), "negative": conditioning(3.0)} | {name: combined}
    with pytest.raises(InputError, match=(
            rf"^{name}: this CONDITIONING holds 2 prompts \(from Conditioning \(Combine\) or a similar "
            r"node\); MagicInfinite takes one\. .*prompt_schedule")):
        MagicInfiniteTextConditioning().condition("", "", **inputs)
