"""The Wan2.1 diffusion transformer (t2v and i2v) with the MultiTalk / InfiniteTalk audio adapter.

Structure follows Wan2.1's wan/modules/model.py: one module per sub-layer, a block, a head, the CLIP image
projector, and `WanModel.forward` as the table of contents (embed, blocks, head, unpatchify). Parameter
names are Wan's native checkpoint keys plus the MultiTalk adapter keys, so `state_dict()` is the internal
layout every checkpoint format is mapped to.

Precision: the residual stream, the time embedding, the modulation and the head run in float32 (as Wan
runs them under autocast); every other sub-layer gets its input cast to `WanModel.compute_dtype` and its
weights cast to that dtype by `CastLinear`, whatever dtype they are stored in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError
from ..latents import LATENT_CHANNELS, MASK_CHANNELS, TIME_STRIDE
from .attention import ImageTextCrossAttention, LayerNorm, SelfAttention, TextCrossAttention
from .audio_adapter import AudioConditioning, AudioCrossAttention, AudioProjection
from .cast import CastLinear
from .config import WanConfig
from .rope import grid_rotation
from .sequence import SequenceSplit, TokenShard, WholeSequence

I2V_CONDITION_CHANNELS = MASK_CHANNELS + LATENT_CHANNELS  # mask ++ reference latent


def sinusoidal_embedding(timestep: torch.Tensor, dim: int) -> torch.Tensor:
    """timestep [B] in [0, 1000] -> [B, dim] float32 on the CPU: cat(cos, sin) of t * 10000^(-i/half),
    computed in float64 as Wan computes it (on the CPU: not every accelerator has float64)."""
    half = dim // 2
    t = timestep.detach().cpu().to(torch.float64)
    angles = torch.outer(t, torch.pow(10000.0, -torch.arange(half, dtype=torch.float64) / half))
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=1).float()


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale) + shift


class PatchEmbedding(nn.Conv3d):
    """Conv3d with kernel = stride = patch size, computed in float32 whatever its weight's storage dtype."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = None if self.bias is None else self.bias.float()
        return F.conv3d(x.float(), self.weight.float(), bias, self.stride)


@dataclass(frozen=True)
class BlockInputs:
    """Per-forward values every block reads."""

    e: torch.Tensor  # [B, 6, C] float32 time projection
    rotation: torch.Tensor  # [L, 1, D/2, 2] (cos, sin) 3D RoPE of the held tokens
    text: torch.Tensor  # [B, Lt, C] embedded text tokens, compute dtype
    image: torch.Tensor | None  # [B, Li, C] embedded CLIP image tokens (i2v) or None
    audio: AudioConditioning | None
    dtype: torch.dtype  # compute dtype of the sub-layers
    shard: TokenShard  # which tokens this process holds


class WanAttentionBlock(nn.Module):
    """Self-attention, cross-attention and feed-forward, each modulated by the timestep (adaLN)."""

    def __init__(self, config: WanConfig) -> None:
        super().__init__()
        dim, eps = config.dim, config.eps
        self.norm1 = LayerNorm(dim, eps, elementwise_affine=False)
        self.self_attn = SelfAttention(dim, config.num_heads, eps)
        self.norm3 = LayerNorm(dim, eps, elementwise_affine=True)
        cross_attention = ImageTextCrossAttention if config.model_type == "i2v" else TextCrossAttention
        self.cross_attn = cross_attention(dim, config.num_heads, eps)
        self.norm2 = LayerNorm(dim, eps, elementwise_affine=False)
        self.ffn = nn.Sequential(
            CastLinear(dim, config.ffn_dim), nn.GELU(approximate="tanh"), CastLinear(config.ffn_dim, dim)
        )
        self.modulation = nn.Parameter(torch.randn(1, 6, dim) / dim**0.5)

    def forward(self, x: torch.Tensor, inputs: BlockInputs) -> torch.Tensor:
        """x [B, L, C] float32 residual stream -> same."""
        e = (self.modulation.float() + inputs.e).chunk(6, dim=1)  # shift, scale, gate: attention, ffn
        q, k, v = self.self_attn.qkv(modulate(self.norm1(x), e[0], e[1]).to(inputs.dtype), inputs.rotation)
        x = x + self.self_attn.attend(q, k, v, inputs.shard.self_attention) * e[2]
        x = x + self.cross_attn(self.norm3(x).to(inputs.dtype), inputs.text, inputs.image)
        x = self.add_audio(x, q, k, inputs)
        return x + self.ffn(modulate(self.norm2(x), e[3], e[4]).to(inputs.dtype)) * e[5]

    def add_audio(
        self, x: torch.Tensor, q: torch.Tensor, k: torch.Tensor, inputs: BlockInputs
    ) -> torch.Tensor:
        """Blocks without the audio adapter leave the stream as it is."""
        return x


class WanAudioAttentionBlock(WanAttentionBlock):
    """A block carrying MultiTalk's audio cross-attention after the text/image cross-attention."""

    def __init__(self, config: WanConfig) -> None:
        super().__init__(config)
        self.norm_x = LayerNorm(config.dim, config.eps, elementwise_affine=True)
        self.audio_cross_attn = AudioCrossAttention(config.dim, config.audio.token_dim, config.num_heads)

    def add_audio(
        self, x: torch.Tensor, q: torch.Tensor, k: torch.Tensor, inputs: BlockInputs
    ) -> torch.Tensor:
        """q, k [B, L, H, D]: this block's rotated self-attention q and k, read by the speaker binding."""
        audio, shard = inputs.audio, inputs.shard
        if audio is None:
            return x
        held = shard.length  # padding tokens get no audio
        positions = None if audio.binding is None else audio.binding.query_positions(q[:, :held], k, shard)
        out = self.audio_cross_attn(self.norm_x(x[:, :held]).to(inputs.dtype), audio, positions, shard)
        return x + F.pad(out, (0, 0, 0, x.shape[1] - held)) * audio.scale


class Head(nn.Module):
    """Final modulated norm and projection to patch pixels of the output latent."""

    def __init__(self, config: WanConfig) -> None:
        super().__init__()
        self.norm = LayerNorm(config.dim, config.eps, elementwise_affine=False)
        self.head = CastLinear(config.dim, math.prod(config.patch_size) * config.out_dim)
        self.modulation = nn.Parameter(torch.randn(1, 2, config.dim) / config.dim**0.5)

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        """x [B, L, C] float32, e [B, C] float32 time embedding -> [B, L, prod(patch) * out_dim] float32."""
        shift, scale = (self.modulation.float() + e[:, None]).chunk(2, dim=1)
        return self.head(modulate(self.norm(x), shift, scale))


class ImageProjection(nn.Module):
    """i2v projector of CLIP image tokens into the model width (Wan's MLPProj)."""

    def __init__(self, image_dim: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Sequential(
            LayerNorm(image_dim),
            CastLinear(image_dim, image_dim),
            nn.GELU(),
            CastLinear(image_dim, dim),
            LayerNorm(dim),
        )

    def forward(self, clip_tokens: torch.Tensor) -> torch.Tensor:
        return self.proj(clip_tokens)


class WanModel(nn.Module):
    """Wan2.1 DiT for text-to-video and image-to-video, optionally with the MultiTalk audio adapter.

    `compute_dtype` (float32 unless set) is the dtype sub-layers compute in; weights may be stored in any
    dtype (see `CastLinear`). `sequence_split` (None: this process holds every token) splits each forward's
    tokens over processes (see `magicinfinite_core.parallel`). The model holds no sampling or checkpoint
    logic.
    """

    def __init__(self, config: WanConfig) -> None:
        super().__init__()
        if config.dim % config.num_heads:
            raise ValueError(f"dim {config.dim} is not a multiple of num_heads {config.num_heads}")
        audio_blocks = () if config.audio is None else config.audio.block_ids(config.num_layers)
        if any(not 0 <= i < config.num_layers for i in audio_blocks):
            raise ValueError(f"audio blocks {audio_blocks} outside the model's {config.num_layers} blocks")
        self.config = config
        self.compute_dtype = torch.float32
        self.sequence_split: SequenceSplit | None = None
        dim = config.dim

        self.patch_embedding = PatchEmbedding(
            config.in_dim, dim, kernel_size=config.patch_size, stride=config.patch_size
        )
        self.text_embedding = nn.Sequential(
            CastLinear(config.text_dim, dim), nn.GELU(approximate="tanh"), CastLinear(dim, dim)
        )
        self.time_embedding = nn.Sequential(CastLinear(config.freq_dim, dim), nn.SiLU(), CastLinear(dim, dim))
        self.time_projection = nn.Sequential(nn.SiLU(), CastLinear(dim, 6 * dim))
        self.blocks = nn.ModuleList(
            WanAudioAttentionBlock(config) if i in audio_blocks else WanAttentionBlock(config)
            for i in range(config.num_layers)
        )
        self.head = Head(config)
        if config.model_type == "i2v":
            self.img_emb = ImageProjection(config.image_dim, dim)
        if config.audio is not None:
            self.audio_proj = AudioProjection(config.audio)

    def encode_audio(self, features: torch.Tensor) -> torch.Tensor:
        """Windowed wav2vec2 features [B, S, F, window, layers, width] of a window's F = 4*(T-1)+1 video
        frames -> audio tokens [B, S, T, K, token_dim] (compute dtype)."""
        audio = self.config.audio
        if audio is None:
            raise InputError("encode_audio: this model has no audio adapter; load one beside the DiT.")
        expected = (audio.window, audio.feature_layers, audio.feature_width)
        if features.ndim != 6 or tuple(features.shape[3:]) != expected:
            raise InputError(
                f"audio features: expected [B, S, F, {', '.join(map(str, expected))}] "
                f"(window, wav2vec2 layers, width), got {list(features.shape)}; the audio encoder does not "
                "match this adapter."
            )
        batch, speakers, frames = features.shape[:3]
        if (frames - 1) % TIME_STRIDE:
            raise InputError(f"audio features: video frames must be 4*k+1 (e.g. 81), got {frames}")
        tokens = self.audio_proj(features.flatten(0, 1).to(self.compute_dtype))
        return tokens.unflatten(0, (batch, speakers))

    def forward(
        self,
        x: torch.Tensor,
        timestep: torch.Tensor,
        context: torch.Tensor,
        *,
        image_latent: torch.Tensor | None = None,
        clip_tokens: torch.Tensor | None = None,
        audio_tokens: torch.Tensor | None = None,
        speaker_masks: torch.Tensor | None = None,
        region_gate: bool = True,
        audio_scale: float = 1.0,
    ) -> torch.Tensor:
        """Predict the flow-matching velocity (noise - x0).

        x [B, 16, T, H, W] normalised noisy latent; timestep [B] in [0, 1000]; context [B, Lt, text_dim]
        (padded with zeros to text_len, as Wan pads); image_latent [B, 20, T, H, W] i2v conditioning
        (4 mask ++ 16 reference-latent channels, required by i2v models); clip_tokens [B, 257, image_dim]
        (i2v, optional); audio_tokens [B, S, T, K, token_dim] from `encode_audio` or None (no audio);
        speaker_masks [S, H/2, W/2] {0,1} token-grid region per speaker; region_gate confines each speaker's
        audio to its region (see audio_adapter); audio_scale multiplies the audio contribution.
        Returns [B, 16, T, H, W] in x's dtype.
        """
        self._check_inputs(x, context, image_latent, clip_tokens, audio_tokens, speaker_masks)
        dtype = self.compute_dtype
        if image_latent is not None:
            x = torch.cat([x, image_latent.to(x.dtype)], dim=1)

        tokens = self.patch_embedding(x)
        grid = tuple(tokens.shape[2:])
        tokens = tokens.flatten(2).transpose(1, 2)
        length, frame_tokens = tokens.shape[1], grid[1] * grid[2]
        split = self.sequence_split
        shard = WholeSequence(length, frame_tokens) if split is None else split.split(length, frame_tokens)
        tokens = shard.take(tokens)

        e = self.time_embedding(sinusoidal_embedding(timestep.reshape(-1), self.config.freq_dim).to(x.device))
        inputs = BlockInputs(
            e=self.time_projection(e).unflatten(1, (6, self.config.dim)),
            rotation=shard.take(grid_rotation(grid, self.config.head_dim, device=x.device), dim=0),
            text=self.text_embedding(self._pad_text(context).to(dtype)),
            image=None if clip_tokens is None else self.img_emb(clip_tokens.to(dtype)),
            audio=self.audio_conditioning(audio_tokens, speaker_masks, region_gate, audio_scale),
            dtype=dtype,
            shard=shard,
        )
        for block in self.blocks:
            tokens = block(tokens, inputs)

        return self.unpatchify(shard.gather(self.head(tokens, e)), grid).to(x.dtype)

    def unpatchify(self, tokens: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
        """[B, T*h*w, pt*ph*pw*C] -> [B, C, T*pt, h*ph, w*pw]."""
        batch = tokens.shape[0]
        out = tokens.view(batch, *grid, *self.config.patch_size, self.config.out_dim)
        out = torch.einsum("bfhwpqrc->bcfphqwr", out)
        return out.reshape(
            batch, self.config.out_dim, *(g * p for g, p in zip(grid, self.config.patch_size, strict=True))
        )

    def _pad_text(self, context: torch.Tensor) -> torch.Tensor:
        missing = self.config.text_len - context.shape[1]
        return F.pad(context, (0, 0, 0, missing)) if missing > 0 else context

    def audio_conditioning(
        self,
        audio_tokens: torch.Tensor | None,
        speaker_masks: torch.Tensor | None,
        region_gate: bool,
        audio_scale: float,
    ) -> AudioConditioning | None:
        """Audio tokens [B, S, T, K, token_dim] (from encode_audio) -> what every audio block of one forward
        shares: the tokens per frame in the compute dtype, the two-speaker binding and the region gate."""
        if audio_tokens is None:
            return None
        return AudioConditioning.build(audio_tokens, speaker_masks, dtype=self.compute_dtype,
                                       region_gate=region_gate, scale=audio_scale)

    def _check_inputs(
        self,
        x: torch.Tensor,
        context: torch.Tensor,
        image_latent: torch.Tensor | None,
        clip_tokens: torch.Tensor | None,
        audio_tokens: torch.Tensor | None,
        speaker_masks: torch.Tensor | None,
    ) -> None:
        config = self.config
        latent_channels = config.in_dim - (I2V_CONDITION_CHANNELS if config.model_type == "i2v" else 0)
        if x.ndim != 5 or x.shape[1] != latent_channels:
            raise InputError(f"latent: expected [B, {latent_channels}, T, H, W], got {list(x.shape)}")
        batch, _, frames, height, width = x.shape
        _, ph, pw = config.patch_size
        if height % ph or width % pw:
            raise InputError(
                f"latent: height and width must be multiples of {ph} and {pw} (pixels: of {8 * ph} and "
                f"{8 * pw}), got {height}x{width}"
            )
        if context.ndim != 3 or context.shape[-1] != config.text_dim:
            raise InputError(
                f"text context: expected [B, L, {config.text_dim}], got {list(context.shape)}; "
                "the text encoder does not match this model."
            )
        if config.model_type == "i2v":
            expected = [batch, I2V_CONDITION_CHANNELS, frames, height, width]
            if image_latent is None or list(image_latent.shape) != expected:
                found = None if image_latent is None else list(image_latent.shape)
                raise InputError(
                    f"image conditioning: an i2v model needs image_latent {expected}, got {found}"
                )
            if clip_tokens is not None and (
                clip_tokens.ndim != 3 or clip_tokens.shape[-1] != config.image_dim
            ):
                raise InputError(
                    f"CLIP image tokens: expected [B, 257, {config.image_dim}], got {list(clip_tokens.shape)}"
                )
        elif image_latent is not None or clip_tokens is not None:
            raise InputError(
                "image conditioning: this is a text-to-video model; it takes no image_latent/clip_tokens."
            )
        if audio_tokens is None:
            return
        audio = config.audio
        if audio is None:
            raise InputError(
                "audio tokens given but this model has no audio adapter; load one beside the DiT."
            )
        if (
            audio_tokens.ndim != 5
            or audio_tokens.shape[2] != frames
            or audio_tokens.shape[4] != audio.token_dim
        ):
            raise InputError(
                f"audio tokens: expected [B, S, {frames}, K, {audio.token_dim}] (T = the latent's frames), "
                f"got {list(audio_tokens.shape)}"
            )
        expected_masks = [audio_tokens.shape[1], height // ph, width // pw]
        if speaker_masks is not None and list(speaker_masks.shape) != expected_masks:
            raise InputError(
                f"speaker masks: expected {expected_masks} (one token-grid mask per speaker), "
                f"got {list(speaker_masks.shape)}"
            )
