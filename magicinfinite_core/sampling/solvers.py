"""Solvers: plain functions with one signature, k-diffusion style.

    solver(model, x, sigmas, *, noise_sampler, constrain=keep, callback=None) -> x at sigmas[-1]

`model(x, sigma)` returns the clean-latent prediction x0 (for flow matching x0 = x - sigma * v).
`constrain(x, sigma)` is applied to x before every model call and after every step: the window loop uses it
to hold motion latents clean (InfiniteTalk) or re-noise them to the current sigma (MultiTalk).
`noise_sampler()` gives fresh noise shaped like x from the window's generator (deterministic per seed).
`callback(step, x, x0)` runs after every step; it may raise to cancel.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

Denoiser = Callable[[torch.Tensor, float], torch.Tensor]
Constrain = Callable[[torch.Tensor, float], torch.Tensor]
NoiseSampler = Callable[[], torch.Tensor]
StepCallback = Callable[[int, torch.Tensor, torch.Tensor], None]
Solver = Callable[..., torch.Tensor]


def keep(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """The constrain that changes nothing."""
    return x


def _denoise(model: Denoiser, x: torch.Tensor, sigma: float,
             constrain: Constrain) -> tuple[torch.Tensor, torch.Tensor]:
    x = constrain(x, sigma)
    return x, model(x, sigma)


def sample_euler(
    model: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    noise_sampler: NoiseSampler,
    constrain: Constrain = keep,
    callback: StepCallback | None = None,
) -> torch.Tensor:
    """First-order ODE steps: x += (sigma_next - sigma) * v with v = (x - x0) / sigma."""
    levels = [float(s) for s in sigmas]
    for i, (sigma, sigma_next) in enumerate(zip(levels, levels[1:], strict=False)):
        x, x0 = _denoise(model, x, sigma, constrain)
        x = x0 if sigma_next == 0 else x + (sigma_next - sigma) * (x - x0) / sigma
        x = constrain(x, sigma_next)
        if callback is not None:
            callback(i, x, x0)
    return x


def _log_snr(sigma: float) -> float:
    """lambda = log(alpha / sigma) with alpha = 1 - sigma; -inf at pure noise, +inf when clean."""
    if sigma >= 1.0:
        return -math.inf
    if sigma <= 0.0:
        return math.inf
    return math.log((1.0 - sigma) / sigma)


def sample_dpmpp_2m(
    model: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    noise_sampler: NoiseSampler,
    constrain: Constrain = keep,
    callback: StepCallback | None = None,
) -> torch.Tensor:
    """DPM-Solver++(2M) in data prediction for flow matching (x_t = alpha x0 + sigma eps, alpha = 1 - sigma).

    Each step is exact for a constant x0 prediction; the second-order term extrapolates x0 from the previous
    step. The steps next to pure noise are first order, and so are the last two (to the smallest sigma and
    to 0): there the log-SNR step is far longer than the one before, and extrapolating over it overshoots
    (diffusers' "lower order final").
    """
    levels = [float(s) for s in sigmas]
    previous_x0: torch.Tensor | None = None
    previous_h = math.inf
    for i, (sigma, sigma_next) in enumerate(zip(levels, levels[1:], strict=False)):
        x, x0 = _denoise(model, x, sigma, constrain)
        h = _log_snr(sigma_next) - _log_snr(sigma)
        direction = x0
        final = i >= len(levels) - 3
        if previous_x0 is not None and not final and math.isfinite(h) and math.isfinite(previous_h):
            r = previous_h / h
            direction = (1 + 1 / (2 * r)) * x0 - (1 / (2 * r)) * previous_x0
        if sigma_next == 0:
            x = x0
        else:
            # x_next = (s'/s) x + (alpha' - alpha s'/s) D: the exponential-integrator step without logs.
            ratio = sigma_next / sigma
            x = ratio * x + ((1 - sigma_next) - (1 - sigma) * ratio) * direction
        x = constrain(x, sigma_next)
        previous_x0, previous_h = x0, h
        if callback is not None:
            callback(i, x, x0)
    return x


def sample_distilled(
    model: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    noise_sampler: NoiseSampler,
    constrain: Constrain = keep,
    callback: StepCallback | None = None,
) -> torch.Tensor:
    """The step-distilled sampler (lightx2v, REFERENCE.md section 4): predict x0, then re-noise it with fresh
    noise to the next sigma: x_next = (1 - s') x0 + s' eps."""
    levels = [float(s) for s in sigmas]
    for i, (sigma, sigma_next) in enumerate(zip(levels, levels[1:], strict=False)):
        x, x0 = _denoise(model, x, sigma, constrain)
        x = x0 if sigma_next == 0 else (1 - sigma_next) * x0 + sigma_next * noise_sampler()
        x = constrain(x, sigma_next)
        if callback is not None:
            callback(i, x, x0)
    return x


SOLVERS: dict[str, Solver] = {
    "distilled": sample_distilled,
    "euler": sample_euler,
    "dpmpp_2m": sample_dpmpp_2m,
}
