"""Wan2.1 latent space: per-channel normalisation, the i2v image conditioning, and a cheap RGB preview.

A VAE with ComfyUI's interface returns raw latents; the DiT works on latents normalised per channel with
Wan's 16 mean/std values (Wan2.1's VAE; ComfyUI's Wan21 latent format). Everything that hands latents to
the model goes through `normalise`, everything that hands them back to the VAE through `denormalise`.
"""

from __future__ import annotations

from typing import Protocol

import torch

LATENT_CHANNELS = 16
TIME_STRIDE = 4  # video frames per latent frame after the first
SPACE_STRIDE = 8  # pixels per latent cell
MASK_CHANNELS = 4  # i2v mask: pixel frame 0 repeated 4x, folded into the first latent frame

# Wan2.1 VAE latent statistics (Wan2.1 wan/modules/vae.py; ComfyUI latent_formats.Wan21).
WAN21_LATENT_MEAN = (
    -0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
    0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921,
)  # fmt: skip
WAN21_LATENT_STD = (
    2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
    3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160,
)  # fmt: skip

# Linear map from a raw Wan2.1 latent to approximate RGB in -1..1 (ComfyUI latent_formats.Wan21 preview
# factors): enough for a progress preview without running the VAE decoder.
WAN21_PREVIEW_RGB = (
    (-0.1299, -0.1692, 0.2932), (0.0671, 0.0406, 0.0442), (0.3568, 0.2548, 0.1747),
    (0.0372, 0.2344, 0.1420), (0.0313, 0.0189, -0.0328), (0.0296, -0.0956, -0.0665),
    (-0.3477, -0.4059, -0.2925), (0.0166, 0.1902, 0.1975), (-0.0412, 0.0267, -0.1364),
    (-0.1293, 0.0740, 0.1636), (0.0680, 0.3019, 0.1128), (0.0032, 0.0581, 0.0639),
    (-0.1251, 0.0927, 0.1699), (0.0060, -0.0633, 0.0005), (0.3477, 0.2275, 0.2950),
    (0.1984, 0.0913, 0.1861),
)  # fmt: skip
WAN21_PREVIEW_BIAS = (-0.1835, -0.0868, -0.3360)


class VideoVAE(Protocol):
    """What the sampler needs from a VAE: ComfyUI's VAE object, or the stand-in `mini.vae.SmallVideoVAE`."""

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        """pixels [N, H, W, 3] float 0..1 -> raw latent [1, 16, 1 + (N-1)//4, H/8, W/8]."""
        ...

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """raw latent [1, 16, T, h, w] -> pixels [1, N, H, W, 3] or [N, H, W, 3], float 0..1."""
        ...


def latent_frames(num_frames: int) -> int:
    """Latent frames of a causal Wan VAE for `num_frames` video frames (the first alone, then groups of 4)."""
    return 1 + (num_frames - 1) // TIME_STRIDE


def _stats(like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    shape = (1, LATENT_CHANNELS) + (1,) * (like.ndim - 2)
    mean = torch.tensor(WAN21_LATENT_MEAN, dtype=like.dtype, device=like.device).view(shape)
    std = torch.tensor(WAN21_LATENT_STD, dtype=like.dtype, device=like.device).view(shape)
    return mean, std


def normalise(raw: torch.Tensor) -> torch.Tensor:
    """Raw VAE latent [B, 16, ...] -> the model's latent space: (z - mean) / std per channel."""
    mean, std = _stats(raw)
    return (raw - mean) / std


def denormalise(latent: torch.Tensor) -> torch.Tensor:
    """The model's latent [B, 16, ...] -> raw VAE latent, ready for `VideoVAE.decode`."""
    mean, std = _stats(latent)
    return latent * std + mean


def encode(vae: VideoVAE, pixels: torch.Tensor) -> torch.Tensor:
    """Frames [N, H, W, 3] 0..1 -> normalised latent [1, 16, T, h, w] in float32."""
    return normalise(vae.encode(pixels[..., :3]).float())


def decode(vae: VideoVAE, latent: torch.Tensor) -> torch.Tensor:
    """Normalised latent [1, 16, T, h, w] -> frames [N, H, W, 3] float32 0..1 (either host layout taken)."""
    pixels = vae.decode(denormalise(latent))
    if pixels.ndim == 5:  # ComfyUI's video VAEs return [1, N, H, W, 3]
        pixels = pixels.reshape(-1, *pixels.shape[-3:])
    return pixels.float().clamp(0.0, 1.0)


def image_conditioning(vae: VideoVAE, reference: torch.Tensor, num_frames: int) -> torch.Tensor:
    """The i2v conditioning y [1, 20, T, h, w] for a window of `num_frames` frames: 4 mask channels and the
    16-channel latent of the reference followed by grey frames, as Wan2.1 i2v was trained with.

    reference [1, H, W, 3] 0..1 is pixel frame 0; the other frames are mid-grey (0 in the VAE's -1..1 range).
    The 4 mask channels are 1 where the pixel frame is given: pixel frame 0 is repeated 4 times so that the
    mask folds into whole latent frames, which puts ones in the first latent frame only.
    """
    height, width = reference.shape[1:3]
    grey = reference.new_full((num_frames - 1, height, width, 3), 0.5)
    latent = encode(vae, torch.cat([reference[:, :, :, :3], grey]))
    mask = torch.zeros_like(latent[:, :MASK_CHANNELS])
    mask[:, :, 0] = 1.0
    return torch.cat([mask, latent], dim=1)


def preview_rgb(latent: torch.Tensor) -> torch.Tensor:
    """Last latent frame of a normalised latent [1, 16, T, h, w] -> uint8 RGB [h, w, 3] for previews (the
    first frames of a window are held motion or reference frames; the last one shows the new content)."""
    raw = denormalise(latent[:, :, -1:].float())[0, :, 0]
    factors = torch.tensor(WAN21_PREVIEW_RGB, dtype=raw.dtype, device=raw.device)
    bias = torch.tensor(WAN21_PREVIEW_BIAS, dtype=raw.dtype, device=raw.device)
    rgb = torch.einsum("chw,cr->hwr", raw, factors) + bias
    return ((rgb + 1.0) * 127.5).clamp(0, 255).to(torch.uint8).cpu()
