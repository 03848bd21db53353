"""Grow, shrink and feather region masks (kornia grey morphology and Gaussian blur).

Distances are in pixels of the reference image the masks are drawn on. Grow and shrink use a square
neighbourhood, done as a row pass then a column pass so the cost grows with the radius, not its square.
Outside the image counts as "no information" (kornia's geodesic border): a region touching the image
edge neither grows in from it nor shrinks away from it.
"""

import kornia
import torch

from magicinfinite_core.errors import InputError


def grow(masks: torch.Tensor, pixels: int) -> torch.Tensor:
    """Grow [S, H, W] masks by `pixels` in every direction; a negative value shrinks them."""
    if pixels == 0:
        return masks
    radius = abs(pixels)
    operation = kornia.morphology.dilation if pixels > 0 else kornia.morphology.erosion
    x = masks.unsqueeze(1).float()
    row = torch.ones(1, 2 * radius + 1, device=x.device)
    x = operation(operation(x, row), row.t())
    return x.squeeze(1).to(masks.dtype)


def feather(masks: torch.Tensor, pixels: int) -> torch.Tensor:
    """Soften the edges of [S, H, W] masks over about `pixels` on each side (Gaussian, sigma = pixels / 3).

    A symmetric blur leaves a straight edge where it was at half strength, so feathering rounds corners
    and thins narrow parts on the token grid (which takes a token at half coverage) rather than moving
    the boundary; use `grow` to move it.
    """
    if pixels < 0:
        raise InputError(f"feather_px must be zero or positive, got {pixels}.")
    if pixels == 0:
        return masks
    x = masks.unsqueeze(1).float()
    # replicate: a region that reaches the image edge stays solid there instead of fading out.
    sigma = pixels / 3
    blurred = kornia.filters.gaussian_blur2d(x, 2 * pixels + 1, (sigma, sigma), border_type="replicate")
    return blurred.squeeze(1).clamp(0, 1).to(masks.dtype)
