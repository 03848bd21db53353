"""Boxes given as text, `x,y,w,h`, in pixels or in fractions of the frame, drawn as masks.

The four numbers are fractions of the reference image when every one of them lies in [0, 1], and pixels
of the reference image otherwise (a one-pixel box has no use as a speaker region, so the two readings
never compete). Edges that fall between pixels cover those pixels partly, so a box in fractions and the
same box in pixels draw the same mask on any canvas.
"""

import re

import torch

from magicinfinite_core.errors import InputError

_SEPARATORS = re.compile(r"[,\s;]+")


def parse_box(text: str, canvas_width: int, canvas_height: int) -> tuple[float, float, float, float]:
    """Read `x,y,w,h` into (left, top, width, height) in pixels of a canvas_width x canvas_height image."""
    fields = [f for f in _SEPARATORS.split(text.strip()) if f]
    if len(fields) != 4:
        raise InputError(
            f"Box {text!r}: expected four numbers 'x,y,w,h' (pixels, or fractions of the image such as "
            f"'0.5,0,0.5,1'), found {len(fields)}."
        )
    try:
        x, y, w, h = (float(f) for f in fields)
    except ValueError:
        raise InputError(f"Box {text!r}: every field of 'x,y,w,h' must be a number.") from None
    values = (x, y, w, h)
    if not all(v == v and abs(v) != float("inf") for v in values):
        raise InputError(f"Box {text!r}: NaN or infinite values are not allowed.")
    if min(values) < 0:
        raise InputError(f"Box {text!r}: x, y, w and h must be zero or positive.")
    if w == 0 or h == 0:
        raise InputError(f"Box {text!r}: width and height must be greater than zero.")
    if max(values) <= 1:
        x, w = x * canvas_width, w * canvas_width
        y, h = y * canvas_height, h * canvas_height
    if x >= canvas_width or y >= canvas_height:
        raise InputError(
            f"Box {text!r} starts outside the {canvas_width}x{canvas_height} image; give x below "
            f"{canvas_width} and y below {canvas_height} (or fractions of the image)."
        )
    return x, y, w, h


def _span_coverage(start: float, stop: float, length: int) -> torch.Tensor:
    """How much of each unit cell [j, j+1) of a line of `length` cells lies inside [start, stop)."""
    cells = torch.arange(length, dtype=torch.float64)
    inside = torch.minimum(cells + 1, torch.tensor(stop)) - torch.maximum(cells, torch.tensor(start))
    return inside.clamp(0, 1)


def rect_mask(left: float, top: float, width: float, height: float, canvas_width: int,
              canvas_height: int) -> torch.Tensor:
    """A [canvas_height, canvas_width] float32 mask of a rectangle in pixels; border pixels partly covered."""
    columns = _span_coverage(left, left + width, canvas_width)
    rows = _span_coverage(top, top + height, canvas_height)
    return torch.outer(rows, columns).float()


def box_mask(text: str, canvas_width: int, canvas_height: int) -> torch.Tensor:
    """The mask [canvas_height, canvas_width] of a box given as text (see `parse_box`)."""
    return rect_mask(*parse_box(text, canvas_width, canvas_height), canvas_width, canvas_height)
