"""Colour matching moves every frame's Lab statistics to the reference's."""

import torch
from kornia.color import rgb_to_lab

from magicinfinite_core.sampling.colour import match_colour


def lab_stats(frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    lab = rgb_to_lab(frames.permute(0, 3, 1, 2)).flatten(2)
    return lab.mean(-1), lab.std(-1, correction=0)


def pictures(seed: int, frames: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return 0.2 + 0.6 * torch.rand(frames, 16, 16, 3, generator=g)


def test_matched_frames_take_the_reference_mean_and_spread() -> None:
    reference = pictures(0, 1)
    drifted = (pictures(1, 3) * torch.tensor([1.1, 0.9, 0.7]) + 0.05).clamp(0, 1)
    matched = match_colour(drifted, reference)
    ref_mean, ref_std = lab_stats(reference)
    mean, std = lab_stats(matched)
    assert torch.allclose(mean, ref_mean.expand_as(mean), atol=0.5)
    assert torch.allclose(std, ref_std.expand_as(std), atol=0.5)
    before, _ = lab_stats(drifted)
    assert (before - ref_mean).abs().max() > 3.0  # there was a drift to remove


def test_strength_blends_and_zero_is_off() -> None:
    reference, frames = pictures(0, 1), pictures(2, 2) * 0.6
    assert match_colour(frames, reference, 0.0) is frames
    half = match_colour(frames, reference, 0.5)
    full = match_colour(frames, reference, 1.0)
    mean_frames, mean_half, mean_full = (lab_stats(x)[0][:, 0] for x in (frames, half, full))
    assert ((mean_half - mean_frames) * (mean_full - mean_half) > 0).all()  # half lies between
    assert full.min() >= 0 and full.max() <= 1 and full.shape == frames.shape
