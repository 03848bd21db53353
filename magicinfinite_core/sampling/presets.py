"""Presets: a published model's inference configuration as one choice of the sampler's options.

`flashtalk` follows SoulX-FlashTalk's `flash_talk/configs/infer_params.yaml` and its pipeline at
Soul-AILab/SoulX-FlashTalk 688982effe0e77eb21796e3e6848b3792b391c3e (2026-01-30): 33-frame windows of which
5 are motion frames, 4 steps at timesteps 1000, 750, 500, 250 with shift 5, full colour correction to the
portrait (strength 1.0), 448 x 768 (width x height), 25 fps, no CFG (one model pass per step), and its
sampler: predict x0, then re-noise it with fresh noise to the next timestep (our `distilled` solver). The
motion latents are written clean into the first latents before and after every step while the portrait
stays the image conditioning (our `infinitetalk` motion mode). Later upstream revisions are said to use
12 steps, shift 3 and colour 0.7; this preset follows the pinned commit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from magicinfinite_core.errors import InputError

if TYPE_CHECKING:  # settings.py checks preset names with this module
    from magicinfinite_core.sampling.settings import MotionMode, SamplerSettings

log = logging.getLogger(__name__)

NO_PRESET = "none"


@dataclass(frozen=True)
class Preset:
    """What a preset fixes of the sampler's settings and options."""

    name: str
    width: int
    height: int
    fps: float  # the audio features' frame rate the model was trained at
    window_frames: int
    motion_frames: int
    motion_mode: MotionMode
    solver: str
    steps: int
    shift: float
    colour_match: float
    source: str


FLASHTALK = Preset(
    name="flashtalk",
    width=448,
    height=768,
    fps=25.0,
    window_frames=33,
    motion_frames=5,
    motion_mode="infinitetalk",
    solver="distilled",
    steps=4,
    shift=5.0,
    colour_match=1.0,
    source="Soul-AILab/SoulX-FlashTalk 688982e (2026-01-30), flash_talk/configs/infer_params.yaml",
)
PRESETS: dict[str, Preset] = {FLASHTALK.name: FLASHTALK}
PRESET_CHOICES = (NO_PRESET, *PRESETS)


def check_preset_name(name: str) -> None:
    if name not in PRESET_CHOICES:
        raise InputError(f"preset: expected one of {PRESET_CHOICES}, got {name!r}.")


def with_preset(settings: SamplerSettings, fps: float) -> SamplerSettings:
    """`settings` with its options' preset applied: the preset's size, solver, steps, schedule, windows and
    colour matching replace the given ones, and guidance is off. `fps` is the audio's frame rate, which must
    be the preset's."""
    name = settings.options.preset
    check_preset_name(name)
    if name == NO_PRESET:
        return settings
    preset = PRESETS[name]
    if fps != preset.fps:
        raise InputError(
            f"audio: the {name} preset samples at {preset.fps:g} fps (what the model was trained at); the "
            f"audio was embedded at {fps:g} fps. Set fps to {preset.fps:g} in MagicInfinite Audio Embed."
        )
    options = replace(settings.options, window_frames=preset.window_frames,
                      motion_frames=preset.motion_frames, motion_mode=preset.motion_mode, shift=preset.shift,
                      sigmas=None, colour_match=preset.colour_match)
    applied = replace(settings, width=preset.width, height=preset.height, solver=preset.solver,
                      steps=preset.steps, text_cfg=1.0, audio_cfg=1.0, options=options)
    if applied != settings:
        log.info("preset %s (%s): %dx%d, %s %d steps, shift %g, windows %d/%d, colour %g, no CFG", name,
                 preset.source, preset.width, preset.height, preset.solver, preset.steps, preset.shift,
                 preset.window_frames, preset.motion_frames, preset.colour_match)
    return applied
