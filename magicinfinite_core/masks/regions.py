"""The regions value (MI_REGIONS): one soft mask per speaker, and its view on the DiT's token grid.

Region i belongs to audio track i: the binding is by position, never guessed from the picture.
Regions are drawn on the reference image (any resolution); they get the same resize and centre-crop
as that image when the video size is known, so a region stays on the face it was drawn on.
Time-varying regions are not supported: one region per speaker holds for the whole video.
"""

from dataclasses import dataclass

import torch

from magicinfinite_core.errors import InputError
from magicinfinite_core.masks.classes import check_nonempty, class_masks, speaker_classes, token_coverage

MAX_SPEAKERS = 4


@dataclass(frozen=True, eq=False)
class Regions:
    """masks: [S, Hpx, Wpx] float32 in 0..1, S = 1..4 speakers, on the reference image's canvas."""

    masks: torch.Tensor

    def __post_init__(self) -> None:
        masks = self.masks
        if not isinstance(masks, torch.Tensor):
            raise InputError(
                f"Regions: masks must be a tensor [speakers, height, width], got {type(masks).__name__}."
            )
        if masks.ndim != 3 or masks.shape[1] == 0 or masks.shape[2] == 0:
            raise InputError(
                f"Regions: masks must be shaped [speakers, height, width] with a non-empty picture, "
                f"got shape {tuple(masks.shape)}."
            )
        if not 1 <= masks.shape[0] <= MAX_SPEAKERS:
            raise InputError(f"Regions: expected 1 to {MAX_SPEAKERS} speaker masks, got {masks.shape[0]}.")
        masks = masks.detach().float()
        for index, mask in enumerate(masks):
            check_mask_values(mask, f"Speaker {index + 1}'s mask")
        object.__setattr__(self, "masks", masks)

    @property
    def num_speakers(self) -> int:
        return self.masks.shape[0]

    def token_classes(self, width: int, height: int) -> torch.Tensor:
        """Speaker class per token of a width x height video: int64 [height/16, width/16], 0 = background.

        Raises InputError when a speaker ends up with no token (region too small, or covered by another).
        """
        coverage = token_coverage(self.masks, width, height)
        classes = speaker_classes(coverage)
        check_nonempty(coverage, classes, width, height)
        return classes

    def token_masks(self, width: int, height: int) -> torch.Tensor:
        """{0,1} float32 [S, height/16, width/16]: speaker i's tokens (no token in two regions)."""
        return class_masks(self.token_classes(width, height), self.num_speakers)


def check_mask_values(mask: torch.Tensor, name: str) -> None:
    """InputError unless `mask` is finite, within 0..1 and not all zero; `name` says which mask it is."""
    if not torch.isfinite(mask).all():
        raise InputError(f"{name} contains NaN or infinite values; give a mask with values between 0 and 1.")
    low, high = mask.min().item(), mask.max().item()
    if low < 0 or high > 1:
        raise InputError(
            f"{name} has values from {low:.9g} to {high:.9g}; expected 0 to 1 "
            f"(a 0..255 mask must be divided by 255)."
        )
    if high == 0:
        raise InputError(f"{name} is empty (all zero); draw the speaker's region or use a box or a split.")


def check_binding(regions: Regions | None, num_tracks: int) -> None:
    """Region i drives audio track i: InputError when the region count and the track count differ."""
    if regions is None or regions.num_speakers == num_tracks:
        return
    raise InputError(
        f"The regions give {regions.num_speakers} speaker region(s) but the audio has {num_tracks} track(s); "
        f"region i is driven by audio track i, so the counts must match. Set num_speakers on "
        f"MagicInfiniteRegionMasks to {num_tracks}, or connect {regions.num_speakers} audio track(s)."
    )
