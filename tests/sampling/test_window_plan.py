"""Window planning: every frame exactly once, every later window full length (the last one past the audio,
trimmed), motion frames known."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from magicinfinite_core.errors import InputError
from magicinfinite_core.sampling.window import plan_windows


@st.composite
def plans(draw):
    window_frames = 1 + 4 * draw(st.integers(1, 24))
    motion_frames = draw(st.integers(1, window_frames - 1))
    num_frames = draw(st.integers(1, 6 * window_frames))
    return num_frames, window_frames, motion_frames


@settings(max_examples=400, deadline=None)
@given(plans())
def test_every_frame_is_output_exactly_once_and_windows_are_4k_plus_1(plan) -> None:
    num_frames, window_frames, motion_frames = plan
    windows = plan_windows(num_frames, window_frames, motion_frames)
    produced = [frame for w in windows for frame in range(w.output_start, w.output_stop)]
    assert produced == list(range(num_frames))
    assert sum(w.num_output for w in windows) == num_frames
    for index, w in enumerate(windows):
        assert w.index == index
        assert (w.num_frames - 1) % 4 == 0
        assert w.start <= w.output_start < w.output_stop <= w.stop
        assert w.num_output >= 1


@settings(max_examples=400, deadline=None)
@given(plans())
def test_later_windows_start_from_motion_frames_the_previous_window_made(plan) -> None:
    num_frames, window_frames, motion_frames = plan
    windows = plan_windows(num_frames, window_frames, motion_frames)
    assert windows[0].start == 0
    for previous, window in zip(windows, windows[1:], strict=False):
        assert window.num_frames <= window_frames
        assert window.num_dropped >= motion_frames  # the motion frames are never output twice
        # the motion frames lie inside the previous window and were output already
        assert previous.start <= window.start
        assert window.start + motion_frames <= previous.stop
        assert window.start + motion_frames <= previous.output_stop


@settings(max_examples=400, deadline=None)
@given(plans())
def test_later_windows_are_full_length_and_only_the_last_runs_past_the_audio(plan) -> None:
    num_frames, window_frames, motion_frames = plan
    windows = plan_windows(num_frames, window_frames, motion_frames)
    if num_frames > window_frames:
        assert all(w.num_frames == window_frames for w in windows)
        assert all(w.stop <= num_frames for w in windows[:-1])
        assert windows[-1].output_stop == num_frames and windows[-1].num_dropped == motion_frames
        assert windows[-1].stop - num_frames < window_frames - motion_frames  # it outputs one frame or more
    else:
        assert len(windows) == 1 and windows[0].stop - num_frames < 4


def test_infinitetalk_numbers_audio_advances_72_frames_per_window() -> None:
    windows = plan_windows(1000, 81, 9)
    assert [w.start for w in windows[:4]] == [0, 72, 144, 216]
    assert [w.num_dropped for w in windows[1:]] == [9] * (len(windows) - 1)
    assert (windows[-1].start, windows[-1].stop, windows[-1].output_stop) == (936, 1017, 1000)


def test_short_audio_is_one_window_trimmed_to_the_audio() -> None:
    (window,) = plan_windows(1, 81, 9)
    assert (window.num_frames, window.num_output) == (1, 1)
    (window,) = plan_windows(30, 81, 9)
    assert (window.num_frames, window.num_output) == (33, 30)


@pytest.mark.parametrize(
    ("num_frames", "window_frames", "motion_frames", "message"),
    [
        (100, 80, 9, "4k\\+1"),
        (100, 1, 0, "4k\\+1"),
        (100, 17, 17, "motion_frames"),
        (100, 17, 0, "motion_frames"),
        (0, 81, 9, "audio"),
    ],
)
def test_bad_window_settings_are_refused_with_the_input_named(num_frames, window_frames, motion_frames,
                                                               message) -> None:
    with pytest.raises(InputError, match=message):
        plan_windows(num_frames, window_frames, motion_frames)
