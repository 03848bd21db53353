"""Tiny files in the layouts of the Wan2.1 parts ComfyUI users have, for the encoder loaders and `render`:

- the Wan2.1 VAE in Wan's own key layout, as ComfyUI's VAELoader reads it: ComfyUI's WanVAE module (the
  host's implementation of that layout) gives the keys and shapes, seeded random values fill them;
- umT5 as umt5_xxl_fp16.safetensors holds it: Hugging Face T5 encoder names, the embedding once as
  shared.weight, the sentencepiece tokenizer as a uint8 `spiece_model` tensor (a tokenizer trained here);
- CLIP vision as clip_vision_h.safetensors holds it: Hugging Face CLIPVisionModelWithProjection names.
"""

from __future__ import annotations

import importlib
import io
import math
import sys
from pathlib import Path

import sentencepiece
import torch
from safetensors.torch import save_file
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection, UMT5Config, UMT5EncoderModel

from tests.host.checkout import comfyui_dir


def comfy_module(name: str):
    """A module of the real ComfyUI at $COMFYUI_DIR, imported on the CPU (appended to sys.path so that its
    top-level nodes.py does not shadow this pack's nodes/)."""
    checkout = str(comfyui_dir())
    if checkout not in sys.path:
        sys.path.append(checkout)
    importlib.import_module("comfy.cli_args").args.cpu = True
    return importlib.import_module(name)


def wan_vae_state(dim: int, *, seed: int = 0) -> dict[str, torch.Tensor]:
    """Seeded weights for a Wan2.1 VAE of base width `dim` (ComfyUI's modules leave theirs uninitialised)."""
    vae = comfy_module("comfy.ldm.wan.vae").WanVAE(
        dim=dim, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
        temperal_downsample=[False, True, True])
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in vae.state_dict().items():
        if key.endswith("gamma"):  # RMS norm scales
            state[key] = 1.0 + 0.1 * torch.randn(value.shape, generator=g)
        elif value.ndim > 1:
            fan_in = math.prod(value.shape[1:])
            state[key] = torch.randn(value.shape, generator=g) / math.sqrt(fan_in)
        else:
            state[key] = 0.02 * torch.randn(value.shape, generator=g)
    return state


def write_wan_vae(path: Path, dim: int = 8, *, seed: int = 0) -> Path:
    save_file(wan_vae_state(dim, seed=seed), str(path))
    return path


UMT5_SIZES = {"d_model": 64, "d_kv": 16, "num_heads": 4, "d_ff": 128, "num_layers": 2}
CORPUS = [
    "a woman talks to the camera in warm light",
    "two men laugh and talk at a table, the camera is still",
    "an old man sings a song slowly; soft light from the window",
    "the girl smiles, then speaks quickly to her friend",
]
CLIP_CONFIG = {
    "attention_dropout": 0.0, "dropout": 0.0, "hidden_act": "gelu", "hidden_size": 64, "image_size": 56,
    "initializer_factor": 1.0, "initializer_range": 0.02, "intermediate_size": 128, "layer_norm_eps": 1e-05,
    "model_type": "clip_vision_model", "num_attention_heads": 16, "num_channels": 3, "num_hidden_layers": 3,
    "patch_size": 14, "projection_dim": 32, "torch_dtype": "float32",
}


def spiece_model() -> bytes:
    """A sentencepiece model trained on CORPUS (pad 0, eos 1, unk 2, as umT5's)."""
    writer = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS * 4), model_writer=writer, vocab_size=60, model_type="unigram",
        pad_id=0, eos_id=1, unk_id=2, bos_id=-1, hard_vocab_limit=False, minloglevel=2)
    return writer.getvalue()


def umt5_state(sizes: dict[str, int] = UMT5_SIZES, *, seed: int = 0) -> dict[str, torch.Tensor]:
    """A tiny umT5 encoder's tensors in ComfyUI's names, with the tokenizer embedded."""
    proto = spiece_model()
    vocab = sentencepiece.SentencePieceProcessor(model_proto=proto).get_piece_size()
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = UMT5EncoderModel(UMT5Config(vocab_size=vocab, feed_forward_proj="gated-gelu", **sizes))
    # ComfyUI's files hold the embedding once, as shared.weight.
    state = {k: v.detach().clone() for k, v in model.state_dict().items()
             if k != "encoder.embed_tokens.weight"}
    g = torch.Generator().manual_seed(seed + 1)
    for key, value in state.items():  # trained norms are not all ones; make a parity see them
        if "layer_norm" in key:
            value.copy_(0.5 + torch.rand(value.shape, generator=g))
    state["spiece_model"] = torch.frombuffer(bytearray(proto), dtype=torch.uint8)
    return state


def clip_vision_state(config: dict = CLIP_CONFIG, *, seed: int = 0) -> dict[str, torch.Tensor]:
    """A tiny CLIP vision model's tensors in clip_vision_h.safetensors' names."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = CLIPVisionModelWithProjection(CLIPVisionConfig(**config))
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if "vision_model.embeddings.class_embedding" not in state:  # transformers 5 names the inner model alone
        state = {("" if k.startswith("visual_projection.") else "vision_model.") + k: v
                 for k, v in state.items()}
    g = torch.Generator().manual_seed(seed + 1)
    for key, value in state.items():  # trained norms and biases are not ones and zeros
        if "norm" in key or key.endswith(".bias"):
            value.copy_(-0.5 + 2.0 * torch.rand(value.shape, generator=g))
    return state
