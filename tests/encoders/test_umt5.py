"""umT5 loader: ComfyUI's text-encoder file layout, parity with ComfyUI's own tokenizer and T5 module.

A tiny umT5 (2 layers, 4 heads) and a sentencepiece model trained here are saved as ComfyUI's
umt5_xxl_fp16.safetensors is laid out (Hugging Face T5 encoder names, `spiece_model` as a uint8 tensor).
ComfyUI's UMT5XXlTokenizer and UMT5XXlModel (its own T5 code, sizes overridden through model_options) encode
the same prompts from the same file.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from magicinfinite_core.checkpoints.fp8 import quantize_fp8
from magicinfinite_core.checkpoints.safetensors_io import TensorFile, TensorInfo
from magicinfinite_core.encoders.umt5 import EOS_ID, load_umt5, umt5_config
from magicinfinite_core.errors import CheckpointError
from tests.encoders.encoder_files import CORPUS, UMT5_SIZES, comfy_module, umt5_state
from tests.host.checkout import requires_comfyui

SIZES = UMT5_SIZES
PROMPTS = ["a woman talks to the camera, warm light.", "two men   laugh!", "café über naïve"]
TEXT_LEN = 512  # Wan's, and ComfyUI's minimum padded length


@pytest.fixture(scope="module")
def weights() -> dict[str, torch.Tensor]:
    return umt5_state()


@pytest.fixture(scope="module")
def fp32_file(weights, tmp_path_factory):
    path = tmp_path_factory.mktemp("text_encoders") / "umt5_tiny_fp32.safetensors"
    save_file(weights, str(path))
    return path


@requires_comfyui
def test_matches_comfyui_tokens_and_hidden_states(fp32_file, weights):
    wan = comfy_module("comfy.text_encoders.wan")
    tokenizer = wan.UMT5XXlTokenizer(tokenizer_data={"spiece_model": weights["spiece_model"]})
    vocab = weights["shared.weight"].shape[0]
    comfy_model = wan.UMT5XXlModel(dtype=torch.float32, model_options={
        "model_name": "umt5xxl", "umt5xxl_model_config": {**SIZES, "vocab_size": vocab}})
    missing, unexpected = comfy_model.load_sd({k: v for k, v in weights.items() if k != "spiece_model"})
    assert not missing and not unexpected

    ours = load_umt5(fp32_file, text_len=TEXT_LEN, dtype=torch.float32)
    context = ours.encode(PROMPTS)
    assert context.shape == (len(PROMPTS), TEXT_LEN, SIZES["d_model"]) and context.dtype == torch.float32
    for prompt, row in zip(PROMPTS, context, strict=True):
        (pairs,) = tokenizer.tokenize_with_weights(prompt)
        comfy_ids = [token for token, _ in pairs]
        ids = ours.tokenize(prompt)
        assert ids[-1] == EOS_ID and len(ids) > 2
        assert comfy_ids == ids + [0] * (TEXT_LEN - len(ids))
        expected, _ = comfy_model.encode_token_weights([pairs])
        error = (row - expected[0]).norm() / expected[0].norm()
        assert error <= 1e-5, f"{prompt!r}: relative error {error:.2e}"
        assert row[: len(ids)].abs().sum(-1).min() > 0
        assert not row[len(ids):].any()


def test_long_prompt_is_cut_to_text_len_with_the_end_id(fp32_file):
    encoder = load_umt5(fp32_file, text_len=8, dtype=torch.float32)
    ids = encoder.tokenize(" ".join(CORPUS))
    assert len(ids) == 8 and ids[-1] == EOS_ID
    context = encoder.encode([" ".join(CORPUS)])
    assert context.shape == (1, 8, SIZES["d_model"]) and context.abs().sum(-1).min() > 0


def test_fp8_scaled_file_matches_fp16_within_fp8_error(weights, tmp_path):
    fp16 = {k: v if v.dtype == torch.uint8 else v.half() for k, v in weights.items()}
    fp8 = dict(fp16)
    for key, value in weights.items():
        if key.startswith("encoder.block.") and key.endswith(".weight") and "layer_norm" not in key \
                and "relative_attention_bias" not in key:
            fp8[key], fp8[key.removesuffix(".weight") + ".scale_weight"] = quantize_fp8(value)
    fp8["scaled_fp8"] = torch.empty(0, dtype=torch.float8_e4m3fn)
    save_file(fp16, str(tmp_path / "umt5_tiny_fp16.safetensors"))
    save_file(fp8, str(tmp_path / "umt5_tiny_fp8_e4m3fn_scaled.safetensors"))
    reference = load_umt5(tmp_path / "umt5_tiny_fp16.safetensors", dtype=torch.float32)
    scaled = load_umt5(tmp_path / "umt5_tiny_fp8_e4m3fn_scaled.safetensors", dtype=torch.float32)
    reference, scaled = reference.encode(PROMPTS), scaled.encode(PROMPTS)
    error = (scaled - reference).norm() / reference.norm()
    assert 0 < error < 0.1, f"relative error {error:.3f}"


def test_not_safetensors_is_refused(tmp_path):
    path = tmp_path / "umt5_xxl.pth"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"umt5_xxl\.pth.*pickle"):
        load_umt5(path)
    path = tmp_path / "umt5_xxl.txt"
    path.write_text("hello")
    with pytest.raises(CheckpointError, match=r"umt5_xxl\.txt: not a safetensors file"):
        load_umt5(path)


def test_other_model_is_refused_naming_the_expected_keys(tmp_path):
    path = tmp_path / "clip_l.safetensors"
    save_file({"text_model.embeddings.token_embedding.weight": torch.zeros(4, 4)}, str(path))
    with pytest.raises(CheckpointError, match=r"clip_l\.safetensors: not a umT5.*shared\.weight.*"
                                              r"relative_attention_bias"):
        load_umt5(path)


def test_t5_with_one_position_bias_is_refused(weights, tmp_path):
    path = tmp_path / "t5xxl_fp16.safetensors"
    t5 = {k: v for k, v in weights.items() if "block.1.layer.0.SelfAttention.relative" not in k}
    save_file(t5, str(path))
    with pytest.raises(CheckpointError, match=r"t5xxl_fp16\.safetensors: a T5 encoder.*not the umT5"):
        load_umt5(path)


def test_file_without_tokenizer_names_the_comfyui_file(weights, tmp_path):
    path = tmp_path / "umt5_no_tokenizer.safetensors"
    save_file({k: v for k, v in weights.items() if k != "spiece_model"}, str(path))
    with pytest.raises(CheckpointError, match=r"umt5_no_tokenizer\.safetensors: no embedded tokenizer.*"
                                              r"umt5_xxl_fp16\.safetensors"):
        load_umt5(path)


def test_the_xxl_files_shapes_give_umt5_xxl():
    """umt5_xxl_fp16.safetensors' shapes (256,384 pieces, 4096 wide, 24 blocks with a 32 x 64 position bias
    each, 10,240 gated feed-forward) read as google/umt5-xxl's encoder configuration."""
    infos = {"shared.weight": (256384, 4096)}
    for n in range(24):
        block = f"encoder.block.{n}.layer."
        infos |= {block + f"0.SelfAttention.{p}.weight": (4096, 4096) for p in "qkvo"}
        infos |= {block + "0.SelfAttention.relative_attention_bias.weight": (32, 64),
                  block + "1.DenseReluDense.wi_0.weight": (10240, 4096),
                  block + "1.DenseReluDense.wi_1.weight": (10240, 4096),
                  block + "1.DenseReluDense.wo.weight": (4096, 10240)}
    path = Path("umt5_xxl_fp16.safetensors")
    file = TensorFile(path, {k: TensorInfo(shape, torch.float16, path) for k, shape in infos.items()}, {})
    config = umt5_config(file)
    assert (config.vocab_size, config.d_model, config.num_heads, config.d_kv, config.d_ff, config.num_layers,
            config.relative_attention_num_buckets) == (256384, 4096, 64, 64, 10240, 24, 32)
    assert config.is_gated_act and config.dense_act_fn == "gelu_pytorch_tanh"
