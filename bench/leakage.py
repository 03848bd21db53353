"""Leakage of a voice into the other speaker's region, gated and ungated, on tiny random-weight models.

Two speakers (left and right boxes with background between), track 2 perturbed. Figure per model:
    leakage = mean |change of the velocity| inside speaker 1's region / the same inside speaker 2's region
0 means track 2 moves only its own speaker; about 1 means it moves both alike. Averaged over seeds.
With one block, only the audio cross-attention can carry track 2 anywhere, so the gated figure must be 0;
with several audio blocks, self-attention of later blocks spreads what the audio did in earlier ones.

Run: OMP_NUM_THREADS=1 python bench/leakage.py
"""

import torch

from magicinfinite_core.masks import RegionSource, build_regions
from magicinfinite_core.models.config import tiny_config
from magicinfinite_core.models.wan import WanModel

WIDTH_PX, HEIGHT_PX, LATENT_FRAMES = 256, 128, 3
SEEDS = range(4)


def leakage(num_layers: int, audio_blocks: tuple[int, ...] | None, region_gate: bool) -> float:
    sources = [RegionSource(box="0,0,0.375,1"), RegionSource(box="0.625,0,0.375,1")]
    masks = build_regions(WIDTH_PX, HEIGHT_PX, 2, sources).token_masks(WIDTH_PX, HEIGHT_PX)
    speaker_1, speaker_2 = (m.repeat_interleave(2, 0).repeat_interleave(2, 1).bool() for m in masks)
    ratios = []
    for seed in SEEDS:
        torch.manual_seed(seed)
        config = tiny_config(num_layers=num_layers, model_type="t2v", audio_blocks=audio_blocks)
        model = WanModel(config).eval()
        x = torch.randn(1, 16, LATENT_FRAMES, HEIGHT_PX // 8, WIDTH_PX // 8)
        context = torch.randn(1, config.text_len, config.text_dim)
        audio = torch.randn(1, 2, LATENT_FRAMES, config.audio.context_tokens, config.audio.token_dim)
        perturbed = audio.clone()
        perturbed[:, 1] += torch.randn_like(perturbed[:, 1])
        options = {"speaker_masks": masks, "region_gate": region_gate}
        with torch.no_grad():
            before = model(x, torch.tensor([500.0]), context, audio_tokens=audio, **options)
            after = model(x, torch.tensor([500.0]), context, audio_tokens=perturbed, **options)
        change = (after - before).abs()[0]
        ratios.append(change[..., speaker_1].mean() / change[..., speaker_2].mean())
    return torch.stack(ratios).mean().item()


def main() -> None:
    print(f"leakage into speaker 1's region when track 2 changes (mean over {len(SEEDS)} seeds; "
          f"{WIDTH_PX}x{HEIGHT_PX} px, {LATENT_FRAMES} latent frames)")
    cases = [
        ("1 block, audio in it", 1, None),
        ("4 blocks, audio in every block (MultiTalk)", 4, None),
        ("4 blocks, audio in the last block only", 4, (3,)),
    ]
    for name, num_layers, audio_blocks in cases:
        gated = leakage(num_layers, audio_blocks, region_gate=True)
        ungated = leakage(num_layers, audio_blocks, region_gate=False)
        print(f"  {name:44s} gated {gated:.3e}   ungated {ungated:.3e}   gated/ungated {gated / ungated:.3f}")


if __name__ == "__main__":
    main()
