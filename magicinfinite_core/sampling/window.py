"""Window planning: which video frames each window generates, which it holds from the previous one, which
it hands to the output.

Window 0 starts at frame 0. Each later window starts M frames before the previous one ended: those M motion
frames come from the previous window's decoded frames and are held clean, and they are not output again.
A window is W = 4k+1 frames long (one latent frame, then groups of 4). The last window is full length too,
as the reference's: it runs past the last audio frame (its audio padded as the reference pads) and the frames
past the end are dropped. Every output frame is produced exactly once. A video shorter than one window is one
window of the next 4k+1 frames (at most 3 extra), trimmed.
"""

from __future__ import annotations

from dataclasses import dataclass

from magicinfinite_core.errors import InputError
from magicinfinite_core.latents import TIME_STRIDE

DEFAULT_WINDOW_FRAMES = 81
DEFAULT_MOTION_FRAMES = 9


@dataclass(frozen=True)
class Window:
    """One window: it generates video frames [start, stop) and outputs [output_start, output_stop)."""

    index: int
    start: int
    num_frames: int  # 4k+1
    output_start: int
    output_stop: int

    @property
    def stop(self) -> int:
        return self.start + self.num_frames

    @property
    def num_dropped(self) -> int:
        """Leading frames already output by the previous window."""
        return self.output_start - self.start

    @property
    def num_output(self) -> int:
        return self.output_stop - self.output_start


def _up_to_window_length(frames: int) -> int:
    """The smallest 4k+1 >= frames."""
    return 1 + TIME_STRIDE * -(-(frames - 1) // TIME_STRIDE)


def check_window(window_frames: int, motion_frames: int) -> None:
    if not isinstance(window_frames, int) or window_frames < 5 or (window_frames - 1) % TIME_STRIDE:
        raise InputError(
            f"window_frames: expected 4k+1 frames (5, 9, ..., 81), got {window_frames!r}; the video VAE "
            "packs the first frame alone and then groups of 4."
        )
    if not isinstance(motion_frames, int) or not 1 <= motion_frames < window_frames:
        raise InputError(
            f"motion_frames: expected 1 <= motion_frames < window_frames ({window_frames}), got "
            f"{motion_frames!r}; each window must generate at least one new frame."
        )


def plan_windows(
    num_frames: int,
    window_frames: int = DEFAULT_WINDOW_FRAMES,
    motion_frames: int = DEFAULT_MOTION_FRAMES,
) -> tuple[Window, ...]:
    """Windows covering video frames [0, num_frames), each output frame exactly once.

    Every window after the first is `window_frames` long and starts `motion_frames` before the first frame it
    outputs. The last one runs past the end (its audio padded, see `audio.features.window_indices`) and its
    frames past the end are dropped: on the embedded model a full last window beat one cut to the frames left
    on face PSNR, seam, mouth error and lip sync (docs/sampler.md)."""
    check_window(window_frames, motion_frames)
    if not isinstance(num_frames, int) or num_frames < 1:
        raise InputError(
            f"audio: expected at least 1 video frame of audio, got {num_frames!r}; connect longer audio."
        )
    if num_frames <= window_frames:
        return (Window(0, 0, _up_to_window_length(num_frames), 0, num_frames),)
    windows = [Window(0, 0, window_frames, 0, window_frames)]
    while (done := windows[-1].output_stop) < num_frames:
        start = done - motion_frames
        stop = min(start + window_frames, num_frames)
        windows.append(Window(len(windows), start, window_frames, done, stop))
    return tuple(windows)
