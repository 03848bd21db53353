"""Sequence parallel sampling on CPU: 2, 3 and 4 gloo processes give the one-process windows.

The tiny model has 4 heads, so 2 and 4 processes take the Ulysses path and 3 the ring path. The video is
80x80 (25 tokens per latent frame) and 20 frames long: windows of 5 and 3 latent frames, 125 and 75
tokens, so shards cross frame boundaries and the last process holds padding.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from conftest import make_inputs, make_tiny_model

from magicinfinite_core.errors import InputError
from magicinfinite_core.masks import Regions
from magicinfinite_core.models.config import tiny_config
from magicinfinite_core.parallel import attention_mode, parallelize
from magicinfinite_core.parallel.local import run_local
from magicinfinite_core.parallel.split import chunk_size
from magicinfinite_core.sampling.loop import sample_video

# The spawned processes import this module afresh, where `tests` may resolve to another checkout's regular
# `tests` package (ComfyUI's) rather than this namespace one: import the fixtures by their folder instead.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sampling"))
from sampler_fixtures import make_audio, make_picture, make_settings, make_text, make_vae  # noqa: E402

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


def one_frame(model) -> torch.Tensor:
    """A forward over one latent frame of 25 tokens and two bound speakers: with 3 or 4 processes the
    first frame's keys come from several of them."""
    inputs = make_inputs(CONFIG, frames=1, height=10, width=10, speakers=2, seed=5)
    features = inputs.pop("features")
    masks = regions(2).token_masks(SIZE, SIZE)
    return model(**inputs, audio_tokens=model.encode_audio(features), speaker_masks=masks)


def results(model) -> dict[object, object]:
    windows = {speakers: window_latents(model, speakers) for speakers in (1, 2)}
    return {"one frame": one_frame(model), **windows}


def sample_on_every_process(rank: int, world: int, out: Path) -> None:
    torch.save(results(parallelize(make_tiny_model(CONFIG))), out / f"rank{rank}.pt")


@pytest.fixture(scope="module")
def one_process() -> dict[object, object]:
    return results(make_tiny_model(CONFIG))


@pytest.mark.parametrize("world", [2, 3, 4])
def test_split_windows_equal_the_one_process_windows(world, one_process, tmp_path) -> None:
    run_local(sample_on_every_process, world, (tmp_path,), timeout_s=240)
    for rank in range(world):
        split = torch.load(tmp_path / f"rank{rank}.pt")
        assert relative_error(split["one frame"], one_process["one frame"]) <= 1e-5
        for speakers in (1, 2):
            assert len(split[speakers]) == len(one_process[speakers]) == 8  # 2 windows x 4 steps
            for got, want in zip(split[speakers], one_process[speakers], strict=True):
                assert relative_error(got, want) <= 1e-5, (world, rank, speakers)


def relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    return ((got - want).norm() / want.norm()).item()


def test_ulysses_needs_heads_that_divide_and_auto_falls_back_to_ring() -> None:
    assert attention_mode("auto", 40, 8) == "ulysses"
    assert attention_mode("auto", 40, 3) == "ring"
    with pytest.raises(InputError, match=r"40 attention heads evenly, which 3 processes cannot; use \[2, 4"):
        attention_mode("ulysses", 40, 3)
    with pytest.raises(InputError, match="mode"):
        attention_mode("zigzag", 40, 2)


def test_a_window_too_small_for_the_processes_is_refused() -> None:
    assert chunk_size(125, 4) == 32 and chunk_size(10, 4) == 3
    with pytest.raises(InputError, match="9 tokens cannot be split over 4 processes"):
        chunk_size(9, 4)  # 3 + 3 + 3 + 0: the last process would hold nothing
