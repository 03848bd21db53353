"""load_model: every layout loads back the same tensors and the same output; storage dtypes; fp8
tolerance; clear errors for missing, mis-shaped and unexpected tensors and misplaced adapter files."""

from __future__ import annotations

import json

import pytest
import torch
from checkpoint_files import (
    fp8_scaled,
    linear_weight_keys,
    native_state,
    prefixed,
    save,
    save_shards,
    split_adapter,
)
from conftest import make_inputs, make_tiny_model

from magicinfinite_core.checkpoints import LoraSpec, load_model
from magicinfinite_core.checkpoints.fp8 import dequantize
from magicinfinite_core.errors import CheckpointError, InputError
from magicinfinite_core.models.wan import WanModel

FP8 = torch.float8_e4m3fn
# fp8 e4m3 keeps 3 mantissa bits (relative rounding up to 1/16 per weight); through the tiny model's
# 2 blocks the velocity moves by about 4 % (relative L2) from the bf16 model's. Allowed: 8 %.
FP8_TOLERANCE = 0.08


@pytest.fixture(scope="module")
def model() -> WanModel:
    return make_tiny_model(num_layers=2)


def velocity(module: WanModel, seed: int = 0) -> torch.Tensor:
    inputs = make_inputs(module.config, speakers=1, seed=seed)
    features = inputs.pop("features")
    return module(**inputs, audio_tokens=module.encode_audio(features))


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm())


def write_layout(folder, model, layout: str):
    """(dit path, adapter path or None) of the tiny model saved in `layout`."""
    state = native_state(model)
    if layout in ("native", "diffusion_model.", "model.diffusion_model."):
        prefix = "" if layout == "native" else layout
        return save(folder / "dit.safetensors", prefixed(state, prefix), model), None
    if layout == "shards via index":
        save_shards(folder, state, 3, model)
        return folder / "diffusion_pytorch_model.safetensors.index.json", None
    if layout == "one of the shards":
        return save_shards(folder, state, 3, model, index=False)[1], None
    base, adapter = split_adapter(state)
    if layout == "MeiGen shards + multitalk.safetensors in the index":
        shards = save_shards(folder, base, 2, model)
        save(folder / "multitalk.safetensors", adapter, model)
        index = folder / "diffusion_pytorch_model.safetensors.index.json"
        content = json.loads(index.read_text())
        content["weight_map"].update(dict.fromkeys(adapter, "multitalk.safetensors"))
        index.write_text(json.dumps(content))
        return shards[0], None
    prefix = "model.diffusion_model." if layout == "comfy base + adapter file" else ""
    dit = save(folder / "dit.safetensors", prefixed(base, prefix), model)
    return dit, save(folder / "infinitetalk.safetensors", adapter, model)


LAYOUTS = [
    "native",
    "diffusion_model.",
    "model.diffusion_model.",
    "shards via index",
    "one of the shards",
    "MeiGen shards + multitalk.safetensors in the index",
    "base + adapter file",
    "comfy base + adapter file",
]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_each_layout_loads_back_the_same_tensors_and_output(tmp_path, model, layout):
    dit, adapter = write_layout(tmp_path, model, layout)
    loaded = load_model(dit, adapter_path=adapter, compute_dtype=torch.float32)
    assert loaded.config == model.config
    if "shard" not in layout:  # a set of shards is named by its index
        assert loaded.sources == tuple(str(p) for p in (dit, adapter) if p is not None)
    expected = model.state_dict()
    state = loaded.module.state_dict()
    assert state.keys() == expected.keys()
    assert all(torch.equal(state[k], expected[k]) for k in expected)
    assert torch.equal(velocity(loaded.module), velocity(model))
    assert not any(p.requires_grad or p.is_meta for p in loaded.module.parameters())


def test_fp8_scaled_files_stay_fp8_with_their_scales(tmp_path, model):
    tensors = fp8_scaled(model)
    path = save(tmp_path / "wan_fp8_scaled.safetensors", tensors, model)
    kept = load_model(path, compute_dtype=torch.float32)
    upcast = load_model(path, compute_dtype=torch.float32, storage_dtype=torch.float32)
    layer = "blocks.1.ffn.0"
    stored = tensors[f"model.diffusion_model.{layer}.weight"]
    scale = tensors[f"model.diffusion_model.{layer}.scale_weight"]
    assert kept.module.get_parameter(f"{layer}.weight").dtype == FP8
    assert torch.equal(kept.module.get_parameter(f"{layer}.weight").float(), stored.float())
    assert torch.equal(kept.module.get_submodule(layer).scale_weight, scale.reshape(()))
    assert torch.equal(upcast.module.get_parameter(f"{layer}.weight"), dequantize(stored, scale))
    assert kept.module.get_parameter("blocks.1.modulation").dtype == torch.float32
    torch.testing.assert_close(velocity(kept.module), velocity(upcast.module), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("storage", [torch.float32, torch.bfloat16, torch.float16, FP8])
def test_weights_are_held_in_the_storage_dtype_and_small_tensors_stay_precise(tmp_path, model, storage):
    path = save(tmp_path / "dit.safetensors", native_state(model), model)
    loaded = load_model(path, storage_dtype=storage).module
    for key in linear_weight_keys(model):
        assert loaded.get_parameter(key).dtype == storage, key
    other = torch.float32 if storage == FP8 else storage
    for key in [
        "blocks.0.modulation",
        "blocks.0.norm3.weight",
        "blocks.0.self_attn.q.bias",
        "patch_embedding.weight",
    ]:
        assert loaded.get_parameter(key).dtype == other, key


def test_fp8_storage_output_is_within_tolerance_of_bf16_at_half_the_bytes(tmp_path, model):
    path = save(tmp_path / "dit.safetensors", native_state(model), model)
    bf16 = load_model(path, storage_dtype=torch.bfloat16).module
    fp8 = load_model(path, storage_dtype=FP8).module
    error = relative_error(velocity(fp8), velocity(bf16))
    assert 0 < error <= FP8_TOLERANCE
    weight_bytes = [sum(m.get_parameter(k).nbytes for k in linear_weight_keys(model)) for m in (fp8, bf16)]
    assert weight_bytes[0] * 2 == weight_bytes[1]


def test_an_adapter_file_replaces_the_one_inside_the_dit(tmp_path, model):
    other = make_tiny_model(num_layers=2, seed=7)
    dit = save(tmp_path / "multitalk_merged.safetensors", native_state(model), model)
    _, adapter = split_adapter(native_state(other))
    adapter_path = save(tmp_path / "infinitetalk.safetensors", prefixed(adapter, "diffusion_model."), other)
    loaded = load_model(dit, adapter_path=adapter_path, compute_dtype=torch.float32).module
    assert torch.equal(
        loaded.get_parameter("audio_proj.proj1.weight"), other.get_parameter("audio_proj.proj1.weight")
    )
    assert torch.equal(
        loaded.get_parameter("blocks.0.ffn.0.weight"), model.get_parameter("blocks.0.ffn.0.weight")
    )


def test_missing_tensors_are_listed_with_their_expected_shapes(tmp_path, model):
    state = native_state(model)
    del state["blocks.1.cross_attn.o.weight"]
    path = save(tmp_path / "cut.safetensors", state, model)
    with pytest.raises(CheckpointError) as error:
        load_model(path)
    message = str(error.value)
    assert "cut.safetensors" in message
    assert "1 missing tensors: blocks.1.cross_attn.o.weight (expected [64, 64])" in message


def test_mis_shaped_and_unexpected_tensors_are_listed(tmp_path, model):
    state = native_state(model)
    state["blocks.0.self_attn.q.bias"] = torch.zeros(65)
    state["img_emb.emb_pos"] = torch.zeros(1, 514, 24)  # Wan FLF2V has it, the i2v model does not
    path = save(tmp_path / "odd.safetensors", state, model)
    with pytest.raises(CheckpointError) as error:
        load_model(path)
    message = str(error.value)
    assert "odd.safetensors" in message
    assert "blocks.0.self_attn.q.bias (expected [64], found [65])" in message
    assert "img_emb.emb_pos [1, 514, 24]" in message


def test_an_adapter_for_another_width_names_both_files(tmp_path, model):
    wide = make_tiny_model(num_layers=2, dim=96, num_heads=2)
    dit = save(tmp_path / "dit.safetensors", split_adapter(native_state(model))[0], model)
    adapter = save(tmp_path / "wide_adapter.safetensors", split_adapter(native_state(wide))[1], wide)
    with pytest.raises(CheckpointError, match=r"dit.safetensors \+ wide_adapter.safetensors"):
        load_model(dit, adapter_path=adapter)


def test_adapter_and_dit_files_swapped_are_explained(tmp_path, model):
    base, adapter = split_adapter(native_state(model))
    dit = save(tmp_path / "dit.safetensors", base, model)
    adapter_path = save(tmp_path / "infinitetalk.safetensors", adapter, model)
    with pytest.raises(CheckpointError, match="infinitetalk.safetensors holds only a MultiTalk/InfiniteTalk"):
        load_model(adapter_path)
    with pytest.raises(CheckpointError, match="dit.safetensors: expected a MultiTalk/InfiniteTalk adapter"):
        load_model(dit, adapter_path=dit)


def test_unsupported_dtypes_are_input_errors(tmp_path, model):
    path = save(tmp_path / "dit.safetensors", native_state(model), model)
    with pytest.raises(InputError, match="compute dtype"):
        load_model(path, compute_dtype=FP8)
    with pytest.raises(InputError, match="storage dtype"):
        load_model(path, storage_dtype=torch.int8)


def test_a_plain_fp8_file_keeps_linear_weights_fp8_and_upcasts_the_rest(tmp_path, model):
    """Like wan2.1_*_fp8_e4m3fn.safetensors: fp8 without scales; here even the norms are fp8."""
    tensors = {k: v.to(FP8) for k, v in native_state(model).items()}
    loaded = load_model(
        save(tmp_path / "fp8.safetensors", tensors, model), compute_dtype=torch.bfloat16
    ).module
    layer = loaded.get_submodule("blocks.0.ffn.0")
    assert layer.weight.dtype == FP8 and layer.scale_weight is None
    assert torch.equal(layer.weight.float(), tensors["blocks.0.ffn.0.weight"].float())
    assert loaded.get_parameter("blocks.0.norm3.weight").dtype == torch.bfloat16
    assert torch.isfinite(velocity(loaded)).all()


def test_tensors_scales_and_lora_patches_go_to_the_device(tmp_path, model):
    path = save(tmp_path / "fp8.safetensors", fp8_scaled(model), model)
    down, up = torch.ones(1, 64), torch.ones(64, 1)
    lora = save(
        tmp_path / "lora.safetensors",
        {"blocks.0.self_attn.q.lora_A.weight": down, "blocks.0.self_attn.q.lora_B.weight": up},
    )
    loaded = load_model(path, loras=[LoraSpec(str(lora), 1.0)], device="meta").module
    assert all(t.is_meta for t in loaded.state_dict().values())
    layer = loaded.get_submodule("blocks.0.self_attn.q")
    assert layer.scale_weight.is_meta and layer.patches[0].down.is_meta
