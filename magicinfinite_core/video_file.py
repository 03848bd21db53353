"""Finished videos on disk: an MP4 (H.264 + AAC) from frames and audio, or a copy of a streamed MP4, both
with text tags (ComfyUI keeps the prompt and the workflow there); and what every MP4 writer of the pack
shares (the sampler's streamed segments too): the exact frame rate, audio cut to the video, AAC channels,
the one H.264 encoder, `<name>.partial` names, and reading a video's last frame.

Both write to `<name>.partial` (format mp4) and rename to the final name only when the file is complete,
so a failed or cancelled save never leaves a file that looks finished.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from fractions import Fraction
from pathlib import Path

import av
import torch

from magicinfinite_core.errors import InputError
from magicinfinite_core.imaging import from_uint8, to_uint8

PARTIAL_SUFFIX = ".partial"
# Keeps custom tags (prompt, workflow) in the MP4's user data; faststart puts the index first for players.
_MP4_OPTIONS = {"movflags": "use_metadata_tags+faststart"}


def trimmed_audio(waveform: torch.Tensor, sample_rate: int, num_frames: int, fps: float) -> torch.Tensor:
    """waveform [channels, samples] cut (or padded with silence) to exactly num_frames / fps seconds."""
    samples = round(num_frames * sample_rate / fps)
    waveform = waveform[:, :samples].float()
    if waveform.shape[1] < samples:
        waveform = torch.nn.functional.pad(waveform, (0, samples - waveform.shape[1]))
    return waveform


def frame_rate(fps: float) -> Fraction:
    """The exact rate written for `fps` (25 -> 25, 30000/1001 -> 30000/1001, 29.97 -> 2997/100)."""
    if not fps > 0:
        raise InputError(f"fps: expected a frame rate above 0, got {fps}.")
    return Fraction(fps).limit_denominator(1001)


def partial_path(path: Path) -> Path:
    """Where `path` is written until it is complete (`<name>.partial`), then renamed to `path`."""
    return path.with_name(path.name + PARTIAL_SUFFIX)


def aac_channels(waveform: torch.Tensor) -> torch.Tensor:
    """AAC takes mono or stereo: a waveform [channels, samples] with more channels is mixed down to mono."""
    return waveform if waveform.shape[0] <= 2 else waveform.mean(0, keepdim=True)


def audio_layout(channels: int) -> str:
    """PyAV's layout name for the 1 or 2 channels left by aac_channels."""
    return "mono" if channels == 1 else "stereo"


def add_h264_stream(container: av.container.OutputContainer, rate: Fraction, width: int, height: int, *,
                    crf: int = 18, preset: str = "medium") -> av.VideoStream:
    """The pack's one H.264 setting (yuv420p), for every MP4 it writes."""
    stream = container.add_stream("libx264", rate=rate)
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    # No B-frames: every packet's dts equals its pts, so the sampler's segments join end to end.
    stream.options = {"crf": str(crf), "preset": preset, "bf": "0"}
    return stream


def encode_h264(container: av.container.OutputContainer, stream: av.VideoStream,
                frames: torch.Tensor) -> None:
    """Encode frames [n, H, W, 3] 0..1 as the whole of `stream` (from add_h264_stream)."""
    for index, picture in enumerate(to_uint8(frames)):
        frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
        frame.pts = index
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))


def last_frame(path: Path) -> torch.Tensor:
    """The last frame [1, H, W, 3] float 0..1 of a video file, decoding only its last second or so."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if stream.duration is not None:
            container.seek(max(0, stream.duration - int(2 / stream.time_base)), stream=stream, backward=True)
        frame = None
        for frame in container.decode(stream):  # noqa: B007  (the loop keeps the last one)
            pass
        if frame is None:
            raise InputError(f"output: {path} holds no video frame; delete it to render it again.")
        return from_uint8(frame.to_ndarray(format="rgb24"))[None]




def _even_frames(frames: torch.Tensor) -> torch.Tensor:
    """H.264 4:2:0 needs even sizes: an odd last row or column is dropped."""
    height, width = frames.shape[1] // 2 * 2, frames.shape[2] // 2 * 2
    if height == 0 or width == 0:
        raise InputError(f"images: frames of {frames.shape[2]}x{frames.shape[1]} pixels are too small for "
                         "a video; at least 2x2 is needed.")
    return frames[:, :height, :width, :3]


def write_mp4(
    path: Path | str,
    frames: torch.Tensor,
    fps: float,
    *,
    waveform: torch.Tensor | None = None,
    sample_rate: int = 0,
    tags: Mapping[str, str] | None = None,
    crf: int = 18,
) -> Path:
    """Encode frames [N, H, W, 3] float 0..1 (and waveform [channels, samples] cut or padded to the video's
    length) into `path` with `tags`; returns the path."""
    path = Path(path)
    if frames.ndim != 4 or frames.shape[0] == 0 or frames.shape[-1] < 3:
        raise InputError(f"images: expected frames [N, H, W, 3] with N >= 1, got {tuple(frames.shape)}.")
    frames = _even_frames(frames)
    rate = frame_rate(fps)
    audio = None
    if waveform is not None:
        audio = aac_channels(trimmed_audio(waveform, sample_rate, len(frames), fps))
    partial = partial_path(path)
    try:
        with av.open(str(partial), "w", format="mp4", options=_MP4_OPTIONS) as container:
            container.metadata.update(tags or {})
            video = add_h264_stream(container, rate, frames.shape[2], frames.shape[1], crf=crf)
            sound = None
            if audio is not None:
                sound = container.add_stream("aac", rate=sample_rate, layout=audio_layout(audio.shape[0]))
            encode_h264(container, video, frames)
            if sound is not None and audio.shape[1]:
                chunk = av.AudioFrame.from_ndarray(audio.contiguous().numpy(), format="fltp",
                                                   layout=audio_layout(audio.shape[0]))
                chunk.sample_rate, chunk.pts = sample_rate, 0
                container.mux(sound.encode(chunk))
                container.mux(sound.encode(None))
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def _open_video(path: Path) -> av.container.InputContainer:
    """An existing media file with a video stream, opened for reading."""
    if not path.is_file():
        raise InputError(f"video_file: {str(path)!r} does not exist (moved or deleted since it was "
                         "rendered?); run the sampler again to make it.")
    container = av.open(str(path))
    if not container.streams.video:
        container.close()
        raise InputError(f"video_file: {str(path)!r} holds no video stream.")
    return container


def copy_mp4(source: Path | str, path: Path | str, *, tags: Mapping[str, str] | None = None) -> Path:
    """Copy the streams of a finished MP4 into `path` without re-encoding, adding `tags` to the source's;
    returns the path."""
    path, tags = Path(path), dict(tags or {})
    partial = partial_path(path)
    try:
        with _open_video(Path(source)) as original, \
                av.open(str(partial), "w", format="mp4", options=_MP4_OPTIONS) as copy:
            copy.metadata.update(original.metadata | tags)
            streams = [s for s in original.streams if s.type in ("video", "audio")]
            targets = {s.index: copy.add_stream_from_template(s) for s in streams}
            video = original.streams.video[0]
            copied = 0
            for packet in original.demux(streams):
                if packet.dts is None:  # the demuxer's end-of-stream marker
                    continue
                copied += packet.stream is video
                packet.stream = targets[packet.stream.index]
                copy.mux(packet)
            if copied < video.frames:  # the index lists frames whose data is missing
                raise InputError(f"video_file: {str(source)!r} is cut short ({copied} of {video.frames} "
                                 "frames readable); delete it and render again.")
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def video_size(path: Path | str) -> tuple[int, int]:
    """(width, height) of the first video stream of a file."""
    with _open_video(Path(path)) as container:
        context = container.streams.video[0].codec_context
        return context.width, context.height


def copy_packets(source: av.container.InputContainer, stream: av.video.stream.VideoStream,
                 output: av.container.OutputContainer, target: av.stream.Stream, offset: int) -> int:
    """Remux every packet of `stream` into `target` of `output`, its timestamps shifted by `offset` (in the
    stream's time base), without decoding; returns the number of packets copied."""
    copied = 0
    for packet in source.demux(stream):
        if packet.dts is None:  # the demuxer's end-of-stream marker
            continue
        packet.pts += offset
        packet.dts += offset
        packet.stream = target
        output.mux(packet)
        copied += 1
    return copied
