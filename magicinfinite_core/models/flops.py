"""Analytic matmul FLOP count of one `WanModel` forward (2 FLOPs per multiply-add; norms, RoPE and other
elementwise work left out, as profilers count them). The GPU time floor of a forward is this count over
the card's dense bf16 throughput."""

from __future__ import annotations

import math
from dataclasses import dataclass

from .config import WanConfig


@dataclass(frozen=True)
class ForwardFlops:
    """FLOPs of one forward at batch 1, split by where they are spent."""

    linear: int  # projections, feed-forward, embeddings, head
    attention: int  # QK^T and AV of self, text/image cross and audio attention (+ the speaker binding map)
    audio: int  # the part of linear + attention spent in the audio adapter's blocks

    @property
    def total(self) -> int:
        return self.linear + self.attention


def forward_flops(
    config: WanConfig,
    latent_frames: int,
    latent_height: int,
    latent_width: int,
    *,
    text_tokens: int | None = None,
    image_tokens: int = 257,
    speakers: int = 1,
    speaker_masks: bool = False,
) -> ForwardFlops:
    """FLOPs of one forward over a latent [16, latent_frames, latent_height, latent_width].

    text_tokens defaults to config.text_len (the model pads shorter contexts to it); image_tokens counts
    only for i2v; speakers = 0 runs no audio branch; speaker_masks with two speakers adds the L-RoPE map.
    """
    pt, ph, pw = config.patch_size
    frame_tokens = (latent_height // ph) * (latent_width // pw)
    frames = latent_frames // pt
    tokens = frames * frame_tokens
    c = config.dim
    text = config.text_len if text_tokens is None else max(text_tokens, config.text_len)
    image = image_tokens if config.model_type == "i2v" else 0

    linear = tokens * config.in_dim * math.prod(config.patch_size) * c  # patch embedding
    linear += text * (config.text_dim * c + c * c)
    linear += config.freq_dim * c + c * c + c * 6 * c
    linear += image * (config.image_dim**2 + config.image_dim * c)
    linear += tokens * c * math.prod(config.patch_size) * config.out_dim  # head

    block_linear = tokens * (4 * c * c + 2 * c * c + 2 * c * config.ffn_dim) + (text + image) * 2 * c * c
    block_attention = 2 * tokens * tokens * c + 2 * tokens * (text + image) * c
    linear += config.num_layers * block_linear
    attention = config.num_layers * block_attention

    audio_flops = 0
    if config.audio is not None and speakers > 0:
        keys = speakers * config.audio.context_tokens
        audio_linear = 2 * tokens * c * c + frames * keys * config.audio.token_dim * 2 * c
        audio_attention = 2 * tokens * keys * c
        if speaker_masks and speakers == 2:
            audio_attention += 2 * tokens * frame_tokens * c
        audio_blocks = len(config.audio.block_ids(config.num_layers))
        linear += audio_blocks * audio_linear
        attention += audio_blocks * audio_attention
        audio_flops = audio_blocks * (audio_linear + audio_attention)
    return ForwardFlops(linear=2 * linear, attention=2 * attention, audio=2 * audio_flops)
