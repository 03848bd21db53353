"""The umT5-XXL text encoder Wan2.1 reads, from the file ComfyUI users have in models/text_encoders:
umt5_xxl_fp16.safetensors or umt5_xxl_fp8_e4m3fn_scaled.safetensors.

Their layout (what ComfyUI's CLIPLoader type "wan" loads into its T5 module): Hugging Face T5 encoder names
with no prefix, `shared.weight` [vocab, d_model], `encoder.block.N.layer.0.SelfAttention.{q,k,v,o}.weight`,
`encoder.block.N.layer.0.SelfAttention.relative_attention_bias.weight` [32 buckets, heads] in every block
(umT5; T5 has it in block 0 only), `encoder.block.N.layer.1.DenseReluDense.{wi_0,wi_1,wo}.weight` (gated
tanh-GELU), the layer norms' weights and `encoder.final_layer_norm.weight`, plus `spiece_model`: the
sentencepiece tokenizer model as a uint8 tensor. The fp8 file holds float8_e4m3fn weights, each with a
per-tensor `<layer>.scale_weight` (real weight = fp8 x scale), and a `scaled_fp8` marker tensor; newer
ComfyUI files spell the scale `<layer>.weight_scale`. Weights are dequantised once, at load.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path

import sentencepiece
import torch
from torch import nn
from transformers import UMT5Config, UMT5EncoderModel

from magicinfinite_core.checkpoints.fp8 import dequantize, scale_for
from magicinfinite_core.checkpoints.layouts import IGNORED_SUFFIXES, SCALE_SUFFIXES, SCALED_FP8_MARKER
from magicinfinite_core.checkpoints.safetensors_io import TensorFile, open_tensor_file
from magicinfinite_core.errors import CheckpointError, InputError

EOS_ID = 1  # the end-of-sequence id of T5 vocabularies (0 is padding, 2 unknown)
TOKENIZER_KEY = "spiece_model"
EMBEDDING_KEY = "shared.weight"
# ComfyUI's T5 fixes the bucket range; the file stores only the bucket count.
MAX_DISTANCE = 128
LAYER_KEY = re.compile(r"^encoder\.block\.(\d+)\.layer\.0\.SelfAttention\.q\.weight$")
BIAS_KEY = "encoder.block.{}.layer.0.SelfAttention.relative_attention_bias.weight"
EXPECTED_KEYS = (EMBEDDING_KEY, "encoder.block.0.layer.0.SelfAttention.q.weight", BIAS_KEY.format(0),
                 "encoder.block.0.layer.1.DenseReluDense.wi_0.weight")
COMFYUI_FILES = ("umt5_xxl_fp16.safetensors", "umt5_xxl_fp8_e4m3fn_scaled.safetensors")


class UMT5Tokenizer:
    """The tokenizer embedded in the file, giving ComfyUI's ids on ordinary prompts: the sentencepiece ids
    of the whole prompt, then the end id 1.

    What differs from ComfyUI's UMT5XXlTokenizer: it reads "(text:1.2)" weights and "embedding:name"
    references; here every character is plain text. It does not cut long prompts; here the ids are cut to
    `max_tokens - 1` before the end id, as Wan's own tokenizer does (Wan2.1 reads 512 tokens). Wan's own
    tokenizer also fixes the text with ftfy and collapses runs of whitespace first; ComfyUI passes the text
    unchanged, and so does this.
    """

    def __init__(self, model_proto: bytes) -> None:
        self.processor = sentencepiece.SentencePieceProcessor(model_proto=model_proto)

    def __call__(self, text: str, max_tokens: int) -> list[int]:
        return [*self.processor.encode(text)[: max_tokens - 1], EOS_ID]


class UMT5TextEncoder(nn.Module):
    """umT5 encoder whose output, like Wan's text context, is zero past each prompt's tokens. `tokenizer(text,
    max_tokens)` gives a prompt's ids, the end id last."""

    def __init__(self, encoder: UMT5EncoderModel, tokenizer: Callable[[str, int], list[int]],
                 text_len: int) -> None:
        super().__init__()
        if text_len < 1:
            raise InputError(f"text_len: expected a positive token count, got {text_len}")
        self.encoder = encoder
        self.tokenizer = tokenizer
        self.text_len = text_len

    @property
    def width(self) -> int:
        return self.encoder.config.d_model

    def tokenize(self, prompt: str) -> list[int]:
        return self.tokenizer(prompt, self.text_len)

    @torch.no_grad()
    def encode(self, prompts: Sequence[str]) -> torch.Tensor:
        """Prompts -> context [len(prompts), text_len, width] in float32 on the CPU."""
        out = torch.zeros(len(prompts), self.text_len, self.width)
        device = self.encoder.shared.weight.device
        for i, prompt in enumerate(prompts):
            ids = torch.tensor([self.tokenize(prompt)], device=device)
            # Only the real tokens go through: padding would be masked out as keys (so it changes no real
            # token's state; the position bias depends on offsets only) and its outputs are zeroed anyway,
            # so encoding it would only cost up to text_len / len(ids) times the work.
            out[i, : ids.shape[1]] = self.encoder(input_ids=ids).last_hidden_state[0].float().cpu()
        return out


def load_umt5(path: str | Path, *, text_len: int = 512, dtype: torch.dtype = torch.bfloat16,
              device: torch.device | str = "cpu") -> UMT5TextEncoder:
    """The umT5 encoder and tokenizer of a ComfyUI text-encoder file, weights in `dtype` on `device`."""
    file = open_tensor_file(path)
    config = umt5_config(file)
    if TOKENIZER_KEY not in file.infos:
        raise CheckpointError(
            f"{file.name}: no embedded tokenizer (no '{TOKENIZER_KEY}' tensor). Use a file that embeds it: "
            f"ComfyUI's {' or '.join(COMFYUI_FILES)} (Comfy-Org's Wan 2.1 repackaged text_encoders).")
    state = _read_weights(file, dtype, device)
    # UMT5EncoderModel holds the embedding twice (shared, and the encoder's embed_tokens): one tensor.
    state["encoder.embed_tokens.weight"] = state[EMBEDDING_KEY]
    with torch.device("meta"):
        encoder = UMT5EncoderModel(config)
    try:
        encoder.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as err:
        raise CheckpointError(f"{file.name}: the weights do not fit the umT5 encoder read from its shapes "
                              f"({err})") from err
    encoder.eval().requires_grad_(False)
    (_, proto), = file.read([TOKENIZER_KEY])
    return UMT5TextEncoder(encoder, UMT5Tokenizer(proto.numpy().tobytes()), text_len)


def umt5_config(file: TensorFile) -> UMT5Config:
    """The encoder's configuration, read from the tensor shapes of `file`."""
    shapes = file.shapes()
    layers = sorted(int(m[1]) for m in map(LAYER_KEY.match, shapes) if m)
    if not layers or layers != list(range(len(layers))) or any(k not in shapes for k in EXPECTED_KEYS):
        raise CheckpointError(
            f"{file.name}: not a umT5 text encoder in ComfyUI's layout: expected {', '.join(EXPECTED_KEYS)}; "
            f"its keys begin {', '.join(list(shapes)[:5])}. Pick ComfyUI's {' or '.join(COMFYUI_FILES)}.")
    if any(BIAS_KEY.format(n) not in shapes for n in layers):
        raise CheckpointError(
            f"{file.name}: a T5 encoder (position bias in block 0 only), not the umT5 (a position bias in "
            f"every block) Wan2.1 was trained with. Pick ComfyUI's {' or '.join(COMFYUI_FILES)}.")
    vocab, d_model = shapes[EMBEDDING_KEY]
    buckets, heads = shapes[BIAS_KEY.format(0)]
    return UMT5Config(
        vocab_size=vocab, d_model=d_model, d_kv=shapes[EXPECTED_KEYS[1]][0] // heads,
        d_ff=shapes[EXPECTED_KEYS[3]][0], num_layers=len(layers), num_heads=heads,
        relative_attention_num_buckets=buckets, relative_attention_max_distance=MAX_DISTANCE,
        feed_forward_proj="gated-gelu_pytorch_tanh", dropout_rate=0.0)


def _read_weights(file: TensorFile, dtype: torch.dtype,
                  device: torch.device | str) -> dict[str, torch.Tensor]:
    """The encoder's tensors in `dtype` on `device`, fp8 scaled weights dequantised."""
    keys, scales = [], {}
    for key in file.infos:
        if key in (TOKENIZER_KEY, SCALED_FP8_MARKER) or key.endswith(IGNORED_SUFFIXES):
            continue  # input scales quantise activations for fp8 matmuls; weights are upcast here
        suffix = next((s for s in SCALE_SUFFIXES if key.endswith(s)), None)
        if suffix is None:
            keys.append(key)
        else:
            scales[key[: -len(suffix)] + ".weight"] = key
    scale_values = dict(file.read(scales.values()))
    state = {}
    for key, tensor in file.read(keys, device):
        scale = scales.get(key)
        if scale is not None:
            tensor = dequantize(tensor, scale_for(scale_values[scale], tuple(tensor.shape), key))
        state[key] = tensor.to(dtype)
    return state
