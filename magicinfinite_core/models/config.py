"""Model configurations: the released Wan2.1 sizes, the audio adapter layout, and tiny test sizes.

A config is read from a checkpoint's keys and shapes (see `checkpoints/`), never from its file name.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

HEAD_DIM = 128  # both released Wan2.1 sizes use 128-wide heads


@dataclass(frozen=True)
class AudioAdapterConfig:
    """Layout of the MultiTalk / InfiniteTalk audio adapter.

    feature_layers x feature_width is the wav2vec2 output stacked per video frame (12 x 768 for
    chinese-wav2vec2-base). `window` video frames of features per first latent frame (5);
    `window_vf` rows per later latent frame (8 = 3 + 1 + 1 + 3 of the 4 video frames it covers).
    `blocks` lists the DiT blocks that carry audio cross-attention; None means every block (MultiTalk);
    MagicInfinite puts it only in the final blocks.
    """

    feature_layers: int = 12
    feature_width: int = 768
    window: int = 5
    window_vf: int = 8
    intermediate_dim: int = 512
    context_tokens: int = 32
    token_dim: int = 768
    blocks: tuple[int, ...] | None = None

    def block_ids(self, num_layers: int) -> tuple[int, ...]:
        return tuple(range(num_layers)) if self.blocks is None else self.blocks


@dataclass(frozen=True)
class WanConfig:
    """Shape of a Wan2.1 DiT (1.3B: dim 1536, 30 layers; 14B: dim 5120, 40 layers) plus an optional audio
    adapter."""

    dim: int
    ffn_dim: int
    num_heads: int
    num_layers: int
    model_type: Literal["t2v", "i2v"] = "i2v"
    in_dim: int = 36  # 16 noisy latent + 4 mask + 16 reference latent for i2v; 16 for t2v
    out_dim: int = 16
    text_dim: int = 4096
    text_len: int = 512
    freq_dim: int = 256
    image_dim: int = 1280  # CLIP ViT-H/14 width
    patch_size: tuple[int, int, int] = (1, 2, 2)
    eps: float = 1e-6
    audio: AudioAdapterConfig | None = field(default_factory=AudioAdapterConfig)

    @property
    def head_dim(self) -> int:
        return self.dim // self.num_heads

    def with_audio(self, audio: AudioAdapterConfig | None) -> WanConfig:
        return replace(self, audio=audio)


WAN_1_3B = WanConfig(dim=1536, ffn_dim=8960, num_heads=12, num_layers=30)
WAN_14B = WanConfig(dim=5120, ffn_dim=13824, num_heads=40, num_layers=40)


def tiny_config(
    *,
    dim: int = 64,
    num_heads: int = 2,
    num_layers: int = 2,
    model_type: Literal["t2v", "i2v"] = "i2v",
    with_audio: bool = True,
    audio_blocks: tuple[int, ...] | None = None,
) -> WanConfig:
    """A config small enough for CPU tests: narrow text/image/audio widths, same structure."""
    audio = AudioAdapterConfig(
        feature_layers=3,
        feature_width=16,
        intermediate_dim=32,
        context_tokens=4,
        token_dim=32,
        blocks=audio_blocks,
    )
    return WanConfig(
        dim=dim,
        ffn_dim=2 * dim,
        num_heads=num_heads,
        num_layers=num_layers,
        model_type=model_type,
        in_dim=36 if model_type == "i2v" else 16,
        text_dim=32,
        text_len=16,
        freq_dim=32,
        image_dim=24,
        audio=audio if with_audio else None,
    )
