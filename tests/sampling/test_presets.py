"""Presets: `flashtalk` samples as SoulX-FlashTalk's published inference code does at the pinned commit
(Soul-AILab/SoulX-FlashTalk 688982e, 2026-01-30: flash_talk/configs/infer_params.yaml and
flash_talk/src/pipeline/flash_talk_pipeline.py), replacing what it fixes and nothing else."""

from __future__ import annotations

import pytest
import torch

from magicinfinite_core.errors import InputError
from magicinfinite_core.sampling import SamplerOptions, SamplerSettings, plan_windows
from magicinfinite_core.sampling.presets import FLASHTALK, with_preset


def flashtalk(**options) -> SamplerSettings:
    user = SamplerSettings(832, 480, "euler", 30, text_cfg=5.0, audio_cfg=4.0, seed=11,
                           options=SamplerOptions(window_frames=81, motion_frames=9, motion_mode="multitalk",
                                                  shift=7.0, colour_match=0.2, preset="flashtalk", **options))
    return with_preset(user, fps=25.0)


def test_flashtalk_visits_the_timesteps_of_its_pipeline() -> None:
    # Upstream, 4 steps: timesteps [1000, 750, 500, 250] then 0, each t/1000 shifted by
    # 5 t / (1 + 4 t) (shift 5): 1, 3.75/4, 2.5/3, 1.25/2, 0.
    expected = torch.tensor([1.0, 15 / 16, 5 / 6, 5 / 8, 0.0])
    torch.testing.assert_close(flashtalk().schedule(), expected, rtol=0, atol=1e-7)


def test_a_user_sigma_list_gives_way_to_the_presets_schedule() -> None:
    torch.testing.assert_close(flashtalk(sigmas=(1.0, 0.5, 0.0)).schedule()[1], torch.tensor(15 / 16))


def test_flashtalk_sets_size_solver_steps_windows_colour_and_turns_cfg_off() -> None:
    settings = flashtalk()
    assert (settings.width, settings.height) == (448, 768)  # infer_params.yaml: height 768, width 448
    assert (settings.solver, settings.steps) == ("distilled", 4)
    assert (settings.text_cfg, settings.audio_cfg) == (1.0, 1.0)
    options = settings.options
    assert (options.window_frames, options.motion_frames, options.motion_mode) == (33, 5, "infinitetalk")
    assert (options.shift, options.colour_match, options.preset) == (5.0, 1.0, "flashtalk")
    assert settings.seed == 11  # not the preset's business


def test_flashtalk_windows_start_where_upstreams_audio_chunks_do() -> None:
    # generate_video.py: chunk i covers audio frames [i * (33 - 5), i * (33 - 5) + 33).
    windows = plan_windows(33 + 28 * 3, FLASHTALK.window_frames, FLASHTALK.motion_frames)
    assert [(w.start, w.num_frames) for w in windows] == [(28 * i, 33) for i in range(4)]
    assert [w.num_output for w in windows] == [33, 28, 28, 28]


def test_no_preset_changes_nothing() -> None:
    settings = SamplerSettings(832, 480, options=SamplerOptions(colour_match=0.3))
    assert with_preset(settings, fps=16.0) is settings


def test_audio_at_another_frame_rate_is_refused_with_the_fix() -> None:
    user = SamplerSettings(448, 768, options=SamplerOptions(preset="flashtalk"))
    with pytest.raises(InputError, match="flashtalk preset samples at 25 fps .* at 30 fps. Set fps to 25"):
        with_preset(user, fps=30.0)


def test_an_unknown_preset_is_refused_when_the_options_are_made() -> None:
    with pytest.raises(InputError, match=r"preset: expected one of \('none', 'flashtalk'\), got 'fast'"):
        SamplerOptions(preset="fast")
