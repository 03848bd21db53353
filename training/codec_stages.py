"""Stage 0 of the recipe: the bundle's codecs, trained before the DiT sees any data.

VAE: reconstruct world clips (loss weighted up on the face and more on the mouth, so the mouth's opening
survives 8x8 compression) and procedural natural-image clips (natural_images.py: so a photo survives too),
with the normalised latent pulled to zero mean and unit variance per channel (so
the DiT's noise matches the data's scale, as Wan's latent statistics do for Wan's VAE) and decoded through
small latent noise (so the decoder tolerates the DiT's errors).

Audio encoder: the wav2vec2 is trained briefly so that its stacked hidden states carry the voice's loudness
and vowel: a linear probe (discarded afterwards) reads both from every frame. Its input is what `embed_audio`
feeds it at run time: the track loudness-normalised to -23 LUFS, CNN features interpolated to the video rate.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import Wav2Vec2Model

from magicinfinite_core.audio.preprocess import loudness_gain
from magicinfinite_core.latents import denormalise, normalise
from magicinfinite_core.mini.vae import SmallVideoVAE
from magicinfinite_core.mini.world import VOWELS, generate_clip, synthesize_speech
from magicinfinite_core.mini.world.clips import ClipSpec
from training.natural_images import natural_clip
from training.settings import FPS, HEIGHT, WIDTH
from training.world_data import TRAIN_SEEDS_END, clip_spec

VAE_CLIP_FRAMES = 9
LATENT_NOISE = 0.1  # std of the noise added to normalised latents before decoding
STATS_WEIGHT = 0.05
NATURAL_CLIPS = 1  # procedural natural-image clips per step, beside the world clips
AUDIO_SECONDS = 2.0


def _random_seed(generator: torch.Generator) -> int:
    return int(torch.randint(TRAIN_SEEDS_END, (1,), generator=generator))


def pixel_weights(face_masks: torch.Tensor, mouth_boxes: torch.Tensor) -> torch.Tensor:
    """[C, N, H, W] face masks and [C, N, 4] mouth boxes -> [N, H, W] weights 1 + face + 4 x mouth."""
    weight = 1.0 + face_masks.any(dim=0).float()
    ys = torch.arange(face_masks.shape[2])[None, :, None]
    xs = torch.arange(face_masks.shape[3])[None, None, :]
    for boxes in mouth_boxes:
        x0, y0, x1, y1 = (boxes[:, i, None, None] for i in range(4))
        weight = weight + 4.0 * ((xs >= x0) & (xs < x1) & (ys >= y0) & (ys < y1)).float()
    return weight


def vae_loss(vae: SmallVideoVAE, generator: torch.Generator, batch: int = 2) -> torch.Tensor:
    """`batch` world clips (face/mouth-weighted) and NATURAL_CLIPS natural-image clips (uniform weight)."""
    clips = []
    for _ in range(batch):
        seed = _random_seed(generator)
        spec = clip_spec(seed)
        clip = generate_clip(seed, ClipSpec(height=HEIGHT, width=WIDTH, num_frames=VAE_CLIP_FRAMES, fps=FPS,
                                            num_characters=spec.num_characters))
        clips.append((clip.frames, pixel_weights(clip.face_masks, clip.mouth_boxes)[..., None]))
    for _ in range(NATURAL_CLIPS):
        frames = natural_clip(generator, VAE_CLIP_FRAMES, HEIGHT, WIDTH)
        clips.append((frames, torch.ones(*frames.shape[:3], 1)))
    total = torch.zeros(())
    latents = []
    for frames, weight in clips:
        latent = normalise(vae.to_latent(frames))
        latents.append(latent)
        noisy = latent + LATENT_NOISE * torch.randn(latent.shape, generator=generator)
        pixels = vae.to_pixels(denormalise(noisy))[0]
        error = (pixels - frames).abs() + 4.0 * (pixels - frames).square()
        total = total + (weight * error).mean() / weight.mean()
    stacked = torch.cat(latents, dim=2).transpose(0, 1).flatten(1)  # [16, values]
    stats = stacked.mean(dim=1).square().mean() + (stacked.var(dim=1) - 1.0).square().mean()
    return total / len(clips) + STATS_WEIGHT * stats


class LoudnessVowelProbe(nn.Module):
    """Reads per-frame loudness and vowel (or silence) from stacked hidden states [N, F, layers, width]."""

    def __init__(self, layers: int, width: int) -> None:
        super().__init__()
        self.linear = nn.Linear(layers * width, 1 + len(VOWELS) + 1)

    def forward(self, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.linear(hidden.flatten(-2))
        return out[..., 0], out[..., 1:]


def stacked_hidden_states(module: Wav2Vec2Model, waveform: torch.Tensor, num_frames: int) -> torch.Tensor:
    """The reference feature computation of one whole clip, with gradients: waveform [samples] at 16 kHz ->
    [num_frames, layers, width] (CNN features interpolated to the frame count before the transformer)."""
    cnn = module.feature_extractor(waveform[None])
    cnn = F.interpolate(cnn, size=num_frames, mode="linear", align_corners=True).transpose(1, 2)
    projected, _ = module.feature_projection(cnn)
    hidden = module.encoder.layer_norm(projected + module.encoder.pos_conv_embed(projected))  # post-norm base
    states = []
    for layer in module.encoder.layers:
        result = layer(hidden, attention_mask=None)
        hidden = result[0] if isinstance(result, tuple) else result
        states.append(hidden)
    return torch.stack(states, dim=2)[0]


def audio_loss(module: Wav2Vec2Model, probe: LoudnessVowelProbe, generator: torch.Generator,
               batch: int = 4) -> torch.Tensor:
    total = torch.zeros(())
    frames = int(AUDIO_SECONDS * FPS)
    for _ in range(batch):
        track = synthesize_speech(_random_seed(generator), AUDIO_SECONDS)
        waveform = track.waveform * loudness_gain(track.waveform)
        loudness, vowel_logits = probe(stacked_hidden_states(module, waveform, frames))
        target_vowel = track.frame_vowels(FPS, frames) + 1  # 0 = silent
        total = total + F.mse_loss(loudness, track.frame_envelope(FPS, frames)) * 10.0 \
            + F.cross_entropy(vowel_logits, target_vowel) * 0.3
    return total / batch
