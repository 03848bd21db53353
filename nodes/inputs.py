"""Inputs a prompt gives a node that the node does not declare.

ComfyUI hands a node every input of an API prompt that is linked to another node's output, declared or not,
so a node taking `**optional` would silently drop `audio_5` or `mask_5`: refuse such inputs by name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from magicinfinite_core.errors import InputError

_NUMBERED = re.compile(r"^(?P<stem>[a-z_]+?)_(?P<number>\d+)$")


def refuse_undeclared(node: str, given: Iterable[str], declared: Iterable[str], max_speakers: int) -> None:
    """InputError naming the first input in `given` that is not in `declared`; a speaker input past the
    last one (audio_5 where audio_2..audio_4 exist) is told apart from a name the node never had."""
    declared = set(declared)
    stems = {match["stem"] for match in map(_NUMBERED.match, declared) if match}
    for name in sorted(set(given) - declared):
        numbered = _NUMBERED.match(name)
        if numbered and numbered["stem"] in stems and int(numbered["number"]) > max_speakers:
            stem, number = numbered["stem"], numbered["number"]
            raise InputError(
                f"{name}: {node} takes at most {max_speakers} speakers ({stem}_1 to {stem}_{max_speakers}); "
                f"speaker {number} would be left out of the video, so it is refused. Remove {name}."
            )
        raise InputError(f"{name}: {node} has no input of this name, so it would be ignored; remove it "
                         "from the prompt.")
