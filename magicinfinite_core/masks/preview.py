"""A preview image: each speaker's region tinted in its own colour over the reference image."""

import torch

from magicinfinite_core.imaging import fit_image

# Speaker 1..4: red, blue, green, amber; far apart in hue so neighbours are told apart at a glance.
SPEAKER_COLOURS = torch.tensor(
    [[1.0, 0.22, 0.18], [0.18, 0.45, 1.0], [0.2, 0.85, 0.3], [1.0, 0.75, 0.1]], dtype=torch.float32
)


def tint_preview(image: torch.Tensor, masks: torch.Tensor, opacity: float = 0.5) -> torch.Tensor:
    """Tint the first frame of image [N, H, W, 3] with masks [S, h, w] (fitted to it): returns [1, H, W, 3].

    Where regions overlap, a pixel shows the speaker whose mask is stronger there (the lower-numbered one
    on a tie), the same rule the token grid uses.
    """
    frame = image[:1, :, :, :3].float().cpu()
    height, width = frame.shape[1:3]
    fitted = fit_image(masks.float().cpu().unsqueeze(-1), width, height)[..., 0]  # [S, H, W]
    strength, winner = fitted.max(dim=0)
    colour = SPEAKER_COLOURS[winner]  # [H, W, 3]
    alpha = (opacity * strength).unsqueeze(-1)
    return (frame * (1 - alpha) + colour * alpha).clamp(0, 1)
