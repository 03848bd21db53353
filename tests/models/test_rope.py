"""3D RoPE over the token grid (Wan's split of a head into time/height/width channels) and 1-D RoPE."""

from __future__ import annotations

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from magicinfinite_core.models.rope import axis_dims, grid_rotation, line_rotation, rotate


def test_head_split_matches_wan():
    assert axis_dims(128) == (44, 42, 42)  # 22 / 21 / 21 complex pairs
    assert axis_dims(8) == (4, 2, 2)


def test_grid_rotation_angles_are_position_times_wan_frequencies():
    head_dim, grid = 12, (3, 2, 4)
    dims = axis_dims(head_dim)
    rotation = grid_rotation(grid, head_dim).reshape(*grid, head_dim // 2, 2)
    t, h, w = 2, 1, 3
    expected = [t / 10000 ** (2 * i / dims[0]) for i in range(dims[0] // 2)]
    expected += [h / 10000 ** (2 * i / dims[1]) for i in range(dims[1] // 2)]
    expected += [w / 10000 ** (2 * i / dims[2]) for i in range(dims[2] // 2)]
    angles = torch.atan2(rotation[t, h, w, :, 1], rotation[t, h, w, :, 0]).double()
    wrapped = [math.remainder(a, 2 * math.pi) for a in expected]
    torch.testing.assert_close(angles, torch.tensor(wrapped, dtype=torch.float64), rtol=0, atol=1e-6)


def test_rotate_turns_adjacent_channel_pairs_by_position_times_frequency():
    x = torch.tensor([1.0, 0.0, 0.0, 2.0]).view(1, 1, 1, 4)  # pairs (x0, x1) and (x2, x3)
    position = 50 * math.pi
    out = rotate(x, line_rotation(torch.tensor([position]), head_dim=4)).flatten()
    first, second = position, position / 100  # frequencies 10000^(-0/4) and 10000^(-2/4)
    expected = [math.cos(first), math.sin(first), -2 * math.sin(second), 2 * math.cos(second)]
    torch.testing.assert_close(out, torch.tensor(expected), rtol=0, atol=1e-4)


@settings(max_examples=20, deadline=None)
@given(
    grid=st.tuples(st.integers(3, 5), st.integers(3, 5), st.integers(3, 5)),
    seed=st.integers(0, 1000),
)
def test_grid_rope_scores_depend_only_on_relative_position(grid, seed):
    head_dim = 16
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(1, 1, 1, head_dim, generator=g)
    k = torch.randn(1, 1, 1, head_dim, generator=g)
    rotation = grid_rotation(grid, head_dim).reshape(*grid, 1, head_dim // 2, 2)

    def score(a, b):
        return (rotate(q, rotation[a]) * rotate(k, rotation[b])).sum()

    last = tuple(n - 1 for n in grid)
    before_last = tuple(n - 2 for n in grid)
    torch.testing.assert_close(score((0, 0, 0), (1, 1, 1)), score(before_last, last), rtol=1e-4, atol=1e-4)
    assert not torch.allclose(score((0, 0, 0), (1, 1, 1)), score((0, 0, 0), last), atol=1e-3)


def test_rotation_keeps_norms():
    x = torch.randn(2, 5, 3, 8)
    rotated = rotate(x, grid_rotation((5, 1, 1), 8))
    torch.testing.assert_close(rotated.norm(dim=-1), x.norm(dim=-1))
