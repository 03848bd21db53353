"""Linear layers whose stored weight dtype differs from the compute dtype.

Weights may be kept as fp32, bf16, fp16 or fp8 (e4m3fn, optionally with a per-tensor scale as in
`*_fp8_scaled` files) and are cast per layer at compute, so fp8 storage takes half the memory of bf16.
LoRAs on such weights are applied beside the weight (low-rank, in the compute dtype) so the fp8
rounding does not swallow them.
"""

from __future__ import annotations

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


class CastLinear(nn.Linear):
    """nn.Linear that casts its stored weight to the input's dtype at every call.

    `scale_weight` (a 0-d or 1-element buffer, default None) multiplies the stored weight, as
    fp8_scaled checkpoints require. `patches` are low-rank deltas applied beside the weight.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, **kwargs) -> None:
        super().__init__(in_features, out_features, bias=bias, **kwargs)
        self.scale_weight: torch.Tensor | None = None
        self.patches: list[LowRankPatch] = []

    def compute_weight(self, dtype: torch.dtype) -> torch.Tensor:
        weight = self.weight.to(dtype)
        if self.scale_weight is not None:
            weight = weight * self.scale_weight.to(dtype)
        return weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = None if self.bias is None else self.bias.to(x.dtype)
        out = F.linear(x, self.compute_weight(x.dtype), bias)
        for patch in self.patches:
            out = out + patch.scale * F.linear(F.linear(x, patch.down.to(x.dtype)), patch.up.to(x.dtype))
        return out
