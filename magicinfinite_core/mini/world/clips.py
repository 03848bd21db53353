"""Seeded talking-face clips: frames, per-character speech, prompt and ground-truth regions from one seed.

The lip-sync rule of this world is `openness_from_envelope`: a character's mouth opening at each video frame
is a fixed, smooth function of its own track's loudness, so a model that hears the audio can learn it exactly
and a measurement of the mouth (`measure_mouth_opening`) can be checked against it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

import torch

from magicinfinite_core.errors import InputError
from magicinfinite_core.mini.world.faces import (
    FaceMotion,
    FaceStyle,
    draw_scene,
    random_background,
    random_face_style,
    random_motion,
    still_motion,
)
from magicinfinite_core.mini.world.speech import synthesize_speech

FULL_OPEN_ENVELOPE = 0.8  # loudness at which the mouth is fully open
OPENNESS_GAMMA = 0.7  # < 1: soft sounds already part the lips
OPENNESS_SMOOTHING_S = 0.03  # Gaussian sigma; lips cannot jump between frames


@dataclass(frozen=True)
class ClipSpec:
    """What to generate. speech_mode "para": every character talks on its own independent track;
    "turns": characters take turns (alternating spans of 1-2.5 s), so at most one talks at a time.
    motion_scale scales head sway, roll and gaze (0 = still heads)."""

    height: int = 64
    width: int = 64
    num_frames: int = 81
    fps: float = 25.0
    num_characters: int = 1
    sample_rate: int = 16000
    speech_mode: Literal["para", "turns"] = "para"
    motion_scale: float = 1.0

    @property
    def num_samples(self) -> int:
        # ceil, so that floor(duration x fps) gives back num_frames
        return math.ceil(self.num_frames * self.sample_rate / self.fps - 1e-9)


@dataclass(frozen=True)
class Clip:
    """One generated clip and its ground truth; C characters, N frames, left to right.

    frames [N, H, W, 3] float32 0..1; audio [C, num_samples] float32, one track per character;
    loudness, mouth_openness [C, N] float32 0..1; vowels [C, N] int64 (index into speech.VOWELS, -1 silent);
    mouth_boxes, face_boxes [C, N, 4] int64 (x0, y0, x1, y1), end exclusive; face_masks [C, N, H, W] bool;
    motions: each character's animation, so the scene can be drawn again with some of it changed.
    """

    seed: int
    spec: ClipSpec
    frames: torch.Tensor
    audio: torch.Tensor
    prompt: str
    expressions: tuple[str, ...]
    styles: tuple[FaceStyle, ...]
    background: str
    loudness: torch.Tensor
    mouth_openness: torch.Tensor
    vowels: torch.Tensor
    mouth_boxes: torch.Tensor
    face_boxes: torch.Tensor
    face_masks: torch.Tensor
    motions: tuple[FaceMotion, ...]

    @property
    def fps(self) -> float:
        return self.spec.fps

    @property
    def sample_rate(self) -> int:
        return self.spec.sample_rate


def generate_clip(seed: int, spec: ClipSpec = ClipSpec()) -> Clip:
    """Everything in the clip is a function of `seed` and `spec`."""
    if spec.num_characters < 1:
        raise InputError(f"num_characters: expected at least 1, found {spec.num_characters}.")
    if spec.num_frames < 1:
        raise InputError(f"num_frames: expected at least 1, found {spec.num_frames}.")
    if spec.speech_mode not in ("para", "turns"):
        raise InputError(f"speech_mode: expected 'para' or 'turns', found {spec.speech_mode!r}.")
    generator = torch.Generator().manual_seed(seed)
    background = random_background(generator)
    styles = tuple(random_face_style(generator) for _ in range(spec.num_characters))
    duration_s = spec.num_samples / spec.sample_rate
    spans = _turn_spans(generator, duration_s, spec.num_characters, spec.speech_mode)
    tracks = [
        synthesize_speech(int(torch.randint(2**31 - 1, (1,), generator=generator)), duration_s,
                          spec.sample_rate, spans[c])
        for c in range(spec.num_characters)
    ]
    loudness = torch.stack([t.frame_envelope(spec.fps, spec.num_frames) for t in tracks])
    vowels = torch.stack([t.frame_vowels(spec.fps, spec.num_frames) for t in tracks])
    openness = openness_from_envelope(loudness, spec.fps)
    motions = tuple(
        random_motion(generator, spec.fps, openness[c], vowels[c], spec.motion_scale)
        for c in range(spec.num_characters)
    )
    scene = draw_scene(background, styles, motions, spec.height, spec.width)
    return Clip(
        seed=seed,
        spec=spec,
        frames=scene.frames,
        audio=torch.stack([t.waveform for t in tracks]),
        prompt=_prompt(styles, background),
        expressions=tuple(s.expression for s in styles),
        styles=styles,
        background=background,
        loudness=loudness,
        mouth_openness=openness,
        vowels=vowels,
        mouth_boxes=scene.mouth_boxes,
        face_boxes=scene.face_boxes,
        face_masks=scene.face_masks,
        motions=motions,
    )


def retake(clip: Clip, seed: int) -> torch.Tensor:
    """The clip's frames [N, H, W, 3] drawn again with another seeded head sway, roll and gaze, moved to start
    from the clip's own pose: same characters, background, mouths and blinks. The head's motion is random, not
    set by the audio, so this is what a perfect model of the world renders (one that also guessed the blinks);
    comparing it with the clip measures how far honest motion alone parts from the ground truth."""
    generator = torch.Generator().manual_seed(seed)
    motions = []
    for own in clip.motions:
        new = random_motion(generator, clip.fps, own.openness, own.vowel, clip.spec.motion_scale)
        moved = {name: getattr(new, name) - getattr(new, name)[:1] + getattr(own, name)[:1]
                 for name in ("offset", "roll", "gaze")}
        motions.append(replace(new, blink=own.blink, **moved))
    return draw_scene(clip.background, clip.styles, tuple(motions), clip.spec.height, clip.spec.width).frames


def openness_from_envelope(envelope: torch.Tensor, fps: float) -> torch.Tensor:
    """The world's lip-sync rule: per-frame loudness [..., N] (0..1) -> mouth openness [..., N] (0..1).

    clamp(envelope / FULL_OPEN_ENVELOPE) ** OPENNESS_GAMMA, then a Gaussian blur over time of
    OPENNESS_SMOOTHING_S seconds (edges repeated). Monotone in loudness and the same at any fps.
    """
    opening = (envelope.float() / FULL_OPEN_ENVELOPE).clamp(0, 1).pow(OPENNESS_GAMMA)
    sigma = OPENNESS_SMOOTHING_S * fps
    radius = math.ceil(3 * sigma)
    if radius == 0:
        return opening
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (offsets / sigma).square())
    kernel = kernel / kernel.sum()
    rows = opening.reshape(-1, 1, opening.shape[-1])
    padded = torch.nn.functional.pad(rows, (radius, radius), mode="replicate")
    return torch.nn.functional.conv1d(padded, kernel[None, None]).reshape(opening.shape).clamp(0, 1)


def measure_mouth_opening(frames: torch.Tensor, mouth_boxes: torch.Tensor) -> torch.Tensor:
    """Mouth opening read from pixels: mean darkness (1 - luma) inside each character's mouth box.

    frames [N, H, W, 3]; mouth_boxes [C, N, 4] per frame, or [C, 4] for one fixed box (for videos whose
    heads move differently from the ground truth). Returns [C, N]; its scale and offset depend on skin and
    lips, so compare it to an openness track by correlation.
    """
    luma = frames[..., 0] * 0.299 + frames[..., 1] * 0.587 + frames[..., 2] * 0.114  # [N, H, W]
    boxes = mouth_boxes if mouth_boxes.dim() == 3 else mouth_boxes[:, None].expand(-1, frames.shape[0], -1)
    ys = torch.arange(frames.shape[1])[None, None, :, None]
    xs = torch.arange(frames.shape[2])[None, None, None, :]
    x0, y0, x1, y1 = (boxes[..., i, None, None] for i in range(4))
    inside = ((xs >= x0) & (xs < x1) & (ys >= y0) & (ys < y1)).float()  # [C, N, H, W]
    return ((1.0 - luma)[None] * inside).sum(dim=(2, 3)) / inside.sum(dim=(2, 3)).clamp_min(1.0)


def measure_eye_contrast(frames: torch.Tensor, face_boxes: torch.Tensor) -> torch.Tensor:
    """Eye detail read from pixels: per frame [N], the standard deviation of luma in the eye band of the face
    box (its middle 80 % of width, 40-56 % of height, where the eyes are drawn: white, iris and pupil on
    skin). Without eyes only skin is left and the figure falls. face_boxes [N, 4] per frame, or [4]."""
    luma = frames[..., 0] * 0.299 + frames[..., 1] * 0.587 + frames[..., 2] * 0.114
    boxes = face_boxes.expand(frames.shape[0], 4).tolist()
    out = []
    for frame, (x0, y0, x1, y1) in zip(luma, boxes, strict=True):
        w, h = x1 - x0, y1 - y0
        rows = slice(y0 + round(0.40 * h), y0 + round(0.56 * h))
        out.append(frame[rows, x0 + round(0.1 * w):x1 - round(0.1 * w)].std())
    return torch.stack(out)


def mean_frame_change(frames: torch.Tensor) -> torch.Tensor:
    """[N-1] mean absolute difference between consecutive frames [N, H, W, 3] (0..1 RGB)."""
    return (frames[1:] - frames[:-1]).abs().mean(dim=(1, 2, 3))


def correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    """Pearson correlation of two tracks [N] (in float64); 0 where either is constant."""
    a, b = a.double() - a.double().mean(), b.double() - b.double().mean()
    return float((a * b).sum() / (a.norm() * b.norm()).clamp_min(1e-12))


def union_boxes(boxes: torch.Tensor) -> torch.Tensor:
    """[C, N, 4] per-frame boxes -> [C, 4], the smallest box holding all of each character's boxes."""
    return torch.cat([boxes[..., :2].amin(dim=1), boxes[..., 2:].amax(dim=1)], dim=-1)


def render_portrait(seed: int, height: int = 256, width: int = 256, expression: str = "neutral") -> Clip:
    """A single still frame of one character, mouth closed, eyes open, head centred: the reference image a
    talking video starts from. Audio is empty; the character's looks come from `seed` as in generate_clip."""
    generator = torch.Generator().manual_seed(seed)
    background = random_background(generator)
    style = random_face_style(generator, expression)
    motion = still_motion(1)
    scene = draw_scene(background, (style,), (motion,), height, width)
    spec = ClipSpec(height=height, width=width, num_frames=1)
    zeros = torch.zeros(1, 1)
    return Clip(
        seed=seed, spec=spec, frames=scene.frames, audio=torch.zeros(1, 0),
        prompt=_prompt((style,), background), expressions=(style.expression,), styles=(style,),
        background=background, loudness=zeros, mouth_openness=zeros,
        vowels=torch.full((1, 1), -1, dtype=torch.long), mouth_boxes=scene.mouth_boxes,
        face_boxes=scene.face_boxes, face_masks=scene.face_masks, motions=(motion,),
    )


def _turn_spans(
    generator: torch.Generator, duration_s: float, num_characters: int, mode: str
) -> list[tuple[tuple[float, float], ...] | None]:
    if mode == "para":
        return [None] * num_characters
    spans: list[list[tuple[float, float]]] = [[] for _ in range(num_characters)]
    speaker = int(torch.randint(num_characters, (1,), generator=generator))
    t = 0.0
    while t < duration_s:
        length = 1.0 + 1.5 * float(torch.rand((), generator=generator))
        spans[speaker].append((t, min(t + length, duration_s)))
        t += length
        speaker = (speaker + 1) % num_characters
    return [tuple(s) for s in spans]


def _prompt(styles: tuple[FaceStyle, ...], background: str) -> str:
    """E.g. "a smiling person with short blonde hair and tan skin, blue background"; with several
    characters each is named by its place ("left: ...; right: ...")."""
    hair = {"short": "short {} hair", "long": "long {} hair", "bun": "{} hair in a bun",
            "bald": "a bald head"}
    people = [
        f"a {s.expression} person with {hair[s.hair_style].format(s.hair_name)} and {s.skin_name} skin"
        for s in styles
    ]
    if len(people) == 1:
        return f"{people[0]}, {background} background"
    places = ("left", "right") if len(people) == 2 else tuple(f"person {i + 1}" for i in range(len(people)))
    return "; ".join(f"{p}: {d}" for p, d in zip(places, people, strict=True)) + f"; {background} background"
