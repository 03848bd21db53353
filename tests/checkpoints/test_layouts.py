"""Key layouts: prefixes, fp8 scales, adapter files and bundles are mapped to internal names; unknown
layouts are reported with sample keys and the layouts the pack knows."""

from __future__ import annotations

import json

import pytest
import torch
from checkpoint_files import fp8_scaled, native_state, prefixed, save, split_adapter
from conftest import make_tiny_model

from magicinfinite_core.checkpoints import open_tensor_file
from magicinfinite_core.checkpoints.layouts import KNOWN_LAYOUTS, detect_layout
from magicinfinite_core.errors import CheckpointError


@pytest.fixture(scope="module")
def model():
    return make_tiny_model(num_layers=1)


@pytest.mark.parametrize("prefix", ["", "diffusion_model.", "model.diffusion_model."])
def test_prefixes_are_stripped_to_wan_native_names(tmp_path, model, prefix):
    state = native_state(model)
    layout = detect_layout(open_tensor_file(save(tmp_path / "m.safetensors", prefixed(state, prefix))))
    assert layout.prefix == prefix
    assert layout.sources == {k: prefix + k for k in state}
    assert not layout.scales and not layout.is_adapter


def test_fp8_scaled_weights_are_paired_with_their_scales(tmp_path, model):
    layout = detect_layout(open_tensor_file(save(tmp_path / "m.safetensors", fp8_scaled(model))))
    assert "fp8 scaled" in layout.name
    assert (
        layout.scales["blocks.0.self_attn.q.weight"]
        == "model.diffusion_model.blocks.0.self_attn.q.scale_weight"
    )
    assert "scaled_fp8" not in layout.sources
    assert set(layout.sources) == set(native_state(model))


@pytest.mark.parametrize("prefix", ["", "diffusion_model."])
def test_adapter_only_files_are_recognised(tmp_path, model, prefix):
    _, adapter = split_adapter(native_state(model))
    layout = detect_layout(open_tensor_file(save(tmp_path / "a.safetensors", prefixed(adapter, prefix))))
    assert layout.is_adapter and "adapter" in layout.name
    assert set(layout.sources) == set(adapter)
    assert {
        "audio_proj.proj1.weight",
        "blocks.0.norm_x.weight",
        "blocks.0.audio_cross_attn.kv_linear.weight",
    } <= set(layout.sources)


def test_other_parts_of_a_bundle_are_left_out(tmp_path, model):
    tensors = prefixed(native_state(model), "model.diffusion_model.") | {
        "first_stage_model.decoder.conv_in.weight": torch.ones(2),
        "cond_stage_model.shared.weight": torch.ones(2),
    }
    layout = detect_layout(open_tensor_file(save(tmp_path / "bundle.safetensors", tensors)))
    assert set(layout.sources) == set(native_state(model))


def test_unknown_layout_lists_sample_keys_and_known_layouts(tmp_path):
    tensors = {f"transformer_blocks.{i}.attn.to_q.weight": torch.ones(2) for i in range(3)}
    with pytest.raises(CheckpointError) as error:
        detect_layout(open_tensor_file(save(tmp_path / "flux.safetensors", tensors)))
    message = str(error.value)
    assert "flux.safetensors" in message and "unknown key layout" in message
    assert "transformer_blocks.0.attn.to_q.weight" in message
    assert all(layout in message for layout in KNOWN_LAYOUTS)


def test_quantisation_formats_other_than_fp8_e4m3_are_refused(tmp_path, model):
    tensors = native_state(model)
    conf = json.dumps({"format": "nvfp4"}).encode()
    tensors["blocks.0.ffn.0.comfy_quant"] = torch.tensor(list(conf), dtype=torch.uint8)
    with pytest.raises(CheckpointError, match=r"m.safetensors: 1 layers are quantised as 'nvfp4'"):
        detect_layout(open_tensor_file(save(tmp_path / "m.safetensors", tensors)))


def test_comfy_quant_fp8_layers_use_weight_scale(tmp_path, model):
    tensors = native_state(model)
    conf = json.dumps({"format": "float8_e4m3fn"}).encode()
    tensors["blocks.0.ffn.0.comfy_quant"] = torch.tensor(list(conf), dtype=torch.uint8)
    tensors["blocks.0.ffn.0.weight_scale"] = torch.ones(())
    layout = detect_layout(open_tensor_file(save(tmp_path / "m.safetensors", tensors)))
    assert layout.scales == {"blocks.0.ffn.0.weight": "blocks.0.ffn.0.weight_scale"}
    assert set(layout.sources) == set(native_state(model))
