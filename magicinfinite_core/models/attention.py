"""Wan2.1's norms and attention sub-layers: self-attention with 3D RoPE, text and text+image cross-attention.

Token tensors are [B, L, C]; per-head tensors are [B, L, H, D]. Norms compute in float32 and return the
input's dtype; linear layers are `CastLinear`, so they compute in the dtype of what they are given.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .cast import CastLinear
from .rope import rotate


def attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Scaled dot-product attention on [B, L, H, D] tensors; `mask` (bool, True = may attend) broadcasts
    against [B, H, Lq, Lk]."""
    out = F.scaled_dot_product_attention(
        q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=mask
    )
    return out.transpose(1, 2)


class RMSNorm(nn.Module):
    """RMS norm over the last dim with a learned scale (Wan's WanRMSNorm)."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        normed = x32 * torch.rsqrt(x32.pow(2).mean(dim=-1, keepdim=True) + self.eps)
        return normed.to(x.dtype) * self.weight.to(x.dtype)


class LayerNorm(nn.LayerNorm):
    """LayerNorm computed in float32 whatever the weight and input dtypes; returns the input's dtype."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = None if self.weight is None else self.weight.float()
        bias = None if self.bias is None else self.bias.float()
        return F.layer_norm(x.float(), self.normalized_shape, weight, bias, self.eps).to(x.dtype)


class SelfAttention(nn.Module):
    """Full 3D self-attention: q/k RMS-normed over the whole width, then rotated by the grid RoPE.

    `qkv` and `attend` are separate because the MultiTalk speaker binding reads the rotated q and k.
    """

    def __init__(self, dim: int, num_heads: int, eps: float) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.q = CastLinear(dim, dim)
        self.k = CastLinear(dim, dim)
        self.v = CastLinear(dim, dim)
        self.o = CastLinear(dim, dim)
        self.norm_q = RMSNorm(dim, eps)
        self.norm_k = RMSNorm(dim, eps)

    def heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.unflatten(-1, (self.num_heads, self.head_dim))

    def qkv(self, x: torch.Tensor, rotation: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x [B, L, C] -> rotated q, rotated k, v, each [B, L, H, D]."""
        q = rotate(self.heads(self.norm_q(self.q(x))), rotation)
        k = rotate(self.heads(self.norm_k(self.k(x))), rotation)
        return q, k, self.heads(self.v(x))

    def attend(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        kernel: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] = attention,
    ) -> torch.Tensor:
        """`kernel` attends q to k, v: plain attention, or across processes under sequence parallelism."""
        return self.o(kernel(q, k, v).flatten(2))


class TextCrossAttention(SelfAttention):
    """t2v cross-attention: every video token attends to the text tokens."""

    def forward(self, x: torch.Tensor, text: torch.Tensor, image: torch.Tensor | None = None) -> torch.Tensor:
        """x [B, L, C], text [B, Lt, C] (already embedded); `image` is unused by t2v models."""
        q = self.heads(self.norm_q(self.q(x)))
        return self.o(self.attend_text(q, text).flatten(2))

    def attend_text(self, q: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        return attention(q, self.heads(self.norm_k(self.k(text))), self.heads(self.v(text)))


class ImageTextCrossAttention(TextCrossAttention):
    """i2v cross-attention: the text attention plus a second attention over the CLIP image tokens
    (k_img / v_img), summed before the output projection."""

    def __init__(self, dim: int, num_heads: int, eps: float) -> None:
        super().__init__(dim, num_heads, eps)
        self.k_img = CastLinear(dim, dim)
        self.v_img = CastLinear(dim, dim)
        self.norm_k_img = RMSNorm(dim, eps)

    def forward(self, x: torch.Tensor, text: torch.Tensor, image: torch.Tensor | None = None) -> torch.Tensor:
        """x [B, L, C], text [B, Lt, C], image [B, Li, C] (embedded CLIP tokens) or None (text only)."""
        q = self.heads(self.norm_q(self.q(x)))
        out = self.attend_text(q, text)
        if image is not None:
            out = out + attention(
                q, self.heads(self.norm_k_img(self.k_img(image))), self.heads(self.v_img(image))
            )
        return self.o(out.flatten(2))
