"""Colour matching against drift: each frame's Lab mean and spread moved to the reference's.

Long generations drift in colour and contrast window after window (users of the Wan talking-video wrappers
report it after about a minute). Matching every frame's per-channel Lab statistics to the reference frame
(as the InfiniteTalk reference's colour correction does) removes the drift; `strength` blends between the
frame (0) and the fully matched frame (1).
"""

from __future__ import annotations

import torch
from kornia.color import lab_to_rgb, rgb_to_lab

_MIN_STD = 1e-3  # a flat channel (uniform frame) is shifted, not blown up


def _stats(lab: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """lab [N, 3, H, W] -> per-frame, per-channel mean and std, each [N, 3, 1, 1]."""
    flat = lab.flatten(2)
    return flat.mean(-1)[..., None, None], flat.std(-1, correction=0).clamp_min(_MIN_STD)[..., None, None]


def match_colour(frames: torch.Tensor, reference: torch.Tensor, strength: float = 1.0) -> torch.Tensor:
    """frames [N, H, W, 3] and reference [1, H', W', 3], float 0..1 -> colour-matched frames [N, H, W, 3]."""
    if strength <= 0:
        return frames
    lab = rgb_to_lab(frames.permute(0, 3, 1, 2).float())
    mean, std = _stats(lab)
    ref_mean, ref_std = _stats(rgb_to_lab(reference[..., :3].permute(0, 3, 1, 2).float()))
    matched = (lab - mean) / std * ref_std + ref_mean
    blended = lab + min(strength, 1.0) * (matched - lab)
    return lab_to_rgb(blended).clamp(0.0, 1.0).permute(0, 2, 3, 1).to(frames.dtype)
