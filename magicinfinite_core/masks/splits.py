"""Automatic regions: the reference image split into equal strips, speaker 1 first.

"left to right" gives speaker i the i-th of S vertical strips (two speakers: left half, right half);
"top to bottom" gives the i-th of S horizontal strips. The strips divide the reference image, so the
preview shows exactly what the video gets (the video's centre-crop applies to image and strips alike).
"""

from typing import Literal

import torch

from magicinfinite_core.errors import InputError
from magicinfinite_core.masks.boxes import rect_mask

SplitLayout = Literal["left to right", "top to bottom"]
SPLIT_LAYOUTS: tuple[SplitLayout, ...] = ("left to right", "top to bottom")


def split_mask(index: int, count: int, layout: SplitLayout, canvas_width: int,
               canvas_height: int) -> torch.Tensor:
    """Strip `index` (0-based) of `count` equal strips of the canvas: [canvas_height, canvas_width]."""
    if layout not in SPLIT_LAYOUTS:
        raise InputError(f"Automatic split {layout!r}: expected one of {', '.join(SPLIT_LAYOUTS)}.")
    if not 0 <= index < count:
        raise InputError(f"Automatic split: strip {index + 1} of {count} does not exist.")
    if layout == "left to right":
        strip = canvas_width / count
        return rect_mask(index * strip, 0, strip, canvas_height, canvas_width, canvas_height)
    strip = canvas_height / count
    return rect_mask(0, index * strip, canvas_width, strip, canvas_width, canvas_height)


def split_masks(count: int, layout: SplitLayout, canvas_width: int, canvas_height: int) -> torch.Tensor:
    """All `count` strips: [count, canvas_height, canvas_width] (the render command's --layout)."""
    return torch.stack([split_mask(i, count, layout, canvas_width, canvas_height) for i in range(count)])
