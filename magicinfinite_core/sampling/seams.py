"""Seam blending: a window's first new frames eased onto the frames the viewer already saw.

A window holds the previous window's last frames as motion latents, and decodes them again as its own
first frames. That relay (decode, encode, decode) does not return the same pixels, so without blending the
first new frame continues from a slightly different picture than the last one written, and the seam shows
as a jump (on the embedded model 2 to 2.7x the median frame-to-frame change). The difference at the last
held frame is added back to the new frames and faded out linearly over `blend_frames`, so the jump is spread
into steps the size of the relay error / (blend_frames + 1). The frames already written are never changed,
so a streamed or resumed video stays consistent.
"""

from __future__ import annotations

import torch

DEFAULT_SEAM_FRAMES = 8  # on the embedded model, 4 or more bring a seam near a step inside (docs/sampler.md)


def blend_seam_(frames: torch.Tensor, written: torch.Tensor, blend_frames: int) -> None:
    """In place (the window's decoded frames are the loop's own; a copy would cost a whole window of
    pixels, about 0.9 GB at 720p): frames [N, H, W, 3], whose first len(written) are the window's decode of
    the held frames `written` [M, H, W, 3] (what the viewer saw), get the new ones after them eased onto
    `written[-1]`; the held frames themselves are left as decoded (they are not output again)."""
    held = written.shape[0]
    count = min(blend_frames, frames.shape[0] - held)
    if count <= 0:
        return
    offset = written[-1] - frames[held - 1]
    fade = 1.0 - torch.arange(1, count + 1, dtype=frames.dtype) / (count + 1)
    new = frames[held : held + count]
    new.add_(fade.view(-1, 1, 1, 1) * offset).clamp_(0.0, 1.0)
