"""Our audio attention inside ComfyUI's Wan DiT: two block patches reading the MODEL_PATCH's weights.

ComfyUI's Wan blocks call every `attn1_patch` after self-attention with the block's rotated q and k, and
every `attn2_patch` after the text/image cross-attention with only {x, transformer_options}. So the data of
one model call (audio tokens, the speaker binding and the region gate, as an `AudioConditioning`) travels in
transformer_options: `SpeakerPositionsPatch` turns q and k into the two-speaker L-RoPE positions as MultiTalk
does, `AudioAttentionPatch` adds the audio cross-attention of the block. Both compute with the engine's own
modules (`AudioProjection`, `AudioCrossAttention`) whose linear layers are the MODEL_PATCH's own, so ComfyUI
loads, casts and offloads them as it does for its InfiniteTalk node (the patch lists the MODEL_PATCH in
`models()`); ComfyUI's own MultiTalk patch is not used (no region gate, at most two speakers).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from magicinfinite_core.errors import InputError
from magicinfinite_core.models.audio_adapter import AudioConditioning, AudioCrossAttention, AudioProjection
from magicinfinite_core.models.config import AudioAdapterConfig

from .host import cast_bias_weight

AUDIO_KEY = "magicinfinite_audio"  # the AudioConditioning of the current model call
POSITIONS_KEY = "magicinfinite_positions"  # L-RoPE query positions from the current block's self-attention
NORM_EPS = 1e-6  # the reference's norm_x eps (Wan's); ComfyUI's adapter module carries LayerNorm's 1e-5


def _graft(module: nn.Module, source: nn.Module) -> nn.Module:
    """`module` (built on the meta device) computing with `source`'s same-named sub-layers."""
    for name, _ in list(module.named_children()):
        setattr(module, name, getattr(source, name))
    return module


class AudioAdapter:
    """The MODEL_PATCH's MultiTalk/InfiniteTalk weights seen through the engine's adapter modules."""

    def __init__(self, model_patch: object, *, dim: int, num_heads: int, num_layers: int) -> None:
        patch = getattr(model_patch, "model", None)
        projection, blocks = getattr(patch, "audio_proj", None), getattr(patch, "blocks", None)
        if projection is None or blocks is None or not hasattr(blocks[0], "audio_cross_attn"):
            raise InputError(
                f"model_patch: expected a MultiTalk/InfiniteTalk audio adapter (ModelPatchLoader with "
                f"e.g. Wan2_1-InfiniteTalk_Single_fp16.safetensors), found {type(patch).__name__}; load the "
                "InfiniteTalk or MultiTalk file in ModelPatchLoader.")
        width = blocks[0].audio_cross_attn.proj.weight.shape[0]
        if width != dim or len(blocks) != num_layers:
            raise InputError(
                f"model_patch: the audio adapter is for a {width}-wide DiT of {len(blocks)} blocks, but the "
                f"model is {dim} wide with {num_layers} blocks; load the adapter made for this Wan2.1 size "
                "(InfiniteTalk and MultiTalk are made for Wan2.1-I2V-14B).")
        self.config = AudioAdapterConfig(
            feature_layers=projection.blocks,
            feature_width=projection.channels,
            window=projection.seq_len,
            window_vf=projection.input_dim_vf // (projection.blocks * projection.channels),
            intermediate_dim=projection.intermediate_dim,
            context_tokens=projection.context_tokens,
            token_dim=projection.out_dim,
        )
        with torch.device("meta"):
            self.projection = _graft(AudioProjection(self.config), projection)
            self.attention = [_graft(AudioCrossAttention(dim, self.config.token_dim, num_heads),
                                     block.audio_cross_attn) for block in blocks]
        self.norms = [block.norm_x for block in blocks]

    def norm(self, block: int, x: torch.Tensor) -> torch.Tensor:
        """norm_x of a block in float32 with the reference's eps, in x's dtype."""
        module = self.norms[block]
        weight, bias = cast_bias_weight(module, x, dtype=torch.float32)
        return F.layer_norm(x.float(), module.normalized_shape, weight, bias, NORM_EPS).to(x.dtype)


class SpeakerPositionsPatch:
    """attn1_patch: the L-RoPE query positions of this block's video tokens (two speakers only)."""

    def __call__(self, kwargs: dict) -> torch.Tensor:
        options = kwargs["transformer_options"]
        audio: AudioConditioning | None = options.get(AUDIO_KEY)
        if audio is not None and audio.binding is not None:
            options[POSITIONS_KEY] = audio.binding.query_positions(kwargs["q"], kwargs["k"])
        return kwargs["x"]


class AudioAttentionPatch:
    """attn2_patch: x + the block's audio cross-attention (region gate, L-RoPE), as the engine's blocks."""

    def __init__(self, model_patch: object, adapter: AudioAdapter) -> None:
        self.model_patch = model_patch
        self.adapter = adapter

    def __call__(self, kwargs: dict) -> torch.Tensor:
        x, options = kwargs["x"], kwargs["transformer_options"]
        audio: AudioConditioning | None = options.get(AUDIO_KEY)
        block = options.get("block_index")
        if audio is None or block is None:
            return x
        positions = options.pop(POSITIONS_KEY, None)
        normed = self.adapter.norm(block, x)
        return x + self.adapter.attention[block](normed, audio, positions) * audio.scale

    def models(self) -> list:
        """What ComfyUI loads beside the DiT for this patch."""
        return [self.model_patch]
