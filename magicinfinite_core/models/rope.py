"""Rotary position embeddings: Wan's 3D RoPE over the token grid, and the 1-D RoPE of MultiTalk's L-RoPE.

Rotations act on adjacent channel pairs (x[2i], x[2i+1]). A rotation is a float32 tensor [..., D/2, 2] of
(cos, sin) per pair: real arithmetic rather than complex so it runs on every backend, and grid angles are
computed in float64 on the CPU (as Wan computes them; not every accelerator has float64).
"""

from __future__ import annotations

import torch

THETA = 10000.0


def axis_dims(head_dim: int) -> tuple[int, int, int]:
    """Channels of a head rotated by time, height and width: Wan's d - 4*(d//6), 2*(d//6), 2*(d//6)."""
    if head_dim % 2 or head_dim < 6:
        raise ValueError(f"3D RoPE needs an even head_dim of at least 6, got {head_dim}")
    return head_dim - 4 * (head_dim // 6), 2 * (head_dim // 6), 2 * (head_dim // 6)


def _inverse_frequencies(
    dim: int, dtype: torch.dtype, device: torch.device | str | None = None
) -> torch.Tensor:
    return 1.0 / THETA ** (torch.arange(0, dim, 2, dtype=dtype, device=device) / dim)


def _cos_sin(angles: torch.Tensor) -> torch.Tensor:
    return torch.stack([torch.cos(angles), torch.sin(angles)], dim=-1).float()


def grid_rotation(
    grid: tuple[int, int, int], head_dim: int, device: torch.device | str | None = None
) -> torch.Tensor:
    """Rotation [T*H*W, 1, head_dim/2, 2] for a token grid (T, H, W) in row-major token order."""
    t, h, w = grid
    angles = []
    for size, dim, shape in zip(
        (t, h, w), axis_dims(head_dim), ((t, 1, 1), (1, h, 1), (1, 1, w)), strict=True
    ):
        axis = torch.outer(torch.arange(size, dtype=torch.float64), _inverse_frequencies(dim, torch.float64))
        angles.append(axis.view(*shape, -1).expand(t, h, w, -1))
    angles = torch.cat(angles, dim=-1).reshape(t * h * w, 1, head_dim // 2)
    return _cos_sin(angles).to(device)


def line_rotation(positions: torch.Tensor, head_dim: int) -> torch.Tensor:
    """Rotation [..., L, 1, head_dim/2, 2] for 1-D positions [..., L] (float, may be fractional)."""
    angles = positions.float()[..., None] * _inverse_frequencies(head_dim, torch.float32, positions.device)
    return _cos_sin(angles).unsqueeze(-3)


def rotate(x: torch.Tensor, rotation: torch.Tensor) -> torch.Tensor:
    """Rotate x [..., L, H, D] by `rotation` [..., L, 1, D/2, 2] (broadcast over leading dims and heads)."""
    even, odd = x.float().unflatten(-1, (-1, 2)).unbind(-1)
    cos, sin = rotation.unbind(-1)
    return torch.stack([even * cos - odd * sin, even * sin + odd * cos], dim=-1).flatten(-2).to(x.dtype)
