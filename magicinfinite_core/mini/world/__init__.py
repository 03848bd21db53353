"""A procedural talking-face world with known ground truth, for training and measuring small models.

speech: seeded speech-like voices (syllables, pitch, vowel formants) with their loudness envelope and vowels.
faces: cartoon faces drawn with torch, vectorised over frames, with mouth and face boxes and face masks.
clips: seed -> frames + per-character audio + prompt + ground truth, and the world's lip-sync rule.
"""

from magicinfinite_core.mini.world.clips import (
    Clip,
    ClipSpec,
    correlation,
    generate_clip,
    mean_frame_change,
    measure_eye_contrast,
    measure_mouth_opening,
    openness_from_envelope,
    render_portrait,
    retake,
    union_boxes,
)
from magicinfinite_core.mini.world.faces import EXPRESSIONS, expression_from_prompt
from magicinfinite_core.mini.world.speech import VOWELS, SpeechTrack, frame_loudness, synthesize_speech

__all__ = [
    "EXPRESSIONS",
    "VOWELS",
    "Clip",
    "ClipSpec",
    "SpeechTrack",
    "correlation",
    "expression_from_prompt",
    "frame_loudness",
    "generate_clip",
    "mean_frame_change",
    "measure_eye_contrast",
    "measure_mouth_opening",
    "openness_from_envelope",
    "render_portrait",
    "retake",
    "synthesize_speech",
    "union_boxes",
]
