"""One voice recording -> checked, mono, 16 kHz, with the loudness gain the reference applies.

The MultiTalk/InfiniteTalk scripts load each file as mono 16 kHz (librosa averages the channels, then
resamples), measure its BS.1770 integrated loudness with pyloudnorm and scale it to -23 LUFS, leaving it
unchanged when |LUFS| > 100 (silence). We do the same with torchaudio: resampling with its windowed-sinc
resampler, loudness with the K-weighting filters and gating of `torchaudio.functional.loudness` (the same
BS.1770-4 measure as pyloudnorm; tests/audio/test_audio_preprocess.py compares them), run piece by piece.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torchaudio.functional as AF
from torch import Tensor

from magicinfinite_core.errors import InputError

ENCODER_SAMPLE_RATE = 16_000  # every wav2vec2 checkpoint we load was trained on 16 kHz audio
TARGET_LUFS = -23.0
SILENCE_LUFS = 100.0  # the reference leaves a clip alone when |measured LUFS| exceeds this
# BS.1770 gating: 400 ms blocks every 100 ms, absolute gate -70 LUFS, relative gate 10 LU below.
LOUDNESS_BLOCK_SECONDS = 0.4
_BLOCK_STEPS = 4  # a block is 4 steps of 100 ms
_ABSOLUTE_GATE = -70.0
_RELATIVE_GATE = -10.0
_K_WEIGHTING_OFFSET = -0.691
# torchaudio's K-weighting filters clamp their output to [-1, 1] and the high shelf boosts by up to +4 dB:
# the clip is filtered at a peak of 0.25 and the energies scaled back.
_MEASURE_PEAK = 0.25
# The track is filtered in pieces of this many steps; each piece first re-filters the 0.5 s before it,
# over which the filters' memory (poles at most ~0.985 per sample at 16 kHz) decays below float precision.
_PIECE_STEPS = 300
_WARM_UP_SECONDS = 0.5


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
    """[channels, samples] at any rate -> [samples] mono float32 at 16 kHz (channels averaged first).

    A mono 16 kHz float32 input is returned as a view, not copied."""
    mono = waveform[0].to(torch.float32) if waveform.shape[0] == 1 else waveform.to(torch.float32).mean(dim=0)
    if sample_rate == ENCODER_SAMPLE_RATE:
        return mono
    return AF.resample(mono, int(sample_rate), ENCODER_SAMPLE_RATE)


def integrated_loudness(mono: Tensor, sample_rate: int = ENCODER_SAMPLE_RATE) -> float:
    """BS.1770-4 integrated loudness (LUFS) of [samples]; -inf for silence (no block above -70 LUFS).

    The clip must be at least one gating block (0.4 s) long. The same K-weighting filters and gating as
    `torchaudio.functional.loudness` (and pyloudnorm), computed piece by piece so a long track needs no
    more memory than a short one.
    """
    step = round(LOUDNESS_BLOCK_SECONDS * sample_rate / _BLOCK_STEPS)
    num_blocks = (mono.shape[-1] - _BLOCK_STEPS * step) // step + 1
    peak = float(mono.abs().max())
    if peak == 0.0 or num_blocks < 1:
        return -math.inf
    scale = min(1.0, _MEASURE_PEAK / peak)
    num_steps = num_blocks + _BLOCK_STEPS - 1
    warm_up = round(_WARM_UP_SECONDS * sample_rate)
    step_energy = []
    for first in range(0, num_steps, _PIECE_STEPS):
        last = min(first + _PIECE_STEPS, num_steps)
        begin = max(0, first * step - warm_up)
        piece = mono[begin:last * step].to(torch.float64) * scale
        piece = AF.highpass_biquad(AF.treble_biquad(piece, sample_rate, 4.0, 1500.0, 1 / math.sqrt(2)),
                                   sample_rate, 38.0, 0.5)
        kept = piece[first * step - begin:]
        step_energy.append(kept.square().view(last - first, step).sum(dim=1))
    steps = torch.cat(step_energy) / (scale * scale)
    energy = steps.unfold(0, _BLOCK_STEPS, 1).sum(dim=1) / (_BLOCK_STEPS * step)
    loudness = _K_WEIGHTING_OFFSET + 10 * torch.log10(energy)
    gated = loudness > _ABSOLUTE_GATE
    if not bool(gated.any()):
        return -math.inf
    relative = _K_WEIGHTING_OFFSET + 10 * math.log10(float(energy[gated].mean())) + _RELATIVE_GATE
    gated &= loudness > relative
    return _K_WEIGHTING_OFFSET + 10 * math.log10(float(energy[gated].mean()))


def loudness_gain(mono: Tensor, sample_rate: int = ENCODER_SAMPLE_RATE,
                  target_lufs: float = TARGET_LUFS) -> float:
    """Linear gain that brings [samples] to target_lufs, as the reference computes it.

    1.0 (unchanged) for clips too short to measure (< 0.4 s) and for silence (|LUFS| > 100).
    """
    lufs = integrated_loudness(mono, sample_rate)
    if not math.isfinite(lufs) or abs(lufs) > SILENCE_LUFS:
        return 1.0
    return 10.0 ** ((target_lufs - lufs) / 20.0)
