"""SoulX-FlashTalk's merged checkpoint folder: our tensor names and shapes are the ones its published code
defines, a tiny folder in its layout loads (sharded + index, config.json as upstream writes it), and broken
folders are refused naming the folder or file and what was expected.

Upstream: github.com/Soul-AILab/SoulX-FlashTalk at 688982effe0e77eb21796e3e6848b3792b391c3e (2026-01-30),
`flash_talk/infinite_talk/modules/multitalk_model.py` (WanModel, WanAttentionBlock, Head, MLPProj,
AudioProjModel) and `multitalk_attention.py` (SingleStreamMutiAttention), config
`flash_talk/infinite_talk/configs/wan_multitalk_14B.py`.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from checkpoint_files import native_state, save_shards
from conftest import make_inputs, make_tiny_model
from safetensors.torch import load_file, save_file

from magicinfinite_core.checkpoints import load_model
from magicinfinite_core.errors import CheckpointError
from magicinfinite_core.models.config import WAN_14B, AudioAdapterConfig, tiny_config
from magicinfinite_core.models.wan import WanModel


def upstream_tensors(dim: int, ffn_dim: int, num_layers: int, *, in_dim: int = 36, out_dim: int = 16,
                     text_dim: int = 4096, freq_dim: int = 256, image_dim: int = 1280, audio_window: int = 5,
                     vae_scale: int = 4, audio_blocks: int = 12, audio_channels: int = 768,
                     intermediate_dim: int = 512, output_dim: int = 768,
                     context_tokens: int = 32) -> dict[str, tuple[int, ...]]:
    """The state dict of upstream's WanModel, restated from its module definitions: norm1, norm2 and the
    head's norm have no affine parameters; qk_norm RMSNorms span the whole width; the audio attention has
    qkv bias and no q/k norms (qk_norm=False); cross_attn_norm and norm_input_visual give norm3 and norm_x
    with weight and bias; norm_output_audio gives audio_proj.norm."""
    shapes: dict[str, tuple[int, ...]] = {
        "patch_embedding.weight": (dim, in_dim, 1, 2, 2), "patch_embedding.bias": (dim,),
        "text_embedding.0.weight": (dim, text_dim), "text_embedding.0.bias": (dim,),
        "text_embedding.2.weight": (dim, dim), "text_embedding.2.bias": (dim,),
        "time_embedding.0.weight": (dim, freq_dim), "time_embedding.0.bias": (dim,),
        "time_embedding.2.weight": (dim, dim), "time_embedding.2.bias": (dim,),
        "time_projection.1.weight": (6 * dim, dim), "time_projection.1.bias": (6 * dim,),
        "head.head.weight": (out_dim * 1 * 2 * 2, dim), "head.head.bias": (out_dim * 4,),
        "head.modulation": (1, 2, dim),
        "img_emb.proj.0.weight": (image_dim,), "img_emb.proj.0.bias": (image_dim,),
        "img_emb.proj.1.weight": (image_dim, image_dim), "img_emb.proj.1.bias": (image_dim,),
        "img_emb.proj.3.weight": (dim, image_dim), "img_emb.proj.3.bias": (dim,),
        "img_emb.proj.4.weight": (dim,), "img_emb.proj.4.bias": (dim,),
        "audio_proj.proj1.weight": (intermediate_dim, audio_window * audio_blocks * audio_channels),
        "audio_proj.proj1.bias": (intermediate_dim,),
        "audio_proj.proj1_vf.weight": (intermediate_dim,
                                       (audio_window + vae_scale - 1) * audio_blocks * audio_channels),
        "audio_proj.proj1_vf.bias": (intermediate_dim,),
        "audio_proj.proj2.weight": (intermediate_dim, intermediate_dim),
        "audio_proj.proj2.bias": (intermediate_dim,),
        "audio_proj.proj3.weight": (context_tokens * output_dim, intermediate_dim),
        "audio_proj.proj3.bias": (context_tokens * output_dim,),
        "audio_proj.norm.weight": (output_dim,), "audio_proj.norm.bias": (output_dim,),
    }
    for i in range(num_layers):
        block = f"blocks.{i}."
        shapes[block + "modulation"] = (1, 6, dim)
        cross = ("q", "k", "v", "o", "k_img", "v_img")
        for attention, layers in (("self_attn", ("q", "k", "v", "o")), ("cross_attn", cross)):
            for layer in layers:
                shapes[f"{block}{attention}.{layer}.weight"] = (dim, dim)
                shapes[f"{block}{attention}.{layer}.bias"] = (dim,)
            norms = ("norm_q", "norm_k") + (("norm_k_img",) if attention == "cross_attn" else ())
            shapes.update({f"{block}{attention}.{norm}.weight": (dim,) for norm in norms})
        for norm in ("norm3", "norm_x"):
            shapes[f"{block}{norm}.weight"] = (dim,)
            shapes[f"{block}{norm}.bias"] = (dim,)
        shapes[block + "ffn.0.weight"], shapes[block + "ffn.0.bias"] = (ffn_dim, dim), (ffn_dim,)
        shapes[block + "ffn.2.weight"], shapes[block + "ffn.2.bias"] = (dim, ffn_dim), (dim,)
        audio = block + "audio_cross_attn."
        shapes[audio + "q_linear.weight"], shapes[audio + "q_linear.bias"] = (dim, dim), (dim,)
        shapes[audio + "kv_linear.weight"] = (2 * dim, output_dim)
        shapes[audio + "kv_linear.bias"] = (2 * dim,)
        shapes[audio + "proj.weight"], shapes[audio + "proj.bias"] = (dim, dim), (dim,)
    return shapes


def test_our_14b_model_has_exactly_the_tensors_of_flashtalks_published_wanmodel() -> None:
    # wan_multitalk_14B.py: dim 5120, ffn_dim 13824, 40 heads, 40 layers; in_dim 36 (i2v).
    with torch.device("meta"):
        ours = {key: tuple(t.shape) for key, t in WanModel(WAN_14B).state_dict().items()}
    theirs = upstream_tensors(5120, 13824, 40)
    assert sorted(set(theirs) - set(ours)) == [] and sorted(set(ours) - set(theirs)) == []
    assert {key: shape for key, shape in ours.items() if theirs[key] != shape} == {}
    assert len(ours) == 40 * 40 + 33  # 40 per block, 33 outside


# One wav2vec2 layer of the real 768 width: upstream's AudioProjModel hard-codes the wav2vec2 width, and
# the layer count is read from proj1's width (config.json does not carry it).
TINY = dataclasses.replace(tiny_config(), audio=AudioAdapterConfig(
    feature_layers=1, feature_width=768, intermediate_dim=32, context_tokens=4, token_dim=32))


def upstream_config(config=TINY) -> dict:
    """config.json as diffusers' ConfigMixin writes it for upstream's WanModel: the class, the diffusers
    version, then every constructor argument except `ignore_for_config` (patch_size, cross_attn_norm,
    qk_norm, text_dim, window_size)."""
    return {
        "_class_name": "WanModel", "_diffusers_version": "0.33.1", "model_type": "i2v",
        "text_len": config.text_len, "in_dim": config.in_dim, "dim": config.dim, "ffn_dim": config.ffn_dim,
        "freq_dim": config.freq_dim, "out_dim": config.out_dim, "num_heads": config.num_heads,
        "num_layers": config.num_layers, "eps": config.eps, "audio_window": config.audio.window,
        "intermediate_dim": config.audio.intermediate_dim, "output_dim": config.audio.token_dim,
        "context_tokens": config.audio.context_tokens, "vae_scale": 4, "norm_input_visual": True,
        "norm_output_audio": True, "weight_init": True,
    }


@pytest.fixture(scope="module")
def model() -> WanModel:
    return make_tiny_model(TINY)


def test_the_tiny_stand_in_has_upstreams_tensor_names_and_shapes(model: WanModel) -> None:
    config = model.config
    theirs = upstream_tensors(
        config.dim, config.ffn_dim, config.num_layers, text_dim=config.text_dim, freq_dim=config.freq_dim,
        image_dim=config.image_dim, audio_blocks=1, intermediate_dim=32, output_dim=32, context_tokens=4)
    assert {key: tuple(t.shape) for key, t in model.state_dict().items()} == theirs


def write_folder(folder: Path, model: WanModel, *, shards: int = 3, config: dict | None = None) -> Path:
    """A FlashTalk-style folder: sharded weights without our metadata, index, config.json, and the T5 /
    CLIP / VAE pickles (never opened)."""
    folder.mkdir(exist_ok=True)
    paths = save_shards(folder, native_state(model), shards, model)
    for path in paths:  # upstream's shards carry no magicinfinite metadata: config.json must do
        save_file(load_file(str(path)), str(path))
    (folder / "config.json").write_text(json.dumps(config or upstream_config(model.config), indent=2))
    for name in ("models_t5_umt5-xxl-enc-bf16.pth", "models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth",
                 "Wan2.1_VAE.pth"):
        (folder / name).write_bytes(b"not a safetensors file")
    return folder


def velocity(module: WanModel) -> torch.Tensor:
    inputs = make_inputs(module.config, speakers=1)
    features = inputs.pop("features")
    return module(**inputs, audio_tokens=module.encode_audio(features))


@pytest.mark.parametrize("pick", ["folder", "a shard"])
def test_a_flashtalk_folder_loads_the_same_model(tmp_path: Path, model: WanModel, pick: str) -> None:
    folder = write_folder(tmp_path / "SoulX-FlashTalk-14B", model)
    path = folder if pick == "folder" else folder / "diffusion_pytorch_model-00002-of-00003.safetensors"
    loaded = load_model(path, compute_dtype=torch.float32)
    assert loaded.config == model.config  # heads (2 x 32 wide) and text length come from config.json
    reference = model.state_dict()
    assert all(torch.equal(t, reference[k]) for k, t in loaded.module.state_dict().items())
    torch.testing.assert_close(velocity(loaded.module), velocity(model), rtol=0, atol=0)


def test_a_missing_shard_names_the_folder_and_the_file(tmp_path: Path, model: WanModel) -> None:
    folder = write_folder(tmp_path / "flashtalk", model)
    (folder / "diffusion_pytorch_model-00002-of-00003.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"flashtalk.*missing: diffusion_pytorch_model-00002-of-00003"):
        load_model(folder)


def test_a_folder_without_config_json_says_what_a_folder_must_hold(tmp_path: Path, model: WanModel) -> None:
    folder = write_folder(tmp_path / "flashtalk", model)
    (folder / "config.json").unlink()
    with pytest.raises(CheckpointError, match=r"flashtalk: no config.json; expected a folder with"):
        load_model(folder)


def test_a_folder_without_weights_lists_what_it_found(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps(upstream_config()))
    with pytest.raises(CheckpointError, match=r"no DiT weights \(found: config.json\); expected"):
        load_model(tmp_path)


@pytest.mark.parametrize(("change", "message"), [
    ({"_class_name": "WanTransformer3DModel"}, r"describes a 'WanTransformer3DModel'; expected .*'WanModel'"),
    ({"model_type": "t2v"}, r"model_type 't2v'; expected 'i2v'"),
    ({"dim": 128}, r"config.json: does not describe the weights beside it: dim 128 \(tensors: 64\)"),
    ({"audio_window": 7}, r"audio_window 7 \(tensors: 5\)"),
])
def test_a_config_that_is_not_this_wan_i2v_infinitetalk_model_is_refused(
        tmp_path: Path, model: WanModel, change: dict, message: str) -> None:
    folder = write_folder(tmp_path / "flashtalk", model, config=upstream_config() | change)
    with pytest.raises(CheckpointError, match=message):
        load_model(folder)


def test_a_config_that_is_not_json_is_named(tmp_path: Path, model: WanModel) -> None:
    folder = write_folder(tmp_path / "flashtalk", model)
    (folder / "config.json").write_text("{dim: 5120")
    with pytest.raises(CheckpointError, match=r"flashtalk/config.json: not readable as JSON"):
        load_model(folder)


def test_weights_without_the_audio_adapter_are_not_a_flashtalk_folder(tmp_path: Path) -> None:
    silent = make_tiny_model(dataclasses.replace(TINY, audio=None))
    config = {k: v for k, v in upstream_config().items() if k not in ("audio_window", "output_dim",
                                                                       "intermediate_dim", "context_tokens")}
    folder = write_folder(tmp_path / "wan", silent, config=config)
    with pytest.raises(CheckpointError, match=r"wan: its weights hold no InfiniteTalk audio adapter"):
        load_model(folder)
