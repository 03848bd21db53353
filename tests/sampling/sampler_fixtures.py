"""Small inputs for the sampler tests: audio features, text, a reference picture, a tiny VAE, and a fake
model that records its calls (for tests of the loop's bookkeeping, where the real DiT adds nothing).

End-to-end tests use the real tiny WanModel from tests/conftest.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import torch

from magicinfinite_core.audio.features import AudioFeatures, FrameStore
from magicinfinite_core.mini.vae import SmallVideoVAE
from magicinfinite_core.models.config import tiny_config
from magicinfinite_core.sampling.denoiser import ModelFacts, WindowConditioning
from magicinfinite_core.sampling.settings import SamplerOptions, SamplerSettings
from magicinfinite_core.sampling.text import TextConditioning

FPS = 25.0
SAMPLE_RATE = 16000
CONFIG = tiny_config(dim=32, num_heads=2, num_layers=1)


def make_settings(**values) -> SamplerSettings:
    """SamplerSettings from flat keywords: option fields go into its SamplerOptions."""
    option_names = {f.name for f in fields(SamplerOptions)}
    options = SamplerOptions(**{k: v for k, v in values.items() if k in option_names})
    return SamplerSettings(**{k: v for k, v in values.items() if k not in option_names}, options=options)


def make_audio(num_frames: int, *, speakers: int = 1, seed: int = 0, config=CONFIG) -> AudioFeatures:
    """Random features for `num_frames` video frames and a matching waveform."""
    adapter = config.audio
    g = torch.Generator().manual_seed(seed)
    store = FrameStore(speakers, num_frames, adapter.feature_layers, adapter.feature_width)
    for speaker in range(speakers):
        features = torch.randn(num_frames, adapter.feature_layers, adapter.feature_width, generator=g)
        store.write(speaker, 0, features)
    samples = round(num_frames * SAMPLE_RATE / FPS) + 100  # the frame count floors the duration
    return AudioFeatures(
        num_speakers=speakers, fps=FPS, num_frames=num_frames, mode="para", sample_rate=SAMPLE_RATE,
        waveform=0.1 * torch.randn(1, samples, generator=g), feature_layers=adapter.feature_layers,
        feature_width=adapter.feature_width, encoder_name="test", store=store,
    )


def make_text(*, schedule: tuple[float, ...] = (0.0,), negative: bool = True, config=CONFIG, seed: int = 0
              ) -> TextConditioning:
    g = torch.Generator().manual_seed(seed + 100)
    prompts = tuple((start, torch.randn(1, 5, config.text_dim, generator=g)) for start in schedule)
    return TextConditioning(prompts, torch.randn(1, 3, config.text_dim, generator=g) if negative else None)


def make_picture(frames: int = 1, height: int = 48, width: int = 40, *, seed: int = 0) -> torch.Tensor:
    """A smooth IMAGE [frames, height, width, 3] (gradients, so a blurred copy still tells frames apart)."""
    g = torch.Generator().manual_seed(seed)
    ys = torch.linspace(0, 1, height)[:, None, None]
    xs = torch.linspace(0, 1, width)[None, :, None]
    base = torch.rand(frames, 1, 1, 3, generator=g)
    tilt = torch.rand(frames, 1, 1, 3, generator=g)
    picture = (0.2 + 0.6 * (base * ys + (1 - base) * xs * tilt)).clamp(0, 1)
    return picture.expand(frames, height, width, 3).clone()


def make_vae() -> SmallVideoVAE:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return SmallVideoVAE(width=8).eval()


@dataclass
class RecordingModel:
    """A VideoDenoiser standing in for WanModel: v = x / 2 (a valid, cheap velocity) and every call is
    recorded with its timestep (sigma x 1000) and conditioning."""

    config: object = CONFIG
    calls: list[dict] = field(default_factory=list)
    features: list[torch.Tensor] = field(default_factory=list)

    def encode_audio(self, features: torch.Tensor) -> torch.Tensor:
        self.features.append(features.clone())
        batch, speakers, frames = features.shape[:3]
        adapter = self.config.audio
        tokens = features.mean(dim=(3, 4, 5))[..., None, None]  # [B, S, F, 1, 1]
        latent = 1 + (frames - 1) // 4
        shape = (batch, speakers, latent, adapter.context_tokens, adapter.token_dim)
        return tokens[:, :, :latent].expand(shape)

    @property
    def facts(self) -> ModelFacts:
        return ModelFacts(self.config.model_type == "i2v", self.config.audio, self.config.patch_size)

    def identity(self) -> str:
        return "recording model"

    def velocity(self, x: torch.Tensor, sigma: float, conditioning: WindowConditioning) -> torch.Tensor:
        values = {f.name: getattr(conditioning, f.name) for f in fields(conditioning)}
        self.calls.append({"x": x.clone(), "timestep": torch.tensor([sigma * 1000.0]), **values})
        return 0.5 * x
