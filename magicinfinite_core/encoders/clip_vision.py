"""The CLIP vision encoder (OpenCLIP ViT-H/14) Wan2.1 i2v reads the reference image with, from the file
ComfyUI users have in models/clip_vision: clip_vision_h.safetensors.

Its layout (what ComfyUI's CLIPVisionLoader reads): Hugging Face CLIPVisionModelWithProjection names,
`vision_model.embeddings.{class_embedding, patch_embedding.weight, position_embedding.weight}`,
`vision_model.pre_layrnorm.*`, `vision_model.encoder.layers.N.{self_attn.{q,k,v,out}_proj, layer_norm1,
mlp.fc1, mlp.fc2, layer_norm2}.*`, `vision_model.post_layernorm.*` and `visual_projection.weight`.
Wan reads the penultimate layer's hidden states, so the last layer and the projection are not loaded: the
model is built one layer short and its last hidden state is that output.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F
from transformers import CLIPVisionConfig, CLIPVisionModel

from magicinfinite_core.checkpoints.safetensors_io import open_tensor_file
from magicinfinite_core.errors import CheckpointError, InputError

PREFIX = "vision_model."
LAYER_KEY = re.compile(r"^vision_model\.encoder\.layers\.(\d+)\.")
EXPECTED_KEYS = tuple(PREFIX + k for k in (
    "embeddings.class_embedding", "embeddings.patch_embedding.weight", "embeddings.position_embedding.weight",
    "encoder.layers.0.layer_norm1.weight", "encoder.layers.0.mlp.fc1.weight"))
# The head count is not in the shapes: every CLIP vision model ComfyUI loads (ViT-L/14, ViT-H/14,
# ViT-bigG/14) has 16 heads. OpenAI's ViT-L (1024 wide) uses quick GELU, the OpenCLIP ones exact GELU.
HEADS = 16
QUICK_GELU_WIDTHS = frozenset({1024})
LAYER_NORM_EPS = 1e-5
MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)
COMFYUI_FILE = "clip_vision_h.safetensors"


class ClipVisionEncoder(nn.Module):
    """Image -> CLIP tokens: the penultimate layer's hidden states (ComfyUI's
    CLIP_VISION_OUTPUT.penultimate_hidden_states, what Wan2.1 i2v's img_emb reads)."""

    def __init__(self, model: CLIPVisionModel) -> None:
        super().__init__()
        self.model = model

    @property
    def width(self) -> int:
        return self.model.config.hidden_size

    @property
    def image_size(self) -> int:
        return self.model.config.image_size

    def preprocess(self, image: torch.Tensor) -> torch.Tensor:
        """[B, H, W, 3] floats in 0..1 -> normalised pixels [B, 3, size, size], as ComfyUI's CLIPVisionEncode
        with crop "none": a bicubic (antialiased) resize of the whole image to a square, rounded to 8 bits,
        then CLIP's mean/std. Wan's own code resizes the same way without antialiasing or rounding."""
        if image.ndim != 4 or image.shape[-1] not in (3, 4):  # RGB, or RGBA whose alpha is dropped
            raise InputError(f"CLIP vision image: expected [B, H, W, 3] floats in 0..1, got "
                             f"{list(image.shape)}")
        pixels = image[..., :3].movedim(-1, 1).float()
        size = self.image_size
        if pixels.shape[-2:] != (size, size):
            pixels = F.interpolate(pixels, size=(size, size), mode="bicubic", antialias=True)
        pixels = (pixels * 255).clamp(0, 255).round() / 255
        mean = torch.tensor(MEAN).view(3, 1, 1)
        std = torch.tensor(STD).view(3, 1, 1)
        return (pixels - mean) / std

    @torch.no_grad()
    def encode(self, image: torch.Tensor) -> torch.Tensor:
        """[B, H, W, 3] floats in 0..1 -> tokens [B, 1 + (size / patch)^2, width] float32 on the CPU
        ([1, 257, 1280] for ViT-H/14)."""
        weight = self.model.get_input_embeddings().weight
        pixels = self.preprocess(image.cpu()).to(weight.device, weight.dtype)
        return self.model(pixel_values=pixels).last_hidden_state.float().cpu()


def load_clip_vision(path: str | Path, *, dtype: torch.dtype = torch.bfloat16,
                     device: torch.device | str = "cpu") -> ClipVisionEncoder:
    """The CLIP vision encoder of a ComfyUI clip_vision file, up to its penultimate layer, weights in
    `dtype` on `device`."""
    file = open_tensor_file(path)
    shapes = file.shapes()
    layers = sorted({int(m[1]) for m in map(LAYER_KEY.match, shapes) if m})
    if any(k not in shapes for k in EXPECTED_KEYS) or layers != list(range(len(layers))) or len(layers) < 2:
        raise CheckpointError(
            f"{file.name}: not a CLIP vision encoder in ComfyUI's layout (Hugging Face names): expected "
            f"{', '.join(EXPECTED_KEYS)} and at least 2 layers; its keys begin "
            f"{', '.join(list(shapes)[:5])}. "
            f"Wan2.1 i2v reads ComfyUI's {COMFYUI_FILE}.")
    width, channels, patch, _ = shapes[PREFIX + "embeddings.patch_embedding.weight"]
    grid = math.isqrt(shapes[PREFIX + "embeddings.position_embedding.weight"][0] - 1)
    config = CLIPVisionConfig(
        hidden_size=width, intermediate_size=shapes[PREFIX + "encoder.layers.0.mlp.fc1.weight"][0],
        num_hidden_layers=len(layers) - 1, num_attention_heads=HEADS, num_channels=channels,
        image_size=grid * patch, patch_size=patch, layer_norm_eps=LAYER_NORM_EPS,
        hidden_act="quick_gelu" if width in QUICK_GELU_WIDTHS else "gelu")
    with torch.device("meta"):
        model = CLIPVisionModel(config)
    # transformers 5 dropped the `vision_model.` wrapper the file's names (and transformers 4's) have.
    inner = "" if "embeddings.class_embedding" in model.state_dict() else PREFIX
    last = f"{PREFIX}encoder.layers.{layers[-1]}."
    wanted = [k for k in shapes if k.startswith(PREFIX) and not k.startswith(last)]
    state = {inner + k.removeprefix(PREFIX): t.to(dtype) for k, t in file.read(wanted, device)}
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as err:
        raise CheckpointError(f"{file.name}: the weights do not fit the CLIP vision encoder read from its "
                              f"shapes ({err})") from err
    _build_position_ids(model, config, device)
    model.eval().requires_grad_(False)
    return ClipVisionEncoder(model)


def _build_position_ids(model: CLIPVisionModel, config: CLIPVisionConfig, device: torch.device | str) -> None:
    """The embeddings' position ids are a buffer the file does not hold, left on the meta device by the
    meta-device build (which spares a random initialisation of every weight): take them from a freshly built
    embeddings module, which is small."""
    for module in model.modules():
        if any(buffer.is_meta for buffer in module.buffers(recurse=False)):
            fresh = type(module)(config)
            for name, buffer in fresh.named_buffers(recurse=False):
                module.register_buffer(name, buffer.to(device), persistent=False)
    left = [name for name, buffer in model.named_buffers() if buffer.is_meta]
    if left:
        raise RuntimeError(f"CLIP vision: this transformers version left buffers {left} unbuilt")
