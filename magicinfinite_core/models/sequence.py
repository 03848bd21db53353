"""Which tokens of the sequence one process holds: the model's hook for sequence parallelism.

`WanModel.forward` asks its `sequence_split` (None: one process holds everything) for a `TokenShard` per
forward. Everything token-local (norms, modulation, feed-forward, text/image cross-attention, the head)
runs on the held tokens as it would on all of them; the shard supplies the few operations that need tokens
other processes hold: self-attention, the first latent frame's keys and a global min/max (the L-RoPE
speaker binding). The held part may end in padding tokens (when the count does not divide the processes):
they follow the `length` real ones, take no part as keys and are dropped by `gather`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch

from .attention import attention


class TokenShard(Protocol):
    """This process's part of one forward's token sequence."""

    total: int  # tokens of the whole sequence
    frame_tokens: int  # tokens per latent frame
    start: int  # index of the first held token in the whole sequence
    length: int  # real tokens held (padding tokens, if any, follow them)

    def take(self, x: torch.Tensor, dim: int = 1) -> torch.Tensor:
        """The held part (padded) of a whole-sequence tensor, along `dim`."""
        ...

    def gather(self, x: torch.Tensor) -> torch.Tensor:
        """Held tokens [B, held, ...] of every process -> the whole sequence [B, total, ...]."""
        ...

    def self_attention(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Attention of the held queries [B, held, H, D] to the keys of the whole sequence."""
        ...

    def first_frame_keys(self, k: torch.Tensor) -> torch.Tensor:
        """The first latent frame's keys [B, frame_tokens, H, D] from the held keys [B, held, H, D]."""
        ...

    def global_min_max(self, low: torch.Tensor, high: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Elementwise min of `low` and max of `high` over every process."""
        ...


class SequenceSplit(Protocol):
    def split(self, total: int, frame_tokens: int) -> TokenShard: ...


@dataclass(frozen=True)
class WholeSequence:
    """The shard of a process that holds every token."""

    total: int
    frame_tokens: int
    start: int = 0

    @property
    def length(self) -> int:
        return self.total

    def take(self, x: torch.Tensor, dim: int = 1) -> torch.Tensor:
        return x

    def gather(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def self_attention(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return attention(q, k, v)

    def first_frame_keys(self, k: torch.Tensor) -> torch.Tensor:
        return k[:, : self.frame_tokens]

    def global_min_max(self, low: torch.Tensor, high: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return low, high
