"""Text conditioning: one prompt, or a schedule of prompts by time, plus the negative prompt.

A schedule is written one entry per line (or separated by " / "), each "seconds: prompt":

    0: a woman speaks calmly
    12.5: she laughs

A window takes the prompt in force at its centre, so a window that spans a change follows the entry
covering most of it.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable
from dataclasses import dataclass

import torch

from magicinfinite_core.errors import InputError

_ENTRY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*:\s*(.*)$", re.DOTALL)
# A " / " followed by "seconds:" starts a new entry on the same line.
_SEPARATOR = re.compile(r"\n|\s/\s*(?=\d+(?:\.\d+)?\s*:)")


def parse_prompt_schedule(text: str) -> tuple[tuple[float, str], ...]:
    """ "0: calm / 12.5: laughing" -> ((0.0, "calm"), (12.5, "laughing")); plain text -> ((0.0, text),)."""
    parts = [part.strip() for part in _SEPARATOR.split(text) if part.strip()]
    if not parts or not any(_ENTRY.match(part) for part in parts):
        return ((0.0, text.strip()),)
    entries: list[tuple[float, str]] = []
    for part in parts:
        match = _ENTRY.match(part)
        if match is None:
            raise InputError(
                f"prompt schedule: every entry must read 'seconds: prompt', found {part!r}; "
                "put each entry on its own line, e.g. '0: calm' and '12.5: laughing'."
            )
        seconds, prompt = float(match.group(1)), match.group(2).strip()
        if entries and seconds <= entries[-1][0]:
            raise InputError(
                f"prompt schedule: times must increase, found {seconds:g} s after {entries[-1][0]:g} s."
            )
        entries.append((seconds, prompt))
    if entries[0][0] != 0:
        raise InputError(
            f"prompt schedule: the first entry must start at 0 seconds, found {entries[0][0]:g} s; "
            "add a '0: ...' line for the opening."
        )
    return tuple(entries)


@dataclass(frozen=True)
class TextConditioning:
    """Prompt contexts by start time (seconds) and the negative context, each [1, L, text_dim]."""

    prompts: tuple[tuple[float, torch.Tensor], ...]
    negative: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if not self.prompts or self.prompts[0][0] != 0:
            raise InputError("text: the prompt schedule must have an entry starting at 0 seconds.")
        starts = [start for start, _ in self.prompts]
        if starts != sorted(set(starts)):
            raise InputError(f"text: prompt start times must increase, got {starts}.")
        contexts = [context for _, context in self.prompts]
        for context in contexts + ([self.negative] if self.negative is not None else []):
            if context.ndim != 3 or context.shape[0] != 1:
                raise InputError(
                    f"text: expected text contexts shaped [1, tokens, width], got {tuple(context.shape)}."
                )

    @classmethod
    def single(cls, positive: torch.Tensor, negative: torch.Tensor | None = None) -> TextConditioning:
        return cls(((0.0, positive),), negative)

    def context_at(self, seconds: float) -> torch.Tensor:
        """The context of the entry in force at `seconds`."""
        starts = [start for start, _ in self.prompts]
        return self.prompts[max(0, bisect.bisect_right(starts, seconds) - 1)][1]


def build_text_conditioning(
    *,
    positive: torch.Tensor | None = None,
    negative: torch.Tensor | None = None,
    schedule: str = "",
    negative_prompt: str = "",
    encode: Callable[[str], torch.Tensor] | None = None,
) -> TextConditioning:
    """Text conditioning from what the user connected.

    An encoded `positive` context [1, L, D] is a single prompt; otherwise `schedule` is parsed and each
    prompt encoded with `encode(text) -> [1, L, D]` (the host's text encoder; a prompt used twice is
    encoded once). The negative is the encoded `negative` context, else `negative_prompt` encoded when an
    encoder is there, else none.
    """
    if negative is None and encode is not None:
        negative = encode(negative_prompt)
    if positive is not None:
        return TextConditioning.single(positive, negative)
    if encode is None:
        raise InputError(
            "text: connect positive conditioning, or a CLIP (the umT5 text encoder) to encode the prompt "
            "schedule."
        )
    encoded: dict[str, torch.Tensor] = {}
    prompts = []
    for start, prompt in parse_prompt_schedule(schedule):
        if prompt not in encoded:
            encoded[prompt] = encode(prompt)
        prompts.append((start, encoded[prompt]))
    return TextConditioning(tuple(prompts), negative)
