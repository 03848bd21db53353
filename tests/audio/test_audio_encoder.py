"""Loading wav2vec2 from a Hugging Face folder or one safetensors file; clear errors for anything else."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import Wav2Vec2Config, Wav2Vec2Model

from magicinfinite_core.audio.encoder import infer_wav2vec2_config, load_audio_encoder
from magicinfinite_core.errors import CheckpointError
from tests.audio.wav2vec2_fixtures import save_hf_folder, save_single_file, tiny_module


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_hugging_face_folder(tmp_path):
    module = tiny_module()
    folder = save_hf_folder(module, tmp_path / "chinese-wav2vec2-tiny", do_normalize=True)
    encoder = load_audio_encoder(folder)
    assert same_weights(encoder.module, module)
    assert encoder.do_normalize is True  # read from preprocessor_config.json
    assert (encoder.feature_layers, encoder.feature_width) == (2, 128)
    assert encoder.name == "chinese-wav2vec2-tiny"
    # Picking the folder's model.safetensors (as a file list shows it) uses its config.json too.
    assert same_weights(load_audio_encoder(folder / "model.safetensors").module, module)


@pytest.mark.parametrize("prefix", ["wav2vec2.", ""])
@pytest.mark.parametrize("old_weight_norm", [True, False])
def test_single_file_with_config_read_from_shapes(tmp_path, prefix, old_weight_norm):
    module = tiny_module(seed=4)
    path = save_single_file(module, tmp_path / "tiny.safetensors", prefix=prefix,
                            old_weight_norm=old_weight_norm)
    encoder = load_audio_encoder(path)
    assert same_weights(encoder.module, module)
    assert encoder.module.config.num_attention_heads == 2
    assert encoder.do_normalize is False  # group-norm (base-like) model without a preprocessor config
    samples = torch.randn(1, 4000)
    with torch.no_grad():
        assert torch.allclose(encoder.module(samples).last_hidden_state, module(samples).last_hidden_state,
                              atol=1e-6)


def test_half_precision_file_loads_as_float32(tmp_path):
    module = tiny_module(seed=5, feat_extract_norm="layer", conv_bias=True, do_stable_layer_norm=True)
    path = save_single_file(module, tmp_path / "tiny_fp16.safetensors", dtype=torch.float16)
    encoder = load_audio_encoder(path)
    assert all(p.dtype == torch.float32 for p in encoder.module.parameters())
    config = encoder.module.config
    assert config.feat_extract_norm == "layer" and config.do_stable_layer_norm and config.conv_bias
    assert encoder.do_normalize is True  # the large (layer-norm) models standardise their input


def test_base_shaped_config_is_read_from_shapes():
    with torch.device("meta"):
        base = Wav2Vec2Model(Wav2Vec2Config(mask_time_prob=0.0))
    config = infer_wav2vec2_config({k: tuple(v.shape) for k, v in base.state_dict().items()})
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads) == (768, 12, 12)
    assert config.intermediate_size == 3072 and tuple(config.conv_dim) == (512,) * 7
    assert (config.num_conv_pos_embeddings, config.num_conv_pos_embedding_groups) == (128, 16)
    assert config.feat_extract_norm == "group" and not config.do_stable_layer_norm and not config.conv_bias


def test_pickles_are_refused(tmp_path):
    pickle = tmp_path / "chinese-wav2vec2-base.bin"
    pickle.write_bytes(b"not loaded")
    with pytest.raises(CheckpointError, match="chinese-wav2vec2-base.bin.*pickle.*refs/pr/1"):
        load_audio_encoder(pickle)
    folder = tmp_path / "chinese-wav2vec2-base"
    folder.mkdir()
    (folder / "pytorch_model.bin").write_bytes(b"not loaded")
    (folder / "config.json").write_text("{}")
    with pytest.raises(CheckpointError, match="no model.safetensors.*pytorch_model.bin.*refs/pr/1"):
        load_audio_encoder(folder)


def test_broken_and_foreign_files_are_refused(tmp_path):
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(CheckpointError, match="broken.safetensors.*cannot be read"):
        load_audio_encoder(broken)
    foreign = tmp_path / "whisper.safetensors"
    save_file({"model.encoder.embed_positions.weight": torch.zeros(4, 4)}, str(foreign))
    with pytest.raises(CheckpointError, match="whisper.safetensors: not a wav2vec2"):
        load_audio_encoder(foreign)
    with pytest.raises(CheckpointError, match="no such file"):
        load_audio_encoder(tmp_path / "missing.safetensors")


def test_truncated_model_is_refused_naming_the_file(tmp_path):
    module = tiny_module()
    path = save_single_file(module, tmp_path / "cut.safetensors")
    state = load_file(str(path))
    del state["wav2vec2.encoder.layers.1.final_layer_norm.weight"]
    save_file(state, str(path))
    with pytest.raises(CheckpointError, match="cut.safetensors: the weights do not fit"):
        load_audio_encoder(path)
