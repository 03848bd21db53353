"""Wan latent normalisation and the i2v image conditioning y = [mask 4ch, reference latent 16ch]."""

import re

import torch
from sampler_fixtures import make_picture, make_vae

from magicinfinite_core.latents import (
    WAN21_LATENT_MEAN,
    WAN21_LATENT_STD,
    decode,
    denormalise,
    encode,
    image_conditioning,
    normalise,
    preview_rgb,
)
from tests.host.checkout import comfyui_dir, requires_comfyui


def test_normalise_is_per_channel_and_undone_by_denormalise() -> None:
    raw = torch.randn(1, 16, 3, 2, 2)
    z = normalise(raw)
    mean, std = torch.tensor(WAN21_LATENT_MEAN), torch.tensor(WAN21_LATENT_STD)
    assert torch.allclose(z[0, :, 1, 0, 1], (raw[0, :, 1, 0, 1] - mean) / std)
    assert torch.allclose(denormalise(z), raw, atol=1e-6)


@requires_comfyui
def test_statistics_are_comfyuis_wan21_numbers() -> None:
    source = (comfyui_dir() / "comfy/latent_formats.py").read_text()
    wan21 = source[source.index("class Wan21(") :]
    numbers = [float(x) for x in re.findall(r"-?\d+\.\d+", wan21[wan21.index("latents_mean") :])[:32]]
    assert tuple(numbers[:16]) == WAN21_LATENT_MEAN
    assert tuple(numbers[16:]) == WAN21_LATENT_STD


def test_image_conditioning_is_mask_on_first_latent_then_reference_and_grey() -> None:
    vae, reference = make_vae(), make_picture(1, 32, 48)
    y = image_conditioning(vae, reference, 17)
    assert y.shape == (1, 20, 5, 4, 6)
    assert (y[:, :4, 0] == 1).all() and (y[:, :4, 1:] == 0).all()
    grey = torch.full((16, 32, 48, 3), 0.5)
    assert torch.allclose(y[:, 4:], normalise(vae.encode(torch.cat([reference, grey]))))


def test_encode_decode_use_normalised_latents_and_either_host_layout() -> None:
    vae, frames = make_vae(), make_picture(5, 16, 16)
    z = encode(vae, frames)
    assert torch.allclose(denormalise(z), vae.encode(frames), atol=1e-6)
    out = decode(vae, z)
    assert out.shape == (5, 16, 16, 3)

    class FlatVAE:  # a VAE returning [N, H, W, 3] instead of [1, N, H, W, 3]
        def decode(self, latent):
            return vae.decode(latent)[0]

    assert torch.equal(decode(FlatVAE(), z), out)


def test_preview_is_a_small_rgb_picture_of_the_newest_latent_frame() -> None:
    latent = torch.randn(1, 16, 3, 4, 6)
    preview = preview_rgb(latent)
    assert preview.shape == (4, 6, 3) and preview.dtype == torch.uint8
    earlier_changed = latent.clone()
    earlier_changed[:, :, :2] = 0
    assert torch.equal(preview_rgb(earlier_changed), preview)
    assert not torch.equal(preview_rgb(latent * 2), preview)
