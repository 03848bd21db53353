"""MagicInfinite engine: audio-conditioned video DiT, audio features, region masks and the window sampler.

This package never imports ComfyUI; the `nodes/` package adapts it to the host.
"""

from magicinfinite_core.errors import CheckpointError, InputError, Interrupted, MagicInfiniteError

__all__ = ["CheckpointError", "InputError", "Interrupted", "MagicInfiniteError"]
__version__ = "0.1.0"
