"""Flow-matching schedules: the distilled timesteps through the shifted table, base schedules, user lists."""

import pytest
import torch

from magicinfinite_core.errors import InputError
from magicinfinite_core.sampling.schedules import (
    default_shift,
    distilled_sigmas,
    flow_sigmas,
    shift_sigmas,
    user_sigmas,
)


def test_distilled_schedule_reads_1000_750_500_250_through_the_shift_5_table() -> None:
    sigmas = distilled_sigmas(4, 5.0)
    expected = [5 * t / (1 + 4 * t) for t in (1.0, 0.75, 0.5, 0.25)] + [0.0]
    assert torch.allclose(sigmas, torch.tensor(expected))
    assert torch.allclose(sigmas, torch.tensor([1.0, 0.9375, 0.8333, 0.625, 0.0]), atol=1e-4)


def test_flow_schedule_runs_from_1_to_0_and_shift_1_is_even_steps() -> None:
    sigmas = flow_sigmas(40, 7.0)
    assert len(sigmas) == 41 and sigmas[0] == 1 and sigmas[-1] == 0
    assert (sigmas[1:] < sigmas[:-1]).all()
    assert torch.allclose(flow_sigmas(4, 1.0)[:-1], torch.linspace(1000, 1, 4) / 1000)


def test_shift_spends_more_steps_at_high_noise() -> None:
    s = torch.linspace(0, 1, 11)
    assert (shift_sigmas(s, 7.0)[1:-1] > s[1:-1]).all()
    assert shift_sigmas(s, 7.0)[0] == 0 and shift_sigmas(s, 7.0)[-1] == 1


def test_default_shift_by_resolution_and_schedule() -> None:
    assert default_shift(832, 480, distilled=False) == 7.0
    assert default_shift(1280, 720, distilled=False) == 11.0
    assert default_shift(960, 960, distilled=False) == 11.0
    assert default_shift(1280, 720, distilled=True) == 5.0


def test_user_sigmas_are_checked_and_end_clean() -> None:
    assert user_sigmas([1.0, 0.5, 0.0]).tolist() == [1.0, 0.5, 0.0]
    assert user_sigmas(torch.tensor([0.9, 0.3])).tolist()[-1] == 0.0  # a clean step is appended
    for bad in ([0.5], [0.2, 0.6, 0.0], [14.6, 1.0, 0.0], [1.0, float("nan"), 0.0]):
        with pytest.raises(InputError, match="sigmas"):
            user_sigmas(bad)


@pytest.mark.parametrize("steps", [0, -1, 2.5])
def test_bad_steps_are_refused(steps) -> None:
    with pytest.raises(InputError, match="steps"):
        distilled_sigmas(steps)
