"""The sampler's `devices` option: the embedded MI_MODEL on 2 CPU workers gives the 1-device video; bad
device counts and hosts are refused before any worker starts."""

from __future__ import annotations

import pytest
import torch

from magicinfinite_core.errors import InputError
from magicinfinite_core.mini.bundle import EMBEDDED_BUNDLE_NAME
from magicinfinite_core.models import WAN_14B
from magicinfinite_core.parallel.pool import check_devices, close_shared_pool
from magicinfinite_core.sampling import SamplerOptions
from nodes.model_loader import MagicInfiniteModelLoader
from nodes.sampler import MagicInfiniteSampler, MagicInfiniteSamplerOptions
from tests.sampling.sampler_fixtures import make_audio, make_picture, make_text


def test_two_cpu_workers_give_the_one_device_video() -> None:
    (model,) = MagicInfiniteModelLoader().load(EMBEDDED_BUNDLE_NAME, "none", "fp32", "default")
    config = model.dit.config
    values = {"model": model, "image": make_picture(height=64, width=64),
              "audio": make_audio(12, config=config), "text": make_text(config=config, negative=False),
              "width": 64, "height": 64,
              "sampler": "distilled", "steps": 2, "text_cfg": 1.0, "audio_cfg": 1.0, "seed": 1,
              "output": "frames", "filename_prefix": "x"}
    try:
        plain = SamplerOptions(window_frames=13, motion_frames=5)
        one = MagicInfiniteSampler().sample(**values, options=plain)
        (options,) = MagicInfiniteSamplerOptions().build(13, 5, "infinitetalk", 0.0, 0.0, devices=2)
        two = MagicInfiniteSampler().sample(**values, options=options)
    finally:
        close_shared_pool()
    assert one[0].shape == two[0].shape == (12, 64, 64, 3)
    assert (one[0] - two[0]).abs().max().item() < 1e-4


def test_bad_device_counts_are_refused(monkeypatch) -> None:
    with pytest.raises(InputError, match="devices: expected a whole number of GPUs, 1 or more, got 0"):
        SamplerOptions(devices=0)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    with pytest.raises(InputError, match="8 GPUs asked for, this machine has 4; set devices to at most 4"):
        check_devices(8, "cuda", WAN_14B)
    with pytest.raises(InputError, match="needs CUDA GPUs .* computes on 'mps'"):
        check_devices(2, "mps", WAN_14B)
    with pytest.raises(InputError, match="40 attention heads evenly, which 3"):
        check_devices(3, "cuda", WAN_14B, mode="ulysses")
