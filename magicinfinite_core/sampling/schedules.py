"""Noise schedules for flow matching: which sigmas (noise levels, 1 = pure noise, 0 = clean) a window visits.

Wan's flow matching mixes x_t = (1 - s) x0 + s eps; a shift k > 1 spends more steps at high noise:
s' = k s / (1 + (k - 1) s), as Wan2.1 shifts them. The model is fed timestep = 1000 * sigma.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from magicinfinite_core.errors import InputError

NUM_TIMESTEPS = 1000
DISTILLED_SHIFT = 5.0  # lightx2v's 4-step distill config
SHIFT_480P = 7.0  # MultiTalk / InfiniteTalk base sampling at 480p
SHIFT_720P = 11.0
# Frames at least halfway (in pixel count) between 832x480 and 1280x720 sample with the 720p shift.
AREA_720P_FROM = (832 * 480 + 1280 * 720) // 2


def shift_sigmas(sigmas: torch.Tensor, shift: float) -> torch.Tensor:
    """s' = shift * s / (1 + (shift - 1) * s); keeps 0 and 1 fixed."""
    return shift * sigmas / (1.0 + (shift - 1.0) * sigmas)


def default_shift(width: int, height: int, *, distilled: bool) -> float:
    """The shift the references use: 5 for the distilled schedule, else 7 at 480p and 11 at 720p."""
    if distilled:
        return DISTILLED_SHIFT
    return SHIFT_720P if width * height >= AREA_720P_FROM else SHIFT_480P


def _check_steps(steps: int) -> None:
    if not isinstance(steps, int) or steps < 1:
        raise InputError(f"steps: expected a whole number >= 1, got {steps!r}.")


def _check_shift(shift: float) -> None:
    if not shift > 0:
        raise InputError(f"shift: expected a number > 0 (1 = no shift), got {shift!r}.")


def distilled_sigmas(steps: int = 4, shift: float = DISTILLED_SHIFT) -> torch.Tensor:
    """Step-distilled schedule: timesteps 1000, 1000-1000/steps, ... ([1000, 750, 500, 250] for 4 steps)
    read through the shifted sigma table, then 0. Shift 5: about [1.0, 0.94, 0.83, 0.63, 0]."""
    _check_steps(steps)
    _check_shift(shift)
    timesteps = torch.arange(steps, 0, -1, dtype=torch.float64) * (NUM_TIMESTEPS / steps)
    sigmas = shift_sigmas(timesteps / NUM_TIMESTEPS, shift)
    return torch.cat([sigmas, sigmas.new_zeros(1)]).float()


def flow_sigmas(steps: int, shift: float) -> torch.Tensor:
    """Base-model schedule of the Wan / MultiTalk references: timesteps evenly from 1000 down to 1, shifted,
    then 0 (`steps` + 1 sigmas)."""
    _check_steps(steps)
    _check_shift(shift)
    timesteps = torch.linspace(NUM_TIMESTEPS, 1, steps, dtype=torch.float64)
    sigmas = shift_sigmas(timesteps / NUM_TIMESTEPS, shift)
    return torch.cat([sigmas, sigmas.new_zeros(1)]).float()


def user_sigmas(values: Sequence[float] | torch.Tensor) -> torch.Tensor:
    """A sigma list given by the user (ComfyUI's SIGMAS: a 1-D tensor), checked for flow matching."""
    sigmas = torch.as_tensor(values, dtype=torch.float32).flatten()
    if sigmas.numel() < 2:
        raise InputError(f"sigmas: expected at least 2 values (start and end), got {sigmas.numel()}.")
    if not torch.isfinite(sigmas).all() or sigmas.min() < 0 or sigmas.max() > 1:
        raise InputError(
            f"sigmas: flow-matching noise levels must lie in 0..1, got {sigmas.tolist()}; "
            "use a scheduler made for flow models (Wan)."
        )
    if (sigmas[1:] > sigmas[:-1]).any():
        raise InputError(f"sigmas: expected a non-increasing list, got {sigmas.tolist()}.")
    if sigmas[-1] != 0:  # a partial list still ends with a clean prediction
        sigmas = torch.cat([sigmas, sigmas.new_zeros(1)])
    return sigmas
