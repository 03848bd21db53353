"""Regions -> token masks -> the model: audio track i moves only speaker i's region when gated.

One audio block on a tiny model, so nothing but the audio cross-attention could carry a track's influence
from one region to another; self-attention comes before the audio in the block, the FFN and head are
per-token.
"""

import pytest
import torch

from magicinfinite_core.masks import RegionSource, build_regions, check_binding
from magicinfinite_core.models.config import tiny_config
from magicinfinite_core.models.wan import WanModel

WIDTH_PX, HEIGHT_PX, LATENT_FRAMES = 128, 64, 2


def run_with_perturbed_track_2(region_gate: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(|change| of the velocity when track 2 is perturbed [16, T, H, W], token masks [2, h, w])."""
    torch.manual_seed(0)
    config = tiny_config(num_layers=1, model_type="t2v")
    model = WanModel(config).eval()
    # speaker 1: the left 48 px, speaker 2: the right 48 px, background between
    sources = [RegionSource(box="0,0,48,64"), RegionSource(box="80,0,48,64")]
    regions = build_regions(WIDTH_PX, HEIGHT_PX, 2, sources)
    masks = regions.token_masks(WIDTH_PX, HEIGHT_PX)
    check_binding(regions, num_tracks=2)
    x = torch.randn(1, 16, LATENT_FRAMES, HEIGHT_PX // 8, WIDTH_PX // 8)
    context = torch.randn(1, config.text_len, config.text_dim)
    audio = torch.randn(1, 2, LATENT_FRAMES, config.audio.context_tokens, config.audio.token_dim)
    perturbed = audio.clone()
    perturbed[:, 1] += torch.randn_like(perturbed[:, 1])
    timestep = torch.tensor([500.0])
    options = {"speaker_masks": masks, "region_gate": region_gate}
    with torch.no_grad():
        before = model(x, timestep, context, audio_tokens=audio, **options)
        after = model(x, timestep, context, audio_tokens=perturbed, **options)
    return (after - before).abs()[0], masks


def on_latent_grid(token_mask: torch.Tensor) -> torch.Tensor:
    """[h, w] token mask -> [H, W] latent-pixel mask (patch 2 x 2)."""
    return token_mask.repeat_interleave(2, 0).repeat_interleave(2, 1).bool()


def test_regions_reach_the_model_as_expected_token_masks() -> None:
    _, masks = run_with_perturbed_track_2(region_gate=True)
    assert masks.shape == (2, 4, 8)
    assert masks[0].sum(dim=0).tolist() == [4, 4, 4, 0, 0, 0, 0, 0]
    assert masks[1].sum(dim=0).tolist() == [0, 0, 0, 0, 0, 4, 4, 4]


def test_gated_perturbing_track_2_leaves_speaker_1_and_background_unchanged() -> None:
    change, masks = run_with_perturbed_track_2(region_gate=True)
    speaker_1, speaker_2 = on_latent_grid(masks[0]), on_latent_grid(masks[1])
    background = ~(speaker_1 | speaker_2)
    assert change[..., speaker_1].max().item() <= 1e-6
    assert change[..., background].max().item() <= 1e-6
    assert change[..., speaker_2].mean().item() > 1e-3


def test_ungated_perturbing_track_2_changes_speaker_1_too() -> None:
    # The control: without the gate the same perturbation does reach speaker 1's region.
    change, masks = run_with_perturbed_track_2(region_gate=False)
    assert change[..., on_latent_grid(masks[0])].mean().item() > 1e-4


@pytest.mark.parametrize("num_tracks", [1, 3])
def test_track_count_must_match_region_count(num_tracks: int) -> None:
    regions = build_regions(WIDTH_PX, HEIGHT_PX, 2)
    with pytest.raises(ValueError, match=f"2 speaker region\\(s\\) but the audio has {num_tracks} track"):
        check_binding(regions, num_tracks)
