"""Solvers: one signature; exact where they should be; the higher-order one beats Euler; hooks run."""

import pytest
import torch

from magicinfinite_core.sampling.schedules import distilled_sigmas, flow_sigmas
from magicinfinite_core.sampling.solvers import SOLVERS, sample_dpmpp_2m, sample_euler


def noise_sampler_from(seed: int, shape):
    g = torch.Generator().manual_seed(seed)
    return lambda: torch.randn(shape, generator=g)


@pytest.mark.parametrize("name", list(SOLVERS))
def test_constant_x0_prediction_lands_exactly_on_it(name) -> None:
    target = torch.randn(2, 3)
    sigmas = flow_sigmas(6, 3.0)
    out = SOLVERS[name](lambda x, s: target, torch.randn(2, 3), sigmas,
                        noise_sampler=noise_sampler_from(0, (2, 3)))
    assert torch.allclose(out, target, atol=1e-6)


def gaussian_denoiser(data_std: float):
    """Exact x0 prediction for data ~ N(0, data_std^2) under x = (1 - s) x0 + s eps."""
    return lambda x, s: x * (1 - s) * data_std**2 / ((1 - s) ** 2 * data_std**2 + s**2)


@pytest.mark.parametrize(("steps", "shift"), [(8, 1.0), (16, 1.0), (20, 7.0), (40, 7.0)])
def test_dpmpp_2m_follows_the_probability_flow_closer_than_euler(steps, shift) -> None:
    # For Gaussian data the flow ODE is linear: noise eps ends exactly at data_std * eps.
    data_std, start = 0.5, torch.tensor([1.3])
    sigmas = flow_sigmas(steps, shift)
    kwargs = {"noise_sampler": lambda: torch.zeros(1)}
    euler = sample_euler(gaussian_denoiser(data_std), start, sigmas, **kwargs)
    dpm = sample_dpmpp_2m(gaussian_denoiser(data_std), start, sigmas, **kwargs)
    exact = data_std * start
    # With shift the last step (to the smallest sigma) is long and first order in both, which limits the gain.
    assert (dpm - exact).abs() < (0.5 if shift == 1.0 else 0.9) * (euler - exact).abs()


def test_distilled_step_predicts_x0_then_renoises_with_fresh_noise_to_the_next_sigma() -> None:
    sigmas = distilled_sigmas(4)
    seen: list[tuple[torch.Tensor, float]] = []
    target = torch.full((4,), 0.25)

    def model(x, s):
        seen.append((x.clone(), s))
        return target

    draws = noise_sampler_from(7, (4,))
    expected_noise = noise_sampler_from(7, (4,))
    SOLVERS["distilled"](model, torch.randn(4), sigmas, noise_sampler=draws)
    for (x, s), s_expected in zip(seen[1:], sigmas[1:-1].tolist(), strict=True):
        assert s == pytest.approx(s_expected)
        assert torch.allclose(x, (1 - s) * target + s * expected_noise())


@pytest.mark.parametrize("name", list(SOLVERS))
def test_constrain_runs_before_every_model_call_and_after_every_step_and_callback_per_step(name) -> None:
    sigmas = flow_sigmas(5, 2.0)
    log: list[str] = []

    def model(x, s):
        assert x[0] == 42.0, "the model sees the constrained latent"
        log.append("model")
        return torch.zeros_like(x)

    def constrain(x, s):
        log.append("constrain")
        x = x.clone()
        x[0] = 42.0
        return x

    out = SOLVERS[name](model, torch.randn(3), sigmas, noise_sampler=lambda: torch.randn(3),
                        constrain=constrain, callback=lambda i, x, x0: log.append(f"step{i}"))
    assert out[0] == 42.0
    expected = []
    for i in range(5):
        expected += ["constrain", "model", "constrain", f"step{i}"]
    assert log == expected
