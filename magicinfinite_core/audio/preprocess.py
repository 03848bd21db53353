"""One voice recording -> checked, mono, 16 kHz, with the loudness gain the reference applies.

The MultiTalk/InfiniteTalk scripts load each file as mono 16 kHz (librosa averages the channels, then
resamples), measure its BS.1770 integrated loudness with pyloudnorm and scale it to -23 LUFS, leaving it
unchanged when |LUFS| > 100 (silence). We do the same with torchaudio: resampling with its windowed-sinc
resampler, loudness with `torchaudio.functional.loudness` (the same BS.1770-4 filters and gating as
pyloudnorm; tests/audio/test_preprocess.py compares the two).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torchaudio.functional as AF
from torch import Tensor

from magicinfinite_core.errors import InputError

ENCODER_SAMPLE_RATE = 16_000  # every wav2vec2 checkpoint we load was trained on 16 kHz audio
TARGET_LUFS = -23.0
SILENCE_LUFS = 100.0  # the reference leaves a clip alone when |measured LUFS| exceeds this
LOUDNESS_BLOCK_SECONDS = 0.4  # BS.1770 gating block: shorter clips cannot be measured
# torchaudio's K-weighting filters clamp their output to [-1, 1]; the high shelf boosts by up to +4 dB, so
# loud clips are measured at a lower level and the result shifted back (loudness is scale-covariant).
_MEASURE_PEAK = 0.25


@dataclass(frozen=True)
class SpeakerTrack:
    """One speaker's recording as given by the user.

    waveform [channels, samples] float (any channel count), sample_rate in Hz, gain a linear factor
    applied after loudness normalisation, name the input it came from (used in error messages).
    """

    waveform: Tensor
    sample_rate: int
    gain: float = 1.0
    name: str = "audio_1"


def tracks_from_host_audio(audios: Sequence[Mapping | None],
                           gains: Sequence[float] = ()) -> list[SpeakerTrack]:
    """ComfyUI AUDIO values ({"waveform": [1, channels, samples], "sample_rate"}) of the inputs audio_1,
    audio_2, ... (None where not connected) -> one SpeakerTrack per speaker, in order, checked."""
    present = [i for i, audio in enumerate(audios) if audio is not None]
    if present != list(range(len(present))):
        missing = next(i for i in range(len(audios)) if i not in present)
        raise InputError(f"audio_{missing + 1} is not connected but audio_{present[-1] + 1} is: connect the "
                         "speakers in order (track i drives region i).")
    tracks = []
    for index in present:
        name, audio = f"audio_{index + 1}", audios[index]
        if not isinstance(audio, Mapping) or "waveform" not in audio or "sample_rate" not in audio:
            raise InputError(f"{name}: expected ComfyUI AUDIO (a dict with 'waveform' and 'sample_rate').")
        wave = audio["waveform"]
        if isinstance(wave, Tensor) and wave.dim() == 3:
            if wave.shape[0] != 1:
                raise InputError(f"{name}: holds a batch of {wave.shape[0]} recordings; connect one.")
            wave = wave[0]
        gain = float(gains[index]) if index < len(gains) else 1.0
        tracks.append(SpeakerTrack(wave, audio["sample_rate"], gain=gain, name=name))
    for track in tracks:
        check_track(track)
    return tracks


def check_track(track: SpeakerTrack) -> None:
    """Refuse what cannot be a recording, naming the input."""
    wave = track.waveform
    if not isinstance(wave, Tensor) or wave.dim() != 2:
        shape = tuple(wave.shape) if isinstance(wave, Tensor) else type(wave).__name__
        raise InputError(f"{track.name}: expected a waveform [channels, samples], found {shape}.")
    if not isinstance(track.sample_rate, int | float) or not track.sample_rate > 0:
        raise InputError(
            f"{track.name}: the sample rate must be a positive number of Hz, found {track.sample_rate!r}. "
            "Check the node or file that produced this audio.")
    if wave.shape[0] == 0 or wave.shape[1] == 0:
        raise InputError(f"{track.name}: the waveform is empty ({wave.shape[0]} channels x {wave.shape[1]} "
                         "samples). Connect a recording with sound in it.")
    if not torch.isfinite(wave).all():
        raise InputError(f"{track.name}: the waveform holds NaN or infinite samples. Re-export the file, or "
                         "check the node that produced it.")
    if not math.isfinite(track.gain) or track.gain < 0:
        raise InputError(f"{track.name}: the gain must be a finite number >= 0, found {track.gain!r}.")


def to_encoder_rate(waveform: Tensor, sample_rate: int) -> Tensor:
    """[channels, samples] at any rate -> [samples] mono float32 at 16 kHz (channels averaged first)."""
    mono = waveform.to(torch.float32).mean(dim=0)
    if sample_rate == ENCODER_SAMPLE_RATE:
        return mono
    return AF.resample(mono, int(sample_rate), ENCODER_SAMPLE_RATE)


def integrated_loudness(mono: Tensor, sample_rate: int = ENCODER_SAMPLE_RATE) -> float:
    """BS.1770-4 integrated loudness (LUFS) of [samples]; -inf for digital silence.

    The clip must be at least one gating block (0.4 s) long.
    """
    peak = float(mono.abs().max())
    if peak == 0.0:
        return -math.inf
    scale = min(1.0, _MEASURE_PEAK / peak)
    lufs = float(AF.loudness((mono.to(torch.float64) * scale)[None], sample_rate))
    if math.isnan(lufs):  # every block below the absolute gate: as quiet as silence
        return -math.inf
    return lufs - 20.0 * math.log10(scale)


def loudness_gain(mono: Tensor, sample_rate: int = ENCODER_SAMPLE_RATE,
                  target_lufs: float = TARGET_LUFS) -> float:
    """Linear gain that brings [samples] to target_lufs, as the reference computes it.

    1.0 (unchanged) for clips too short to measure (< 0.4 s) and for silence (|LUFS| > 100).
    """
    if mono.shape[-1] < round(LOUDNESS_BLOCK_SECONDS * sample_rate):
        return 1.0
    lufs = integrated_loudness(mono, sample_rate)
    if not math.isfinite(lufs) or abs(lufs) > SILENCE_LUFS:
        return 1.0
    return 10.0 ** ((target_lufs - lufs) / 20.0)
