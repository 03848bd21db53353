"""Preprocessing: any rate and channel count -> mono 16 kHz; loudness as the reference measures it."""

from __future__ import annotations

import math

import pytest
import torch
import torchaudio.functional as AF

from magicinfinite_core.audio.preprocess import (
    SpeakerTrack,
    check_track,
    integrated_loudness,
    loudness_gain,
    to_encoder_rate,
)
from magicinfinite_core.errors import InputError
from tests.audio.wav2vec2_fixtures import speech_like


def tone(freq: float, seconds: float, rate: int, amplitude: float = 0.5) -> torch.Tensor:
    t = torch.arange(round(seconds * rate), dtype=torch.float64) / rate
    return (amplitude * torch.sin(2 * math.pi * freq * t)).to(torch.float32)


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000, 96000])
def test_any_rate_becomes_16k_with_the_same_content(rate):
    mono = to_encoder_rate(tone(440.0, 1.0, rate)[None], rate)
    expected = tone(440.0, 1.0, 16000)
    assert mono.shape == (16000,)
    # Away from the resampler's edge effects the 440 Hz tone is the same tone.
    middle = slice(200, -200)
    assert torch.allclose(mono[middle], expected[middle], atol=2e-3)


@pytest.mark.parametrize("channels", [1, 2, 6])
def test_channels_are_averaged_as_librosa_does(channels):
    wave = speech_like(0.5, 16000, channels=channels)
    assert torch.allclose(to_encoder_rate(wave, 16000), wave.mean(dim=0))


def test_loudness_matches_pyloudnorm_including_loud_clips():
    pyln = pytest.importorskip("pyloudnorm")
    meter = pyln.Meter(16000)
    cases = [(0.4, 0.3), (0.45, 1.0), (3.3, 0.05), (3.3, 1.0), (3.3, 3.0), (10.0, 0.001), (65.0, 0.5)]
    for seconds, level in cases:
        mono = speech_like(seconds, 16000, seed=int(seconds * 10))[0] * level
        ours = integrated_loudness(mono)
        theirs = meter.integrated_loudness(mono.double().numpy())
        # torchaudio's filters alone clamp to [-1, 1]; loud clips (level 3) would be off by 2.5 LU.
        assert ours == pytest.approx(theirs, abs=0.01), (seconds, level)


def test_long_clips_measured_in_pieces_match_torchaudio():
    """Quiet and loud stretches (so both gates act) across several measuring pieces (30 s each)."""
    mono = speech_like(75.0, 16000, seed=4)[0]
    levels = torch.ones_like(mono)
    levels[200_000:420_000] = 0.02  # quiet stretch: below the relative gate
    levels[700_000:900_000] = 1e-5  # near silence: below the absolute gate
    mono = mono * levels
    expected = float(AF.loudness(mono[None].double(), 16000))
    assert integrated_loudness(mono) == pytest.approx(expected, abs=1e-4)


def test_normalised_clip_measures_minus_23_lufs():
    mono = speech_like(4.0, 16000)[0] * 0.02
    gain = loudness_gain(mono)
    assert gain > 1.0
    assert integrated_loudness(mono * gain) == pytest.approx(-23.0, abs=0.01)


def test_silence_and_short_clips_are_left_unchanged():
    assert loudness_gain(torch.zeros(32000)) == 1.0
    assert integrated_loudness(torch.zeros(32000)) == -math.inf
    # Below the absolute gate (-70 LUFS) counts as silence: the reference's |LUFS| > 100 test skips it.
    assert loudness_gain(speech_like(2.0)[0] * 1e-7) == 1.0
    short = speech_like(0.39)[0]
    assert loudness_gain(short) == 1.0  # pyloudnorm cannot measure < 0.4 s; the reference would fail


@pytest.mark.parametrize(("waveform", "rate", "message"), [
    (torch.zeros(1, 0), 16000, "empty"),
    (torch.zeros(0, 100), 16000, "empty"),
    (torch.tensor([[0.0, float("nan"), 0.0]]), 16000, "NaN"),
    (torch.tensor([[0.0, float("inf")]]), 16000, "NaN or infinite"),
    (torch.zeros(1, 100), 0, "sample rate"),
    (torch.zeros(1, 100), -8000, "sample rate"),
    (torch.zeros(100), 16000, "[channels, samples]"),
])
def test_bad_recordings_are_refused_naming_the_input(waveform, rate, message):
    with pytest.raises(InputError, match="audio_3") as err:
        check_track(SpeakerTrack(waveform, rate, name="audio_3"))
    assert message in str(err.value)
