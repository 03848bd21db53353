"""Files shipped with the pack, made from the procedural world by scripts/make_assets.py: a sample portrait
(the first frame a talking video starts from) and a speech-like voice track to drive it.

Both are reproducible from the seeds below; rerun the script after changing the world's drawing or voice.
"""

from __future__ import annotations

import wave
from pathlib import Path

import av
import numpy as np
import torch

from magicinfinite_core.imaging import from_uint8

ASSETS_DIR = Path(__file__).resolve().parent
SAMPLE_PORTRAIT_PNG = ASSETS_DIR / "sample_portrait.png"
SAMPLE_PORTRAIT_SEED = 11
SAMPLE_PORTRAIT_SIZE = 256
SAMPLE_SPEECH_WAV = ASSETS_DIR / "sample_speech.wav"
SAMPLE_SPEECH_SEED = 2024
SAMPLE_SPEECH_DURATION_S = 4.0
SAMPLE_SPEECH_RATE = 16000


def load_sample_portrait() -> torch.Tensor:
    """The sample portrait as a ComfyUI IMAGE: [1, H, W, 3] float32 in 0..1."""
    with av.open(str(SAMPLE_PORTRAIT_PNG)) as container:
        frame = next(container.decode(video=0))
        pixels = frame.to_ndarray(format="rgb24")
    return from_uint8(pixels)[None]


def load_sample_speech() -> tuple[torch.Tensor, int]:
    """The sample voice: (waveform [1, num_samples] float32 in -1..1, sample_rate)."""
    with wave.open(str(SAMPLE_SPEECH_WAV), "rb") as reader:
        sample_rate = reader.getframerate()
        pcm = np.frombuffer(reader.readframes(reader.getnframes()), dtype="<i2")
    return torch.from_numpy(pcm.astype(np.float32) / 32768.0)[None], sample_rate
