"""Live output: an HLS EVENT playlist of a streamed render's finished windows, playable while it runs.

Why HLS rather than a fragmented MP4 kept under `.partial`: a playlist is a complete, valid description of
what is finished at every moment (players and HTTP clients re-read it and fetch only new segments), it says
"more to come" and "done" in the format itself (`#EXT-X-PLAYLIST-TYPE:EVENT`, `#EXT-X-ENDLIST` only at the
end), each segment is a small file written once and never touched again, and a resumed render simply lists
more segments. A growing fragmented MP4 must be re-downloaded or range-requested by hand, is not playable by
browsers while it grows, and would have to be rewritten to continue after a crash.

For the render `<prefix>_<hash>.mp4` (see `stream_video`) the files are
    <prefix>.m3u8                    the playlist of the render last started under this prefix (a name an
                                     API client knows before the render starts)
    <prefix>_<hash>.hls/000000.ts    window 0's new frames and their audio, MPEG-TS
Each segment is the MP4 sink's H.264 segment of that window remuxed (no second encode) with the window's
audio (AAC), its timestamps continuing the video, so the segments play back to back. Segments are written
under a temporary name and renamed; the playlist is rewritten atomically after every finished window.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import torch

from magicinfinite_core.sampling.resume import ResumeStore
from magicinfinite_core.sampling.sinks import Mp4Sink, VideoResult
from magicinfinite_core.video_file import audio_layout, copy_packets

PLAYLIST_SUFFIX = ".m3u8"
SEGMENTS_SUFFIX = ".hls"
SEGMENT_SUFFIX = ".ts"
ENDLIST = "#EXT-X-ENDLIST"
_SEGMENT_NAME = re.compile(r"^(\d{6})\.ts$")
# Every segment's timestamps start this late: AAC's priming samples come before a segment's first sample,
# and MPEG-TS would otherwise shift the first segment alone to keep them non-negative.
TIMESTAMP_OFFSET_S = 1


def playlist_path(directory: Path, filename_prefix: str) -> Path:
    return Path(directory) / f"{filename_prefix}{PLAYLIST_SUFFIX}"


def segments_folder(video: Path) -> Path:
    """Where the live segments of the render whose MP4 is `video` go."""
    return video.with_name(video.stem + SEGMENTS_SUFFIX)


@dataclass(frozen=True)
class Segment:
    uri: str  # relative to the playlist
    num_frames: int


def render_playlist(segments: list[Segment], fps: float, target_duration: int, *, ended: bool) -> str:
    """An HLS (RFC 8216, version 3) EVENT media playlist: segments are only ever added."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-PLAYLIST-TYPE:EVENT",
             f"#EXT-X-TARGETDURATION:{target_duration}", "#EXT-X-MEDIA-SEQUENCE:0",
             "#EXT-X-INDEPENDENT-SEGMENTS"]
    for segment in segments:
        lines += [f"#EXTINF:{segment.num_frames / fps:.6f},", segment.uri]
    if ended:
        lines.append(ENDLIST)
    return "\n".join(lines) + "\n"


def write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def count_frames(path: Path) -> int:
    """Video packets (one per frame: the segments have no B-frames) of a media file, without decoding."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return sum(packet.dts is not None for packet in container.demux(stream))


def write_segment(video: Path, target: Path, *, first_frame: int, rate: Fraction, audio: torch.Tensor,
                  sample_rate: int, first_sample: int) -> None:
    """Remux the H.264 stream of `video` into MPEG-TS at `target`, shifted to start at `first_frame`, with
    `audio` [channels, samples] (starting at sample `first_sample` of the video's sound) encoded as AAC."""
    temporary = target.with_name(target.name + ".tmp")
    with av.open(str(video)) as source, av.open(str(temporary), "w", format="mpegts") as output:
        stream = source.streams.video[0]
        copy = output.add_stream_from_template(stream)
        sound = None
        if audio.shape[1]:
            sound = output.add_stream("aac", rate=sample_rate, layout=audio_layout(audio.shape[0]))
        offset = round((Fraction(first_frame) / rate + TIMESTAMP_OFFSET_S) / stream.time_base)
        copy_packets(source, stream, output, copy, offset)
        if sound is not None:
            chunk = av.AudioFrame.from_ndarray(audio.contiguous().numpy(), format="fltp",
                                               layout=audio_layout(audio.shape[0]))
            chunk.sample_rate, chunk.pts = sample_rate, first_sample + TIMESTAMP_OFFSET_S * sample_rate
            output.mux(sound.encode(chunk))
            output.mux(sound.encode(None))
    os.replace(temporary, target)


class LiveSink:
    """An `Mp4Sink` that also publishes every finished window as an HLS segment (see the module docstring).

    `max_segment_frames` is the most new frames a window hands over (the first window's length, or the
    video's if shorter): the playlist's target duration, which must not change while it grows, is set
    from it.
    """

    def __init__(self, inner: Mp4Sink, playlist: Path, *, max_segment_frames: int):
        self.inner = inner
        self.playlist = Path(playlist)
        self.folder = segments_folder(inner.path)
        self.target_duration = max(1, math.ceil(max_segment_frames / inner.fps))
        self._segments: list[Segment] = []
        self._frames_done = 0

    @property
    def resume_store(self) -> ResumeStore:
        return self.inner.resume_store

    def _segment_path(self, window_index: int) -> Path:
        return self.folder / f"{window_index:06d}{SEGMENT_SUFFIX}"

    def _uri(self, window_index: int) -> str:
        return os.path.relpath(self._segment_path(window_index), self.playlist.parent).replace(os.sep, "/")

    def _publish(self, *, ended: bool = False) -> None:
        write_atomically(self.playlist, render_playlist(self._segments, self.inner.fps, self.target_duration,
                                                        ended=ended))

    def _add(self, window_index: int) -> None:
        """Publish window `window_index` from the MP4 sink's finished segment."""
        inner = self.inner
        source = inner.segment_path(window_index)
        num_frames = count_frames(source)
        first, last = self._frames_done, self._frames_done + num_frames
        first_sample = round(first * inner.sample_rate / inner.fps)
        until = round(last * inner.sample_rate / inner.fps)
        write_segment(source, self._segment_path(window_index), first_frame=first, rate=inner.rate,
                      audio=inner.waveform[:, first_sample:until], sample_rate=inner.sample_rate,
                      first_sample=first_sample)
        self._segments.append(Segment(self._uri(window_index), num_frames))
        self._frames_done = last

    def start(self, windows_done: int) -> None:
        """Continue the playlist of a resumed render: its finished windows are listed again (their segments
        made again from the MP4 sink's parts where missing), later ones dropped."""
        self.inner.start(windows_done)
        self.folder.mkdir(parents=True, exist_ok=True)
        for path in self.folder.iterdir():
            found = _SEGMENT_NAME.match(path.name)
            if found is None or int(found[1]) >= windows_done:  # half written, or to be made again
                path.unlink()
        self._segments, self._frames_done = [], 0
        for index in range(windows_done):
            if self._segment_path(index).is_file():
                num_frames = count_frames(self.inner.segment_path(index))
                self._segments.append(Segment(self._uri(index), num_frames))
                self._frames_done += num_frames
            else:
                self._add(index)
        self._publish()

    def write(self, window_index: int, frames: torch.Tensor) -> None:
        self.inner.write(window_index, frames)
        self._add(window_index)
        self._publish()

    def finish(self) -> VideoResult:
        result = self.inner.finish()
        self._publish(ended=True)
        return result

    def abort(self) -> None:
        # The playlist keeps the finished windows and stays open (no ENDLIST): a resume continues it.
        self.inner.abort()
        for temporary in self.folder.glob("*.tmp") if self.folder.is_dir() else ():
            temporary.unlink(missing_ok=True)


def publish_finished(playlist: Path, video: Path, fps: float, num_frames: int) -> None:
    """A render found finished (nothing to sample): list its segments, ended, if it was rendered live to the
    end; else remove a playlist of another render so no client follows the wrong video."""
    folder = segments_folder(video)
    segments = sorted(p for p in folder.iterdir() if _SEGMENT_NAME.match(p.name)) if folder.is_dir() else []
    listed = [Segment(os.path.relpath(path, playlist.parent).replace(os.sep, "/"), count_frames(path))
              for path in segments]
    if sum(segment.num_frames for segment in listed) != num_frames:  # not live, or only part of it
        playlist.unlink(missing_ok=True)
        return
    target = max(1, max(math.ceil(segment.num_frames / fps) for segment in listed))
    write_atomically(playlist, render_playlist(listed, fps, target, ended=True))
