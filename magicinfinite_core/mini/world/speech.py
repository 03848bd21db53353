"""Synthetic speech-like audio with known ground truth: syllable loudness envelope and vowel per sample.

A voice is a glottal pulse train (harmonics of a pitch contour, tilted -3 dB/octave) shaped by a cascade of
three formant resonances per vowel, switched on and off by syllable envelopes separated by true silence.
Built by additive synthesis (one sinusoid per harmonic, amplitude read off the vowel's resonance curve), so
vowels change without filter state, nothing aliases, and every sample is a vectorised function of the seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from magicinfinite_core.errors import InputError

VOWELS: tuple[str, ...] = ("a", "e", "i", "o", "u")
# Peterson & Barney (1952) adult averages for the vowels of "father, bet, beet, bought, boot".
VOWEL_FORMANTS_HZ: dict[str, tuple[float, float, float]] = {
    "a": (730.0, 1090.0, 2440.0),
    "e": (530.0, 1840.0, 2480.0),
    "i": (270.0, 2290.0, 3010.0),
    "o": (570.0, 840.0, 2410.0),
    "u": (300.0, 870.0, 2240.0),
}
FORMANT_BANDWIDTHS_HZ: tuple[float, float, float] = (90.0, 110.0, 170.0)
SPEECH_RMS = 0.1  # waveform RMS where the envelope is 1; peaks stay well inside [-1, 1]
MIN_GAP_S = 0.04  # every pair of syllables is separated by at least this much silence
_HARMONIC_LIMIT_HZ = 5000.0
_CONTROL_RATE_HZ = 400  # harmonic amplitudes follow pitch and vowel at this rate
_CHUNK_SAMPLES = 32768  # bounds the [harmonics, samples] working set for long tracks


@dataclass(frozen=True)
class Syllable:
    """One voiced syllable: a vowel held from start_s to end_s at a peak envelope of `amplitude` (0..1)."""

    start_s: float
    end_s: float
    vowel: str
    amplitude: float


@dataclass(frozen=True)
class SpeechTrack:
    """A mono waveform and its ground truth, sample by sample.

    waveform: [num_samples] float32. envelope: [num_samples] float32 in 0..1, the syllable loudness (the
    waveform's local RMS is SPEECH_RMS x envelope). vowel_index: [num_samples] int64, index into VOWELS,
    -1 where silent.
    """

    waveform: torch.Tensor
    envelope: torch.Tensor
    vowel_index: torch.Tensor
    sample_rate: int
    syllables: tuple[Syllable, ...]

    @property
    def duration_s(self) -> float:
        return self.waveform.shape[0] / self.sample_rate

    def frame_envelope(self, fps: float, num_frames: int | None = None) -> torch.Tensor:
        """Mean envelope over each video frame's span of samples: [num_frames] float32 in 0..1."""
        return frame_average(self.envelope, self.sample_rate, fps, self._frames(fps, num_frames))

    def frame_vowels(self, fps: float, num_frames: int | None = None) -> torch.Tensor:
        """The loudest vowel within each video frame: [num_frames] int64 index into VOWELS, -1 if silent."""
        num_frames = self._frames(fps, num_frames)
        voiced = self.vowel_index >= 0
        weights = torch.zeros(len(VOWELS), self.envelope.shape[0])
        weights[self.vowel_index[voiced], voiced.nonzero().squeeze(1)] = self.envelope[voiced]
        per_frame = frame_average(weights, self.sample_rate, fps, num_frames)
        best = per_frame.argmax(dim=0)
        return torch.where(per_frame.amax(dim=0) > 0, best, torch.full_like(best, -1))

    def _frames(self, fps: float, num_frames: int | None) -> int:
        return math.floor(self.duration_s * fps + 1e-9) if num_frames is None else num_frames


def frame_average(values: torch.Tensor, sample_rate: int, fps: float, num_frames: int) -> torch.Tensor:
    """Average the last axis of `values` (samples) over each video frame: [..., num_frames] float32.

    Frame i covers samples [floor(i*sr/fps), floor((i+1)*sr/fps)); samples past the end count as zero, so a
    frame after the audio has ended reads silent.
    """
    if fps <= 0 or sample_rate <= 0 or fps > sample_rate:
        raise InputError(f"frame_average: expected 0 < fps <= sample_rate, found fps={fps}, "
                         f"sample_rate={sample_rate}.")
    bounds = torch.floor(torch.arange(num_frames + 1, dtype=torch.float64) * (sample_rate / fps)).long()
    padded = torch.nn.functional.pad(values.double(), (1, max(0, int(bounds[-1]) - values.shape[-1])))
    cumulative = padded.cumsum(dim=-1)
    sums = cumulative[..., bounds[1:]] - cumulative[..., bounds[:-1]]
    return (sums / (bounds[1:] - bounds[:-1]).double()).float()


def frame_loudness(waveform: torch.Tensor, sample_rate: int, fps: float, num_frames: int) -> torch.Tensor:
    """Loudness envelope measured from any waveform [..., samples]: per-frame RMS over the track's loudest
    frame, [..., num_frames] in 0..1. Scale-free, so it reads the same before and after loudness
    normalisation; for a SpeechTrack it follows `frame_envelope` closely."""
    rms = frame_average(waveform.float().square(), sample_rate, fps, num_frames).sqrt()
    return rms / rms.amax(dim=-1, keepdim=True).clamp_min(1e-12)


def synthesize_speech(
    seed: int,
    duration_s: float,
    sample_rate: int = 16000,
    speaking_spans_s: tuple[tuple[float, float], ...] | None = None,
) -> SpeechTrack:
    """A speech-like track of `duration_s` seconds, fully determined by `seed`.

    The seed picks the voice (pitch 95-230 Hz, vocal-tract scale), the speaking rate and pause habits, and
    every syllable's timing, vowel and loudness; syllables lie only inside `speaking_spans_s` (whole track
    when None), which lets several tracks take turns.
    """
    if duration_s <= 0:
        raise InputError(f"synthesize_speech: duration_s must be > 0, found {duration_s}.")
    if sample_rate < 8000:
        raise InputError(f"synthesize_speech: sample_rate must be >= 8000 Hz to hold the formants, "
                         f"found {sample_rate}.")
    generator = torch.Generator().manual_seed(seed)
    spans = ((0.0, duration_s),) if speaking_spans_s is None else speaking_spans_s
    syllables = _place_syllables(generator, spans, duration_s)
    num_samples = round(duration_s * sample_rate)

    f0_hz = _uniform(generator, 95.0, 230.0)
    tract_scale = _uniform(generator, 0.95, 1.15) * (1.0 + 0.25 * (f0_hz - 95.0) / 135.0)
    envelope = torch.zeros(num_samples)
    vowel_index = torch.full((num_samples,), -1, dtype=torch.long)
    pitch = torch.ones(num_samples)
    for syllable in syllables:
        start, end = round(syllable.start_s * sample_rate), round(syllable.end_s * sample_rate)
        u = (torch.arange(end - start) + 0.5) / (end - start)
        # fast rise, broad top, smooth release: the mouth opens early in the syllable and closes at its end
        envelope[start:end] = syllable.amplitude * torch.sin(math.pi * u).pow(0.6)
        vowel_index[start:end] = VOWELS.index(syllable.vowel)
        accent, glide = _uniform(generator, -0.12, 0.15), _uniform(generator, -0.08, 0.08)
        pitch[start:end] = 1.0 + accent + glide * (0.5 - u)
    t = torch.arange(num_samples, dtype=torch.float64) / sample_rate
    vibrato = 1.0 + 0.015 * torch.sin(2 * math.pi * 5.5 * t + _uniform(generator, 0.0, 2 * math.pi))
    declination = 1.0 - 0.1 * t / duration_s
    f0 = f0_hz * pitch.double() * vibrato * declination

    formants = torch.tensor([VOWEL_FORMANTS_HZ[v] for v in VOWELS]) * tract_scale
    phase = torch.cumsum(f0, dim=0) / sample_rate  # cycles, float64 so long tracks keep their pitch
    angle = (2 * math.pi * torch.remainder(phase, 1.0)).float()
    voiced = (envelope > 0).nonzero().squeeze(1)  # silence costs nothing
    waveform = torch.zeros(num_samples)
    carrier = _voiced_carrier(angle, f0.float(), formants, vowel_index, voiced, sample_rate)
    waveform[voiced] = SPEECH_RMS * envelope[voiced] * carrier
    return SpeechTrack(waveform, envelope, vowel_index, sample_rate, tuple(syllables))


def _place_syllables(
    generator: torch.Generator, spans: tuple[tuple[float, float], ...], duration_s: float
) -> list[Syllable]:
    syllable_s = _uniform(generator, 0.12, 0.24)  # this speaker's typical syllable length
    gap_s = _uniform(generator, 0.05, 0.12)
    pause_probability = _uniform(generator, 0.08, 0.25)
    syllables: list[Syllable] = []
    for span_start, span_end in spans:
        t = max(0.0, span_start) + _uniform(generator, 0.05, 0.35)
        end_limit = min(span_end, duration_s)
        while True:
            length = syllable_s * _uniform(generator, 0.6, 1.5)
            if t + length > end_limit:
                break
            vowel = VOWELS[int(torch.randint(len(VOWELS), (1,), generator=generator))]
            syllables.append(Syllable(t, t + length, vowel, _uniform(generator, 0.55, 1.0)))
            gap = max(MIN_GAP_S, gap_s * _uniform(generator, 0.5, 1.6))
            if _uniform(generator, 0.0, 1.0) < pause_probability:
                gap += _uniform(generator, 0.25, 0.7)  # a phrase break
            t += length + gap
    return syllables


def _voiced_carrier(
    angle: torch.Tensor,
    f0: torch.Tensor,
    formants: torch.Tensor,
    vowel_index: torch.Tensor,
    voiced: torch.Tensor,
    sample_rate: int,
) -> torch.Tensor:
    """The unit-RMS voice at the `voiced` samples: sum over harmonics k of a_k sin(k angle), where angle [S]
    is the pitch phase in radians (0..2pi), f0 [S] the pitch in Hz, and a_k the -3 dB/octave source times the
    cascade response of the vowel's formants (formants [5, 3] Hz, vowel_index [S]) at k f0.

    The a_k change only with pitch and vowel, so they are computed at _CONTROL_RATE_HZ and interpolated;
    a silent stretch takes the formants of the syllable after it, so a syllable starts on its own vowel.
    """
    num_samples = angle.shape[0]
    hop = max(1, sample_rate // _CONTROL_RATE_HZ)
    control = torch.arange(0, num_samples + hop, hop).clamp(max=num_samples - 1)
    upcoming = (vowel_index >= 0).nonzero().squeeze(1)
    if upcoming.numel() == 0:
        return torch.zeros(0)
    next_voiced = torch.searchsorted(upcoming, control).clamp(max=upcoming.numel() - 1)
    control_formants = formants[vowel_index[upcoming[next_voiced]]]  # [C, 3]

    limit_hz = min(_HARMONIC_LIMIT_HZ, 0.45 * sample_rate)
    harmonic = torch.arange(1, max(1, math.floor(limit_hz / float(f0.min()))) + 1)[:, None]
    freq = harmonic * f0[control]  # [K, C]
    ratio = freq[None] / control_formants.T[:, None, :]  # [3, K, C]
    width = (torch.tensor(FORMANT_BANDWIDTHS_HZ)[:, None, None] / control_formants.T[:, None, :]) * ratio
    response = 1.0 / torch.sqrt((1.0 - ratio.square()).square() + width.square())
    amplitude = response.prod(dim=0) / harmonic.sqrt() * (freq < limit_hz)
    amplitude = amplitude / torch.sqrt(0.5 * amplitude.square().sum(dim=0)).clamp_min(1e-12)

    out = torch.empty(voiced.shape[0])
    for start in range(0, voiced.shape[0], _CHUNK_SAMPLES):
        samples = voiced[start:start + _CHUNK_SAMPLES]
        step, weight = samples // hop, (samples % hop).float() / hop
        local = torch.lerp(amplitude[:, step], amplitude[:, step + 1], weight)  # [K, s]
        out[start:start + _CHUNK_SAMPLES] = (local * torch.sin(harmonic * angle[samples])).sum(dim=0)
    return out


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator, dtype=torch.float64))
