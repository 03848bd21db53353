"""The sizes of MagicInfinite-Mini's parts and their seeded random initialisation.

Same architectures as the real path at a small size: a Wan2.1 i2v DiT with the MultiTalk adapter in its final
blocks (as MagicInfinite places audio attention), the small causal VAE, a byte-vocabulary umT5 text encoder
and a wav2vec2 with the real front-end geometry (320-sample hop, 128-frame positional convolution).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import UMT5Config, Wav2Vec2Config, Wav2Vec2Model

from magicinfinite_core.mini.text_encoder import BYTE_OFFSET, SmallTextEncoder
from magicinfinite_core.mini.vae import SmallVideoVAE
from magicinfinite_core.models.config import AudioAdapterConfig, WanConfig
from magicinfinite_core.models.wan import WanModel

TEXT_LEN = 160  # bytes: a two-character prompt of the world fits
TEXT_ENCODER = dict(vocab_size=256 + BYTE_OFFSET, d_model=64, d_kv=16, d_ff=128, num_layers=2, num_heads=4,
                    relative_attention_num_buckets=32, relative_attention_max_distance=128)
VAE_WIDTH = 64
AUDIO_LAYERS = 4
AUDIO_WIDTH = 32
# The loader reads a wav2vec2's head count from its width (width // 64, at least 1): one head at width 32.
AUDIO_ENCODER = dict(conv_dim=(32,) * 7, hidden_size=AUDIO_WIDTH, num_hidden_layers=AUDIO_LAYERS,
                     num_attention_heads=1, intermediate_size=64, num_conv_pos_embeddings=128,
                     num_conv_pos_embedding_groups=16, mask_time_prob=0.0)
DIT = WanConfig(
    dim=128, ffn_dim=256, num_heads=2, num_layers=4, model_type="i2v", in_dim=36, text_dim=64,
    text_len=TEXT_LEN, freq_dim=64, image_dim=32,
    audio=AudioAdapterConfig(feature_layers=AUDIO_LAYERS, feature_width=AUDIO_WIDTH, intermediate_dim=64,
                             context_tokens=4, token_dim=32, blocks=(2, 3)),
)


@dataclass
class Parts:
    """The four trainable parts of a bundle (mutable: training updates them in place)."""

    dit: WanModel
    vae: SmallVideoVAE
    text_encoder: SmallTextEncoder
    audio_encoder: Wav2Vec2Model


def text_encoder_config() -> UMT5Config:
    return UMT5Config(**TEXT_ENCODER)


def audio_encoder_config() -> Wav2Vec2Config:
    return Wav2Vec2Config(**AUDIO_ENCODER)


def random_parts(seed: int = 0) -> Parts:
    """Every part freshly initialised from `seed` (the same seed gives the same weights)."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        dit = WanModel(DIT)
        vae = SmallVideoVAE(VAE_WIDTH)
        text_encoder = SmallTextEncoder(text_encoder_config(), TEXT_LEN)
        audio_encoder = Wav2Vec2Model(audio_encoder_config())
    for module in (dit, vae, text_encoder, audio_encoder):
        module.eval()
    return Parts(dit, vae, text_encoder, audio_encoder)
