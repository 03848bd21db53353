"""Shared tiny fixtures: small Wan models with non-trivial random weights, and matching inputs.

Use the fixtures (`tiny_model`, `tiny_inputs`) in tests, or import the plain functions
(`from conftest import make_tiny_model, make_inputs`) where a fixture does not fit.
"""

from __future__ import annotations

import pytest
import torch

from magicinfinite_core.models.config import WanConfig, tiny_config
from magicinfinite_core.models.wan import WanModel


def randomize_norms_(model: torch.nn.Module, generator: torch.Generator) -> None:
    """Give every norm a non-trivial scale and shift, so weights that are swapped or dropped show up."""
    for name, param in model.named_parameters():
        leaf = name.rsplit(".", 1)[-1]
        if "norm" in name and leaf == "weight":
            param.data = 1.0 + 0.2 * torch.randn(param.shape, generator=generator)
        elif "norm" in name and leaf == "bias":
            param.data = 0.2 * torch.randn(param.shape, generator=generator)


def make_tiny_model(config: WanConfig | None = None, *, seed: int = 0, **config_kwargs) -> WanModel:
    """A WanModel at `config` (default: `tiny_config(**config_kwargs)`), float32, eval mode, seeded."""
    config = tiny_config(**config_kwargs) if config is None else config
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = WanModel(config)
        randomize_norms_(model, torch.Generator().manual_seed(seed + 1))
    return model.eval().requires_grad_(False)


def make_inputs(
    config: WanConfig,
    *,
    batch: int = 1,
    frames: int = 3,
    height: int = 4,
    width: int = 4,
    speakers: int = 0,
    seed: int = 0,
) -> dict[str, torch.Tensor]:
    """Keyword arguments of `WanModel.forward` (x, timestep, context, and for i2v image_latent and
    clip_tokens) plus, when speakers > 0, `features` [B, S, F, window, layers, width] for `encode_audio`
    over the window's F = 4*(frames-1)+1 video frames."""
    g = torch.Generator().manual_seed(seed)
    inputs = {
        "x": torch.randn(batch, 16, frames, height, width, generator=g),
        "timestep": torch.rand(batch, generator=g) * 1000,
        "context": torch.randn(batch, config.text_len, config.text_dim, generator=g),
    }
    if config.model_type == "i2v":
        inputs["image_latent"] = torch.randn(batch, 20, frames, height, width, generator=g)
        inputs["clip_tokens"] = torch.randn(batch, 257, config.image_dim, generator=g)
    if speakers:
        audio = config.audio
        shape = (
            batch,
            speakers,
            4 * (frames - 1) + 1,
            audio.window,
            audio.feature_layers,
            audio.feature_width,
        )
        inputs["features"] = torch.randn(shape, generator=g)
    return inputs


@pytest.fixture
def tiny_model():
    """Factory: tiny_model(config=None, *, seed=0, **tiny_config_kwargs) -> WanModel."""
    return make_tiny_model


@pytest.fixture
def tiny_inputs():
    """Factory: tiny_inputs(config, *, batch, frames, height, width, speakers, seed) -> forward kwargs."""
    return make_inputs


@pytest.fixture
def one_thread():
    """Torch on one thread for the test (the training recipe's setting: its figures are compared exactly)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
