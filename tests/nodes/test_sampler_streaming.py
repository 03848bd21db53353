"""MagicInfiniteSampler's vram_budget_gb: with a budget the model's blocks stream through it (same video),
"auto" is off where the compute device is not CUDA, and a budget below one block is a clear error."""

from dataclasses import replace
from pathlib import Path

import pytest
import torch

import nodes.sampler as sampler_node
from magicinfinite_core.checkpoints.loader import LoadedModel
from magicinfinite_core.errors import InputError
from magicinfinite_core.models.streaming import BlockStreamer, GiB, block_bytes, resident_bytes
from nodes.model_loader import MagicInfiniteModel
from nodes.sampler import MagicInfiniteSampler
from tests.conftest import make_tiny_model
from tests.nodes.sampler_node_fixtures import HostManagement, inputs
from tests.sampling.sampler_fixtures import CONFIG, make_audio


@pytest.fixture
def management(monkeypatch) -> HostManagement:
    host = HostManagement()
    monkeypatch.setattr(sampler_node, "model_management", host)
    return host


@pytest.fixture
def model() -> MagicInfiniteModel:
    config = replace(CONFIG, num_layers=3)
    module = make_tiny_model(config)
    return MagicInfiniteModel(LoadedModel(module, config, torch.float32, None, ("tiny.safetensors",), ()))


def sample(model, **overrides):
    return MagicInfiniteSampler().sample(**inputs(model, steps=2, filename_prefix="t", **overrides))[0]


def test_a_budget_streams_the_blocks_and_the_video_is_unchanged(model, management, monkeypatch):
    expected = sample(model, vram_budget_gb="off")
    module = model.dit.module
    budget = resident_bytes(module) + block_bytes(module) + 1024  # one slot: every block streams
    streamers: list[BlockStreamer] = []

    class Recorded(BlockStreamer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            streamers.append(self)

    monkeypatch.setattr(sampler_node, "BlockStreamer", Recorded)
    management.calls.clear()
    frames = sample(model, vram_budget_gb=f"{budget / GiB!r}")
    (streamer,) = streamers
    assert streamer.streaming and streamer.num_slots == 1
    assert management.calls[-1] == "empty cache"
    torch.testing.assert_close(frames, expected, rtol=0, atol=0)
    # Afterwards the weights are real host tensors again, not meta placeholders.
    assert not any(p.is_meta for p in module.parameters())


def test_auto_is_off_on_a_non_cuda_device(model, management, monkeypatch):
    monkeypatch.setattr(sampler_node, "BlockStreamer", None)  # would fail if used
    sample(model, vram_budget_gb="auto")


def test_a_budget_below_one_block_is_a_clear_error(model, management, monkeypatch):
    with pytest.raises(InputError, match="vram_budget_gb: .* below what this model needs"):
        sample(model, vram_budget_gb="0.000001")
    with pytest.raises(InputError, match="vram_budget_gb: expected 'auto'"):
        sample(model, vram_budget_gb="lots")


def test_a_streamed_file_render_fingerprints_the_real_weights(model, management, monkeypatch, tmp_path):
    """A file render hashes the model's weights while it streams: same file name as without a budget."""
    monkeypatch.setattr(sampler_node, "output_directory", lambda: tmp_path / "off")
    plain = MagicInfiniteSampler().sample(**file_inputs(model, vram_budget_gb="off"))["result"][3]
    module = model.dit.module
    budget = (resident_bytes(module) + block_bytes(module) + 1024) / GiB
    monkeypatch.setattr(sampler_node, "output_directory", lambda: tmp_path / "streamed")
    streamed = MagicInfiniteSampler().sample(**file_inputs(model, vram_budget_gb=repr(budget)))["result"][3]
    assert Path(streamed).name == Path(plain).name


def file_inputs(model, **overrides) -> dict:
    return inputs(model, audio=make_audio(12), steps=1, output="file", filename_prefix="t", **overrides)
