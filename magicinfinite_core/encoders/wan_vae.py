"""The Wan2.1 VAE for the engine's own renders.

Reads the file ComfyUI users have (`models/vae/wan_2.1_vae.safetensors`, Wan's original key layout:
encoder.*, conv1, conv2, decoder.*) into diffusers' `AutoencoderKLWan`, converted by diffusers' own key map,
and offers it as the sampler's `VideoVAE`: frames [N, H, W, 3] 0..1 in, raw (unnormalised) latents out,
and back. The encoder is causal in time: frame 0 alone, then groups of 4, so 4k + 1 frames make k + 1
latent frames.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from magicinfinite_core.checkpoints.safetensors_io import open_tensor_file
from magicinfinite_core.errors import CheckpointError, InputError
from magicinfinite_core.latents import LATENT_CHANNELS

# Keys every Wan VAE file has: what tells it apart from other VAEs, and what sizes it.
HEAD_NORM_KEY = "decoder.head.0.gamma"  # [base_dim, 1, 1, 1]: the decoder's last width
LATENT_CONV_KEY = "conv2.weight"  # [z_dim, z_dim, 1, 1, 1]
WAN_VAE_KEYS = ("encoder.conv1.weight", "conv1.weight", LATENT_CONV_KEY, HEAD_NORM_KEY)
WAN22_KEY = "decoder.upsamples.0.upsamples.0.residual.2.weight"  # Wan2.2's residual-upsampling VAE


def is_wan_vae(keys: set[str] | dict[str, object]) -> bool:
    """Whether a state dict's keys are a Wan VAE's (2.1 or 2.2)."""
    return all(key in keys for key in WAN_VAE_KEYS)


class WanVideoVAE(nn.Module):
    """diffusers' AutoencoderKLWan behind the sampler's VideoVAE surface. The module's state dict is the
    VAE's, so a resumed render checks the same weights decode it."""

    def __init__(self, model: nn.Module, *, dtype: torch.dtype = torch.float32,
                 device: torch.device | str = "cpu") -> None:
        """`model`: an AutoencoderKLWan; it is put in eval mode, without gradients, in `dtype` on `device`."""
        super().__init__()
        # torch's own `to`: diffusers' override warns about fp32-only modules, which this model has none of.
        nn.Module.to(model, device=device, dtype=dtype)
        self.model = model.eval().requires_grad_(False)

    def _param(self) -> torch.Tensor:
        return next(self.model.parameters())

    @torch.no_grad()
    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        """pixels [N, H, W, 3] 0..1 -> raw latent [1, 16, 1 + (N-1)//4, H/8, W/8] float32."""
        if pixels.ndim != 4 or pixels.shape[-1] != 3:
            raise InputError(f"VAE encode: expected frames [N, H, W, 3], got {list(pixels.shape)}.")
        weight = self._param()
        video = pixels.to(weight.device, weight.dtype).permute(3, 0, 1, 2).unsqueeze(0) * 2.0 - 1.0
        return self.model.encode(video).latent_dist.mode().float()

    @torch.no_grad()
    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """raw latent [1, 16, T, h, w] -> frames [4(T-1) + 1, H, W, 3] float32 0..1."""
        weight = self._param()
        video = self.model.decode(latent.to(weight.device, weight.dtype)).sample  # [1, 3, N, H, W], -1..1
        return ((video[0].permute(1, 2, 3, 0).float() + 1.0) / 2.0).clamp(0.0, 1.0)


def load_wan_vae(path: str | Path, *, dtype: torch.dtype = torch.float32,
                 device: torch.device | str = "cpu") -> WanVideoVAE:
    """A Wan2.1 VAE safetensors file (ComfyUI's wan_2.1_vae.safetensors) -> WanVideoVAE in eval mode on
    `device` in `dtype`. Its width is read from the file; the rest of the layout is Wan2.1's fixed one."""
    # diffusers takes seconds to import: only a render that loads a Wan VAE pays for it.
    from diffusers import AutoencoderKLWan
    from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers

    tensors = open_tensor_file(path)
    shapes = tensors.shapes()
    if not is_wan_vae(shapes):
        missing = [key for key in WAN_VAE_KEYS if key not in shapes]
        raise CheckpointError(
            f"{tensors.name} is not a Wan VAE (it lacks {', '.join(missing)}); give the Wan2.1 VAE, "
            "wan_2.1_vae.safetensors from ComfyUI's models/vae folder.")
    z_dim = shapes[LATENT_CONV_KEY][0]
    if WAN22_KEY in shapes or z_dim != LATENT_CHANNELS:
        raise CheckpointError(
            f"{tensors.name} is a Wan2.2 VAE ({z_dim} latent channels); Wan2.1 models and their "
            f"adapters read the Wan2.1 VAE's {LATENT_CHANNELS}: give wan_2.1_vae.safetensors.")
    state = convert_wan_vae_to_diffusers(dict(tensors.read(tensors.keys())))
    model = AutoencoderKLWan(base_dim=shapes[HEAD_NORM_KEY][0], z_dim=z_dim)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"{tensors.name} does not fit the Wan2.1 VAE layout ({err}).") from err
    return WanVideoVAE(model, dtype=dtype, device=device)
