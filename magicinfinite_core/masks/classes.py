"""From pixel masks to the latent token grid: coverage per token, then one speaker class per token.

A token of the DiT covers 16 x 16 pixels of the video frame (VAE stride 8, patch 2). Each mask is first
fitted to the frame exactly as the reference image is (`fit_image`), then averaged over each token's
16 x 16 cell: the coverage, a fraction in [0, 1]. A token belongs to a speaker when that speaker covers at
least half of it (COVERAGE_THRESHOLD); where several speakers qualify, the one covering more of the token
wins; an exact tie goes to the lower-numbered speaker. Tokens no speaker qualifies for are background.

Why half: it is the unbiased choice. The token region then differs from the pixel region only in cells
the boundary cuts, each of which goes to whichever side holds more of it, so the region neither creeps
outwards (leaking a voice onto a neighbour) nor erodes (dropping lip tokens at the edge), and a region
aligned to the 16-pixel grid maps to the same tokens at every resolution.
"""

import torch
import torch.nn.functional as F

from magicinfinite_core.errors import InputError
from magicinfinite_core.imaging import fit_image

TOKEN_STRIDE_PX = 16  # VAE spatial stride 8 x DiT patch 2
COVERAGE_THRESHOLD = 0.5
# Coverages are rounded to this step before comparing, so a cell cut exactly in half reads as 0.5 (and as a
# tie between two halves) whatever the float rounding of the resize and the average.
_COVERAGE_STEP = 1 / 4096


def token_grid_size(width: int, height: int) -> tuple[int, int]:
    """(grid_height, grid_width) of the token grid of a width x height video; both must be multiples of 16."""
    if width % TOKEN_STRIDE_PX or height % TOKEN_STRIDE_PX or width <= 0 or height <= 0:
        raise InputError(
            f"Video size {width}x{height}: width and height must be positive multiples of {TOKEN_STRIDE_PX} "
            f"(one DiT token is {TOKEN_STRIDE_PX}x{TOKEN_STRIDE_PX} pixels)."
        )
    return height // TOKEN_STRIDE_PX, width // TOKEN_STRIDE_PX


def token_coverage(masks: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Fraction of each token cell each mask covers: [S, Hpx, Wpx] -> float32 [S, height/16, width/16]."""
    token_grid_size(width, height)
    fitted = fit_image(masks.float().unsqueeze(-1), width, height).squeeze(-1)
    coverage = F.avg_pool2d(fitted.unsqueeze(1), TOKEN_STRIDE_PX).squeeze(1)
    return torch.round(coverage / _COVERAGE_STEP) * _COVERAGE_STEP


def speaker_classes(coverage: torch.Tensor) -> torch.Tensor:
    """Class per token from coverage [S, h, w]: int64 [h, w], 0 = background, i = speaker i (1-based)."""
    qualified = torch.where(coverage >= COVERAGE_THRESHOLD, coverage, torch.full_like(coverage, -1.0))
    best, winner = qualified.max(dim=0)  # max returns the first index on ties: the lower-numbered speaker
    return torch.where(best >= COVERAGE_THRESHOLD, winner + 1, torch.zeros_like(winner))


def class_masks(classes: torch.Tensor, num_speakers: int) -> torch.Tensor:
    """One {0,1} float32 mask per speaker from the class grid: [num_speakers, h, w]; regions never overlap."""
    speakers = torch.arange(1, num_speakers + 1, device=classes.device).view(-1, 1, 1)
    return (classes.unsqueeze(0) == speakers).float()


def check_nonempty(coverage: torch.Tensor, classes: torch.Tensor, width: int, height: int) -> None:
    """InputError naming the first speaker that owns no token, and why (too small, or covered by another)."""
    grid_height, grid_width = coverage.shape[-2:]
    for index in range(coverage.shape[0]):
        speaker = index + 1
        if (classes == speaker).any():
            continue
        largest = coverage[index].max().item()
        if largest < COVERAGE_THRESHOLD:
            raise InputError(
                f"Speaker {speaker}'s region is empty on the {grid_width}x{grid_height} token grid of a "
                f"{width}x{height} video: a token ({TOKEN_STRIDE_PX}x{TOKEN_STRIDE_PX} pixels of the video) "
                f"joins a region when at least half of it is covered, and this region covers at most "
                f"{largest:.0%} of any token. Draw a larger region for speaker {speaker} (or grow it), or "
                f"use a larger video size."
            )
        others = classes[coverage[index] >= COVERAGE_THRESHOLD]
        rivals = sorted(set(others.tolist()))
        rival_text = f"speaker {rivals[0]}" if len(rivals) == 1 else "speakers " + ", ".join(map(str, rivals))
        raise InputError(
            f"Speaker {speaker}'s region is empty on the {grid_width}x{grid_height} token grid of a "
            f"{width}x{height} video: every token it covers is covered at least as much by {rival_text} "
            f"(overlaps go to the speaker covering more of a token). Make the regions overlap less, or give "
            f"speaker {speaker} a larger region."
        )
