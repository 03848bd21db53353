"""LoRA merge: W + strength * alpha/rank * up @ down for every naming style, `.diff`/`.diff_b`, chains that
add up, fp8 weights patched beside the weight, and errors/warnings for LoRAs that do not fit."""

from __future__ import annotations

import pytest
import torch
from checkpoint_files import lora_pair, native_state, save
from conftest import make_tiny_model

from magicinfinite_core.checkpoints import LoraSpec, load_model
from magicinfinite_core.checkpoints.fp8 import dequantize, quantize_fp8
from magicinfinite_core.errors import CheckpointError
from magicinfinite_core.models.cast import DensePatch, LowRankPatch

FP8 = torch.float8_e4m3fn
TARGET = "blocks.0.cross_attn.k"  # [64, 64]


@pytest.fixture(scope="module")
def model():
    return make_tiny_model(num_layers=2)


@pytest.fixture
def dit(tmp_path, model):
    return save(tmp_path / "dit.safetensors", native_state(model), model)


def by_hand(weight: torch.Tensor, *changes: tuple[float, torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """W + sum of scale * up @ down, in float32."""
    out = weight.float().clone()
    for scale, down, up in changes:
        out += scale * (up.flatten(1) @ down.flatten(1)).reshape(weight.shape)
    return out


NAMING_STYLES = {
    "comfy lora_down/up": (
        "diffusion_model.{dotted}.lora_down.weight",
        "diffusion_model.{dotted}.lora_up.weight",
    ),
    "comfy full prefix lora_A/B": (
        "model.diffusion_model.{dotted}.lora_A.weight",
        "model.diffusion_model.{dotted}.lora_B.weight",
    ),
    "transformer. prefix": ("transformer.{dotted}.lora_A.weight", "transformer.{dotted}.lora_B.weight"),
    "no prefix": ("{dotted}.lora_down.weight", "{dotted}.lora_up.weight"),
    "kohya": ("lora_unet_{kohya}.lora_down.weight", "lora_unet_{kohya}.lora_up.weight"),
    "wan fun kohya": ("lora_unet__{kohya}.lora_down.weight", "lora_unet__{kohya}.lora_up.weight"),
    "diffusers": (
        "transformer.blocks.0.attn2.to_k.lora_A.weight",
        "transformer.blocks.0.attn2.to_k.lora_B.weight",
    ),
}


@pytest.mark.parametrize("style", NAMING_STYLES)
@pytest.mark.parametrize("alpha", [None, 2.0])
def test_merge_equals_w_plus_scaled_up_down_for_every_naming_style(tmp_path, model, dit, style, alpha):
    down_name, up_name = (
        n.format(dotted=TARGET, kohya=TARGET.replace(".", "_")) for n in NAMING_STYLES[style]
    )
    down, up = lora_pair(64, 64, rank=4, seed=1)
    tensors = {down_name: down, up_name: up}
    if alpha is not None:
        tensors[down_name.rsplit(".lora", 1)[0] + ".alpha"] = torch.tensor(alpha)
    lora = save(tmp_path / "style.safetensors", tensors)
    loaded = load_model(dit, loras=[LoraSpec(str(lora), 0.7)], storage_dtype=torch.float32).module
    scale = 0.7 * (1.0 if alpha is None else alpha / 4)
    expected = by_hand(model.get_parameter(f"{TARGET}.weight"), (scale, down, up))
    torch.testing.assert_close(loaded.get_parameter(f"{TARGET}.weight"), expected, rtol=1e-6, atol=1e-6)
    assert torch.equal(
        loaded.get_parameter("blocks.0.cross_attn.q.weight"),
        model.get_parameter("blocks.0.cross_attn.q.weight"),
    )


def test_two_loras_in_a_chain_add_up(tmp_path, model, dit):
    first = lora_pair(64, 64, rank=4, seed=1)
    second = lora_pair(64, 64, rank=2, seed=2)
    ffn = lora_pair(128, 64, rank=3, seed=3)
    a = save(
        tmp_path / "a.safetensors",
        {
            f"diffusion_model.{TARGET}.lora_down.weight": first[0],
            f"diffusion_model.{TARGET}.lora_up.weight": first[1],
            "diffusion_model.blocks.1.ffn.0.lora_down.weight": ffn[0],
            "diffusion_model.blocks.1.ffn.0.lora_up.weight": ffn[1],
        },
    )
    b = save(
        tmp_path / "b.safetensors",
        {
            f"{TARGET}.lora_A.weight": second[0],
            f"{TARGET}.lora_B.weight": second[1],
        },
    )
    chain = [LoraSpec(str(a), 0.5), LoraSpec(str(b), -1.2)]
    loaded = load_model(dit, loras=chain, storage_dtype=torch.float32).module
    expected = by_hand(model.get_parameter(f"{TARGET}.weight"), (0.5, *first), (-1.2, *second))
    torch.testing.assert_close(loaded.get_parameter(f"{TARGET}.weight"), expected, rtol=1e-6, atol=1e-6)
    expected_ffn = by_hand(model.get_parameter("blocks.1.ffn.0.weight"), (0.5, *ffn))
    torch.testing.assert_close(
        loaded.get_parameter("blocks.1.ffn.0.weight"), expected_ffn, rtol=1e-6, atol=1e-6
    )


def test_diff_entries_change_weights_biases_modulation_and_the_patch_embedding(tmp_path, model, dit):
    g = torch.Generator().manual_seed(4)
    diff_norm = torch.randn(64, generator=g)
    diff_bias = torch.randn(64, generator=g)
    diff_modulation = torch.randn(1, 6, 64, generator=g)
    conv_down = torch.randn(2, 36, 1, 2, 2, generator=g)
    conv_up = torch.randn(64, 2, 1, 1, 1, generator=g)
    lora = save(
        tmp_path / "diff.safetensors",
        {
            "diffusion_model.blocks.0.norm3.diff": diff_norm,
            "diffusion_model.blocks.0.self_attn.o.diff_b": diff_bias,
            "diffusion_model.blocks.1.modulation.diff": diff_modulation,
            "diffusion_model.patch_embedding.lora_down.weight": conv_down,
            "diffusion_model.patch_embedding.lora_up.weight": conv_up,
        },
    )
    loaded = load_model(dit, loras=[LoraSpec(str(lora), 2.0)], storage_dtype=torch.float32).module
    original = model.get_parameter
    torch.testing.assert_close(
        loaded.get_parameter("blocks.0.norm3.weight"), original("blocks.0.norm3.weight") + 2 * diff_norm
    )
    torch.testing.assert_close(
        loaded.get_parameter("blocks.0.self_attn.o.bias"),
        original("blocks.0.self_attn.o.bias") + 2 * diff_bias,
    )
    torch.testing.assert_close(
        loaded.get_parameter("blocks.1.modulation"), original("blocks.1.modulation") + 2 * diff_modulation
    )
    expected = by_hand(original("patch_embedding.weight"), (2.0, conv_down, conv_up))
    torch.testing.assert_close(loaded.get_parameter("patch_embedding.weight"), expected)


def test_bf16_weights_merge_in_float32_and_round_once(tmp_path, model, dit):
    first, second = lora_pair(64, 64, rank=4, seed=1), lora_pair(64, 64, rank=4, seed=2)
    a = save(
        tmp_path / "a.safetensors",
        {f"{TARGET}.lora_down.weight": first[0], f"{TARGET}.lora_up.weight": first[1]},
    )
    b = save(
        tmp_path / "b.safetensors",
        {f"{TARGET}.lora_down.weight": second[0], f"{TARGET}.lora_up.weight": second[1]},
    )
    loaded = load_model(
        dit, loras=[LoraSpec(str(a), 1.0), LoraSpec(str(b), 1.0)], storage_dtype=torch.bfloat16
    )
    merged = by_hand(model.get_parameter(f"{TARGET}.weight"), (1.0, *first), (1.0, *second))
    assert torch.equal(loaded.module.get_parameter(f"{TARGET}.weight"), merged.to(torch.bfloat16))


def test_fp8_weights_keep_their_bytes_and_take_the_lora_beside_them(tmp_path, model, dit):
    """A LoRA far below fp8's resolution of the weight still changes the output by exactly its delta."""
    down, up = (t * 0.01 for t in lora_pair(64, 64, rank=4, seed=1))
    lora = save(
        tmp_path / "small.safetensors",
        {
            f"{TARGET}.lora_down.weight": down,
            f"{TARGET}.lora_up.weight": up,
            "blocks.0.cross_attn.v.diff": torch.eye(64) * 1e-3,
        },
    )
    plain = load_model(dit, storage_dtype=FP8, compute_dtype=torch.float32).module
    patched = load_model(
        dit, loras=[LoraSpec(str(lora), 1.5)], storage_dtype=FP8, compute_dtype=torch.float32
    ).module
    layer, plain_layer = patched.get_submodule(TARGET), plain.get_submodule(TARGET)
    assert layer.weight.dtype == FP8 and torch.equal(layer.weight.float(), plain_layer.weight.float())
    assert [type(p) for p in layer.patches] == [LowRankPatch]
    assert [type(p) for p in patched.get_submodule("blocks.0.cross_attn.v").patches] == [DensePatch]
    x = torch.randn(5, 64, generator=torch.Generator().manual_seed(5))
    expected_change = 1.5 * x @ (up @ down).T
    torch.testing.assert_close(layer(x) - plain_layer(x), expected_change, rtol=1e-4, atol=1e-7)
    # merged into the weight and re-quantised, the same LoRA would be mostly rounded away
    weight = plain_layer.compute_weight(torch.float32)
    requantised = dequantize(*quantize_fp8(weight + 1.5 * up @ down))
    merged_change = x @ (requantised - weight).T
    assert (merged_change - expected_change).norm() > 0.5 * expected_change.norm()
    patched.to("meta")  # patches follow the module
    assert layer.patches[0].down.is_meta


def test_a_partial_match_warns_with_counts(tmp_path, model, dit):
    down, up = lora_pair(64, 64, rank=4, seed=1)
    lora = save(
        tmp_path / "partial.safetensors",
        {
            f"diffusion_model.{TARGET}.lora_down.weight": down,
            f"diffusion_model.{TARGET}.lora_up.weight": up,
            "diffusion_model.blocks.7.self_attn.q.lora_down.weight": down.clone(),
            "diffusion_model.blocks.7.self_attn.q.lora_up.weight": up.clone(),
        },
    )
    with pytest.warns(
        UserWarning, match=r"partial.safetensors: 1 of 2 entries applied, 1 match no weight.*blocks.7"
    ):
        load_model(dit, loras=[LoraSpec(str(lora), 1.0)])


def test_a_lora_matching_nothing_is_an_error_naming_the_file(tmp_path, dit):
    lora = save(
        tmp_path / "sdxl_style.safetensors",
        {
            "lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": torch.ones(4, 8),
            "lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight": torch.ones(8, 4),
        },
    )
    with pytest.raises(CheckpointError, match=r"sdxl_style.safetensors: none of its 1 entries matches"):
        load_model(dit, loras=[LoraSpec(str(lora), 1.0)])


def test_a_lora_for_another_model_size_is_an_error_with_shapes(tmp_path, dit):
    down, up = lora_pair(5120, 5120, rank=1, seed=1)
    lora = save(
        tmp_path / "lora_14b.safetensors",
        {f"{TARGET}.lora_down.weight": down, f"{TARGET}.lora_up.weight": up},
    )
    with pytest.raises(CheckpointError, match=r"lora_14b.safetensors.*model \[64, 64\], LoRA \[5120, 5120\]"):
        load_model(dit, loras=[LoraSpec(str(lora), 1.0)])


def test_dora_is_refused(tmp_path, dit):
    down, up = lora_pair(64, 64, rank=4, seed=1)
    lora = save(
        tmp_path / "dora.safetensors",
        {
            f"{TARGET}.lora_down.weight": down,
            f"{TARGET}.lora_up.weight": up,
            f"{TARGET}.dora_scale": torch.ones(64, 1),
        },
    )
    with pytest.raises(CheckpointError, match="dora.safetensors is a DoRA"):
        load_model(dit, loras=[LoraSpec(str(lora), 1.0)])


def test_a_pickled_lora_is_refused(tmp_path, dit):
    path = tmp_path / "lora.pt"
    torch.save({}, path)
    with pytest.raises(CheckpointError, match="lora.pt: refusing to load a pickle"):
        load_model(dit, loras=[LoraSpec(str(path), 1.0)])
