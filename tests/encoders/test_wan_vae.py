"""The Wan2.1 VAE loader: the file ComfyUI's VAELoader reads encodes and decodes as ComfyUI's VAE does."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from magicinfinite_core.encoders.wan_vae import load_wan_vae
from magicinfinite_core.errors import CheckpointError
from tests.encoders.encoder_files import comfy_module, wan_vae_state, write_wan_vae
from tests.host.checkout import requires_comfyui

TOLERANCE = 1e-5


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


def frames(count: int, height: int, width: int) -> torch.Tensor:
    """A moving gradient with noise: frames [N, H, W, 3] 0..1 whose latents differ over time."""
    g = torch.Generator().manual_seed(1)
    t = torch.arange(count).view(-1, 1, 1, 1) / count
    y = torch.linspace(0, 1, height).view(1, -1, 1, 1)
    x = torch.linspace(0, 1, width).view(1, 1, -1, 1)
    base = torch.cat(torch.broadcast_tensors(x + t, y - t, x * y + t), dim=-1) % 1.0
    return (0.8 * base + 0.2 * torch.rand(count, height, width, 3, generator=g)).clamp(0, 1)


@requires_comfyui
def test_encodes_and_decodes_as_comfyuis_vae(tmp_path):
    path = write_wan_vae(tmp_path / "wan_2.1_vae.safetensors", dim=8)
    ours = load_wan_vae(path)
    host = comfy_module("comfy.sd").VAE(sd=comfy_module("comfy.utils").load_torch_file(str(path)))
    host.first_stage_model.float()  # ComfyUI's working dtype on the CPU may be bf16: compare in fp32
    host.vae_dtype = torch.float32
    pixels = frames(9, 48, 40)  # non-square, 9 frames = 3 latent frames (frame 0, then 2 groups of 4)

    latent = ours.encode(pixels)
    expected = host.encode(pixels)
    assert latent.shape == expected.shape == (1, 16, 3, 6, 5)
    assert relative_error(latent, expected.float()) < TOLERANCE

    decoded = ours.decode(latent)
    expected_frames = host.decode(latent).reshape(-1, 48, 40, 3)
    assert decoded.shape == (9, 48, 40, 3)
    assert relative_error(decoded, expected_frames.float()) < TOLERANCE
    assert decoded[1:].sub(decoded[:-1]).abs().mean() > 1e-3  # the frames differ: time is decoded too


@requires_comfyui
def test_refuses_a_wan22_vae(tmp_path):
    state = wan_vae_state(8)
    wider = dict(state, **{"conv2.weight": torch.zeros(48, 48, 1, 1, 1)})
    save_file(wider, str(tmp_path / "wan2.2_vae.safetensors"))
    with pytest.raises(CheckpointError, match=r"wan2.2_vae.safetensors is a Wan2.2 VAE \(48 latent"):
        load_wan_vae(tmp_path / "wan2.2_vae.safetensors")


def test_refuses_a_file_that_is_not_a_wan_vae(tmp_path):
    save_file({"encoder.conv_in.weight": torch.zeros(4, 3, 3, 3)}, str(tmp_path / "sd_vae.safetensors"))
    with pytest.raises(CheckpointError, match=r"sd_vae.safetensors is not a Wan VAE \(it lacks "
                                              r"encoder.conv1.weight.*wan_2.1_vae.safetensors"):
        load_wan_vae(tmp_path / "sd_vae.safetensors")
