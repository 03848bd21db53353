"""Sequence parallel sampling: one window's DiT forward split over several processes (GPUs)."""

from .split import MODES, Mode, SequenceParallel, attention_mode, parallelize

__all__ = ["MODES", "Mode", "SequenceParallel", "attention_mode", "parallelize"]
