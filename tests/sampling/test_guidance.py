"""Guidance: the pass count per step and the CFG formula."""

import pytest
import torch

from magicinfinite_core.sampling.guidance import Condition, Guidance

V = {
    Condition.FULL: torch.tensor([1.0]),
    Condition.NO_TEXT: torch.tensor([10.0]),
    Condition.NO_AUDIO: torch.tensor([100.0]),
    Condition.NONE: torch.tensor([1000.0]),
}


def combine(guidance: Guidance) -> tuple[torch.Tensor, list[Condition]]:
    ran: list[Condition] = []

    def run(condition):
        ran.append(condition)
        return V[condition]

    return guidance.velocity(run), ran


@pytest.mark.parametrize(
    ("text", "audio", "passes"), [(1.0, 1.0, 1), (1.0, 2.0, 2), (5.0, 1.0, 2), (5.0, 4.0, 3)]
)
def test_passes_per_step(text, audio, passes) -> None:
    guidance = Guidance(text, audio)
    _, ran = combine(guidance)
    assert guidance.passes == passes == len(ran)


def test_three_pass_formula() -> None:
    v, _ = combine(Guidance(5.0, 4.0))
    vu, vc, vnt = V[Condition.NONE], V[Condition.FULL], V[Condition.NO_TEXT]
    assert torch.equal(v, vu + 5.0 * (vc - vnt) + 4.0 * (vnt - vu))


def test_audio_only_cfg_drops_the_audio_and_keeps_the_text() -> None:
    v, ran = combine(Guidance(1.0, 2.0))
    assert ran == [Condition.FULL, Condition.NO_AUDIO]
    assert torch.equal(v, V[Condition.NO_AUDIO] + 2.0 * (V[Condition.FULL] - V[Condition.NO_AUDIO]))


def test_text_only_cfg_is_the_general_formula_with_audio_scale_1() -> None:
    v, ran = combine(Guidance(3.0, 1.0))
    assert ran == [Condition.FULL, Condition.NO_TEXT]
    assert torch.equal(v, V[Condition.NO_TEXT] + 3.0 * (V[Condition.FULL] - V[Condition.NO_TEXT]))


def test_one_pass_is_the_conditional_velocity() -> None:
    v, ran = combine(Guidance())
    assert ran == [Condition.FULL] and torch.equal(v, V[Condition.FULL])
    assert not Guidance().needs_negative_text and Guidance(2.0, 1.0).needs_negative_text
    assert not Guidance(2.0, 1.0).needs_null_audio and Guidance(1.0, 2.0).needs_null_audio
