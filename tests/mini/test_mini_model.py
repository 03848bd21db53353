"""The shipped MagicInfinite-Mini bundle talks: mouths follow their own voices on world clips it never saw.

Seeds here are far from training's (< 1,000,000) and from bench/quality.py's (2,000,000+). Thresholds sit well
below the bench figures (mini-4: lip sync r 0.83, shuffled control 0.08; own track 0.72, other 0.10), so they
catch a broken or untrained bundle, not noise.
"""

import pytest
import torch

from magicinfinite_core.audio import SpeakerTrack, embed_audio
from magicinfinite_core.masks.regions import Regions
from magicinfinite_core.mini.bundle import load_bundle
from magicinfinite_core.mini.world import (
    ClipSpec,
    correlation,
    generate_clip,
    measure_mouth_opening,
    union_boxes,
)
from magicinfinite_core.sampling import SamplerOptions, SamplerSettings, TextConditioning, sample_video

SEED = 3_000_000


@pytest.fixture(scope="module")
def bundle():
    loaded = load_bundle()
    if not loaded.info.trained:
        pytest.fail("the shipped bundle is the untrained initialisation; run python -m training.recipe")
    return loaded


def render(bundle, clip, regions: Regions, seed: int) -> torch.Tensor:
    info = bundle.info
    tracks = [SpeakerTrack(track[None], 16000, name=f"audio_{i + 1}") for i, track in enumerate(clip.audio)]
    audio = embed_audio(bundle.audio_encoder, tracks, fps=info.fps)
    contexts = bundle.text_encoder.encode([clip.prompt, info.negative_prompt])
    settings = SamplerSettings(width=info.width, height=info.height, steps=info.steps, seed=seed,
                               options=SamplerOptions(window_frames=info.window_frames,
                                                      motion_frames=info.motion_frames, shift=info.shift))
    text = TextConditioning.single(contexts[:1], contexts[1:])
    return sample_video(bundle.model.module, bundle.vae, clip.frames[:1], audio, text, settings,
                        regions=regions).frames


def test_the_mouth_follows_the_voice_and_not_another_voice(bundle) -> None:
    clips = [generate_clip(SEED + k, ClipSpec(num_frames=75, num_characters=1)) for k in range(3)]
    mouths = [measure_mouth_opening(render(bundle, c, Regions(c.face_masks.any(dim=1).float()), k),
                                    union_boxes(c.mouth_boxes))[0] for k, c in enumerate(clips)]
    own = [correlation(mouth, clip.loudness[0]) for mouth, clip in zip(mouths, clips, strict=True)]
    shuffled = [correlation(mouths[k], clips[(k + 1) % 3].loudness[0]) for k in range(3)]
    assert sum(own) / 3 > 0.4, own
    assert sum(own) / 3 - sum(shuffled) / 3 > 0.3, (own, shuffled)


def test_each_of_two_characters_follows_its_own_track(bundle) -> None:
    clip = generate_clip(SEED + 100, ClipSpec(num_frames=75, num_characters=2, speech_mode="para"))
    halves = torch.zeros(2, bundle.info.height, bundle.info.width)
    halves[0, :, : bundle.info.width // 2], halves[1, :, bundle.info.width // 2 :] = 1.0, 1.0
    mouths = measure_mouth_opening(render(bundle, clip, Regions(halves), 0), union_boxes(clip.mouth_boxes))
    for c in range(2):
        own, other = correlation(mouths[c], clip.loudness[c]), correlation(mouths[c], clip.loudness[1 - c])
        assert own > other + 0.2, c
