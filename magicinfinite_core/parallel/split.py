"""Sequence parallel WanModel: every process of a group runs the same sampler, and inside each DiT forward
holds an even share of the tokens (see `models.sequence` for what stays local).

`parallelize(model, group)` sets the model's `sequence_split`; the forward then returns the whole latent on
every process (its head output is gathered), so the solver, the VAE and the window loop run unchanged and in
step on every process.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.distributed as dist
import torch.nn.functional as F

from magicinfinite_core.errors import InputError
from magicinfinite_core.models.wan import WanModel

from .attention import ring_attention, ulysses_attention

Mode = Literal["auto", "ulysses", "ring"]
MODES: tuple[Mode, ...] = ("auto", "ulysses", "ring")


def attention_mode(mode: Mode, num_heads: int, world: int) -> Literal["ulysses", "ring"]:
    """Ulysses when the heads divide over the processes ("auto" prefers it), else ring."""
    if mode not in MODES:
        raise InputError(f"sequence parallel mode: expected one of {MODES}, got {mode!r}.")
    divides = num_heads % world == 0
    if mode == "ulysses" and not divides:
        usable = [n for n in range(2, num_heads + 1) if num_heads % n == 0 and n <= 8]
        raise InputError(
            f"sequence parallel: Ulysses splits the model's {num_heads} attention heads evenly, which "
            f"{world} processes cannot; use {usable} processes, or mode 'ring' (or 'auto')."
        )
    if mode == "auto":
        return "ulysses" if divides else "ring"
    return mode


def chunk_size(total: int, world: int) -> int:
    """Tokens each of `world` processes holds of a `total`-token sequence (the last ones padded)."""
    chunk = -(-total // world)
    if (world - 1) * chunk >= total:
        raise InputError(
            f"sequence parallel: a window of {total} tokens cannot be split over {world} processes so that "
            f"each holds some ({chunk} each); use fewer processes or a larger video size."
        )
    return chunk


@dataclass(frozen=True)
class ShardedSequence:
    """This process's consecutive `chunk` tokens of a sequence split over `world` processes."""

    total: int
    frame_tokens: int
    chunk: int
    rank: int
    world: int
    kernel: Literal["ulysses", "ring"]
    group: dist.ProcessGroup | None

    @property
    def start(self) -> int:
        return self.rank * self.chunk

    @property
    def length(self) -> int:
        return min(self.chunk, self.total - self.start)

    def take(self, x: torch.Tensor, dim: int = 1) -> torch.Tensor:
        missing = self.world * self.chunk - x.shape[dim]
        if missing:
            x = F.pad(x, (0, 0) * (x.ndim - 1 - dim) + (0, missing))
        return x.narrow(dim, self.start, self.chunk)

    def gather(self, x: torch.Tensor) -> torch.Tensor:
        parts = [torch.empty_like(x) for _ in range(self.world)]
        dist.all_gather(parts, x.contiguous(), group=self.group)
        return torch.cat(parts, dim=1)[:, : self.total]

    def self_attention(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        kernel = ulysses_attention if self.kernel == "ulysses" else ring_attention
        return kernel(q, k, v, self.total, self.group)

    def first_frame_keys(self, k: torch.Tensor) -> torch.Tensor:
        """Each process holding part of frame 0 broadcasts it, in order."""
        parts = []
        world_group = self.group or dist.group.WORLD
        for owner in range(-(-self.frame_tokens // self.chunk)):
            size = min(self.chunk, self.frame_tokens - owner * self.chunk)
            part = k[:, :size].contiguous() if owner == self.rank else k.new_empty(
                (k.shape[0], size, *k.shape[2:])
            )
            dist.broadcast(part, dist.get_global_rank(world_group, owner), group=self.group)
            parts.append(part)
        return torch.cat(parts, dim=1)

    def global_min_max(self, low: torch.Tensor, high: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        both = torch.cat([-low, high]).contiguous()  # one all-reduce: max of -low is -(min of low)
        dist.all_reduce(both, op=dist.ReduceOp.MAX, group=self.group)
        negative_low, high = both.split(low.shape[0])
        return -negative_low, high


@dataclass(frozen=True)
class SequenceParallel:
    """The `sequence_split` of a WanModel run by every process of `group` (None: the default group)."""

    num_heads: int
    mode: Mode = "auto"
    group: dist.ProcessGroup | None = None

    def __post_init__(self) -> None:
        attention_mode(self.mode, self.num_heads, dist.get_world_size(self.group))

    def split(self, total: int, frame_tokens: int) -> ShardedSequence:
        world = dist.get_world_size(self.group)
        chunk = chunk_size(total, world)
        return ShardedSequence(total, frame_tokens, chunk, dist.get_rank(self.group), world,
                               attention_mode(self.mode, self.num_heads, world), self.group)


def parallelize(model: WanModel, group: dist.ProcessGroup | None = None, mode: Mode = "auto") -> WanModel:
    """Split `model`'s forwards over the processes of `group` (an initialised process group)."""
    if not dist.is_initialized():
        raise InputError("sequence parallel: no process group; start the processes with torchrun.")
    model.sequence_split = SequenceParallel(model.config.num_heads, mode, group)
    return model
