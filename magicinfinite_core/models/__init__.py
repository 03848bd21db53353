"""The audio-conditioned Wan2.1 DiT: `WanModel` (wan.py) with its sub-layers (attention.py, rope.py,
audio_adapter.py), configs (config.py), cast-at-compute linear layers (cast.py) and FLOP count (flops.py)."""

from .config import WAN_1_3B, WAN_14B, AudioAdapterConfig, WanConfig, tiny_config
from .wan import WanModel

__all__ = ["WAN_1_3B", "WAN_14B", "AudioAdapterConfig", "WanConfig", "WanModel", "tiny_config"]
