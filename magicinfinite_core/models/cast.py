"""Linear layers whose stored weight dtype differs from the compute dtype.

Weights may be kept as fp32, bf16, fp16 or fp8 (e4m3fn, optionally with a per-tensor scale as in
`*_fp8_scaled` files) and are cast per layer at compute, so fp8 storage takes half the memory of bf16.
LoRAs on such weights are applied beside the weight (in the compute dtype) so the fp8 rounding does
not swallow them.

Move a model holding fp8 weights with `.to(device)` only: `.to(dtype)` converts every floating
tensor, fp8 weights included.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class LowRankPatch:
    """delta W = scale * up @ down, kept factorised; scale already holds strength * alpha / rank."""

    down: torch.Tensor  # [rank, in_features]
    up: torch.Tensor  # [out_features, rank]
    scale: float

    def output(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * F.linear(F.linear(x, self.down.to(x.dtype)), self.up.to(x.dtype))

    def apply(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> LowRankPatch:
        return LowRankPatch(fn(self.down), fn(self.up), self.scale)


@dataclass(frozen=True)
class DensePatch:
    """delta W = scale * delta: a LoRA's full-rank `.diff` entry for a weight kept in fp8."""

    delta: torch.Tensor  # [out_features, in_features]
    scale: float

    def output(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * F.linear(x, self.delta.to(x.dtype))

    def apply(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> DensePatch:
        return DensePatch(fn(self.delta), self.scale)


WeightPatch = LowRankPatch | DensePatch


class CastLinear(nn.Linear):
    """nn.Linear that casts its stored weight to the input's dtype at every call.

    `scale_weight` (a non-persistent buffer, default None; 0-d or [out_features, 1]) multiplies the
    stored weight, as fp8_scaled checkpoints require. `patches` are LoRA deltas applied beside the
    weight; they move with the module (`.to(device)`).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, **kwargs) -> None:
        super().__init__(in_features, out_features, bias=bias, **kwargs)
        self.register_buffer("scale_weight", None, persistent=False)
        self.patches: list[WeightPatch] = []

    def compute_weight(self, dtype: torch.dtype) -> torch.Tensor:
        weight = self.weight.to(dtype)
        if self.scale_weight is not None:
            weight = weight * self.scale_weight.to(dtype)
        return weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = None if self.bias is None else self.bias.to(x.dtype)
        out = F.linear(x, self.compute_weight(x.dtype), bias)
        for patch in self.patches:
            out = out + patch.output(x)
        return out

    def _apply(self, fn, recurse: bool = True):
        super()._apply(fn, recurse)
        self.patches = [patch.apply(fn) for patch in self.patches]
        return self
