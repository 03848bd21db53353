"""Procedural cartoon faces drawn with torch, vectorised over frames, with their ground-truth regions.

Every shape is an anti-aliased ellipse evaluated on the pixel grid in the face's own units (the face is an
ellipse of half-height 1, u to the right, v down), so one code path draws any resolution and any head pose
(sway and roll per frame). Characters stand side by side, each inside its own equal-width column, so a left
and a right speaker never share a pixel.

The mouth is built so that its dark interior's area is proportional to the drawn openness whatever the vowel:
round vowels (o, u) make it narrower and taller, spread vowels (e, i) wider and flatter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from magicinfinite_core.errors import InputError
from magicinfinite_core.mini.world.speech import VOWELS

Rgb = tuple[float, float, float]

EXPRESSIONS: tuple[str, ...] = ("neutral", "smiling", "surprised")
_EXPRESSION_WORDS: dict[str, str] = {
    "neutral": "neutral", "calm": "neutral", "serious": "neutral",
    "smiling": "smiling", "smile": "smiling", "smiles": "smiling", "happy": "smiling",
    "surprised": "surprised", "surprise": "surprised", "shocked": "surprised", "amazed": "surprised",
}
SKIN_TONES: dict[str, Rgb] = {
    "pale": (0.98, 0.87, 0.79), "light": (0.94, 0.77, 0.63), "tan": (0.83, 0.62, 0.44),
    "brown": (0.63, 0.43, 0.29), "dark": (0.44, 0.29, 0.20),
}
HAIR_COLOURS: dict[str, Rgb] = {
    "black": (0.08, 0.07, 0.07), "brown": (0.38, 0.23, 0.12), "blonde": (0.94, 0.79, 0.42),
    "red": (0.74, 0.26, 0.10), "grey": (0.64, 0.64, 0.66), "blue": (0.20, 0.36, 0.82),
}
HAIR_STYLES: tuple[str, ...] = ("short", "long", "bun", "bald")
BACKGROUNDS: dict[str, tuple[Rgb, Rgb]] = {  # top and bottom of a vertical gradient
    "blue": ((0.45, 0.64, 0.92), (0.16, 0.30, 0.62)),
    "green": ((0.55, 0.82, 0.52), (0.20, 0.48, 0.24)),
    "purple": ((0.70, 0.56, 0.88), (0.34, 0.20, 0.52)),
    "teal": ((0.46, 0.84, 0.82), (0.10, 0.44, 0.46)),
    "pink": ((0.98, 0.70, 0.84), (0.78, 0.36, 0.56)),
    "grey": ((0.80, 0.81, 0.84), (0.42, 0.43, 0.47)),
}
EYE_COLOURS: tuple[Rgb, ...] = (
    (0.25, 0.45, 0.80), (0.35, 0.22, 0.10), (0.20, 0.55, 0.30), (0.12, 0.10, 0.10),
)

# Mouth geometry in face units. A vowel scales the width by w and the interior height by 1/w.
MOUTH_CENTRE_V = 0.56
MOUTH_HALF_WIDTH = 0.30
MOUTH_MAX_HALF_HEIGHT = 0.18
LIP_THICKNESS = 0.045
VOWEL_MOUTH_WIDTH: dict[str, float] = {"a": 1.0, "e": 1.2, "i": 1.3, "o": 0.75, "u": 0.7}
_WIDTH_BY_INDEX = torch.tensor([1.0] + [VOWEL_MOUTH_WIDTH[v] for v in VOWELS])  # vowel + 1; silence = 1
_MOUTH_INTERIOR: Rgb = (0.18, 0.02, 0.05)
_OUTLINE: Rgb = (0.10, 0.08, 0.08)


@dataclass(frozen=True)
class ExpressionShape:
    """How an expression word bends the face: mouth corner lift (face units, + = up), mouth width factor,
    openness that the mouth never goes below, brow lift and tilt, eye height factor, cheek blush 0..1."""

    mouth_curve: float
    mouth_width: float
    mouth_rest_openness: float
    brow_lift: float
    brow_tilt: float
    eye_height: float
    blush: float


EXPRESSION_SHAPES: dict[str, ExpressionShape] = {
    "neutral": ExpressionShape(0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
    "smiling": ExpressionShape(0.10, 1.12, 0.0, 0.03, 0.06, 0.8, 0.55),
    "surprised": ExpressionShape(0.0, 0.8, 0.3, 0.1, 0.18, 1.3, 0.0),
}


@dataclass(frozen=True)
class FaceStyle:
    """A character's looks. Colours are RGB in 0..1; face_width is the face ellipse's half-width over its
    half-height; names are the words a prompt uses for the colours."""

    skin_name: str
    hair_name: str
    hair_style: str
    eye_rgb: Rgb
    shirt_rgb: Rgb
    face_width: float
    fringe_phase: float
    expression: str

    @property
    def skin_rgb(self) -> Rgb:
        return SKIN_TONES[self.skin_name]

    @property
    def hair_rgb(self) -> Rgb:
        return HAIR_COLOURS[self.hair_name]


@dataclass(frozen=True)
class FaceMotion:
    """Per-frame animation of one character, all [num_frames] unless stated.

    openness: mouth opening 0..1 (lip-sync ground truth); vowel: int64 index into speech.VOWELS, -1 for
    none; blink: eyelid closure 0..1; offset: [num_frames, 2] head sway (right, down) in face units; roll:
    head tilt in radians; gaze: [num_frames, 2] pupil shift in face units.
    """

    openness: torch.Tensor
    vowel: torch.Tensor
    blink: torch.Tensor
    offset: torch.Tensor
    roll: torch.Tensor
    gaze: torch.Tensor

    @property
    def num_frames(self) -> int:
        return self.openness.shape[0]


@dataclass(frozen=True)
class Scene:
    """Frames [N, H, W, 3] float32 0..1 and per-character ground truth: mouth_boxes and face_boxes
    [C, N, 4] int64 pixel boxes (x0, y0, x1, y1), end exclusive; face_masks [C, N, H, W] bool (the skin
    of the face ellipse)."""

    frames: torch.Tensor
    mouth_boxes: torch.Tensor
    face_boxes: torch.Tensor
    face_masks: torch.Tensor


def expression_from_prompt(prompt: str) -> str:
    """The first expression word found in `prompt` ("smiling", "happy", "surprised", ...), else neutral."""
    for word in prompt.lower().replace(",", " ").replace(".", " ").split():
        if word in _EXPRESSION_WORDS:
            return _EXPRESSION_WORDS[word]
    return "neutral"


def random_face_style(generator: torch.Generator, expression: str | None = None) -> FaceStyle:
    """A seeded random character; a random expression unless one is given."""
    if expression is not None and expression not in EXPRESSIONS:
        raise InputError(f"expression: expected one of {EXPRESSIONS}, found {expression!r}.")

    def pick(options):
        return options[int(torch.randint(len(options), (1,), generator=generator))]

    rand = torch.rand(3, generator=generator).tolist()
    return FaceStyle(
        skin_name=pick(tuple(SKIN_TONES)),
        hair_name=pick(tuple(HAIR_COLOURS)),
        hair_style=pick(HAIR_STYLES),
        eye_rgb=pick(EYE_COLOURS),
        shirt_rgb=_hue_rgb(rand[0], saturation=0.55, value=0.75),
        face_width=0.70 + 0.15 * rand[1],
        fringe_phase=2 * math.pi * rand[2],
        expression=pick(EXPRESSIONS) if expression is None else expression,
    )


def random_background(generator: torch.Generator) -> str:
    """A seeded background name (a key of BACKGROUNDS)."""
    names = tuple(BACKGROUNDS)
    return names[int(torch.randint(len(names), (1,), generator=generator))]


def still_motion(num_frames: int, openness: torch.Tensor | None = None) -> FaceMotion:
    """No sway, no blink, eyes ahead; mouth closed unless `openness` [num_frames] is given."""
    zeros = torch.zeros(num_frames)
    return FaceMotion(
        openness=zeros if openness is None else openness.float(),
        vowel=torch.full((num_frames,), -1, dtype=torch.long),
        blink=zeros, offset=torch.zeros(num_frames, 2), roll=zeros, gaze=torch.zeros(num_frames, 2),
    )


def random_motion(
    generator: torch.Generator,
    fps: float,
    openness: torch.Tensor,
    vowel: torch.Tensor,
    motion_scale: float = 1.0,
) -> FaceMotion:
    """Seeded head sway and roll (slow sinusoids), blinks every 2-5 s and drifting gaze around a given mouth
    track. The head does not move with the audio, so the mouth is the only part that carries it.
    motion_scale scales sway, roll and gaze (0 = still head); blinks are kept."""
    num_frames = openness.shape[0]
    t = torch.arange(num_frames) / fps

    def wave(amplitude: float) -> torch.Tensor:
        freq, phase, freq2, phase2 = (torch.rand(4, generator=generator) * torch.tensor(
            [0.4, 2 * math.pi, 0.6, 2 * math.pi]) + torch.tensor([0.15, 0.0, 0.4, 0.0])).tolist()
        return amplitude * motion_scale * (
            torch.sin(2 * math.pi * freq * t + phase) + 0.4 * torch.sin(2 * math.pi * freq2 * t + phase2))

    sway_x, sway_y, roll = (float(a) for a in torch.rand(3, generator=generator) * torch.tensor(
        [0.07, 0.03, 0.05]) + torch.tensor([0.03, 0.01, 0.0]))
    blink = torch.zeros(num_frames)
    blink_at = float(torch.rand((), generator=generator)) * 3.0
    while blink_at < num_frames / fps + 0.2:
        # closes over 80 ms and opens over 80 ms, so a 25 fps video shows it on three or four frames
        blink = torch.maximum(blink, (1.0 - (t - blink_at).abs() / 0.09).clamp(0, 1) * 1.25).clamp(0, 1)
        blink_at += 2.0 + 3.0 * float(torch.rand((), generator=generator))
    return FaceMotion(
        openness=openness.float(),
        vowel=vowel.long(),
        blink=blink,
        offset=torch.stack([wave(sway_x), wave(sway_y)], dim=1),
        roll=wave(roll),
        gaze=torch.stack([wave(0.035), wave(0.015)], dim=1),
    )


def draw_scene(
    background: str, styles: tuple[FaceStyle, ...], motions: tuple[FaceMotion, ...], height: int, width: int
) -> Scene:
    """Draw len(styles) characters, each centred in its own column of the frame (left to right)."""
    if background not in BACKGROUNDS:
        raise InputError(f"background: expected one of {tuple(BACKGROUNDS)}, found {background!r}.")
    if not styles or len(styles) != len(motions):
        raise InputError(f"draw_scene: expected one motion per character and at least one character, "
                         f"found {len(styles)} styles and {len(motions)} motions.")
    num_frames = motions[0].num_frames
    if any(m.num_frames != num_frames for m in motions):
        raise InputError(f"draw_scene: every motion must have the same number of frames, found "
                         f"{[m.num_frames for m in motions]}.")
    cell_width = width // len(styles)
    if cell_width < 16 or height < 16:
        raise InputError(f"draw_scene: each character needs a column at least 16x16 pixels, found "
                         f"{cell_width}x{height} for {len(styles)} characters in {width}x{height}; "
                         f"use a larger frame or fewer characters.")

    top, bottom = (torch.tensor(c) for c in BACKGROUNDS[background])
    ramp = torch.linspace(0.0, 1.0, height)[:, None, None]
    frames = (top + ramp * (bottom - top)).expand(num_frames, height, width, 3).contiguous()
    mouth_boxes, face_boxes, face_masks = [], [], []
    for index, (style, motion) in enumerate(zip(styles, motions, strict=True)):
        x0 = index * cell_width
        x1 = width if index == len(styles) - 1 else x0 + cell_width
        face = _Face(frames[:, :, x0:x1], style, motion)
        face.draw()
        shift = torch.tensor([x0, 0, x0, 0])
        mouth_boxes.append(face.mouth_box() + shift)
        face_boxes.append(face.face_box() + shift)
        mask = torch.zeros(num_frames, height, width, dtype=torch.bool)
        mask[:, :, x0:x1] = face.face_mask
        face_masks.append(mask)
    return Scene(frames.clamp_(0, 1), torch.stack(mouth_boxes), torch.stack(face_boxes),
                 torch.stack(face_masks))


class _Face:
    """One character drawn into its column `canvas` [N, H, Wc, 3] (a view, painted in place)."""

    def __init__(self, canvas: torch.Tensor, style: FaceStyle, motion: FaceMotion) -> None:
        self.canvas, self.style, self.motion = canvas, style, motion
        self.shape = EXPRESSION_SHAPES[style.expression]
        height, cell_width = canvas.shape[1], canvas.shape[2]
        self.scale = min(0.34 * height, 0.40 * cell_width)  # pixels per face unit
        self.cos, self.sin = torch.cos(motion.roll), torch.sin(motion.roll)
        # face centre per frame in pixel coordinates (pixel centres at integer + 0.5)
        self.centre_x = 0.5 * cell_width + self.scale * motion.offset[:, 0]
        self.centre_y = 0.45 * height + self.scale * motion.offset[:, 1]
        self.face_mask = torch.zeros(canvas.shape[:3], dtype=torch.bool)

    def draw(self) -> None:
        style, shape = self.style, self.shape
        skin = torch.tensor(style.skin_rgb)
        hair = torch.tensor(style.hair_rgb)
        fw = style.face_width
        if style.hair_style == "long":
            self._ellipse(0.0, 0.15, fw + 0.2, 1.15, hair, below=0.95)
        self._ellipse(0.0, 2.05, 1.45, 0.85, torch.tensor(style.shirt_rgb))
        self._ellipse(0.0, 0.85, 0.3, 0.45, skin * 0.85)
        for side in (-1.0, 1.0):
            self._ellipse(side * fw, 0.05, 0.13, 0.2, skin * 0.9)
        alpha, region = self._ellipse(0.0, 0.0, fw, 1.0, skin)
        self.face_mask[region] = alpha > 0.5
        if shape.blush > 0:
            blush = torch.tensor((0.95, 0.45, 0.5))
            for side in (-1.0, 1.0):
                self._ellipse(side * 0.45, 0.3, 0.14, 0.08, blush, opacity=shape.blush)
        if style.hair_style != "bald":
            self._ellipse(0.0, -0.22, fw + 0.07, 0.86, hair, fringe=style.fringe_phase)
        if style.hair_style == "bun":
            self._ellipse(0.0, -1.02, 0.3, 0.26, hair)
        # darker than the hair so brows show against a fringe of any colour
        brow = hair * 0.6 if style.hair_style != "bald" else torch.tensor((0.25, 0.17, 0.12))
        self._ellipse(0.0, 0.13, 0.06, 0.075, skin * 0.82)  # nose
        for side in (-1.0, 1.0):
            self._eye(side)
            self._ellipse(side * 0.33, -0.31 - shape.brow_lift, 0.17, 0.04, brow,
                          angle=side * shape.brow_tilt)
        self._mouth()

    def _eye(self, side: float) -> None:
        cu, cv = side * 0.33, -0.05
        open_height = 0.11 * self.shape.eye_height * (1.0 - self.motion.blink)[:, None, None]
        self._ellipse(cu, cv, 0.175, open_height + 0.025, torch.tensor(_OUTLINE))  # lid line when closed
        white, region = self._ellipse(cu, cv, 0.15, open_height, torch.tensor((0.98, 0.98, 0.98)))
        gaze_u, gaze_v = (self.motion.gaze[:, i, None, None] for i in (0, 1))
        iris_u, iris_v = cu + gaze_u, cv + gaze_v
        for radius, colour in ((0.075, self.style.eye_rgb), (0.04, _OUTLINE)):  # iris, then pupil
            self._ellipse(iris_u, iris_v, radius, radius, torch.tensor(colour), inside=white, region=region)

    def _mouth(self) -> None:
        shape = self.shape
        rest = shape.mouth_rest_openness
        drawn = (rest + (1.0 - rest) * self.motion.openness.clamp(0, 1))[:, None, None]
        vowel_width = _WIDTH_BY_INDEX[self.motion.vowel.clamp(-1, len(VOWELS) - 1) + 1][:, None, None]
        half_width = MOUTH_HALF_WIDTH * shape.mouth_width * vowel_width
        half_height = MOUTH_MAX_HALF_HEIGHT * drawn / vowel_width
        lips = _lip_colour(self.style.skin_rgb)
        lip_width = half_width + LIP_THICKNESS
        self._ellipse(0.0, MOUTH_CENTRE_V, lip_width, half_height + LIP_THICKNESS, lips,
                      curve=shape.mouth_curve, curve_width=lip_width, reach=self._mouth_reach())
        self._ellipse(0.0, MOUTH_CENTRE_V, half_width, half_height, torch.tensor(_MOUTH_INTERIOR),
                      curve=shape.mouth_curve, curve_width=lip_width, reach=self._mouth_reach())

    def _mouth_reach(self) -> tuple[float, float, float, float]:
        """Face-unit box (u0, v0, u1, v1) the mouth can fill at full opening with any vowel."""
        shape = self.shape
        widest = max(VOWEL_MOUTH_WIDTH.values())
        half_width = MOUTH_HALF_WIDTH * shape.mouth_width * widest + LIP_THICKNESS
        half_height = MOUTH_MAX_HALF_HEIGHT / min(VOWEL_MOUTH_WIDTH.values()) + LIP_THICKNESS
        return (-half_width, MOUTH_CENTRE_V - half_height - max(shape.mouth_curve, 0.0),
                half_width, MOUTH_CENTRE_V + half_height + max(-shape.mouth_curve, 0.0))

    def mouth_box(self) -> torch.Tensor:
        return self._pixel_box(self._mouth_reach())

    def face_box(self) -> torch.Tensor:
        fw = self.style.face_width
        return self._pixel_box((-fw, -1.0, fw, 1.0))

    def _pixel_box(self, reach: tuple[float, float, float, float]) -> torch.Tensor:
        """[N, 4] int64 pixel box (end exclusive) holding the face-unit box `reach` in every frame's pose.
        Shapes are capped by their bounding boxes, so their anti-aliased edges stay inside it too."""
        xs, ys = self._to_pixels(reach)
        height, cell_width = self.canvas.shape[1], self.canvas.shape[2]
        return torch.stack([
            xs.amin(dim=1).floor().clamp(0, cell_width), ys.amin(dim=1).floor().clamp(0, height),
            xs.amax(dim=1).ceil().clamp(0, cell_width), ys.amax(dim=1).ceil().clamp(0, height),
        ], dim=1).long()

    def _to_pixels(self, reach: tuple[float, float, float, float]) -> tuple[torch.Tensor, torch.Tensor]:
        """Pixel positions [N, 4] of the four corners of a face-unit box in each frame's pose."""
        u0, v0, u1, v1 = reach
        u = torch.tensor([u0, u1, u0, u1])
        v = torch.tensor([v0, v0, v1, v1])
        xs = self.centre_x[:, None] + self.scale * (u * self.cos[:, None] - v * self.sin[:, None])
        ys = self.centre_y[:, None] + self.scale * (u * self.sin[:, None] + v * self.cos[:, None])
        return xs, ys

    def _region(self, reach: tuple[float, float, float, float]) -> tuple[slice, slice, slice]:
        """The pixel rectangle (over all frames) that a shape within the face-unit box `reach` can touch."""
        xs, ys = self._to_pixels(reach)
        height, cell_width = self.canvas.shape[1], self.canvas.shape[2]
        x0 = max(0, math.floor(float(xs.min())) - 1)
        y0 = max(0, math.floor(float(ys.min())) - 1)
        x1 = min(cell_width, math.ceil(float(xs.max())) + 2)
        y1 = min(height, math.ceil(float(ys.max())) + 2)
        return slice(None), slice(y0, max(y0, y1)), slice(x0, max(x0, x1))

    def _ellipse(
        self,
        cu: float | torch.Tensor,
        cv: float | torch.Tensor,
        a: float | torch.Tensor,
        b: float | torch.Tensor,
        colour: torch.Tensor,
        *,
        angle: float = 0.0,
        below: float | None = None,
        fringe: float | None = None,
        curve: float = 0.0,
        curve_width: torch.Tensor | None = None,
        inside: torch.Tensor | None = None,
        region: tuple[slice, slice, slice] | None = None,
        reach: tuple[float, float, float, float] | None = None,
        opacity: float = 1.0,
    ) -> tuple[torch.Tensor, tuple[slice, slice, slice]]:
        """Paint an anti-aliased ellipse centred at (cu, cv) with half-axes (a, b), all in face units (floats
        or [N, 1, 1] per frame), and return its coverage and the pixel region it was evaluated on.

        angle rotates it; `below` keeps only v < below; `fringe` keeps only the part above a wavy hairline
        (that phase); `curve` lifts both ends by that much (a smile), measured at |u| = curve_width;
        `inside` multiplies by another shape's coverage on the same `region`.
        """
        if region is None:
            if reach is None:
                radius_u, radius_v = _bounds(a)[1], _bounds(b)[1]
                if angle:
                    radius_u = radius_v = max(radius_u, radius_v)
                (u_low, u_high), (v_low, v_high) = _bounds(cu), _bounds(cv)
                reach = (u_low - radius_u, v_low - radius_v, u_high + radius_u, v_high + radius_v)
            region = self._region(reach)
        u, v = self._face_coordinates(region)
        du, dv = u - cu, v - cv
        if angle:
            du, dv = du * math.cos(angle) + dv * math.sin(angle), -du * math.sin(angle) + dv * math.cos(angle)
        slope = None
        if curve:
            # the bend stops growing past the corners, so nothing leaks beyond the mouth's reach
            across = (du / curve_width).clamp(-1, 1)
            dv = dv + curve * across.square()
            slope = 2.0 * curve * across / curve_width * (du.abs() < curve_width)
        alpha = _ellipse_coverage(du, dv, a, b, self.scale, slope)
        if below is not None:
            alpha = alpha * (0.5 + (below - v) * self.scale).clamp(0, 1)
        if fringe is not None:
            hairline = -0.52 + 0.05 * torch.sin(9.0 * u + fringe) + 0.25 * u.square()
            alpha = alpha * (0.5 + (hairline - v) * self.scale).clamp(0, 1)
        if inside is not None:
            alpha = alpha * inside
        target = self.canvas[region]
        target += (opacity * alpha)[..., None] * (colour - target)
        return alpha, region

    def _face_coordinates(self, region: tuple[slice, slice, slice]) -> tuple[torch.Tensor, torch.Tensor]:
        """(u, v) in face units of the pixel centres in `region`, [N, h, w] each."""
        _, rows, cols = region
        dy = (torch.arange(rows.start, rows.stop) + 0.5)[None, :, None] - self.centre_y[:, None, None]
        dx = (torch.arange(cols.start, cols.stop) + 0.5)[None, None, :] - self.centre_x[:, None, None]
        cos, sin = self.cos[:, None, None], self.sin[:, None, None]
        return (dx * cos + dy * sin) / self.scale, (-dx * sin + dy * cos) / self.scale


def _ellipse_coverage(
    du: torch.Tensor, dv: torch.Tensor, a, b, pixels_per_unit: float, slope: torch.Tensor | None = None
) -> torch.Tensor:
    """Pixel coverage 0..1 of the ellipse (du/a)^2 + (dv/b)^2 <= 1: a one-pixel ramp across the edge
    (first-order signed distance, capped by the bounding box), faded by thickness for shapes thinner than
    a pixel so a mouth that opens from zero darkens in proportion to its opening. `slope` is d(dv)/du of a
    bend applied to dv (the smile), so distances are measured on the bent shape."""
    a = torch.as_tensor(a).clamp_min(1e-4)
    b = torch.as_tensor(b).clamp_min(1e-4)
    qa, qb = du / a, dv / b
    radius = torch.sqrt(qa.square() + qb.square()).clamp_min(1e-6)
    grad_u, grad_v = qa / a, qb / b  # times 1/radius, applied below
    if slope is not None:
        grad_u = grad_u + grad_v * slope
    gradient = torch.sqrt(grad_u.square() + grad_v.square()).clamp_min(1e-6) / radius
    distance_px = (radius - 1.0) / gradient * pixels_per_unit
    # the first-order distance is too short far from a thin ellipse: the bounding box caps it
    box = torch.minimum((a - du.abs()) * pixels_per_unit, (b - dv.abs()) * pixels_per_unit)
    coverage = torch.minimum(0.5 - distance_px, 0.5 + box).clamp(0, 1)
    thickness_px = 2.0 * torch.minimum(a, b) * pixels_per_unit
    return coverage * thickness_px.clamp(max=1.0)


def _lip_colour(skin: Rgb) -> torch.Tensor:
    return 0.9 * (0.5 * torch.tensor(skin) + 0.5 * torch.tensor((0.72, 0.18, 0.22)))


def _hue_rgb(hue: float, saturation: float, value: float) -> Rgb:
    channels = [(hue + offset) % 1.0 for offset in (0.0, 2 / 3, 1 / 3)]
    return tuple(value * (1 - saturation + saturation * (0.5 + 0.5 * math.cos(2 * math.pi * h)))
                 for h in channels)


def _bounds(x: float | torch.Tensor) -> tuple[float, float]:
    """(min, max) of a face-unit quantity given as a float or a per-frame tensor."""
    return (float(x.min()), float(x.max())) if isinstance(x, torch.Tensor) else (x, x)
