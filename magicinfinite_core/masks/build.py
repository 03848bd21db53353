"""From the region node's per-speaker inputs (a mask, a box, or nothing) to a Regions value.

Speaker i's region is, in this order of preference: the MASK given for it, the box text given for it, or
strip i of an automatic split of the reference image. Masks of another size are fitted to the reference
image with the same cover-and-centre-crop the video uses. A mask batch (a mask per frame) is merged into
one region covering every place the speaker appears, since regions do not move during the video.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from magicinfinite_core.errors import InputError
from magicinfinite_core.imaging import fit_image
from magicinfinite_core.masks.boxes import box_mask
from magicinfinite_core.masks.morphology import feather, grow
from magicinfinite_core.masks.regions import MAX_SPEAKERS, Regions, check_mask_values
from magicinfinite_core.masks.splits import SplitLayout, split_mask


@dataclass(frozen=True, eq=False)
class RegionSource:
    """What the user gave for one speaker: a mask [H, W] or [B, H, W], a box text, or neither (auto split)."""

    mask: torch.Tensor | None = None
    box: str = ""


def _mask_on_canvas(mask: torch.Tensor, speaker: int, canvas_width: int, canvas_height: int) -> torch.Tensor:
    name = f"Speaker {speaker}'s mask"
    if mask.ndim == 2:
        mask = mask.unsqueeze(0)
    if mask.ndim != 3 or mask.shape[0] == 0 or mask.shape[1] == 0 or mask.shape[2] == 0:
        raise InputError(f"{name}: expected a MASK shaped [height, width] or [frames, height, width], "
                         f"got shape {tuple(mask.shape)}.")
    mask = mask.detach().float().cpu()
    check_mask_values(mask, name)
    merged = mask.amax(dim=0, keepdim=True)
    fitted = fit_image(merged.unsqueeze(-1), canvas_width, canvas_height)[0, :, :, 0]
    # The antialiased resize sums float32 weights: an all-ones mask can come out at 1.0000002.
    return fitted.clamp(0.0, 1.0)


def build_regions(
    canvas_width: int,
    canvas_height: int,
    num_speakers: int,
    sources: Sequence[RegionSource] = (),
    *,
    split_layout: SplitLayout = "left to right",
    grow_px: int = 0,
    feather_px: int = 0,
) -> Regions:
    """Regions of num_speakers speakers on a canvas_width x canvas_height reference image.

    sources[i] is what was given for speaker i + 1; speakers without a source get their automatic strip.
    A source given for a speaker beyond num_speakers is an error rather than silently dropped.
    """
    if not 1 <= num_speakers <= MAX_SPEAKERS:
        raise InputError(f"Region masks: num_speakers must be 1 to {MAX_SPEAKERS}, got {num_speakers}.")
    for index, source in enumerate(sources[num_speakers:], start=num_speakers):
        if source.mask is not None or source.box.strip():
            raise InputError(
                f"Region masks: a mask or box is given for speaker {index + 1} but num_speakers is "
                f"{num_speakers}; raise num_speakers to {index + 1} or clear speaker {index + 1}'s inputs."
            )
    padded = list(sources[:num_speakers]) + [RegionSource()] * (num_speakers - len(sources))
    masks = []
    for index, source in enumerate(padded):
        speaker = index + 1
        box = source.box.strip()
        if source.mask is not None and box:
            raise InputError(
                f"Speaker {speaker} has both a mask and a box ({box!r}); give one of them "
                f"(clear box_{speaker}, or disconnect mask_{speaker})."
            )
        if source.mask is not None:
            masks.append(_mask_on_canvas(source.mask, speaker, canvas_width, canvas_height))
        elif box:
            try:
                masks.append(box_mask(box, canvas_width, canvas_height))
            except InputError as error:
                raise InputError(f"Speaker {speaker}: {error}") from None
        else:
            masks.append(split_mask(index, num_speakers, split_layout, canvas_width, canvas_height))
    stacked = feather(grow(torch.stack(masks), grow_px), feather_px)
    for index, mask in enumerate(stacked):
        if mask.max() == 0:
            raise InputError(
                f"Speaker {index + 1}'s region is empty after shrinking by {-grow_px} pixels; "
                f"shrink less (grow_px closer to 0) or draw a larger region."
            )
    return Regions(stacked)
