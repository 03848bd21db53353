"""Rotary position embeddings: Wan's 3D RoPE over the token grid, and the 1-D RoPE of MultiTalk's L-RoPE.

Rotations are complex multipliers over adjacent channel pairs (x[2i], x[2i+1]), applied in float32 (angles
computed in float64 for the 3D grid, as Wan does) and returned in the input's dtype.
"""

from __future__ import annotations

import torch

THETA = 10000.0


def axis_dims(head_dim: int) -> tuple[int, int, int]:
    """Channels of a head rotated by time, height and width: Wan's d - 4*(d//6), 2*(d//6), 2*(d//6)."""
    if head_dim % 2 or head_dim < 6:
        raise ValueError(f"3D RoPE needs an even head_dim of at least 6, got {head_dim}")
    return head_dim - 4 * (head_dim // 6), 2 * (head_dim // 6), 2 * (head_dim // 6)


def _inverse_frequencies(dim: int, dtype: torch.dtype, device: torch.device | str | None) -> torch.Tensor:
    return 1.0 / THETA ** (torch.arange(0, dim, 2, dtype=dtype, device=device) / dim)


def grid_rotation(
    grid: tuple[int, int, int], head_dim: int, device: torch.device | str | None = None
) -> torch.Tensor:
    """Complex multipliers [T*H*W, 1, head_dim/2] for a token grid (T, H, W) in row-major token order."""
    t, h, w = grid
    angles = []
    for size, dim, shape in zip(
        (t, h, w), axis_dims(head_dim), ((t, 1, 1), (1, h, 1), (1, 1, w)), strict=True
    ):
        positions = torch.arange(size, dtype=torch.float64, device=device)
        axis = torch.outer(positions, _inverse_frequencies(dim, torch.float64, device))
        angles.append(axis.view(*shape, -1).expand(t, h, w, -1))
    angles = torch.cat(angles, dim=-1).reshape(t * h * w, 1, head_dim // 2)
    return torch.polar(torch.ones_like(angles), angles).to(torch.complex64)


def line_rotation(positions: torch.Tensor, head_dim: int) -> torch.Tensor:
    """Complex multipliers [..., L, 1, head_dim/2] for 1-D positions [..., L] (float, may be fractional)."""
    angles = positions.float()[..., None] * _inverse_frequencies(head_dim, torch.float32, positions.device)
    return torch.polar(torch.ones_like(angles), angles).unsqueeze(-2)


def rotate(x: torch.Tensor, rotation: torch.Tensor) -> torch.Tensor:
    """Rotate x [..., L, H, D] by `rotation` [..., L, 1, D/2] (broadcast over leading dims and heads)."""
    pairs = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2))
    return torch.view_as_real(pairs * rotation).flatten(-2).to(x.dtype)
