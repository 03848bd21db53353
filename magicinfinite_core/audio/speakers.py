"""Placing 1 to 4 speakers on one timeline ("para" or "add") and mixing them for the video's sound track.

"para": everyone from time 0, the timeline as long as the longest track. "add": turns, as the reference's
`audio_prepare_multi` does: speaker k starts when speaker k-1 ends and is silent elsewhere, the timeline as
long as all tracks together. Either way every speaker's track is padded with silence to the whole timeline
before it is encoded, so every speaker has features for every video frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torchaudio.functional as AF
from torch import Tensor

from magicinfinite_core.errors import InputError
from magicinfinite_core.masks.regions import MAX_SPEAKERS  # track i drives region i: one limit for both

from .preprocess import SpeakerTrack

SpeakerMode = Literal["para", "add"]
SPEAKER_MODES: tuple[SpeakerMode, ...] = ("para", "add")


def check_speakers(num_tracks: int, mode: str) -> None:
    if not 1 <= num_tracks <= MAX_SPEAKERS:
        raise InputError(f"audio: expected 1 to {MAX_SPEAKERS} speaker tracks, found {num_tracks}. "
                         "Mix extra voices into one track, or split the scene into several videos.")
    if mode not in SPEAKER_MODES:
        raise InputError(f"mode: expected one of {SPEAKER_MODES}, found {mode!r}.")


def speaker_offsets(lengths: Sequence[int], mode: SpeakerMode) -> tuple[tuple[int, ...], int]:
    """Start of each track on the timeline, and the timeline length (same unit as lengths)."""
    if mode == "para":
        return tuple(0 for _ in lengths), max(lengths)
    starts = [0]
    for length in lengths[:-1]:
        starts.append(starts[-1] + length)
    return tuple(starts), sum(lengths)


@dataclass(frozen=True)
class PlacedTrack:
    """One speaker's 16 kHz mono samples placed on the timeline: silence outside [offset, offset+len)."""

    samples: Tensor  # [n] float32 at 16 kHz, before gain
    offset: int
    gain: float
    total: int

    def read(self, start: int, stop: int) -> Tensor:
        """Samples [start, stop) of the timeline (zeros outside the track), gain applied."""
        out = torch.zeros(stop - start, dtype=torch.float32)
        lo = max(start, self.offset)
        hi = min(stop, self.offset + self.samples.shape[0])
        if hi > lo:
            out[lo - start:hi - start] = self.samples[lo - self.offset:hi - self.offset] * self.gain
        return out


def mix_tracks(tracks: Sequence[SpeakerTrack], gains: Sequence[float],
               mode: SpeakerMode) -> tuple[Tensor, int]:
    """The aligned mix for muxing: [channels, samples] at the highest input rate, and that rate.

    Each track is resampled to that rate, given its total gain (loudness x speaker gain) and placed as on
    the encoder's timeline. Mono when every track is mono, else stereo (mono tracks doubled, more than two
    channels averaged). Not clipped: the reference does not clip either, and the file writer decides.
    """
    rate = max(int(t.sample_rate) for t in tracks)
    channels = 1 if all(t.waveform.shape[0] == 1 for t in tracks) else 2
    resampled = [_at_rate(t.waveform, int(t.sample_rate), rate) for t in tracks]
    starts, total = speaker_offsets([w.shape[-1] for w in resampled], mode)
    mix = torch.zeros(channels, total, dtype=torch.float32)
    for wave, start, gain in zip(resampled, starts, gains, strict=True):
        mix[:, start:start + wave.shape[-1]] += _to_channels(wave, channels) * gain
    return mix, rate


def _at_rate(waveform: Tensor, sample_rate: int, rate: int) -> Tensor:
    wave = waveform.to(torch.float32)
    return wave if sample_rate == rate else AF.resample(wave, sample_rate, rate)


def _to_channels(wave: Tensor, channels: int) -> Tensor:
    if wave.shape[0] == channels:
        return wave
    mono = wave.mean(dim=0, keepdim=True)
    return mono.expand(channels, -1)
