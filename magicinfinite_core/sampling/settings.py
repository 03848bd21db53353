"""How a video is sampled (not what it shows): size, solver, steps, guidance, seed, and the advanced
window options, checked when made so a bad value is reported before any work starts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch

from magicinfinite_core.errors import InputError
from magicinfinite_core.sampling.guidance import Guidance
from magicinfinite_core.sampling.presets import NO_PRESET, check_preset_name
from magicinfinite_core.sampling.schedules import default_shift, distilled_sigmas, flow_sigmas, user_sigmas
from magicinfinite_core.sampling.seams import DEFAULT_SEAM_FRAMES
from magicinfinite_core.sampling.solvers import SOLVERS
from magicinfinite_core.sampling.window import (
    DEFAULT_MOTION_FRAMES,
    DEFAULT_WINDOW_FRAMES,
    check_window,
    plan_windows,
)

MotionMode = Literal["infinitetalk", "multitalk"]
MOTION_MODES: tuple[MotionMode, ...] = ("infinitetalk", "multitalk")
SIZE_MULTIPLE = 16  # 8 pixels per latent cell x 2 latent cells per token


@dataclass(frozen=True)
class SamplerOptions:
    """The advanced options (the MI_SAMPLER_OPTIONS value): how windows join and what the schedule is."""

    window_frames: int = DEFAULT_WINDOW_FRAMES
    motion_frames: int = DEFAULT_MOTION_FRAMES
    motion_mode: MotionMode = "infinitetalk"
    shift: float | None = None  # None: 5 for "distilled", else by resolution (480p 7, 720p 11)
    sigmas: tuple[float, ...] | None = None  # a user schedule; replaces steps and shift
    colour_match: float = 0.0  # 0 off .. 1 full Lab mean/std transfer to the reference
    seam_frames: int = DEFAULT_SEAM_FRAMES  # new frames eased onto the last written frame (seams.py)
    preset: str = NO_PRESET  # a published configuration; `presets.with_preset` applies it
    devices: int = 1  # GPUs each window's DiT is split over (sequence parallel worker pool, MI_MODEL only)

    def __post_init__(self) -> None:
        check_preset_name(self.preset)
        check_window(self.window_frames, self.motion_frames)
        if not isinstance(self.devices, int) or self.devices < 1:
            raise InputError(f"devices: expected a whole number of GPUs, 1 or more, got {self.devices!r}.")
        if self.motion_mode not in MOTION_MODES:
            raise InputError(f"motion_mode: expected one of {MOTION_MODES}, got {self.motion_mode!r}.")
        if not isinstance(self.seam_frames, int) or self.seam_frames < 0:
            raise InputError(f"seam_frames: expected a whole number of frames, 0 (off) or more, got "
                             f"{self.seam_frames!r}.")
        if not 0.0 <= self.colour_match <= 1.0:
            raise InputError(f"colour_match: expected a strength from 0 (off) to 1, got {self.colour_match}.")
        if self.sigmas is not None:
            user_sigmas(self.sigmas)


@dataclass(frozen=True)
class SamplerSettings:
    width: int
    height: int
    solver: str = "distilled"
    steps: int = 4
    text_cfg: float = 1.0
    audio_cfg: float = 1.0
    seed: int = 0
    options: SamplerOptions = field(default_factory=SamplerOptions)

    def __post_init__(self) -> None:
        for name in ("width", "height"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < SIZE_MULTIPLE or value % SIZE_MULTIPLE:
                raise InputError(
                    f"{name}: expected a multiple of {SIZE_MULTIPLE} pixels (at least {SIZE_MULTIPLE}), got "
                    f"{value!r}; try {max(SIZE_MULTIPLE, round(value / SIZE_MULTIPLE) * SIZE_MULTIPLE)}."
                )
        if self.solver not in SOLVERS:
            raise InputError(f"solver: expected one of {tuple(SOLVERS)}, got {self.solver!r}.")
        self.schedule()  # reports bad steps / shift now rather than at the first window

    @property
    def guidance(self) -> Guidance:
        return Guidance(self.text_cfg, self.audio_cfg)

    def schedule(self) -> torch.Tensor:
        """The sigmas every window visits."""
        options = self.options
        if options.sigmas is not None:
            return user_sigmas(options.sigmas)
        distilled = self.solver == "distilled"
        shift = options.shift
        if shift is None:
            shift = default_shift(self.width, self.height, distilled=distilled)
        return distilled_sigmas(self.steps, shift) if distilled else flow_sigmas(self.steps, shift)

    def total_steps(self, num_frames: int) -> int:
        """Solver steps over a whole video of `num_frames` frames (what a progress bar counts)."""
        windows = plan_windows(num_frames, self.options.window_frames, self.options.motion_frames)
        return len(windows) * (len(self.schedule()) - 1)
