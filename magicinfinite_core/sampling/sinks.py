"""Where finished frames go: a tensor in memory for short videos, or an MP4 streamed window by window.

The MP4 sink never holds more than the window it is writing. Each window's new frames are encoded (H.264)
into their own segment file in `<output>.parts/`, closed before the window counts as done, so a crash or a
cancel loses at most the window in progress and the resume state (kept in the same folder) can continue the
render. When the last window is done the segments are joined without re-encoding, the audio is encoded
(AAC) beside them, and the result is written to `<output>.partial` (format mp4) and renamed to the output
name only on success: a failed or cancelled run never leaves a file that looks complete.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Protocol

import av
import torch

from magicinfinite_core.errors import InputError
from magicinfinite_core.sampling.resume import ResumeStore
from magicinfinite_core.video_file import (
    aac_channels,
    add_h264_stream,
    audio_layout,
    copy_packets,
    encode_h264,
    frame_rate,
    last_frame,
    partial_path,
    trimmed_audio,
)

PARTS_SUFFIX = ".parts"
SEGMENT_SUFFIX = ".seg"
_SEGMENT_NAME = re.compile(r"^(\d{6})\.seg$")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VideoResult:
    """What a finished render hands back.

    frames: every frame [N, H, W, 3] from the memory sink; from the MP4 sink only the last frame [1, H, W, 3]
    (a preview of where the video ends up: the whole video is in the file). waveform [channels, samples] is
    the audio trimmed to the video's duration.
    """

    frames: torch.Tensor
    fps: float
    num_frames: int
    waveform: torch.Tensor
    sample_rate: int
    path: Path | None = None


class FrameSink(Protocol):
    """Receives each window's new frames, in order, exactly once."""

    @property
    def resume_store(self) -> ResumeStore | None:
        """Where resume state lives, for sinks whose written frames survive the process; else None."""
        ...

    def start(self, windows_done: int) -> None:
        """Begin, or continue after the first `windows_done` windows (already stored by an earlier run)."""
        ...

    def write(self, window_index: int, frames: torch.Tensor) -> None:
        """frames [n, H, W, 3] float 0..1; stored durably when this returns."""
        ...

    def finish(self) -> VideoResult: ...

    def abort(self) -> None:
        """The run failed or was cancelled: release everything, leave no complete-looking output."""
        ...


class MemorySink:
    """All frames in one tensor [N, H, W, 3] (float32); for videos that fit in memory."""

    resume_store = None

    def __init__(self, num_frames: int, fps: float, waveform: torch.Tensor, sample_rate: int):
        self.num_frames = num_frames
        self.fps = fps
        self.waveform = trimmed_audio(waveform, sample_rate, num_frames, fps)
        self.sample_rate = sample_rate
        self._frames: torch.Tensor | None = None
        self._written = 0

    def start(self, windows_done: int) -> None:
        self._frames, self._written = None, 0

    def write(self, window_index: int, frames: torch.Tensor) -> None:
        if self._frames is None:
            self._frames = torch.empty((self.num_frames, *frames.shape[1:]), dtype=torch.float32)
        self._frames[self._written : self._written + len(frames)] = frames
        self._written += len(frames)

    def finish(self) -> VideoResult:
        assert self._frames is not None and self._written == self.num_frames, "every frame is written once"
        return VideoResult(self._frames, self.fps, self.num_frames, self.waveform, self.sample_rate)

    def abort(self) -> None:
        self._frames = None


class Mp4Sink:
    """Streams frames into `path` (H.264 + AAC), one window segment at a time; resumable."""

    def __init__(
        self,
        path: Path | str,
        *,
        num_frames: int,
        fps: float,
        waveform: torch.Tensor,
        sample_rate: int,
        crf: int = 18,
        preset: str = "medium",
        parts: Path | str | None = None,
    ):
        """parts: the folder of window segments and resume state (default `<path>.parts`)."""
        self.path = Path(path)
        if self.path.suffix.lower() != ".mp4":
            raise InputError(f"output: the streamed video must be an .mp4 file, got {str(self.path)!r}.")
        self.num_frames = num_frames
        self.fps = fps
        self.rate = frame_rate(fps)
        self.waveform = aac_channels(trimmed_audio(waveform, sample_rate, num_frames, fps))
        self.sample_rate = sample_rate
        self.crf = crf
        self.preset = preset
        self.parts = self.path.with_name(self.path.name + PARTS_SUFFIX) if parts is None else Path(parts)
        self.partial = partial_path(self.path)
        self._next_window = 0
        self._last_frame: torch.Tensor | None = None

    @property
    def resume_store(self) -> ResumeStore:
        return ResumeStore(self.parts)

    def segment_path(self, window_index: int) -> Path:
        """The finished H.264 segment of one window (until `finish` joins them)."""
        return self.parts / f"{window_index:06d}{SEGMENT_SUFFIX}"

    def _segments(self) -> list[tuple[int, Path]]:
        if not self.parts.is_dir():
            return []
        found = ((_SEGMENT_NAME.match(p.name), p) for p in self.parts.iterdir())
        return sorted((int(m.group(1)), p) for m, p in found if m)

    def start(self, windows_done: int) -> None:
        self.partial.unlink(missing_ok=True)
        self.parts.mkdir(parents=True, exist_ok=True)
        for index, segment in self._segments():
            if index >= windows_done:  # written after the last saved state: it will be made again
                segment.unlink()
        missing = sorted(set(range(windows_done)) - {index for index, _ in self._segments()})
        if missing:
            raise InputError(
                f"output: cannot resume {self.path.name}: the parts of windows {missing} are missing from "
                f"{self.parts}; delete that folder to start over."
            )
        self._next_window = windows_done

    def write(self, window_index: int, frames: torch.Tensor) -> None:
        assert window_index == self._next_window, "windows arrive in order"
        segment = self.segment_path(window_index)
        temporary = segment.with_suffix(".tmp")
        with av.open(str(temporary), "w", format="mp4") as container:
            stream = add_h264_stream(container, self.rate, frames.shape[2], frames.shape[1], crf=self.crf,
                                     preset=self.preset)
            encode_h264(container, stream, frames)
        os.replace(temporary, segment)
        self._next_window += 1
        self._last_frame = frames[-1:].detach().float().cpu().clone()

    def finish(self) -> VideoResult:
        segments = [path for _, path in self._segments()]
        if len(segments) != self._next_window:
            raise InputError(f"output: expected {self._next_window} window parts in {self.parts}, "
                             f"found {len(segments)}.")
        frames_written = 0
        samples_written = 0
        channels = self.waveform.shape[0]
        with av.open(str(self.partial), "w", format="mp4") as output:
            with av.open(str(segments[0])) as first:
                video = output.add_stream_from_template(first.streams.video[0])
            audio = output.add_stream("aac", rate=self.sample_rate, layout=audio_layout(channels))
            for segment in segments:
                with av.open(str(segment)) as source:
                    stream = source.streams.video[0]
                    offset = round(Fraction(frames_written) / self.rate / stream.time_base)
                    frames_written += copy_packets(source, stream, output, video, offset)
                # Audio up to the end of this segment's video keeps the file interleaved.
                until = round(frames_written * self.sample_rate / self.fps)
                samples = self.waveform[:, samples_written:until].contiguous().numpy()
                if samples.shape[1]:
                    chunk = av.AudioFrame.from_ndarray(samples, format="fltp", layout=audio_layout(channels))
                    chunk.sample_rate, chunk.pts = self.sample_rate, samples_written
                    output.mux(audio.encode(chunk))
                    samples_written = until
            output.mux(audio.encode(None))
        os.replace(self.partial, self.path)
        shutil.rmtree(self.parts, ignore_errors=True)
        frame = self._last_frame if self._last_frame is not None else last_frame(self.path)
        return VideoResult(frame, self.fps, frames_written, self.waveform, self.sample_rate, self.path)

    def abort(self) -> None:
        # Keep the finished window parts and the resume state; drop anything half written. Best effort: on
        # a full or read-only disk this fails too, and must not hide the error that stopped the render.
        with contextlib.suppress(OSError):
            self.partial.unlink(missing_ok=True)
            for temporary in self.parts.glob("*.tmp") if self.parts.is_dir() else ():
                with contextlib.suppress(OSError):
                    temporary.unlink(missing_ok=True)
            kept = len(self._segments())
            if kept:
                log.warning("%s: the render of %s stopped; its %d finished window(s) are kept there. Run "
                            "it again with the same inputs to continue from there, or delete that folder to "
                            "free its disk space.", self.parts, self.path.name, kept)
            elif self.parts.is_dir() and not any(self.parts.iterdir()):
                self.parts.rmdir()  # nothing finished: leave no empty folder behind


def finished_video(path: Path, *, fps: float, num_frames: int, waveform: torch.Tensor,
                   sample_rate: int) -> VideoResult:
    """The result of a render whose file already exists (same inputs, same name): nothing is redone."""
    audio = trimmed_audio(waveform, sample_rate, num_frames, fps)
    return VideoResult(last_frame(path), fps, num_frames, audio, sample_rate, path)
