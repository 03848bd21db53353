"""Seam blending: a window's first new frames are eased onto the last frame already written."""

import pytest
import torch
from conftest import make_tiny_model
from sampler_fixtures import CONFIG, make_audio, make_picture, make_settings, make_text, make_vae

from magicinfinite_core.errors import InputError
from magicinfinite_core.sampling.loop import sample_video
from magicinfinite_core.sampling.seams import blend_seam_
from magicinfinite_core.sampling.window import plan_windows

SMALL = {"width": 32, "height": 32, "window_frames": 17, "motion_frames": 5}


def ramp(count: int, start: float) -> torch.Tensor:
    """Frames [count, 4, 4, 3] brightening by 0.01 a frame from `start`."""
    return (start + 0.01 * torch.arange(count, dtype=torch.float32)).view(-1, 1, 1, 1).expand(count, 4, 4, 3)


def test_the_relay_jump_is_spread_over_the_blended_frames() -> None:
    written = ramp(5, 0.30)  # what the viewer saw: ends at 0.34
    frames = ramp(17, 0.40)  # the window decoded those 5 frames 0.1 brighter, then goes on
    out = frames.clone()
    blend_seam_(out, written, 4)
    assert torch.equal(out[:5], frames[:5]) and torch.equal(out[9:], frames[9:])
    steps = torch.cat([written[-1:], out[5:10]]).diff(dim=0)[:, 0, 0, 0]
    # the 0.1 jump becomes five equal shares on top of the 0.01 steps of the motion itself
    assert torch.allclose(steps, torch.full((5,), 0.01 + 0.1 / 5), atol=1e-6), steps


def test_off_or_no_new_frames_leaves_the_window_as_decoded() -> None:
    written, frames = ramp(5, 0.3), ramp(9, 0.5)
    for count, blend in ((9, 0), (5, 8)):
        out = frames[:count].clone()
        blend_seam_(out, written, blend)
        assert torch.equal(out, frames[:count])
    short = frames.clone()
    blend_seam_(short, written, 8)  # 4 new frames only: blended over those
    assert torch.allclose(short[5, 0, 0, 0] - written[-1, 0, 0, 0], torch.tensor(0.01 + 0.2 / 5), atol=1e-6)


def test_the_loop_changes_only_the_frames_after_each_seam_and_shrinks_the_jump() -> None:
    model = make_tiny_model(CONFIG)
    settings = {**SMALL, "steps": 2}

    def render(seam_frames: int) -> torch.Tensor:
        return sample_video(model, make_vae(), make_picture(), make_audio(41), make_text(),
                            make_settings(**settings, seam_frames=seam_frames)).frames

    plain, blended = render(0), render(4)
    windows = plan_windows(41, 17, 5)
    changed = torch.zeros(41, dtype=torch.bool)
    for w in windows[1:]:
        changed[w.output_start : w.output_start + 4] = True
    assert torch.equal(blended[~changed], plain[~changed])
    for w in windows[1:]:
        seam = w.output_start
        jump = (blended[seam] - blended[seam - 1]).abs().mean()
        assert jump < (plain[seam] - plain[seam - 1]).abs().mean(), seam


def test_a_negative_seam_is_refused_with_the_input_named() -> None:
    with pytest.raises(InputError, match="seam_frames"):
        make_settings(**SMALL, seam_frames=-1)
