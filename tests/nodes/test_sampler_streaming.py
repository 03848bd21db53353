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
from magicinfinite_core.sampling import SamplerOptions
from nodes.model_loader import MagicInfiniteModel
from nodes.sampler import MagicInfiniteSampler
from tests.conftest import make_tiny_model
from tests.sampling.sampler_fixtures import CONFIG, make_audio, make_picture, make_text, make_vae


class Management:
    """The host's model management, reduced to what the sampler asks of it; the device is the CPU."""

    calls: list = []

    @staticmethod
    def get_torch_device():
        return torch.device("cpu")

    @staticmethod
    def unet_offload_device():
        return torch.device("cpu")

    @staticmethod
    def module_size(module):
        return 1000

    @staticmethod
    def minimum_inference_memory():
        return 24

    @staticmethod
    def free_memory(memory_required, device):
        Management.calls.append(("free", memory_required))

    @staticmethod
    def soft_empty_cache():
        Management.calls.append("empty cache")


@pytest.fixture
def model() -> MagicInfiniteModel:
    config = replace(CONFIG, num_layers=3)
    module = make_tiny_model(config)
    return MagicInfiniteModel(LoadedModel(module, config, torch.float32, None, ("tiny.safetensors",), ()))


def sample(model, **overrides):
    values = {"model": model, "image": make_picture(), "audio": make_audio(20), "text": make_text(),
              "width": 32, "height": 32, "sampler": "distilled", "steps": 2, "text_cfg": 1.0,
              "audio_cfg": 1.0, "seed": 3, "output": "frames", "filename_prefix": "t", "vae": make_vae(),
              "options": SamplerOptions(window_frames=17, motion_frames=5)}
    return MagicInfiniteSampler().sample(**{**values, **overrides})[0]


def test_a_budget_streams_the_blocks_and_the_video_is_unchanged(model, monkeypatch):
    monkeypatch.setattr(sampler_node, "model_management", Management)
    expected = sample(model, vram_budget_gb="off")
    module = model.dit.module
    budget = resident_bytes(module) + block_bytes(module) + 1024  # one slot: every block streams
    streamers: list[BlockStreamer] = []

    class Recorded(BlockStreamer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            streamers.append(self)

    monkeypatch.setattr(sampler_node, "BlockStreamer", Recorded)
    Management.calls = []
    frames = sample(model, vram_budget_gb=f"{budget / GiB!r}")
    (streamer,) = streamers
    assert streamer.streaming and streamer.num_slots == 1
    assert Management.calls[-1] == "empty cache"
    torch.testing.assert_close(frames, expected, rtol=0, atol=0)
    # Afterwards the weights are real host tensors again, not meta placeholders.
    assert not any(p.is_meta for p in module.parameters())


def test_auto_is_off_on_a_non_cuda_device(model, monkeypatch):
    monkeypatch.setattr(sampler_node, "model_management", Management)
    monkeypatch.setattr(sampler_node, "BlockStreamer", None)  # would fail if used
    sample(model, vram_budget_gb="auto")


def test_a_budget_below_one_block_is_a_clear_error(model, monkeypatch):
    monkeypatch.setattr(sampler_node, "model_management", Management)
    with pytest.raises(InputError, match="vram_budget_gb: .* below what this model needs"):
        sample(model, vram_budget_gb="0.000001")
    with pytest.raises(InputError, match="vram_budget_gb: expected 'auto'"):
        sample(model, vram_budget_gb="lots")


def test_a_streamed_file_render_fingerprints_the_real_weights(model, monkeypatch, tmp_path):
    """A file render hashes the model's weights while it streams: same file name as without a budget."""
    monkeypatch.setattr(sampler_node, "model_management", Management)
    monkeypatch.setattr(sampler_node, "output_directory", lambda: tmp_path / "off")
    plain = MagicInfiniteSampler().sample(**file_inputs(model, vram_budget_gb="off"))["result"][3]
    module = model.dit.module
    budget = (resident_bytes(module) + block_bytes(module) + 1024) / GiB
    monkeypatch.setattr(sampler_node, "output_directory", lambda: tmp_path / "streamed")
    streamed = MagicInfiniteSampler().sample(**file_inputs(model, vram_budget_gb=repr(budget)))["result"][3]
    assert Path(streamed).name == Path(plain).name


def file_inputs(model, **overrides) -> dict:
    return {"model": model, "image": make_picture(), "audio": make_audio(12), "text": make_text(),
            "width": 32, "height": 32, "sampler": "distilled", "steps": 1, "text_cfg": 1.0, "audio_cfg": 1.0,
            "seed": 3, "output": "file", "filename_prefix": "t", "vae": make_vae(),
            "options": SamplerOptions(window_frames=17, motion_frames=5), **overrides}
