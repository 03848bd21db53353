"""Bytes one process sends in the collectives of one sequence parallel forward (what `split.py` does).

Per block, with c = ceil(L / N) tokens per process, C channels, b bytes per element:
- Ulysses: two all-to-alls (q, k, v out; attention output back), each keeping 1/N at home:
  4 c C b (N-1)/N.
- Ring: the k and v chunks travel N-1 hops: 2 c C b (N-1).
- L-RoPE speaker binding (two speakers with masks, audio blocks only): the first latent frame's keys are
  broadcast from the processes holding them (n C b per block to every process; counted at the receiver)
  plus one all-reduce of 4 floats per batch row (left out: tiny).
- Once per forward: the head output is all-gathered, c x prod(patch) x out_dim float32 to N-1 processes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from magicinfinite_core.models.config import WanConfig


@dataclass(frozen=True)
class ForwardTraffic:
    """Bytes per process per forward."""

    attention: int  # self-attention collectives, every block
    binding: int  # frame-0 keys of the L-RoPE binding
    gather: int  # the head output

    @property
    def total(self) -> int:
        return self.attention + self.binding + self.gather


def forward_traffic(config: WanConfig, latent_frames: int, latent_height: int, latent_width: int, world: int,
                    kernel: str, *, element_bytes: int = 2, binding: bool = False) -> ForwardTraffic:
    pt, ph, pw = config.patch_size
    frame_tokens = (latent_height // ph) * (latent_width // pw)
    tokens = (latent_frames // pt) * frame_tokens
    chunk = -(-tokens // world)
    row = config.dim * element_bytes
    if world == 1:
        return ForwardTraffic(0, 0, 0)
    if kernel == "ulysses":
        per_block = 4 * chunk * row * (world - 1) // world
    elif kernel == "ring":
        per_block = 2 * chunk * row * (world - 1)
    else:
        raise ValueError(f"kernel: expected ulysses or ring, got {kernel!r}")
    audio_blocks = 0 if config.audio is None else len(config.audio.block_ids(config.num_layers))
    return ForwardTraffic(
        attention=config.num_layers * per_block,
        binding=audio_blocks * frame_tokens * row if binding else 0,
        gather=(world - 1) * chunk * math.prod(config.patch_size) * config.out_dim * 4,
    )
