"""What the window loop needs from a model, and the engine's own WanModel adapted to it.

The loop never calls a model directly: it reads a few facts (i2v or not, the audio adapter's layout, the
patch size), turns a window's audio features into tokens with `encode_audio`, and asks for the velocity
of a noisy latent under one window's conditioning. Any model that offers these samples videos the same
way: the engine's `WanModel` (through `WanDenoiser`), or a host application's model adapted outside the
engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
from torch import nn

from magicinfinite_core.models.config import AudioAdapterConfig
from magicinfinite_core.models.wan import WanModel
from magicinfinite_core.sampling.resume import module_fingerprint


@dataclass(frozen=True)
class ModelFacts:
    """What the loop must know about a model before it builds a window's inputs."""

    i2v: bool  # takes the reference through y (20 channels) and CLIP image tokens
    audio: AudioAdapterConfig | None  # the audio adapter's layout; None: the model cannot hear
    patch_size: tuple[int, int, int]  # latent cells per token (time, height, width)


@dataclass(frozen=True)
class WindowConditioning:
    """One model pass's conditioning (tensors on the compute device)."""

    context: torch.Tensor  # [1, Lt, text_dim] text (or negative text) embedding
    image_latent: torch.Tensor | None  # [1, 20, T, h, w] i2v y, None for t2v
    clip_tokens: torch.Tensor | None  # [1, 257, image_dim] CLIP vision tokens, optional
    audio_tokens: torch.Tensor | None  # [1, S, T, K, token_dim] from `encode_audio`; None: no audio
    speaker_masks: torch.Tensor | None  # [S, h/ph, w/pw] {0,1} token-grid region per speaker


@runtime_checkable
class VideoDenoiser(Protocol):
    """The model surface of the window loop."""

    @property
    def facts(self) -> ModelFacts: ...

    def identity(self) -> str:
        """A digest of what makes this model compute what it computes (weights, patches): a resumed
        render is only continued by a model with the same identity."""
        ...

    def encode_audio(self, features: torch.Tensor) -> torch.Tensor:
        """Windowed features [1, S, F, window, layers, width] -> audio tokens [1, S, T, K, token_dim]."""
        ...

    def velocity(self, x: torch.Tensor, sigma: float, conditioning: WindowConditioning) -> torch.Tensor:
        """Flow-matching velocity (noise - x0) of the normalised noisy latent x [1, 16, T, h, w] at sigma,
        float32, same shape."""
        ...


class WanDenoiser:
    """The engine's WanModel as a VideoDenoiser."""

    def __init__(self, model: WanModel) -> None:
        self.model = model
        config = model.config
        self.facts = ModelFacts(config.model_type == "i2v", config.audio, config.patch_size)

    def identity(self) -> str:
        return module_fingerprint(self.model.state_dict().items())

    def encode_audio(self, features: torch.Tensor) -> torch.Tensor:
        return self.model.encode_audio(features)

    def velocity(self, x: torch.Tensor, sigma: float, conditioning: WindowConditioning) -> torch.Tensor:
        timestep = torch.full((x.shape[0],), sigma * 1000.0, device=x.device)
        return self.model(
            x, timestep, conditioning.context,
            image_latent=conditioning.image_latent, clip_tokens=conditioning.clip_tokens,
            audio_tokens=conditioning.audio_tokens, speaker_masks=conditioning.speaker_masks,
        ).float()


def as_denoiser(model: VideoDenoiser | WanModel) -> VideoDenoiser:
    """A VideoDenoiser is taken as it is; a WanModel, or a module with its sampling surface (`config`,
    `encode_audio`, the velocity forward: the multi-GPU pool's PooledModel), is wrapped."""
    if isinstance(model, VideoDenoiser):
        return model
    if isinstance(model, WanModel) or (isinstance(model, nn.Module) and hasattr(model, "encode_audio")):
        return WanDenoiser(model)
    raise TypeError(f"model: expected a WanModel or a VideoDenoiser, got {type(model).__name__}")
