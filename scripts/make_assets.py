"""Write the pack's sample assets from the procedural world: a portrait PNG and a speech-like WAV.

    python scripts/make_assets.py

Deterministic: the seeds live in magicinfinite_core/assets/__init__.py, and tests/mini/world/test_assets.py
checks that the shipped files still match what the world draws and says.
"""

from __future__ import annotations

import wave

import av

from magicinfinite_core.assets import (
    SAMPLE_PORTRAIT_PNG,
    SAMPLE_PORTRAIT_SEED,
    SAMPLE_PORTRAIT_SIZE,
    SAMPLE_SPEECH_DURATION_S,
    SAMPLE_SPEECH_RATE,
    SAMPLE_SPEECH_SEED,
    SAMPLE_SPEECH_WAV,
)
from magicinfinite_core.imaging import to_uint8
from magicinfinite_core.mini.world.clips import render_portrait
from magicinfinite_core.mini.world.speech import synthesize_speech


def write_portrait() -> None:
    portrait = render_portrait(SAMPLE_PORTRAIT_SEED, SAMPLE_PORTRAIT_SIZE, SAMPLE_PORTRAIT_SIZE)
    pixels = to_uint8(portrait.frames[0])
    with av.open(str(SAMPLE_PORTRAIT_PNG), "w", format="image2") as container:
        stream = container.add_stream("png")
        stream.width, stream.height, stream.pix_fmt = pixels.shape[1], pixels.shape[0], "rgb24"
        frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
        for packet in (*stream.encode(frame), *stream.encode()):
            container.mux(packet)
    print(f"{SAMPLE_PORTRAIT_PNG}: {SAMPLE_PORTRAIT_PNG.stat().st_size} bytes, {portrait.prompt!r}")


def write_speech() -> None:
    track = synthesize_speech(SAMPLE_SPEECH_SEED, SAMPLE_SPEECH_DURATION_S, SAMPLE_SPEECH_RATE)
    pcm = (track.waveform.clamp(-1, 1).numpy() * 32767.0).round().astype("<i2")
    with wave.open(str(SAMPLE_SPEECH_WAV), "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(SAMPLE_SPEECH_RATE)
        writer.writeframes(pcm.tobytes())
    print(f"{SAMPLE_SPEECH_WAV}: {SAMPLE_SPEECH_WAV.stat().st_size} bytes, {len(track.syllables)} syllables")


if __name__ == "__main__":
    write_portrait()
    write_speech()
