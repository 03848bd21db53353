"""The shipped sample portrait and voice are small, load as ComfyUI values, and still match what the world
draws and says for their seeds (rerun scripts/make_assets.py when they do not)."""

import torch

from magicinfinite_core.assets import (
    SAMPLE_PORTRAIT_PNG,
    SAMPLE_PORTRAIT_SEED,
    SAMPLE_PORTRAIT_SIZE,
    SAMPLE_SPEECH_DURATION_S,
    SAMPLE_SPEECH_RATE,
    SAMPLE_SPEECH_SEED,
    SAMPLE_SPEECH_WAV,
    load_sample_portrait,
    load_sample_speech,
)
from magicinfinite_core.mini.world.clips import render_portrait
from magicinfinite_core.mini.world.speech import synthesize_speech


def test_sample_portrait_is_small_and_matches_its_seed():
    assert SAMPLE_PORTRAIT_PNG.stat().st_size < 100_000
    image = load_sample_portrait()
    assert image.shape == (1, SAMPLE_PORTRAIT_SIZE, SAMPLE_PORTRAIT_SIZE, 3) and image.dtype == torch.float32
    drawn = render_portrait(SAMPLE_PORTRAIT_SEED, SAMPLE_PORTRAIT_SIZE, SAMPLE_PORTRAIT_SIZE).frames
    assert float((image - drawn).abs().max()) <= 1.5 / 255


def test_sample_speech_matches_its_seed():
    assert SAMPLE_SPEECH_WAV.stat().st_size < 200_000
    waveform, sample_rate = load_sample_speech()
    track = synthesize_speech(SAMPLE_SPEECH_SEED, SAMPLE_SPEECH_DURATION_S, SAMPLE_SPEECH_RATE)
    assert sample_rate == SAMPLE_SPEECH_RATE
    assert waveform.shape == (1, track.waveform.shape[0])
    assert float((waveform[0] - track.waveform).abs().max()) <= 1.5 / 32767
