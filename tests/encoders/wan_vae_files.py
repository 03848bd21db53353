"""A tiny Wan2.1 VAE file in Wan's own key layout, as ComfyUI's VAELoader reads it: ComfyUI's WanVAE module
(the host's implementation of that layout) gives the keys and shapes, seeded random values fill them."""

from __future__ import annotations

import importlib
import math
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from tests.host.checkout import comfyui_dir


def comfy_module(name: str):
    """A module of the real ComfyUI at $COMFYUI_DIR, imported on the CPU (appended to sys.path so that its
    top-level nodes.py does not shadow this pack's nodes/)."""
    checkout = str(comfyui_dir())
    if checkout not in sys.path:
        sys.path.append(checkout)
    importlib.import_module("comfy.cli_args").args.cpu = True
    return importlib.import_module(name)


def wan_vae_state(dim: int, *, seed: int = 0) -> dict[str, torch.Tensor]:
    """Seeded weights for a Wan2.1 VAE of base width `dim` (ComfyUI's modules leave theirs uninitialised)."""
    vae = comfy_module("comfy.ldm.wan.vae").WanVAE(
        dim=dim, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
        temperal_downsample=[False, True, True])
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in vae.state_dict().items():
        if key.endswith("gamma"):  # RMS norm scales
            state[key] = 1.0 + 0.1 * torch.randn(value.shape, generator=g)
        elif value.ndim > 1:
            fan_in = math.prod(value.shape[1:])
            state[key] = torch.randn(value.shape, generator=g) / math.sqrt(fan_in)
        else:
            state[key] = 0.02 * torch.randn(value.shape, generator=g)
    return state


def write_wan_vae(path: Path, dim: int = 8, *, seed: int = 0) -> Path:
    save_file(wan_vae_state(dim, seed=seed), str(path))
    return path
