"""AudioFeatures: windows padded as the MultiTalk reference pads, compact storage, adapter layout check."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from magicinfinite_core.audio.features import (
    AudioFeatures,
    FrameStore,
    check_adapter_compatible,
    window_indices,
)
from magicinfinite_core.errors import InputError
from magicinfinite_core.models.config import AudioAdapterConfig


def reference_window_rows(num_frames: int, start: int, stop: int) -> torch.Tensor:
    """The reference's streaming loop, literally: when a clip runs to or past the end it appends
    flip(emb[-miss:]) with miss = end - N + 3, then takes rows i-2..i+2 clamped to the padded length."""
    emb = torch.arange(num_frames)
    if stop >= num_frames:
        miss = stop - num_frames + 3
        emb = torch.cat([emb, torch.flip(emb[-miss:], dims=[0])])
    rows = torch.arange(start, stop)[:, None] + (torch.arange(5) - 2)[None, :]
    return emb[rows.clamp(min=0, max=emb.shape[0] - 1)]


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 200), st.integers(0, 400), st.integers(1, 120))
def test_windows_pad_past_the_end_as_the_reference(num_frames, start, length):
    stop = start + length
    index = window_indices(start, stop, num_frames)
    assert index.shape == (length, 5)
    assert int(index.min()) >= 0 and int(index.max()) < num_frames
    assert torch.equal(index, reference_window_rows(num_frames, start, stop))


def test_window_rows_inside_the_track_are_the_neighbours():
    index = window_indices(10, 13, 100)
    assert index.tolist() == [[8, 9, 10, 11, 12], [9, 10, 11, 12, 13], [10, 11, 12, 13, 14]]
    assert window_indices(0, 1, 100).tolist() == [[0, 0, 0, 1, 2]]
    # Past the end: last frames in reverse order (frame 10 of 10 reads 9, frame 11 reads 8).
    assert window_indices(9, 12, 10).tolist() == [[7, 8, 9, 9, 8], [8, 9, 9, 8, 7], [9, 9, 8, 7, 6]]


def make_features(num_frames: int = 40, *, in_memory_bytes: int | None = None,
                  speakers: int = 2) -> tuple[AudioFeatures, torch.Tensor]:
    store = FrameStore(speakers, num_frames, 3, 4, in_memory_bytes=in_memory_bytes)
    values = torch.randn(speakers, num_frames, 3, 4, generator=torch.Generator().manual_seed(0))
    for s in range(speakers):
        store.write(s, 0, values[s, :25])
        store.write(s, 25, values[s, 25:])
    features = AudioFeatures(num_speakers=speakers, fps=25.0, num_frames=num_frames, mode="para",
                             sample_rate=16000, waveform=torch.zeros(1, 16000), feature_layers=3,
                             feature_width=4, encoder_name="test", store=store)
    return features, values


@pytest.mark.parametrize("in_memory_bytes", [None, 0])
def test_window_gathers_stored_frames(in_memory_bytes):
    features, values = make_features(in_memory_bytes=in_memory_bytes)
    assert features.store.on_disk == (in_memory_bytes == 0)
    window = features.window(30, 45)  # runs 5 frames past the end
    assert window.shape == (2, 15, 5, 3, 4) and window.dtype == torch.float32
    expected = values[:, window_indices(30, 45, 40)]
    # On disk the features are float16: 11 significant bits.
    tolerance = 0 if in_memory_bytes is None else 2e-3
    assert torch.allclose(window, expected, atol=tolerance * 4, rtol=tolerance)


def test_bad_window_ranges_are_refused():
    features, _ = make_features()
    for start, stop in [(-1, 3), (5, 5), (6, 2)]:
        with pytest.raises(InputError, match="audio window"):
            features.window(start, stop)


def test_adapter_mismatch_is_explained():
    store = FrameStore(1, 4, 24, 8)
    large = AudioFeatures(num_speakers=1, fps=25.0, num_frames=4, mode="para", sample_rate=16000,
                          waveform=torch.zeros(1, 2560), feature_layers=24, feature_width=1024,
                          encoder_name="wav2vec2-large.safetensors", store=store)
    with pytest.raises(InputError) as err:
        check_adapter_compatible(large, AudioAdapterConfig())
    message = str(err.value)
    assert "24 layers x 1024" in message and "12 x 768" in message and "chinese-wav2vec2-base" in message
    assert "wav2vec2-large.safetensors" in message
    check_adapter_compatible(large, AudioAdapterConfig(feature_layers=24, feature_width=1024))
