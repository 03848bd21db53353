"""The small video VAE: ComfyUI's Wan VAE shapes, causal in time, an exact mean-colour codec untrained."""

import pytest
import torch
import torch.nn.functional as F
from sampler_fixtures import make_picture, make_vae

from magicinfinite_core.errors import InputError


@pytest.mark.parametrize(("frames", "latent_frames"), [(1, 1), (5, 2), (8, 2), (9, 3), (81, 21)])
def test_encode_decode_shapes_match_wan(frames, latent_frames) -> None:
    vae = make_vae()
    latent = vae.encode(torch.rand(frames, 16, 24, 3))
    assert latent.shape == (1, 16, latent_frames, 2, 3)
    assert vae.decode(latent).shape == (1, 4 * (latent_frames - 1) + 1, 16, 24, 3)


def test_a_latent_frame_never_sees_later_frames() -> None:
    vae = make_vae()
    torch.nn.init.normal_(vae.encoder_out.weight)  # make the learned path count
    frames = torch.rand(9, 16, 16, 3)
    changed = frames.clone()
    changed[5:] = torch.rand(4, 16, 16, 3)
    a, b = vae.encode(frames), vae.encode(changed)
    assert torch.equal(a[:, :, :2], b[:, :, :2])
    assert not torch.equal(a[:, :, 2], b[:, :, 2])


def test_untrained_round_trip_is_the_8x8_mean_colour() -> None:
    vae, picture = make_vae(), make_picture(1, 32, 32)
    out = vae.decode(vae.encode(picture))[0]
    blurred = F.interpolate(F.avg_pool2d(picture.permute(0, 3, 1, 2), 8), scale_factor=8).permute(0, 2, 3, 1)
    assert torch.allclose(out, blurred, atol=1e-5)


def test_sizes_not_multiple_of_8_are_refused() -> None:
    with pytest.raises(InputError, match="multiples of 8"):
        make_vae().encode(torch.rand(1, 20, 16, 3))
