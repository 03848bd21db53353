"""The preview tints each speaker's region in its colour and leaves the rest of the picture alone."""

import torch

from magicinfinite_core.masks.preview import SPEAKER_COLOURS, tint_preview


def test_regions_are_tinted_and_background_untouched() -> None:
    image = torch.full((2, 8, 12, 3), 0.5)
    masks = torch.zeros(2, 4, 6)  # half resolution: fitted to the image
    masks[0, :, :2] = 1.0
    masks[1, :, 4:] = 1.0
    preview = tint_preview(image, masks, opacity=0.5)
    assert preview.shape == (1, 8, 12, 3)
    assert torch.allclose(preview[0, 4, 0], 0.25 + 0.5 * SPEAKER_COLOURS[0])
    assert torch.allclose(preview[0, 4, 11], 0.25 + 0.5 * SPEAKER_COLOURS[1])
    assert torch.equal(preview[0, :, 5:7], image[0, :, 5:7])


def test_overlap_shows_the_stronger_speaker() -> None:
    image = torch.zeros(1, 2, 2, 3)
    masks = torch.stack([torch.full((2, 2), 0.4), torch.full((2, 2), 0.8)])
    preview = tint_preview(image, masks, opacity=1.0)
    assert torch.allclose(preview[0, 0, 0], 0.8 * SPEAKER_COLOURS[1])
