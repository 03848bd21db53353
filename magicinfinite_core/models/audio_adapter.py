"""The MultiTalk / InfiniteTalk audio adapter, the L-RoPE speaker binding and the region gate.

Data flow: windowed wav2vec2 features [N, F, window, layers, width] -> `AudioProjection` -> K tokens per
latent frame -> per DiT block `AudioCrossAttention`, frame-local (each latent frame's video tokens attend
only to that frame's audio tokens of every speaker, concatenated speaker after speaker).

Speakers (given one token-grid mask per speaker):
- `SpeakerBinding` (exactly two speakers): MultiTalk's L-RoPE as its checkpoints were trained. Each video
  token is classed speaker 1, speaker 2 or background by its self-attention to the first latent frame,
  and the audio query and keys get 1-D RoPE positions that make a token prefer its own speaker's tokens.
- `RegionGate` (any number of speakers): a token inside speaker s's region attends only to speaker s's
  audio tokens (to each of theirs when inside several regions, in one softmax); a token in no region gets
  exactly zero audio contribution. Across one layer this is exact; self-attention in later blocks still
  carries some influence between regions.
For three or four speakers MultiTalk has no trained L-RoPE positions (its positions cover two speakers and a
background), so they are bound by the region gate alone; without the gate every token hears every speaker.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..latents import TIME_STRIDE
from .attention import LayerNorm, attention
from .cast import CastLinear
from .config import AudioAdapterConfig
from .rope import line_rotation, rotate
from .sequence import TokenShard, WholeSequence

# L-RoPE layout of the MultiTalk checkpoints: speaker classes span these positions, background sits between.
SPEAKER_POSITION_RANGES = ((0.0, 4.0), (20.0, 24.0))
BACKGROUND_POSITION = 12.0


def latent_frame_windows(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Regroup per-video-frame windows into per-latent-frame inputs of the projection.

    features [N, F, window, layers, width] with F = 4*(T-1)+1 ->
    first [N, 1, window, layers, width] (the first latent frame is one video frame: its whole window) and
    later [N, T-1, window+3, layers, width]: of the 4 video frames of a later latent frame, the first
    frame's rows up to the centre, the centre row of the two middle frames, the last frame's rows from the
    centre on (3 + 1 + 1 + 3 rows for a 5-row window).
    """
    mid = features.shape[2] // 2
    later = features[:, 1:].unflatten(1, (-1, TIME_STRIDE))
    later = torch.cat([later[:, :, 0, : mid + 1], later[:, :, 1:-1, mid], later[:, :, -1, mid:]], dim=2)
    return features[:, :1], later


class AudioProjection(nn.Module):
    """MultiTalk's AudioProjModel: per latent frame, a window of features -> `context_tokens` tokens."""

    def __init__(self, config: AudioAdapterConfig) -> None:
        super().__init__()
        if config.window_vf != config.window + TIME_STRIDE - 1:
            raise ValueError(
                f"audio adapter window_vf must be window + 3 = {config.window + 3}, got {config.window_vf}"
            )
        frame_features = config.feature_layers * config.feature_width
        self.context_tokens = config.context_tokens
        self.token_dim = config.token_dim
        self.proj1 = CastLinear(config.window * frame_features, config.intermediate_dim)
        self.proj1_vf = CastLinear(config.window_vf * frame_features, config.intermediate_dim)
        self.proj2 = CastLinear(config.intermediate_dim, config.intermediate_dim)
        self.proj3 = CastLinear(config.intermediate_dim, config.context_tokens * config.token_dim)
        self.norm = LayerNorm(config.token_dim)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """features [N, F, window, layers, width] -> tokens [N, T, context_tokens, token_dim]."""
        first, later = latent_frame_windows(features)
        hidden = torch.cat(
            [F.relu(self.proj1(first.flatten(2))), F.relu(self.proj1_vf(later.flatten(2)))], dim=1
        )
        hidden = F.relu(self.proj2(hidden))
        return self.norm(self.proj3(hidden).unflatten(-1, (self.context_tokens, self.token_dim)))


@dataclass(frozen=True)
class SpeakerBinding:
    """MultiTalk's L-RoPE binding of two speakers, from their token-grid masks."""

    class_masks: torch.Tensor  # [3, N] float on one frame's token grid: speaker 1, speaker 2, background
    tokens_per_speaker: int

    @classmethod
    def from_masks(cls, masks: torch.Tensor, tokens_per_speaker: int) -> SpeakerBinding:
        """masks [2, h, w] {0,1}; the background class is every token outside both."""
        inside = (masks.flatten(1) > 0.5).float()
        background = 1.0 - inside.amax(dim=0, keepdim=True)
        return cls(torch.cat([inside, background]), tokens_per_speaker)

    def query_positions(
        self, q: torch.Tensor, k: torch.Tensor, shard: TokenShard | None = None
    ) -> torch.Tensor:
        """1-D positions [B, L] of the video tokens from the block's rotated self-attention q, k [B, L, H, D].

        A token's class score is its attention to the first latent frame's keys averaged over the class's
        tokens (and over heads); it takes the class with the highest score. Speaker classes map their
        score, min-max normalised over all tokens, into their position range; background is a constant.
        With a `shard`, q holds only its real tokens and the frame-0 keys and the min/max come from every
        process, so the positions equal those of one process holding all tokens.
        """
        if shard is None:
            shard = WholeSequence(q.shape[1], self.class_masks.shape[1])
        head_dim = q.shape[-1]
        # Attention averaged over a class's keys = attention with values = the class mask / its size.
        values = self.class_masks / self.class_masks.sum(dim=1, keepdim=True).clamp(min=1.0)
        values = F.pad(values.T, (0, head_dim - values.shape[0])).to(q.dtype)
        # contiguous: fused attention kernels may refuse stride-0 batch and head dims
        values = values.expand(q.shape[0], q.shape[2], -1, -1).contiguous().transpose(1, 2)
        frame_keys = shard.first_frame_keys(k)
        scores = attention(q, frame_keys, values)[..., : self.class_masks.shape[0]].float().mean(dim=2)

        speakers = scores[..., :2]
        low, high = shard.global_min_max(
            speakers.amin(dim=1, keepdim=True), speakers.amax(dim=1, keepdim=True)
        )
        start = speakers.new_tensor([r[0] for r in SPEAKER_POSITION_RANGES])
        width = speakers.new_tensor([r[1] - r[0] for r in SPEAKER_POSITION_RANGES])
        positions = (speakers - low) / (high - low + 1e-8) * width + start
        positions = torch.cat([positions, torch.full_like(positions[..., :1], BACKGROUND_POSITION)], dim=-1)
        return positions.gather(-1, scores.argmax(dim=-1, keepdim=True)).squeeze(-1)

    def key_positions(self, device: torch.device) -> torch.Tensor:
        """Positions [2*K] of one frame's audio tokens: each speaker's at the centre of its range."""
        centres = torch.tensor([(lo + hi) / 2 for lo, hi in SPEAKER_POSITION_RANGES], device=device)
        return centres.repeat_interleave(self.tokens_per_speaker)


@dataclass(frozen=True)
class RegionGate:
    """Which audio tokens each video token of a frame may attend to, from one token-grid mask per speaker."""

    key_mask: torch.Tensor  # [N, S*K] bool; rows of tokens in no region are all True (output zeroed later)
    covered: torch.Tensor  # [N] bool: the token lies in at least one speaker's region

    @classmethod
    def from_masks(cls, masks: torch.Tensor, tokens_per_speaker: int) -> RegionGate:
        """masks [S, h, w] {0,1}."""
        inside = masks.flatten(1) > 0.5
        covered = inside.any(dim=0)
        # An all-False row would make softmax NaN: let such rows attend freely and zero them in `confine`.
        key_mask = inside.T.repeat_interleave(tokens_per_speaker, dim=1) | ~covered[:, None]
        return cls(key_mask, covered)

    def confine(self, out: torch.Tensor, frame_positions: torch.Tensor) -> torch.Tensor:
        """Zero the audio output [B, L, C] of tokens in no region; frame_positions [L] is each token's
        index within its latent frame."""
        covered = self.covered[frame_positions]
        return torch.where(covered[:, None], out, torch.zeros((), dtype=out.dtype, device=out.device))


@dataclass(frozen=True)
class AudioConditioning:
    """What every audio block of one forward needs, built once by the model."""

    tokens: torch.Tensor  # [B, T, S*K, token_dim], speaker after speaker within a frame
    scale: float
    binding: SpeakerBinding | None
    gate: RegionGate | None

    @classmethod
    def build(cls, audio_tokens: torch.Tensor, speaker_masks: torch.Tensor | None, *, dtype: torch.dtype,
              region_gate: bool = True, scale: float = 1.0) -> AudioConditioning:
        """Audio tokens [B, S, T, K, token_dim] (from the adapter's projection) and one token-grid mask per
        speaker [S, h, w] (or None) -> the tokens per frame in `dtype`, the two-speaker binding and the
        region gate."""
        speakers, tokens_per_speaker = audio_tokens.shape[1], audio_tokens.shape[3]
        binding = gate = None
        if speaker_masks is not None:
            masks = speaker_masks.to(audio_tokens.device)
            if speakers == 2:
                binding = SpeakerBinding.from_masks(masks, tokens_per_speaker)
            if region_gate:
                gate = RegionGate.from_masks(masks, tokens_per_speaker)
        return cls(audio_tokens.transpose(1, 2).flatten(2, 3).to(dtype), scale, binding, gate)


class AudioCrossAttention(nn.Module):
    """Frame-local cross-attention from video tokens to audio tokens (MultiTalk's SingleStreamAttention)."""

    def __init__(self, dim: int, token_dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.q_linear = CastLinear(dim, dim)
        self.kv_linear = CastLinear(token_dim, 2 * dim)
        self.proj = CastLinear(dim, dim)

    def forward(
        self,
        x: torch.Tensor,
        audio: AudioConditioning,
        query_positions: torch.Tensor | None = None,
        shard: TokenShard | None = None,
    ) -> torch.Tensor:
        """x [B, L, C] normed video tokens -> audio contribution [B, L, C].

        x is the whole sequence (L = T * N), or with `shard` its `shard.length` real held tokens, which may
        begin and end inside a latent frame: they are padded out to whole frames so that each still attends
        to its own frame's audio tokens only. `query_positions` [B, L]: L-RoPE positions of the video tokens
        (with `audio.binding`)."""
        batch, length, dim = x.shape
        if shard is None:
            shard = WholeSequence(length, length // audio.tokens.shape[1])
        frame_tokens = shard.frame_tokens
        first, lead = divmod(shard.start, frame_tokens)
        stop = -(-(shard.start + length) // frame_tokens)  # one past the last frame held
        q = self.q_linear(x).unflatten(-1, (self.num_heads, self.head_dim))
        tokens = audio.tokens[:, first:stop].flatten(0, 1)
        kv = self.kv_linear(tokens).unflatten(-1, (2, self.num_heads, self.head_dim))
        k, v = kv.unbind(-3)
        if audio.binding is not None:
            q = rotate(q, line_rotation(query_positions, self.head_dim))
            k = rotate(k, line_rotation(audio.binding.key_positions(k.device), self.head_dim))
        q = F.pad(q, (0, 0, 0, 0, lead, (stop - first) * frame_tokens - lead - length))
        q = q.reshape(batch * (stop - first), frame_tokens, self.num_heads, self.head_dim)
        mask = None if audio.gate is None else audio.gate.key_mask
        out = attention(q, k, v, mask).reshape(batch, -1, dim)[:, lead : lead + length]
        out = self.proj(out)
        if audio.gate is not None:
            positions = torch.arange(shard.start, shard.start + length, device=out.device) % frame_tokens
            out = audio.gate.confine(out, positions)
        return out
