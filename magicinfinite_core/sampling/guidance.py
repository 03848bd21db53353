"""Classifier-free guidance over text and audio (the MultiTalk/InfiniteTalk rule), counted in model passes.

    v = v_u + s_t (v_c - v_nt) + s_a (v_nt - v_u)

v_c: text and audio; v_nt: negative text, audio kept; v_u: negative text, null audio. Scales equal to 1
drop passes: both 1 is one pass (CFG-distilled weights); text 1 is the references' audio-only CFG with two
passes, v = v_na + s_a (v_c - v_na), v_na keeping the text and nulling the audio; audio 1 leaves
v_nt + s_t (v_c - v_nt).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch


class Condition(enum.Enum):
    """Which text and audio one model pass sees."""

    FULL = "text + audio"
    NO_TEXT = "negative text + audio"
    NO_AUDIO = "text + null audio"
    NONE = "negative text + null audio"

    @property
    def uses_text(self) -> bool:
        return self in (Condition.FULL, Condition.NO_AUDIO)

    @property
    def uses_audio(self) -> bool:
        return self in (Condition.FULL, Condition.NO_TEXT)


@dataclass(frozen=True)
class Guidance:
    text_scale: float = 1.0
    audio_scale: float = 1.0

    @property
    def conditions(self) -> tuple[Condition, ...]:
        """The passes one step needs, in the order they run."""
        text_off = math.isclose(self.text_scale, 1.0)
        audio_off = math.isclose(self.audio_scale, 1.0)
        if text_off and audio_off:
            return (Condition.FULL,)
        if text_off:
            return (Condition.FULL, Condition.NO_AUDIO)
        if audio_off:
            return (Condition.FULL, Condition.NO_TEXT)
        return (Condition.FULL, Condition.NO_TEXT, Condition.NONE)

    @property
    def passes(self) -> int:
        return len(self.conditions)

    @property
    def needs_negative_text(self) -> bool:
        return any(not c.uses_text for c in self.conditions)

    @property
    def needs_null_audio(self) -> bool:
        return any(not c.uses_audio for c in self.conditions)

    def velocity(self, run: Callable[[Condition], torch.Tensor]) -> torch.Tensor:
        """Combine the passes; `run(condition)` runs the model once and returns its velocity."""
        v = {condition: run(condition) for condition in self.conditions}
        match self.passes:
            case 1:
                return v[Condition.FULL]
            case 2 if Condition.NO_AUDIO in v:
                return v[Condition.NO_AUDIO] + self.audio_scale * (v[Condition.FULL] - v[Condition.NO_AUDIO])
            case 2:
                return v[Condition.NO_TEXT] + self.text_scale * (v[Condition.FULL] - v[Condition.NO_TEXT])
        return (
            v[Condition.NONE]
            + self.text_scale * (v[Condition.FULL] - v[Condition.NO_TEXT])
            + self.audio_scale * (v[Condition.NO_TEXT] - v[Condition.NONE])
        )
