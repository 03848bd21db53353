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


# step(i, x, x0, sigma, sigma_next) -> x at sigma_next (> 0); the last step to 0 always lands on x0.
Step = Callable[[int, torch.Tensor, torch.Tensor, float, float], torch.Tensor]


def _integrate(model: Denoiser, x: torch.Tensor, sigmas: torch.Tensor, step: Step, constrain: Constrain,
               callback: StepCallback | None) -> torch.Tensor:
    """The loop every solver shares: constrain, predict x0, step, constrain, report."""
    levels = [float(s) for s in sigmas]
    for i, (sigma, sigma_next) in enumerate(zip(levels, levels[1:], strict=False)):
        x = constrain(x, sigma)
        x0 = model(x, sigma)
        x = x0 if sigma_next == 0 else step(i, x, x0, sigma, sigma_next)
        x = constrain(x, sigma_next)
        if callback is not None:
            callback(i, x, x0)
    return x


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

    def step(i: int, x: torch.Tensor, x0: torch.Tensor, sigma: float, sigma_next: float) -> torch.Tensor:
        return x + (sigma_next - sigma) * (x - x0) / sigma

    return _integrate(model, x, sigmas, step, constrain, callback)


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
    last_second_order = len(sigmas) - 4
    previous_x0: torch.Tensor | None = None
    previous_h = math.inf

    def step(i: int, x: torch.Tensor, x0: torch.Tensor, sigma: float, sigma_next: float) -> torch.Tensor:
        nonlocal previous_x0, previous_h
        h = _log_snr(sigma_next) - _log_snr(sigma)
        direction = x0
        if previous_x0 is not None and i <= last_second_order and math.isfinite(h) and math.isfinite(
                previous_h):
            r = previous_h / h
            direction = (1 + 1 / (2 * r)) * x0 - (1 / (2 * r)) * previous_x0
        previous_x0, previous_h = x0, h
        # x_next = (s'/s) x + (alpha' - alpha s'/s) D: the exponential-integrator step without logs.
        ratio = sigma_next / sigma
        return ratio * x + ((1 - sigma_next) - (1 - sigma) * ratio) * direction

    return _integrate(model, x, sigmas, step, constrain, callback)


def sample_distilled(
    model: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    noise_sampler: NoiseSampler,
    constrain: Constrain = keep,
    callback: StepCallback | None = None,
) -> torch.Tensor:
    """The step-distilled sampler (lightx2v's 4-step distill): predict x0, then re-noise it with fresh noise
    to the next sigma: x_next = (1 - s') x0 + s' eps."""

    def step(i: int, x: torch.Tensor, x0: torch.Tensor, sigma: float, sigma_next: float) -> torch.Tensor:
        return (1 - sigma_next) * x0 + sigma_next * noise_sampler()

    return _integrate(model, x, sigmas, step, constrain, callback)


SOLVERS: dict[str, Solver] = {
    "distilled": sample_distilled,
    "euler": sample_euler,
    "dpmpp_2m": sample_dpmpp_2m,
}
