"""Speaker recordings -> AudioFeatures: with our wav2vec2 (the reference computation, chunked), or from a
host's own wav2vec2 hidden states (ComfyUI's AudioEncoderEncode, read into `EncodedTrack` by the nodes).

Steps as in the MultiTalk/InfiniteTalk scripts: each track mono 16 kHz, loudness-normalised to -23 LUFS
(then the optional speaker gain), placed on the timeline ("para"/"add") and padded with silence, encoded;
frames = floor(timeline seconds x fps).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from magicinfinite_core.errors import InputError

from .chunked import (
    DEFAULT_PLAN,
    ChunkPlan,
    conv_geometry,
    encode_track,
    interpolate_frames,
    transformer_chunks,
)
from .encoder import AudioEncoder
from .features import AudioFeatures, FrameStore
from .preprocess import ENCODER_SAMPLE_RATE, SpeakerTrack, check_track, loudness_gain, to_encoder_rate
from .speakers import PlacedTrack, SpeakerMode, check_speakers, mix_tracks, speaker_offsets

Progress = Callable[[int, int], None]  # (units done, units in all)
HOST_ENCODER_NAME = "host audio encoder"


@dataclass(frozen=True)
class EncodedTrack:
    """A host encoder's output for one track: the hidden states after each wav2vec2 layer at the encoder's
    own ~50 Hz rate, [frames, layers, width], and how many 16 kHz samples it encoded (None: not said)."""

    hidden_states: Tensor
    num_samples: int | None = None


def frame_count(num_samples: int, fps: float) -> int:
    """Video frames covered by num_samples at 16 kHz: int(duration x fps), the reference's expression."""
    return int(num_samples / ENCODER_SAMPLE_RATE * fps)


@dataclass(frozen=True)
class _Timeline:
    tracks: tuple[SpeakerTrack, ...]
    mono: tuple[Tensor, ...]  # 16 kHz, before gain
    gains: tuple[float, ...]  # loudness gain x speaker gain
    starts: tuple[int, ...]  # samples at 16 kHz
    total: int
    num_frames: int

    def placed(self, speaker: int) -> PlacedTrack:
        return PlacedTrack(self.mono[speaker], self.starts[speaker], self.gains[speaker], self.total)


def _timeline(tracks: Sequence[SpeakerTrack], fps: float, mode: str, normalize_loudness: bool) -> _Timeline:
    check_speakers(len(tracks), mode)
    if not (isinstance(fps, int | float) and math.isfinite(fps) and fps > 0):
        raise InputError(f"fps: expected a positive frame rate, found {fps!r}.")
    for track in tracks:
        check_track(track)
    mono = tuple(to_encoder_rate(t.waveform, int(t.sample_rate)) for t in tracks)
    for track, samples in zip(tracks, mono, strict=True):
        if frame_count(samples.shape[0], fps) < 1:
            raise InputError(
                f"{track.name}: {samples.shape[0] / ENCODER_SAMPLE_RATE:.3f} s of audio is shorter than one "
                f"video frame at {fps:g} fps ({1 / fps:.3f} s). Connect a longer recording.")
    gains = tuple((loudness_gain(m) if normalize_loudness else 1.0) * t.gain
                  for t, m in zip(tracks, mono, strict=True))
    starts, total = speaker_offsets([m.shape[0] for m in mono], mode)
    return _Timeline(tuple(tracks), mono, gains, starts, total, frame_count(total, fps))


def _features(timeline: _Timeline, fps: float, mode: SpeakerMode, layers: int, width: int, name: str,
              store: FrameStore) -> AudioFeatures:
    mix, rate = mix_tracks(timeline.tracks, timeline.gains, mode)
    return AudioFeatures(num_speakers=len(timeline.tracks), fps=float(fps), num_frames=timeline.num_frames,
                         mode=mode, sample_rate=rate, waveform=mix, feature_layers=layers,
                         feature_width=width, encoder_name=name, store=store)


def embed_audio(encoder: AudioEncoder, tracks: Sequence[SpeakerTrack], *, fps: float = 25.0,
                mode: SpeakerMode = "para", normalize_loudness: bool = True, plan: ChunkPlan = DEFAULT_PLAN,
                device: torch.device | str = "cpu", progress: Progress | None = None) -> AudioFeatures:
    """Per-frame wav2vec2 features of 1-4 speakers, computed as the MultiTalk reference computes them."""
    timeline = _timeline(tracks, fps, mode, normalize_loudness)
    geometry = conv_geometry(encoder)
    if timeline.total < geometry.receptive_field:
        raise InputError(f"audio: {timeline.total / ENCODER_SAMPLE_RATE * 1000:.1f} ms in all is shorter "
                         f"than the {geometry.receptive_field / ENCODER_SAMPLE_RATE * 1000:.0f} ms wav2vec2 "
                         "needs.")
    store = FrameStore(len(tracks), timeline.num_frames, encoder.feature_layers, encoder.feature_width)
    units = len(tracks) * len(transformer_chunks(timeline.num_frames, plan))
    done = 0

    def advance() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, units)

    encoder.module.to(device)
    try:
        for speaker in range(len(tracks)):
            placed = timeline.placed(speaker)
            encode_track(encoder, placed.read, timeline.total, timeline.num_frames,
                         lambda start, frames, s=speaker: store.write(s, start, frames),
                         plan=plan, device=device, on_chunk=advance)
    finally:
        encoder.module.to("cpu")
    return _features(timeline, fps, mode, encoder.feature_layers, encoder.feature_width, encoder.name, store)


def embed_encoder_outputs(outputs: Sequence[EncodedTrack], tracks: Sequence[SpeakerTrack], *,
                          fps: float = 25.0, mode: SpeakerMode = "para", normalize_loudness: bool = True
                          ) -> AudioFeatures:
    """AudioFeatures from a host encoder's hidden states of each track (ComfyUI's AudioEncoderEncode).

    Differs from the reference: the host ran the transformer at its own ~50 Hz on the raw clip (no
    loudness normalisation, no silence padding), so its hidden states are interpolated to the frame rate
    after the encoder instead of before; frames where a speaker is silent on the timeline get zero
    features (as ComfyUI's own nodes pad). normalize_loudness then only affects the mix.
    tests/audio/test_audio_embed.py measures the difference on a tiny model; docs/audio.md reports it.
    """
    if len(outputs) != len(tracks):
        raise InputError(f"encoder outputs: expected one per speaker track ({len(tracks)}), "
                         f"found {len(outputs)}.")
    timeline = _timeline(tracks, fps, mode, normalize_loudness)
    per_track = [_hidden_states(out, track, mono)
                 for out, track, mono in zip(outputs, tracks, timeline.mono, strict=True)]
    layers, width = per_track[0].shape[1:]
    for states, track in zip(per_track, tracks, strict=True):
        if tuple(states.shape[1:]) != (layers, width):
            raise InputError(f"{track.name}: its encoder output has {states.shape[1]} x {states.shape[2]} "
                             f"features per frame, the first track's has {layers} x {width}: encode every "
                             "track with the same audio encoder.")
    store = FrameStore(len(tracks), timeline.num_frames, layers, width)
    for speaker, (states, mono) in enumerate(zip(per_track, timeline.mono, strict=True)):
        first = frame_count(timeline.starts[speaker], fps)
        frames = min(frame_count(mono.shape[0], fps), timeline.num_frames - first)
        store.write(speaker, first, interpolate_frames(states, frame_count(mono.shape[0], fps))[:frames])
    return _features(timeline, fps, mode, layers, width, HOST_ENCODER_NAME, store)


def embed_speakers(tracks: Sequence[SpeakerTrack], *, encoder: AudioEncoder | None = None,
                   encoder_outputs: Sequence[EncodedTrack | None] = (), fps: float = 25.0,
                   mode: SpeakerMode = "para", normalize_loudness: bool = True,
                   device: torch.device | str = "cpu", progress: Progress | None = None) -> AudioFeatures:
    """Our encoder when given, else the host's encoder outputs (encoder_outputs[i] for track i)."""
    given = [i for i, out in enumerate(encoder_outputs) if out is not None]
    if encoder is not None:
        if given:
            raise InputError(f"encoder_output_{given[0] + 1}: connect either audio_encoder or the encoder "
                             "outputs, not both.")
        return embed_audio(encoder, tracks, fps=fps, mode=mode, normalize_loudness=normalize_loudness,
                           device=device, progress=progress)
    missing = [i for i in range(len(tracks)) if i not in given]
    if not given or missing:
        raise InputError(f"audio_encoder: not connected, and encoder_output_{(missing or [0])[0] + 1} is "
                         "missing. Connect MagicInfiniteAudioEncoderLoader to audio_encoder (recommended: "
                         "the reference computation), or one AudioEncoderEncode output per audio track.")
    if given[-1] >= len(tracks):
        raise InputError(f"encoder_output_{given[-1] + 1} is connected but audio_{given[-1] + 1} is not.")
    return embed_encoder_outputs([encoder_outputs[i] for i in range(len(tracks))], tracks, fps=fps, mode=mode,
                                 normalize_loudness=normalize_loudness)


def _hidden_states(output: EncodedTrack, track: SpeakerTrack, mono: Tensor) -> Tensor:
    """The checked [~50 Hz frames, layers, width] float32 hidden states of one track's host encoding."""
    name = f"encoder output of {track.name}"
    states = output.hidden_states
    if not isinstance(states, Tensor) or states.dim() != 3 or states.shape[0] < 1:
        shape = tuple(states.shape) if isinstance(states, Tensor) else type(states).__name__
        raise InputError(f"{name}: expected hidden states [frames, layers, width], found {shape}.")
    samples = output.num_samples
    # The host resamples the raw clip itself; allow a few samples of rounding between its resampler and ours.
    if samples is not None and abs(samples - mono.shape[0]) > max(16, mono.shape[0] // 1000):
        raise InputError(f"{name}: it encoded {samples / ENCODER_SAMPLE_RATE:.2f} s of audio, but "
                         f"{track.name} is {mono.shape[0] / ENCODER_SAMPLE_RATE:.2f} s: encode the same "
                         "recording you connect here.")
    return states.to("cpu", torch.float32)
