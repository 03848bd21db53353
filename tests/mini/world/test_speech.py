"""Synthetic speech: reproducible from its seed, syllables with true silence between them, vowel formants
where the vowel table puts them, and ground-truth envelope and vowels that match the waveform."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from magicinfinite_core.errors import InputError
from magicinfinite_core.mini.world.clips import correlation
from magicinfinite_core.mini.world.speech import (
    MIN_GAP_S,
    SPEECH_RMS,
    VOWELS,
    frame_loudness,
    synthesize_speech,
)

RATE = 16000


def test_same_seed_gives_the_same_track():
    first, second = synthesize_speech(5, 2.0), synthesize_speech(5, 2.0)
    assert torch.equal(first.waveform, second.waveform)
    assert torch.equal(first.envelope, second.envelope)
    assert first.syllables == second.syllables


def test_waveform_is_float32_of_the_asked_length_and_within_full_scale():
    track = synthesize_speech(1, 3.0, sample_rate=22050)
    assert track.waveform.dtype == torch.float32
    assert track.waveform.shape == (round(3.0 * 22050),)
    assert track.sample_rate == 22050
    assert 0.05 < float(track.waveform.abs().max()) < 1.0


def test_different_seeds_speak_with_different_syllable_timing():
    envelopes = [synthesize_speech(seed, 6.0).frame_envelope(25) for seed in range(6)]
    correlations = [abs(correlation(envelopes[i], envelopes[j])) for i in range(6) for j in range(i + 1, 6)]
    assert max(correlations) < 0.5
    assert sum(correlations) / len(correlations) < 0.25


def test_envelope_has_syllables_that_rise_and_fall():
    track = synthesize_speech(3, 6.0)
    frames = track.frame_envelope(25)
    assert len(track.syllables) >= 1.5 * 6.0
    assert float(frames.var()) > 0.03
    # one voiced run of samples per syllable: each rises from silence and falls back to it
    voiced = (track.envelope > 0).int()
    assert int((voiced[1:] - voiced[:-1] == 1).sum()) + int(voiced[0]) == len(track.syllables)


def test_silence_between_syllables():
    track = synthesize_speech(4, 6.0)
    for before, after in zip(track.syllables, track.syllables[1:], strict=False):
        assert after.start_s - before.end_s >= MIN_GAP_S - 1e-9
        gap = track.waveform[round(before.end_s * RATE):round(after.start_s * RATE)]
        assert gap.abs().max() == 0
        middle = round((before.start_s + before.end_s) / 2 * RATE)
        voiced = track.waveform[middle - 160:middle + 160]
        assert float(voiced.square().mean().sqrt()) > 0.3 * SPEECH_RMS * before.amplitude


def test_measured_loudness_follows_the_ground_truth_envelope():
    track = synthesize_speech(6, 5.0)
    truth = track.frame_envelope(25)
    measured = frame_loudness(track.waveform, RATE, 25, truth.shape[0])
    assert correlation(truth, measured) > 0.98
    # scale-free: a quieter copy (e.g. after loudness normalisation) reads the same
    assert torch.allclose(frame_loudness(0.1 * track.waveform, RATE, 25, truth.shape[0]), measured, atol=1e-5)


def band_energy(track, vowel: str, low_hz: float, high_hz: float) -> float:
    """Fraction of the spectral energy of all `vowel` syllables (their middle halves) within a band."""
    window = 512
    spectrum = torch.zeros(window // 2 + 1)
    for syllable in track.syllables:
        quarter_s = (syllable.end_s - syllable.start_s) / 4
        start, end = round((syllable.start_s + quarter_s) * RATE), round((syllable.end_s - quarter_s) * RATE)
        piece = track.waveform[start:end]
        if syllable.vowel != vowel or piece.shape[0] < window:
            continue
        frames = piece.unfold(0, window, window // 4) * torch.hann_window(window)
        spectrum += torch.fft.rfft(frames).abs().square().sum(dim=0)
    freqs = torch.fft.rfftfreq(window, 1 / RATE)
    assert spectrum.sum() > 0, f"no {vowel!r} syllable long enough in this track"
    return float(spectrum[(freqs >= low_hz) & (freqs < high_hz)].sum() / spectrum.sum())


def test_formant_energy_sits_where_each_vowel_puts_it():
    track = synthesize_speech(9, 20.0)
    assert {s.vowel for s in track.syllables} == set(VOWELS)
    # "a" has a high first formant (730 Hz), "i" a low one (270 Hz) and a high second one (2290 Hz)
    assert band_energy(track, "a", 600, 1000) > 3 * band_energy(track, "i", 600, 1000)
    assert band_energy(track, "i", 1900, 2900) > 3 * band_energy(track, "a", 1900, 2900)
    # "e" (second formant 1840 Hz) versus "o" (840 Hz)
    assert band_energy(track, "e", 1500, 2200) > 3 * band_energy(track, "o", 1500, 2200)
    assert band_energy(track, "o", 650, 1100) > 1.5 * band_energy(track, "e", 650, 1100)


def test_speaking_spans_confine_the_syllables():
    spans = ((0.5, 1.5), (3.0, 4.0))
    track = synthesize_speech(2, 5.0, speaking_spans_s=spans)
    assert track.syllables
    for syllable in track.syllables:
        assert any(start <= syllable.start_s and syllable.end_s <= end for start, end in spans)
    outside = torch.ones_like(track.waveform, dtype=torch.bool)
    for start, end in spans:
        outside[round(start * RATE):round(end * RATE)] = False
    assert track.waveform[outside].abs().max() == 0


@settings(max_examples=25, deadline=None)
@given(
    duration_s=st.floats(0.3, 2.0),
    sample_rate=st.sampled_from([8000, 16000, 22050, 44100]),
    fps=st.sampled_from([12.0, 16.0, 24.0, 25.0, 30.0, 29.97]),
    seed=st.integers(0, 2**31 - 1),
)
def test_per_frame_ground_truth_has_one_value_per_frame(duration_s, sample_rate, fps, seed):
    track = synthesize_speech(seed, duration_s, sample_rate)
    num_frames = math.floor(track.duration_s * fps + 1e-9)
    envelope, vowels = track.frame_envelope(fps), track.frame_vowels(fps)
    assert envelope.shape == vowels.shape == (num_frames,)
    assert float(envelope.min()) >= 0 and float(envelope.max()) <= 1
    assert torch.equal(vowels == -1, envelope == 0)
    assert bool(((vowels >= -1) & (vowels < len(VOWELS))).all())


def test_bad_arguments_are_named():
    with pytest.raises(InputError, match="duration_s"):
        synthesize_speech(0, 0.0)
    with pytest.raises(InputError, match="sample_rate"):
        synthesize_speech(0, 1.0, sample_rate=4000)
