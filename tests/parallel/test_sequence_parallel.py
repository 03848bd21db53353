"""Sequence parallel sampling on CPU: 2, 3 and 4 gloo processes give the one-process windows.

The tiny model has 4 heads, so 2 and 4 processes take the Ulysses path and 3 the ring path. The video is
80x80 (25 tokens per latent frame) and 20 frames long: windows of 5 and 3 latent frames, 125 and 75
tokens, so shards cross frame boundaries and the last process holds padding.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import make_tiny_model

from magicinfinite_core.masks import Regions
from magicinfinite_core.models.config import tiny_config
from magicinfinite_core.parallel import parallelize
from magicinfinite_core.parallel.local import run_local
from magicinfinite_core.sampling.loop import sample_video
from tests.sampling.sampler_fixtures import make_audio, make_picture, make_settings, make_text, make_vae

CONFIG = tiny_config(dim=32, num_heads=4, num_layers=2)
SIZE = 80
FRAMES = 20


def regions(speakers: int) -> Regions:
    masks = torch.zeros(speakers, SIZE, SIZE)
    if speakers == 1:
        masks[0, 10:70, 5:60] = 1
    else:
        masks[0, :, : SIZE // 2] = 1
        masks[1, 16:64, SIZE // 2 :] = 1  # the rest of the right half is background
    return Regions(masks)


def window_latents(model, speakers: int) -> list[torch.Tensor]:
    """Every step's x0 of every window (the last one of a window is the window's latent), gate on."""
    latents = []
    settings = make_settings(width=SIZE, height=SIZE, window_frames=17, motion_frames=5, seed=3)
    audio = make_audio(FRAMES, speakers=speakers, config=CONFIG)
    sample_video(model, make_vae(), make_picture(height=SIZE, width=SIZE), audio, make_text(config=CONFIG),
                 settings, regions=regions(speakers),
                 callback=lambda progress: latents.append(progress.latent.clone()))
    return latents


def sample_on_every_process(rank: int, world: int, out: Path) -> None:
    model = parallelize(make_tiny_model(CONFIG))
    results = {speakers: window_latents(model, speakers) for speakers in (1, 2)}
    torch.save(results, out / f"rank{rank}.pt")


@pytest.fixture(scope="module")
def one_process() -> dict[int, list[torch.Tensor]]:
    model = make_tiny_model(CONFIG)
    return {speakers: window_latents(model, speakers) for speakers in (1, 2)}


@pytest.mark.parametrize("world", [2, 3, 4])
def test_split_windows_equal_the_one_process_windows(world, one_process, tmp_path) -> None:
    run_local(sample_on_every_process, world, (tmp_path,), timeout_s=240)
    for rank in range(world):
        results = torch.load(tmp_path / f"rank{rank}.pt")
        for speakers, expected in one_process.items():
            assert len(results[speakers]) == len(expected) == 8  # 2 windows x 4 steps
            for got, want in zip(results[speakers], expected, strict=True):
                error = (got - want).norm() / want.norm()
                assert error <= 1e-5, (world, rank, speakers, error.item())
