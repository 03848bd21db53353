"""What the sampler node tests share: the node's inputs around a tiny model, and ComfyUI's model management
reduced to what the sampler asks of it (the device is the CPU; every call is recorded)."""

from __future__ import annotations

import torch

from magicinfinite_core.sampling import SamplerOptions
from tests.sampling.sampler_fixtures import make_audio, make_picture, make_text, make_vae


def inputs(model, **overrides) -> dict:
    """MagicInfiniteSampler.sample's arguments: 20 frames at 32x32, 4 distilled steps, frames output."""
    values = {"model": model, "image": make_picture(), "audio": make_audio(20), "text": make_text(),
              "width": 32, "height": 32, "sampler": "distilled", "steps": 4, "text_cfg": 1.0,
              "audio_cfg": 1.0, "seed": 3, "output": "frames", "filename_prefix": "test/talk",
              "vae": make_vae(), "options": SamplerOptions(window_frames=17, motion_frames=5)}
    return {**values, **overrides}


class HostManagement:
    """comfy.model_management as the sampler uses it; `calls` lists what it was asked to do."""

    def __init__(self) -> None:
        self.calls: list = []

    def get_torch_device(self) -> torch.device:
        return torch.device("cpu")

    def unet_offload_device(self) -> torch.device:
        self.calls.append("offload")
        return torch.device("cpu")

    def module_size(self, module) -> int:
        return 1000

    def minimum_inference_memory(self) -> int:
        return 24

    def free_memory(self, memory_required, device) -> None:
        self.calls.append(("free", memory_required, device.type))

    def soft_empty_cache(self) -> None:
        self.calls.append("empty cache")
