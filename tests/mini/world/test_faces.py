"""Cartoon faces: the mouth's darkness tracks the openness for every expression and vowel, expressions and
blinks show where they should, characters keep to their own columns, and the ground-truth boxes and masks
hold what they claim at any frame size."""

from dataclasses import replace

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from magicinfinite_core.errors import InputError
from magicinfinite_core.mini.world.clips import measure_mouth_opening
from magicinfinite_core.mini.world.faces import (
    EXPRESSIONS,
    FaceMotion,
    draw_scene,
    expression_from_prompt,
    random_face_style,
    random_motion,
    still_motion,
)
from magicinfinite_core.mini.world.speech import VOWELS


def style(seed: int = 0, expression: str = "neutral", hair_style: str | None = None):
    chosen = random_face_style(torch.Generator().manual_seed(seed), expression)
    return chosen if hair_style is None else replace(chosen, hair_style=hair_style)


def with_vowel(motion: FaceMotion, vowel: str) -> FaceMotion:
    return replace(motion, vowel=torch.full_like(motion.vowel, VOWELS.index(vowel)))


@pytest.mark.parametrize("expression", EXPRESSIONS)
@pytest.mark.parametrize("vowel", VOWELS)
def test_mouth_darkness_rises_with_openness(expression, vowel):
    openness = torch.linspace(0, 1, 9)
    motion = with_vowel(still_motion(9, openness), vowel)
    scene = draw_scene("blue", (style(1, expression),), (motion,), 64, 64)
    darkness = measure_mouth_opening(scene.frames, scene.mouth_boxes)[0]
    assert bool((darkness[1:] > darkness[:-1]).all())


def test_vowel_changes_the_mouth_shape_but_not_its_area():
    motion = still_motion(1, torch.tensor([0.8]))
    scenes = {v: draw_scene("grey", (style(2),), (with_vowel(motion, v),), 256, 256) for v in ("i", "o")}
    darkness = {v: float(measure_mouth_opening(s.frames, s.mouth_boxes)[0, 0]) for v, s in scenes.items()}
    assert abs(darkness["i"] - darkness["o"]) < 0.08 * darkness["i"]

    def interior_extent(scene) -> tuple[int, int]:
        x0, y0, x1, y1 = scene.mouth_boxes[0, 0].tolist()
        dark = scene.frames[0, y0:y1, x0:x1].mean(dim=-1) < 0.15
        return int(dark.any(dim=0).sum()), int(dark.any(dim=1).sum())  # width, height in pixels

    (wide_i, tall_i), (wide_o, tall_o) = interior_extent(scenes["i"]), interior_extent(scenes["o"])
    assert wide_i > 1.4 * wide_o  # spread lips for i
    assert tall_o > 1.4 * tall_i  # rounded, taller mouth for o


def rows_of_colour(image: torch.Tensor, column: int, rgb: torch.Tensor) -> torch.Tensor:
    return ((image[:, column] - rgb).abs().amax(dim=-1) < 0.02).nonzero().squeeze(1).float()


def test_surprise_lifts_the_brows_and_a_smile_lifts_the_mouth_corners():
    size = 256
    frames = {}
    for expression in EXPRESSIONS:
        face = style(4, expression, hair_style="bald")  # bald: the brows are the only brow-coloured pixels
        frames[expression] = draw_scene("green", (face,), (still_motion(1),), size, size).frames[0]
    scale = min(0.34 * size, 0.40 * size)
    brow = torch.tensor((0.25, 0.17, 0.12))
    brow_column = round(size / 2 - 0.33 * scale)
    brow_row = {e: rows_of_colour(f, brow_column, brow).mean() for e, f in frames.items()}
    assert brow_row["neutral"] - brow_row["surprised"] > 0.05 * scale

    lips_rgb = 0.9 * (0.5 * torch.tensor(face.skin_rgb) + 0.5 * torch.tensor((0.72, 0.18, 0.22)))
    corner_column, centre_column = round(size / 2 + 0.26 * scale), size // 2
    corner = {e: rows_of_colour(frames[e], corner_column, lips_rgb).mean() for e in ("neutral", "smiling")}
    centre = {e: rows_of_colour(frames[e], centre_column, lips_rgb).mean() for e in ("neutral", "smiling")}
    assert corner["neutral"] - corner["smiling"] > 0.04 * scale
    assert abs(centre["neutral"] - centre["smiling"]) < 2


def test_blink_closes_the_eyes():
    motion = replace(still_motion(2), blink=torch.tensor([0.0, 1.0]))
    frames = draw_scene("pink", (style(5),), (motion,), 128, 128).frames
    white = (frames.amin(dim=-1) > 0.95).flatten(1).sum(dim=1)
    assert white[0] > 40
    assert white[1] < 0.05 * white[0]


def test_each_character_keeps_to_its_own_column():
    generator = torch.Generator().manual_seed(0)
    styles = (style(6), style(7))
    left_a, right = (random_motion(generator, 25.0, torch.rand(20, generator=generator),
                                   torch.randint(-1, 5, (20,), generator=generator)) for _ in range(2))
    left_b = replace(left_a, openness=torch.rand(20, generator=generator), blink=torch.ones(20))
    scene_a = draw_scene("teal", styles, (left_a, right), 64, 96)
    scene_b = draw_scene("teal", styles, (left_b, right), 64, 96)
    assert not torch.equal(scene_a.frames[:, :, :48], scene_b.frames[:, :, :48])
    assert torch.equal(scene_a.frames[:, :, 48:], scene_b.frames[:, :, 48:])
    assert bool((scene_a.mouth_boxes[0, :, 2] <= 48).all() and (scene_a.mouth_boxes[1, :, 0] >= 48).all())
    assert not (scene_a.face_masks[0] & scene_a.face_masks[1]).any()


def test_an_open_mouth_is_several_pixels_tall_with_two_characters_at_64px():
    open_motion = still_motion(1, torch.ones(1))
    scene = draw_scene("blue", (style(8), style(9)), (open_motion, open_motion), 64, 64)
    for character in range(2):
        x0, y0, x1, y1 = scene.mouth_boxes[character, 0].tolist()
        dark_rows = (scene.frames[0, y0:y1, x0:x1].mean(dim=-1) < 0.2).any(dim=1).sum()
        assert dark_rows >= 3


def test_expression_words_are_read_from_a_prompt():
    assert expression_from_prompt("A happy woman talking") == "smiling"
    assert expression_from_prompt("the man looks Surprised.") == "surprised"
    assert expression_from_prompt("a person, smiling, then shocked") == "smiling"
    assert expression_from_prompt("a person talking") == "neutral"


def test_bad_inputs_are_named():
    with pytest.raises(InputError, match="background"):
        draw_scene("plaid", (style(),), (still_motion(1),), 64, 64)
    with pytest.raises(InputError, match="16"):
        draw_scene("blue", (style(),) * 5, (still_motion(1),) * 5, 64, 64)
    with pytest.raises(InputError, match="expression"):
        random_face_style(torch.Generator(), "grumpy")


@settings(max_examples=30, deadline=None)
@given(
    height=st.integers(16, 96),
    width=st.integers(16, 112),
    num_characters=st.integers(1, 2),
    num_frames=st.integers(1, 6),
    seed=st.integers(0, 2**31 - 1),
)
def test_frames_and_ground_truth_are_consistent_at_any_size(height, width, num_characters, num_frames, seed):
    if width // num_characters < 16:
        num_characters = 1
    generator = torch.Generator().manual_seed(seed)
    styles = tuple(random_face_style(generator) for _ in range(num_characters))
    motions = tuple(
        random_motion(generator, 25.0, torch.rand(num_frames, generator=generator),
                      torch.randint(-1, len(VOWELS), (num_frames,), generator=generator))
        for _ in range(num_characters)
    )
    scene = draw_scene("purple", styles, motions, height, width)
    assert scene.frames.shape == (num_frames, height, width, 3) and scene.frames.dtype == torch.float32
    assert float(scene.frames.min()) >= 0 and float(scene.frames.max()) <= 1
    assert scene.face_masks.shape == (num_characters, num_frames, height, width)
    for boxes in (scene.mouth_boxes, scene.face_boxes):
        assert boxes.shape == (num_characters, num_frames, 4)
        assert bool((boxes[..., 0] < boxes[..., 2]).all() and (boxes[..., 1] < boxes[..., 3]).all())
        assert bool((boxes[..., 0::2] >= 0).all() and (boxes[..., 0::2] <= width).all())
        assert bool((boxes[..., 1::2] >= 0).all() and (boxes[..., 1::2] <= height).all())
    mouth, face = scene.mouth_boxes, scene.face_boxes
    assert bool((mouth[..., :2] >= face[..., :2]).all() and (mouth[..., 2:] <= face[..., 2:]).all())
    # the mouth box holds every pixel the mouth can change: redraw with all mouths shut
    shut = draw_scene("purple", styles, tuple(replace(m, openness=torch.zeros(num_frames)) for m in motions),
                      height, width)
    changed = (scene.frames != shut.frames).any(dim=-1)  # [N, H, W]
    ys, xs = torch.arange(height)[:, None], torch.arange(width)[None, :]

    def inside(box):
        x0, y0, x1, y1 = box.tolist()
        return (xs >= x0) & (xs < x1) & (ys >= y0) & (ys < y1)

    for n in range(num_frames):
        in_mouths = torch.zeros(height, width, dtype=torch.bool)
        for c in range(num_characters):
            in_mouths |= inside(mouth[c, n])
            assert scene.face_masks[c, n].any()
            assert not (scene.face_masks[c, n] & ~inside(face[c, n])).any()
        assert not (changed[n] & ~in_mouths).any()
