"""The sliding-window sampler: schedules, solvers, guidance, window planning, the loop and its sinks."""

from magicinfinite_core.sampling.guidance import Condition, Guidance
from magicinfinite_core.sampling.loop import StepProgress, sample_video, stream_video
from magicinfinite_core.sampling.resume import ResumeState, ResumeStore
from magicinfinite_core.sampling.schedules import default_shift, distilled_sigmas, flow_sigmas, user_sigmas
from magicinfinite_core.sampling.settings import MOTION_MODES, SamplerOptions, SamplerSettings
from magicinfinite_core.sampling.sinks import FrameSink, MemorySink, Mp4Sink, VideoResult
from magicinfinite_core.sampling.solvers import SOLVERS
from magicinfinite_core.sampling.text import TextConditioning, build_text_conditioning, parse_prompt_schedule
from magicinfinite_core.sampling.window import Window, plan_windows

__all__ = [
    "MOTION_MODES",
    "SOLVERS",
    "Condition",
    "FrameSink",
    "Guidance",
    "MemorySink",
    "Mp4Sink",
    "ResumeState",
    "ResumeStore",
    "SamplerOptions",
    "SamplerSettings",
    "StepProgress",
    "TextConditioning",
    "VideoResult",
    "Window",
    "build_text_conditioning",
    "default_shift",
    "distilled_sigmas",
    "flow_sigmas",
    "parse_prompt_schedule",
    "plan_windows",
    "sample_video",
    "stream_video",
    "user_sigmas",
]
