"""No float64 tensor reaches the compute device (Apple's MPS has no float64): the audio path and the sampler
run against a stand-in device (tests/device_stand_in.py) that tracks every tensor living there."""

from __future__ import annotations

import torch

from magicinfinite_core.audio import SpeakerTrack, embed_audio
from magicinfinite_core.sampling import sample_video
from tests.audio.wav2vec2_fixtures import speech_like, tiny_encoder
from tests.conftest import make_tiny_model
from tests.device_stand_in import DEVICE, DeviceStandIn
from tests.sampling.sampler_fixtures import (
    CONFIG,
    make_audio,
    make_picture,
    make_settings,
    make_text,
    make_vae,
)


def test_audio_features_keep_float64_statistics_on_the_cpu():
    tracks = [SpeakerTrack(speech_like(1.3, seed=2) + 0.05, 16000)]
    encoder = tiny_encoder(do_normalize=True)  # waveform standardisation and GroupNorm statistics
    expected = embed_audio(encoder, tracks, fps=25.0)
    guard = DeviceStandIn()
    with guard:
        features = embed_audio(encoder, tracks, fps=25.0, device=DEVICE)
    assert guard.ops_on_device > 100  # the encoder did run "on the device"
    assert guard.float64_on_device == []
    frames = expected.num_frames
    torch.testing.assert_close(features.window(0, frames), expected.window(0, frames))


def test_sampling_keeps_float64_on_the_cpu():
    model = make_tiny_model(CONFIG)
    arguments = (make_vae(), make_picture(), make_audio(9), make_text(),
                 make_settings(width=32, height=32, steps=2, window_frames=9, motion_frames=5))
    guard = DeviceStandIn()
    with guard:
        model.to(DEVICE)
        sample_video(model, *arguments, device=DEVICE)
    assert guard.ops_on_device > 100
    assert guard.float64_on_device == []
