"""Seeded clips: reproducible from the seed, shaped as documented, the drawn mouths follow their own tracks'
openness (and not the other character's), and the lip-sync rule is the documented function of loudness."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from magicinfinite_core.errors import InputError
from magicinfinite_core.mini.world.clips import (
    FULL_OPEN_ENVELOPE,
    OPENNESS_GAMMA,
    ClipSpec,
    correlation,
    generate_clip,
    measure_mouth_opening,
    openness_from_envelope,
    render_portrait,
    retake,
    union_boxes,
)
from magicinfinite_core.mini.world.faces import BACKGROUNDS, expression_from_prompt
from magicinfinite_core.mini.world.speech import frame_loudness

TWO = ClipSpec(num_characters=2, num_frames=100)


def test_a_seed_reproduces_its_clip_and_other_seeds_differ():
    first, again, other = generate_clip(11, TWO), generate_clip(11, TWO), generate_clip(12, TWO)
    for name in ("frames", "audio", "mouth_openness", "vowels", "mouth_boxes", "face_boxes", "face_masks"):
        assert torch.equal(getattr(first, name), getattr(again, name)), name
    assert first.prompt == again.prompt
    assert not torch.equal(first.frames, other.frames)
    assert not torch.equal(first.audio, other.audio)


def test_shapes_dtypes_and_ranges():
    spec = ClipSpec(height=48, width=80, num_frames=30, fps=24.0, num_characters=2, sample_rate=22050)
    clip = generate_clip(3, spec)
    assert clip.frames.shape == (30, 48, 80, 3) and clip.frames.dtype == torch.float32
    assert float(clip.frames.min()) >= 0 and float(clip.frames.max()) <= 1
    assert clip.audio.shape == (2, spec.num_samples) and clip.audio.dtype == torch.float32
    assert math.floor(spec.num_samples / spec.sample_rate * spec.fps) == spec.num_frames
    for name in ("loudness", "mouth_openness", "vowels"):
        assert getattr(clip, name).shape == (2, 30), name
    assert float(clip.mouth_openness.min()) >= 0 and float(clip.mouth_openness.max()) <= 1
    assert clip.mouth_boxes.shape == clip.face_boxes.shape == (2, 30, 4)
    assert clip.face_masks.shape == (2, 30, 48, 80) and clip.face_masks.dtype == torch.bool


@pytest.mark.parametrize("num_characters", [1, 2])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_measured_mouth_follows_the_openness_track(seed, num_characters):
    clip = generate_clip(seed, ClipSpec(num_characters=num_characters, num_frames=100))
    measured = measure_mouth_opening(clip.frames, clip.mouth_boxes)
    fixed_box = measure_mouth_opening(clip.frames, union_boxes(clip.mouth_boxes))
    for c in range(num_characters):
        assert correlation(measured[c], clip.mouth_openness[c]) > 0.9
        assert correlation(fixed_box[c], clip.mouth_openness[c]) > 0.8
        # and through the lip-sync rule, the audio's own loudness
        loudness = frame_loudness(clip.audio[c], clip.sample_rate, clip.fps, 100)
        assert correlation(measured[c], openness_from_envelope(loudness, clip.fps)) > 0.9


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_two_characters_mouths_are_independent(seed):
    clip = generate_clip(seed, TWO)
    measured = measure_mouth_opening(clip.frames, clip.mouth_boxes)
    for own, other in ((0, 1), (1, 0)):
        assert correlation(measured[own], clip.mouth_openness[own]) > 0.9
        assert abs(correlation(measured[own], clip.mouth_openness[other])) < 0.5


def test_taking_turns_never_has_both_characters_voiced_in_one_frame():
    for seed in range(3):
        clip = generate_clip(seed, ClipSpec(num_characters=2, num_frames=200, speech_mode="turns"))
        assert (clip.loudness > 0).any(dim=1).all()  # both speak at some point
        assert not ((clip.loudness[0] > 0) & (clip.loudness[1] > 0)).any()


def test_prompt_names_expression_and_background():
    clip = generate_clip(21)
    assert expression_from_prompt(clip.prompt) == clip.expressions[0]
    assert clip.background in BACKGROUNDS and f"{clip.background} background" in clip.prompt
    two = generate_clip(21, TWO)
    assert two.prompt.startswith("left: ") and "; right: " in two.prompt


def test_still_heads_keep_their_boxes():
    clip = generate_clip(5, ClipSpec(num_frames=40, motion_scale=0.0))
    assert bool((clip.mouth_boxes == clip.mouth_boxes[:, :1]).all())


def test_a_retake_starts_from_the_clips_pose_then_moves_its_own_way():
    clip = generate_clip(9, TWO)
    take = retake(clip, seed=1)
    assert torch.equal(take[0], clip.frames[0])
    assert torch.equal(take, retake(clip, seed=1)) and not torch.equal(take, retake(clip, seed=2))
    change = (take - clip.frames).abs().mean(dim=(1, 2, 3))
    assert float(change[1]) < 0.01 < float(change[25:].mean())
    # the faces' colours and the background are the clip's: only where things are drawn moves
    assert torch.allclose(take.mean(dim=(0, 1, 2)), clip.frames.mean(dim=(0, 1, 2)), atol=0.02)


def test_portrait_is_a_closed_mouth_still_of_the_seeded_character():
    portrait = render_portrait(4, 96, 96)
    assert portrait.frames.shape == (1, 96, 96, 3)
    assert torch.equal(portrait.frames, render_portrait(4, 96, 96).frames)
    assert portrait.mouth_openness.eq(0).all() and portrait.expressions == ("neutral",)
    surprised = render_portrait(4, 96, 96, expression="surprised")
    assert surprised.styles[0].skin_name == portrait.styles[0].skin_name
    assert measure_mouth_opening(surprised.frames, surprised.mouth_boxes) > measure_mouth_opening(
        portrait.frames, portrait.mouth_boxes)  # a surprised face keeps its mouth a little open


def test_lip_sync_rule_on_steady_loudness():
    levels = torch.linspace(0, 1, 11)
    steady = openness_from_envelope(levels[:, None].expand(11, 30), fps=25.0)
    expected = (levels / FULL_OPEN_ENVELOPE).clamp(0, 1).pow(OPENNESS_GAMMA)
    assert torch.allclose(steady, expected[:, None].expand(11, 30), atol=1e-5)


@settings(max_examples=30, deadline=None)
@given(
    envelope=st.lists(st.floats(0, 1), min_size=1, max_size=60),
    fps=st.sampled_from([8.0, 16.0, 25.0, 30.0, 60.0]),
    gain=st.floats(0.0, 0.5),
)
def test_lip_sync_rule_is_bounded_and_monotone_in_loudness(envelope, fps, gain):
    quiet = torch.tensor(envelope)
    loud = (quiet + gain).clamp(max=1)
    opening_quiet, opening_loud = openness_from_envelope(quiet, fps), openness_from_envelope(loud, fps)
    assert opening_quiet.shape == quiet.shape
    assert float(opening_quiet.min()) >= 0 and float(opening_loud.max()) <= 1
    assert bool((opening_loud >= opening_quiet - 1e-6).all())


def test_bad_specs_are_named():
    with pytest.raises(InputError, match="num_characters"):
        generate_clip(0, ClipSpec(num_characters=0))
    with pytest.raises(InputError, match="speech_mode"):
        generate_clip(0, ClipSpec(speech_mode="chorus"))
