"""Audio nodes: declared inputs with tooltips; loader over models/audio_encoders; embed from AUDIO values."""

from __future__ import annotations

import pytest
import torch

from magicinfinite_core.audio import AudioEncoder, AudioFeatures
from magicinfinite_core.errors import CheckpointError, InputError
from nodes import NODE_CLASS_MAPPINGS
from nodes.audio import MagicInfiniteAudioEmbed, MagicInfiniteAudioEncoderLoader
from nodes.host import MODELS_DIR_ENV
from nodes.host_audio import encoded_track, speaker_tracks
from tests.audio.wav2vec2_fixtures import (
    host_encoder_output,
    save_single_file,
    speech_like,
    tiny_encoder,
    tiny_module,
)

NODES = (MagicInfiniteAudioEncoderLoader, MagicInfiniteAudioEmbed)


def audio(seconds: float, rate: int = 16000, channels: int = 1, seed: int = 0) -> dict:
    return {"waveform": speech_like(seconds, rate, channels=channels, seed=seed)[None], "sample_rate": rate}


@pytest.fixture(scope="module")
def encoder() -> AudioEncoder:
    return tiny_encoder()


def test_registered_in_the_audio_category():
    for node in NODES:
        assert NODE_CLASS_MAPPINGS[node.__name__] is node
        assert node.CATEGORY == "MagicInfinite/audio"
        assert hasattr(node, node.FUNCTION)
    assert MagicInfiniteAudioEncoderLoader.RETURN_TYPES == ("MI_AUDIO_ENCODER",)
    assert MagicInfiniteAudioEmbed.RETURN_TYPES == ("MI_AUDIO", "AUDIO", "INT")


def test_every_input_has_a_tooltip(tmp_path, monkeypatch):
    monkeypatch.setenv(MODELS_DIR_ENV, str(tmp_path))
    for node in NODES:
        spec = node.INPUT_TYPES()
        for name, (_, options) in {**spec["required"], **spec.get("optional", {})}.items():
            assert options.get("tooltip"), f"{node.__name__}.{name}"


def test_loader_lists_and_loads_from_audio_encoders(tmp_path, monkeypatch):
    folder = tmp_path / "audio_encoders"
    folder.mkdir()
    save_single_file(tiny_module(), folder / "tiny-wav2vec2.safetensors")
    (folder / "notes.txt").write_text("not a model")
    monkeypatch.setenv(MODELS_DIR_ENV, str(tmp_path))
    names = MagicInfiniteAudioEncoderLoader.INPUT_TYPES()["required"]["audio_encoder_name"][0]
    assert names[1:] == ["tiny-wav2vec2.safetensors"]  # after the embedded encoder (test_embedded_fallbacks)
    (loaded,) = MagicInfiniteAudioEncoderLoader().load("tiny-wav2vec2.safetensors")
    assert isinstance(loaded, AudioEncoder) and loaded.feature_layers == 2
    (folder / "old.bin").write_bytes(b"pickle")
    with pytest.raises(CheckpointError, match="old.bin"):
        MagicInfiniteAudioEncoderLoader().load("old.bin")


def test_embed_returns_features_mix_and_frame_count(encoder):
    node = MagicInfiniteAudioEmbed()
    features, mix, num_frames = node.embed(audio(2.0, 44100, channels=2), 25.0, "add", True,
                                           audio_encoder=encoder, audio_2=audio(1.0, 16000, seed=1),
                                           gain_2=0.5)
    assert isinstance(features, AudioFeatures)
    assert (features.num_speakers, features.mode, num_frames) == (2, "add", 75)
    assert mix["sample_rate"] == 44100 and mix["waveform"].shape == (1, 2, 3 * 44100)
    assert features.window(0, 81).shape == (2, 81, 5, 2, 128)


def test_embed_from_host_encoder_outputs(encoder):
    clip = audio(3.0)
    output = host_encoder_output(encoder.module, clip["waveform"][0, 0])
    node = MagicInfiniteAudioEmbed()
    features, _, num_frames = node.embed(clip, 25.0, "para", False, encoder_output_1=output)
    assert num_frames == 75 and features.encoder_name == "host audio encoder"


def test_embed_input_mistakes_name_the_input(encoder):
    node = MagicInfiniteAudioEmbed()
    with pytest.raises(InputError, match="audio_2 is not connected but audio_3 is"):
        node.embed(audio(1.0), 25.0, "para", True, audio_encoder=encoder, audio_3=audio(1.0))
    with pytest.raises(InputError, match="audio_encoder: not connected"):
        node.embed(audio(1.0), 25.0, "para", True)
    output = host_encoder_output(encoder.module, speech_like(1.0)[0])
    with pytest.raises(InputError, match="either audio_encoder or the encoder outputs"):
        node.embed(audio(1.0), 25.0, "para", True, audio_encoder=encoder, encoder_output_1=output)
    with pytest.raises(InputError, match="encoder_output_2 is connected but audio_2 is not"):
        node.embed(audio(1.0), 25.0, "para", True, encoder_output_1=output, encoder_output_2=output)
    with pytest.raises(InputError, match="encoder_output_2 is missing"):
        node.embed(audio(1.0), 25.0, "para", True, audio_2=audio(1.0), encoder_output_1=output)
    batch = {"waveform": torch.zeros(2, 1, 16000), "sample_rate": 16000}
    with pytest.raises(InputError, match="audio_1: holds a batch of 2"):
        node.embed(batch, 25.0, "para", True, audio_encoder=encoder)


@pytest.mark.parametrize("name", ["audio_5", "gain_5", "encoder_output_7"])
def test_a_fifth_voice_in_an_api_prompt_is_refused_by_name(encoder, name):
    # ComfyUI passes a linked input the node does not declare on to it: it must not vanish silently.
    stem, number = name.rsplit("_", 1)
    with pytest.raises(InputError, match=(
            rf"^{name}: MagicInfinite Audio Embed takes at most 4 speakers \({stem}_1 to {stem}_4\); "
            rf"speaker {number} would be left out of the video, so it is refused")):
        MagicInfiniteAudioEmbed().embed(audio(1.0), 25.0, "para", True, audio_encoder=encoder,
                                        audio_2=audio(1.0), **{name: audio(1.0)})
    with pytest.raises(InputError, match="^audio: MagicInfinite Audio Embed has no input of this name"):
        MagicInfiniteAudioEmbed().embed(audio(1.0), 25.0, "para", True, audio_encoder=encoder,
                                        audio=audio(1.0))


def test_host_values_are_read_naming_the_input():
    with pytest.raises(InputError, match="encoder_output_1: expected ComfyUI's AUDIO_ENCODER_OUTPUT"):
        encoded_track({"encoded_audio": torch.zeros(1, 5, 8)}, "encoder_output_1")
    with pytest.raises(InputError, match="encoder_output_2: 'encoded_audio_all_layers' should hold"):
        encoded_track({"encoded_audio_all_layers": (torch.zeros(1, 5, 8),)}, "encoder_output_2")
    states = [torch.full((1, 5, 8), float(i)) for i in range(3)]
    track = encoded_track({"encoded_audio_all_layers": states, "audio_samples": 1600}, "encoder_output_1")
    assert track.hidden_states.shape == (5, 2, 8) and track.hidden_states[0, :, 0].tolist() == [1.0, 2.0]
    assert track.num_samples == 1600
    with pytest.raises(InputError, match="audio_2 is not connected but audio_3 is"):
        speaker_tracks([audio(1.0), None, audio(1.0)])
    with pytest.raises(InputError, match="audio_1: holds a batch of 2"):
        speaker_tracks([{"waveform": torch.zeros(2, 1, 1600), "sample_rate": 16000}])
