"""Stages 1 and 2 of the recipe: flow matching on encoded world windows, as the sampler will use the model.

A training window is what the sampler builds: y from the reference frame, the first latents held clean
(the reference's latent in window 0, the motion frames' latents later), the rest noised to one sigma,
timestep = 1000 sigma, the model predicting v = noise - x0 (loss on the generated latents only).

Stage 1 (image + text -> video): no audio tokens. Stage 2 adds the audio cross-attention: audio tokens from
the window's wav2vec2 features, confined to the speakers' regions by the region gate (two speakers also get
L-RoPE binding), and the loss weighted up on the face and mouth cells (world_data.loss_weights).
Text and audio are dropped at random (empty prompt, all-zero features: the sampler's negative text and
null audio), so classifier-free guidance over both works at sampling time.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from magicinfinite_core.models.wan import WanModel
from magicinfinite_core.sampling.schedules import shift_sigmas
from training.world_data import HELD_LATENTS, WindowSet

TRAIN_SHIFT = 3.0  # sigmas drawn as shift(u, 3): most of the training where sampling spends its steps
TWO_SPEAKER_SHARE = 0.25
TEXT_DROP = 0.1
AUDIO_DROP = 0.1
NO_REGION_SHARE = 0.3  # one-speaker windows trained without regions too (audio reaches every token)


@dataclass(frozen=True)
class Batch:
    """Model inputs of one batch of windows; held [B, T] bool marks the clean latents."""

    x0: torch.Tensor
    y: torch.Tensor
    context: torch.Tensor
    features: torch.Tensor  # [B, S, F, 5, layers, width] (unused without audio)
    weights: torch.Tensor  # [B, T, h, w]
    held: torch.Tensor
    masks: torch.Tensor | None

    def hold(self, x: torch.Tensor) -> torch.Tensor:
        """x with the held latents replaced by the clean ones."""
        held = self.held[:, None, :, None, None]
        return torch.where(held, self.x0, x)


def draw_batch(sets: dict[int, WindowSet], empty_context: torch.Tensor, generator: torch.Generator,
               batch: int, *, with_audio: bool) -> Batch:
    """A batch of windows of one speaker count, with text/audio dropout and region choice drawn."""
    speakers = 2 if 2 in sets and float(torch.rand((), generator=generator)) < TWO_SPEAKER_SHARE else 1
    data = sets[speakers]
    index = torch.randint(len(data), (batch,), generator=generator)
    window = torch.randint(2, (batch,), generator=generator)
    frames = data.latents.shape[3]
    held_counts = torch.tensor(HELD_LATENTS)[window]
    held = torch.arange(frames)[None, :] < held_counts[:, None]
    context = data.context[index].float()
    drop_text = torch.rand(batch, generator=generator) < TEXT_DROP
    context = torch.where(drop_text[:, None, None], empty_context.expand_as(context), context)
    features = data.features[index, window].float()
    drop_audio = torch.rand(batch, generator=generator) < AUDIO_DROP
    features = torch.where(drop_audio[:, None, None, None, None, None], torch.zeros_like(features), features)
    masks = data.masks
    no_region = speakers == 1 and float(torch.rand((), generator=generator)) < NO_REGION_SHARE
    return Batch(x0=data.latents[index, window], y=data.y[index], context=context,
                 features=features, weights=data.weights[index, window],
                 held=held, masks=None if no_region or not with_audio else masks)


def velocity(model: WanModel, batch: Batch, x: torch.Tensor, sigma: torch.Tensor, *,
             with_audio: bool) -> torch.Tensor:
    tokens = model.encode_audio(batch.features) if with_audio else None
    return model(batch.hold(x), sigma * 1000.0, batch.context, image_latent=batch.y, audio_tokens=tokens,
                 speaker_masks=batch.masks if with_audio else None)


def weighted_error(error: torch.Tensor, batch: Batch, *, weighted: bool) -> torch.Tensor:
    """error [B, 16, T, h, w] -> mean over the generated latents (face-weighted when `weighted`)."""
    weight = batch.weights if weighted else torch.ones_like(batch.weights)
    weight = weight * (~batch.held)[:, :, None, None]
    return (error.mean(dim=1) * weight).sum() / weight.sum()


def flow_loss(model: WanModel, sets: dict[int, WindowSet], empty_context: torch.Tensor,
              generator: torch.Generator, *, batch: int, with_audio: bool) -> torch.Tensor:
    """Stage 1 (with_audio False, plain loss) or stage 2 (audio, face-weighted loss)."""
    data = draw_batch(sets, empty_context, generator, batch, with_audio=with_audio)
    sigma = shift_sigmas(torch.rand(batch, generator=generator), TRAIN_SHIFT)
    noise = torch.randn(data.x0.shape, generator=generator)
    s = sigma[:, None, None, None, None]
    x = (1 - s) * data.x0 + s * noise
    v = velocity(model, data, x, sigma, with_audio=with_audio)
    return weighted_error((v - (noise - data.x0)).square(), data, weighted=with_audio)
