"""Per-frame audio features of every speaker, and the 5-frame windows the model's adapter reads.

Features are stored compactly so a long track does not grow memory: up to IN_MEMORY_BYTES they stay in
RAM as float32; beyond that they go to an anonymous temporary file as float16 (read back with plain file
reads, so they live in the OS page cache rather than in the process) and each window reads only the frames
it needs. float16 keeps 11 significant bits, more than the bfloat16 the DiT consumes them in.
"""

from __future__ import annotations

import tempfile
import threading
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from magicinfinite_core.errors import InputError
from magicinfinite_core.models.config import AudioAdapterConfig

from .speakers import SpeakerMode

WINDOW_FRAMES = 5  # video frames i-2 .. i+2 per frame, as MultiTalk/InfiniteTalk
IN_MEMORY_BYTES = 64 * 2**20


def window_indices(start: int, stop: int, num_frames: int, width: int = WINDOW_FRAMES) -> Tensor:
    """Stored-frame index of every row of the windows of frames [start, stop): [stop-start, width] long.

    Before frame 0 the reference clamps to frame 0. Past the end it appends the last frames in reverse
    order (frame N+k reads frame N-1-k) and clamps at frame 0 once the reflection runs out.
    """
    half = width // 2
    rows = torch.arange(start, stop)[:, None] + torch.arange(-half, half + 1)[None, :]
    rows = rows.clamp(min=0)
    reflected = (2 * num_frames - 1 - rows).clamp(min=0)
    return torch.where(rows < num_frames, rows, reflected)


class FrameStore:
    """[speakers, frames, layers, width] features, written in chunks of frames and read back by range."""

    def __init__(self, num_speakers: int, num_frames: int, layers: int, width: int, *,
                 in_memory_bytes: int | None = None) -> None:
        self.shape = (num_speakers, num_frames, layers, width)
        self._frame_numel = layers * width
        self._lock = threading.Lock()
        limit = IN_MEMORY_BYTES if in_memory_bytes is None else in_memory_bytes
        if num_speakers * num_frames * self._frame_numel * 4 <= limit:
            self._tensor: Tensor | None = torch.zeros(self.shape, dtype=torch.float32)
            self._file = None
        else:
            self._tensor = None
            # Lives as long as the store (the MI_AUDIO value); the OS deletes it when it is closed.
            self._file = tempfile.TemporaryFile(prefix="magicinfinite-audio-")  # noqa: SIM115
            self._file.truncate(num_speakers * num_frames * self._frame_numel * 2)

    @property
    def on_disk(self) -> bool:
        return self._file is not None

    def write(self, speaker: int, start: int, frames: Tensor) -> None:
        """Store frames [start, start + n) of one speaker; frames [n, layers, width]."""
        if self._tensor is not None:
            self._tensor[speaker, start:start + frames.shape[0]] = frames.to(torch.float32)
            return
        data = frames.detach().to("cpu", torch.float16).contiguous().numpy()
        with self._lock:
            self._file.seek(self._offset(speaker, start))
            self._file.write(data.tobytes())

    def read(self, speaker: int, start: int, stop: int) -> Tensor:
        """Frames [start, stop) of one speaker as float32 [stop-start, layers, width]."""
        if self._tensor is not None:
            return self._tensor[speaker, start:stop].clone()
        out = np.empty((stop - start, *self.shape[2:]), dtype=np.float16)
        with self._lock:
            self._file.seek(self._offset(speaker, start))
            self._file.readinto(memoryview(out).cast("B"))
        return torch.from_numpy(out).to(torch.float32)

    def _offset(self, speaker: int, frame: int) -> int:
        return ((speaker * self.shape[1]) + frame) * self._frame_numel * 2


@dataclass(frozen=True, eq=False)
class AudioFeatures:
    """Everything the sampler needs from the audio (the MI_AUDIO value).

    num_speakers tracks of num_frames video frames at fps, encoded as feature_layers x feature_width
    wav2vec2 features per frame; mode "para" or "add"; waveform [channels, samples] at sample_rate is the
    aligned mix of all speakers for muxing into the video.
    """

    num_speakers: int
    fps: float
    num_frames: int
    mode: SpeakerMode
    sample_rate: int
    waveform: Tensor
    feature_layers: int
    feature_width: int
    encoder_name: str
    store: FrameStore = field(repr=False)

    def window(self, start: int, stop: int) -> Tensor:
        """Windowed features of video frames [start, stop): [S, stop-start, 5, layers, width] float32.

        Frames at or past num_frames are padded as the MultiTalk reference pads (see window_indices).
        """
        if not 0 <= start < stop:
            raise InputError(f"audio window: expected 0 <= start < stop, found start={start}, stop={stop}.")
        index = window_indices(start, stop, self.num_frames)
        lo, hi = int(index.min()), int(index.max()) + 1
        local = (index - lo).flatten()
        rows = [self.store.read(s, lo, hi)[local] for s in range(self.num_speakers)]
        return torch.stack(rows).view(self.num_speakers, stop - start, WINDOW_FRAMES,
                                      self.feature_layers, self.feature_width)


def check_adapter_compatible(features: AudioFeatures, adapter: AudioAdapterConfig) -> None:
    """Refuse features whose layout the model's audio adapter cannot read (e.g. wav2vec2-large for a
    MultiTalk adapter trained on chinese-wav2vec2-base)."""
    found = (features.feature_layers, features.feature_width)
    expected = (adapter.feature_layers, adapter.feature_width)
    if found == expected:
        return
    raise InputError(
        f"audio: the audio encoder '{features.encoder_name}' gives {found[0]} layers x {found[1]} features "
        f"per frame, but the model's audio adapter expects {expected[0]} x {expected[1]}"
        + (" (chinese-wav2vec2-base, the encoder MultiTalk and InfiniteTalk were trained with)"
           if expected == (12, 768) else "")
        + ". Load the matching encoder in MagicInfiniteAudioEncoderLoader and embed the audio again.")
