"""The multi-GPU worker pool on CPU workers (gloo): it renders the one-process video, is reused across
renders, and a worker killed mid-window ends the render with a clear error in bounded time, keeps the
finished windows, and the next render starts fresh workers and continues."""

from __future__ import annotations

import os
import signal
import time

import pytest
import torch

from magicinfinite_core.mini.bundle import load_bundle
from magicinfinite_core.parallel.pool import (
    ModelFiles,
    PooledModel,
    WorkerError,
    close_shared_pool,
    shared_pool,
)
from magicinfinite_core.sampling.loop import sample_video, stream_video
from tests.sampling.sampler_fixtures import make_audio, make_picture, make_settings, make_text

FRAMES = 40  # two windows of the bundle's 33 frames (9 motion frames)


@pytest.fixture(scope="module")
def bundle():
    yield load_bundle()
    close_shared_pool()


def inputs(bundle) -> tuple:
    info, config = bundle.info, bundle.model.config
    settings = make_settings(width=info.width, height=info.height, steps=info.steps, shift=info.shift,
                             window_frames=info.window_frames, motion_frames=info.motion_frames, seed=2)
    return (bundle.vae, make_picture(height=info.height, width=info.width),
            make_audio(FRAMES, config=config), make_text(config=config, negative=False), settings)


def latents(model, bundle) -> list[torch.Tensor]:
    seen = []
    sample_video(model, *inputs(bundle), callback=lambda progress: seen.append(progress.latent.clone()))
    return seen


def test_the_pool_renders_the_one_process_video_and_is_reused(bundle) -> None:
    files = ModelFiles.of(bundle.model)
    pool = shared_pool(files, 2, device_kind="cpu", timeout_s=60)
    pids = [process.pid for process in pool._processes]
    pooled = latents(PooledModel(bundle.model.module, pool), bundle)
    local = latents(bundle.model.module, bundle)
    assert len(pooled) == len(local) == 2 * bundle.info.steps
    for got, want in zip(pooled, local, strict=True):
        assert ((got - want).norm() / want.norm()).item() <= 1e-5
    again = shared_pool(files, 2, device_kind="cpu", timeout_s=60)
    assert again is pool and [process.pid for process in again._processes] == pids


def test_a_killed_worker_ends_the_render_and_the_next_continues_on_fresh_workers(bundle, tmp_path) -> None:
    files = ModelFiles.of(bundle.model)
    pool = shared_pool(files, 2, device_kind="cpu", timeout_s=30)
    victim = pool._processes[1].pid

    def kill_in_window_2(progress) -> None:
        if progress.window == 1 and progress.step == 0:
            os.kill(victim, signal.SIGKILL)

    started = time.monotonic()
    with pytest.raises(WorkerError, match=r"worker 1 exit code -9.*queue it again to continue"):
        stream_video(PooledModel(bundle.model.module, pool), *inputs(bundle), directory=tmp_path,
                     filename_prefix="talk", callback=kill_in_window_2)
    assert time.monotonic() - started < 60
    assert not pool.alive and not list(tmp_path.glob("*.mp4"))  # nothing looks complete

    fresh = shared_pool(files, 2, device_kind="cpu", timeout_s=30)
    assert fresh is not pool
    windows = []
    result = stream_video(PooledModel(bundle.model.module, fresh), *inputs(bundle), directory=tmp_path,
                          filename_prefix="talk", callback=lambda progress: windows.append(progress.window))
    assert set(windows) == {1}  # window 1 was kept from the interrupted render
    assert result.path is not None and result.path.is_file() and result.num_frames == FRAMES
