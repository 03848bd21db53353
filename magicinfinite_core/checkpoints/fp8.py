"""fp8 (e4m3fn) weight storage: per-tensor scaled quantisation and its inverse.

A weight quantised here is held as fp8 plus a float32 scale (real weight = fp8 x scale), the same
representation as ComfyUI's `*_fp8_scaled` files. The scale maps the tensor's largest magnitude to
the top of the fp8 range, so small weights are not flushed into fp8's coarse subnormals as a plain
cast would do.
"""

from __future__ import annotations

import torch

from ..errors import CheckpointError

FP8 = torch.float8_e4m3fn
FP8_MAX = torch.finfo(FP8).max
FP8_DTYPES = frozenset({torch.float8_e4m3fn, torch.float8_e5m2})


def is_fp8(dtype: torch.dtype) -> bool:
    return dtype in FP8_DTYPES


def quantize_fp8(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(fp8 weight, 0-d float32 scale) with weight ~= fp8.float() * scale."""
    weight = weight.float()
    amax = weight.abs().max()
    scale = torch.where(amax > 0, amax / FP8_MAX, torch.ones_like(amax))
    return (weight / scale).to(FP8), scale


def dequantize(weight: torch.Tensor, scale: torch.Tensor | None) -> torch.Tensor:
    """The real weight in float32."""
    weight = weight.float()
    return weight if scale is None else weight * scale.float()


def scale_for(scale: torch.Tensor, weight_shape: tuple[int, ...], name: str) -> torch.Tensor:
    """A stored scale shaped to broadcast over its weight: 0-d (per tensor) or [out, 1] (per row)."""
    scale = scale.float()
    if scale.numel() == 1:
        return scale.reshape(())
    if scale.numel() == weight_shape[0]:
        return scale.reshape(weight_shape[0], *([1] * (len(weight_shape) - 1)))
    raise CheckpointError(
        f"scale of {name} has shape {list(scale.shape)}; expected one value or one per output row of the "
        f"weight {list(weight_shape)}"
    )
