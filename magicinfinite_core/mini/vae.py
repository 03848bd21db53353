"""A small causal video VAE with the host VAE's interface: the test VAE and the embedded bundle's VAE.

Same contract as ComfyUI's VAE object for Wan2.1 (comfy/sd.py): `encode(pixels [N, H, W, 3] 0..1)` returns a
raw latent [1, 16, 1 + (N-1)//4, H/8, W/8] and `decode(latent)` returns pixels [1, N, H, W, 3] 0..1 with
N = 4(T-1) + 1. Time is compressed like Wan's causal VAE: the first frame alone, then groups of 4, and a
latent frame never sees later frames.

Untrained it is still a usable codec: latent channels 0-2 carry the mean colour of each 8x8 cell (in the
-1..1 pixel range) and the learned residual paths start at zero, so encode -> decode returns a blurred copy
of the input. Tests can therefore check that the picture the sampler holds is the picture it was given.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from magicinfinite_core.errors import InputError
from magicinfinite_core.latents import LATENT_CHANNELS, SPACE_STRIDE, TIME_STRIDE, latent_frames

GROUP_CHANNELS = 3 * TIME_STRIDE  # a latent frame's 4 video frames stacked on channels
DECODE_CHUNK = 8  # latent frames per 2D pass, so decoding a window's frames does not need all of it at once


class CausalTimeConv(nn.Module):
    """Mixes each latent frame with the one before it (kernel 2 over time, left-padded by repetition)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv3d(channels, channels, kernel_size=(2, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, C, T, h, w] -> [B, C, T, h, w]; output frame t depends on input frames t-1 and t only."""
        padded = torch.cat([x[:, :, :1], x], dim=2)
        return self.conv(padded)


class SmallVideoVAE(nn.Module):
    """Video autoencoder: 8x8 space and 4x time compression into 16 channels."""

    def __init__(self, width: int = 32):
        super().__init__()
        self.width = width
        self.encoder = nn.Sequential(
            nn.Conv2d(GROUP_CHANNELS, width, 3, padding=1), nn.SiLU(),
            nn.Conv2d(width, width, 4, stride=2, padding=1), nn.SiLU(),
            nn.Conv2d(width, width, 4, stride=2, padding=1), nn.SiLU(),
            nn.Conv2d(width, width, 4, stride=2, padding=1), nn.SiLU(),
        )  # fmt: skip
        self.encoder_time = CausalTimeConv(width)
        self.encoder_out = nn.Conv2d(width, LATENT_CHANNELS, 1)
        self.decoder_in = nn.Conv2d(LATENT_CHANNELS, width, 1)
        self.decoder_time = CausalTimeConv(width)
        self.decoder = nn.Sequential(
            nn.SiLU(),
            nn.ConvTranspose2d(width, width, 4, stride=2, padding=1), nn.SiLU(),
            nn.ConvTranspose2d(width, width, 4, stride=2, padding=1), nn.SiLU(),
            nn.ConvTranspose2d(width, width, 4, stride=2, padding=1), nn.SiLU(),
            nn.Conv2d(width, GROUP_CHANNELS, 3, padding=1),
        )  # fmt: skip
        # The residual paths start at zero: untrained, the codec is the exact mean-colour round trip.
        for last in (self.encoder_out, self.decoder[-1]):
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)

    @property
    def _param(self) -> torch.Tensor:
        return self.encoder_out.weight

    @torch.no_grad()
    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        """ComfyUI's VAE.encode: `to_latent` without gradients."""
        return self.to_latent(pixels)

    @torch.no_grad()
    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """ComfyUI's VAE.decode: `to_pixels` without gradients."""
        return self.to_pixels(latent)

    def to_latent(self, pixels: torch.Tensor) -> torch.Tensor:
        """pixels [N, H, W, C>=3] float 0..1 -> raw latent [1, 16, 1 + (N-1)//4, H/8, W/8] (float32).

        Frames past the last full group of 4 are not encoded, as with Wan's VAE. Differentiable (training).
        """
        if pixels.ndim != 4 or pixels.shape[-1] < 3:
            raise InputError(f"VAE encode: expected pixels [N, H, W, 3], got shape {tuple(pixels.shape)}.")
        num_frames, height, width = pixels.shape[:3]
        if height % SPACE_STRIDE or width % SPACE_STRIDE:
            raise InputError(
                f"VAE encode: height and width must be multiples of {SPACE_STRIDE}, got {height}x{width}; "
                "resize or crop the frames first."
            )
        steps = latent_frames(num_frames)
        frames = pixels[: 1 + TIME_STRIDE * (steps - 1), :, :, :3].to(self._param) * 2.0 - 1.0
        first = frames[:1].expand(TIME_STRIDE, -1, -1, -1)  # frame 0 fills its own group of 4
        groups = rearrange(torch.cat([first, frames[1:]]), "(t g) h w c -> t (g c) h w", g=TIME_STRIDE)
        colour = F.avg_pool2d(groups, SPACE_STRIDE)
        colour = colour.view(steps, TIME_STRIDE, 3, *colour.shape[-2:]).mean(dim=1)
        features = rearrange(self.encoder(groups), "t c h w -> 1 c t h w")
        features = rearrange(F.silu(self.encoder_time(features)), "1 c t h w -> t c h w")
        residual = self.encoder_out(features)
        raw = torch.cat([colour, colour.new_zeros(steps, LATENT_CHANNELS - 3, *colour.shape[-2:])], dim=1)
        return rearrange(raw + residual, "t c h w -> 1 c t h w").float()

    def to_pixels(self, latent: torch.Tensor) -> torch.Tensor:
        """raw latent [1, 16, T, h, w] -> pixels [1, 4(T-1)+1, 8h, 8w, 3] float32 0..1. Differentiable."""
        if latent.ndim != 5 or latent.shape[:2] != (1, LATENT_CHANNELS):
            raise InputError(
                f"VAE decode: expected a latent [1, {LATENT_CHANNELS}, T, h, w], got {tuple(latent.shape)}."
            )
        latent = latent.to(self._param)
        hidden = rearrange(self.decoder_in(rearrange(latent, "1 c t h w -> t c h w")), "t c h w -> 1 c t h w")
        hidden = rearrange(self.decoder_time(hidden), "1 c t h w -> t c h w")
        chunks = []
        for start in range(0, latent.shape[2], DECODE_CHUNK):
            stop = start + DECODE_CHUNK
            colour = F.interpolate(latent[0, :3, start:stop].transpose(0, 1), scale_factor=SPACE_STRIDE)
            groups = self.decoder(hidden[start:stop]) + colour.repeat(1, TIME_STRIDE, 1, 1)
            chunks.append(rearrange(groups, "t (g c) h w -> t g h w c", g=TIME_STRIDE))
        groups = torch.cat(chunks)  # [T, 4, H, W, 3]
        # Each group's last frame is its key (the first group holds frame 0 alone). A group's frames run on a
        # straight line from the previous key to its own, plus the decoder's own departure from its key: the
        # motion inside a group is spread over its four frames instead of jumping at the boundary.
        keys = torch.cat([groups[:1, 0], groups[1:, -1]])
        along = torch.arange(1, TIME_STRIDE + 1, dtype=groups.dtype, device=groups.device) / TIME_STRIDE
        later = torch.lerp(keys[:-1, None], keys[1:, None], along.view(1, -1, 1, 1, 1))
        later = later + groups[1:] - groups[1:, -1:]
        frames = torch.cat([keys[:1], later.flatten(0, 1)])
        return ((frames.float() + 1.0) / 2.0).clamp(0.0, 1.0).unsqueeze(0)
