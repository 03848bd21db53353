"""Live output: while a streamed render runs, its HLS playlist lists exactly the finished windows, every
listed segment decodes and continues the one before, ENDLIST appears only at the end; a resumed render
continues the playlist; the segments hold the same pictures as the final MP4."""

from __future__ import annotations

from pathlib import Path

import av
import pytest
import torch
from sampler_fixtures import RecordingModel, make_audio, make_picture, make_settings, make_text, make_vae

from magicinfinite_core.errors import Interrupted
from magicinfinite_core.sampling import stream_video
from magicinfinite_core.sampling.live import ENDLIST, TIMESTAMP_OFFSET_S

# 17-frame windows with 5 motion frames: 45 frames are windows of 17, 12, 12 and 4 new frames.
SETTINGS = make_settings(width=32, height=32, window_frames=17, motion_frames=5)
NEW_FRAMES = [17, 12, 12, 4]


def parse_playlist(path: Path) -> tuple[list[tuple[str, float]], bool]:
    """(segment uri, duration) in order and whether the playlist is ended; checks the header HLS needs."""
    lines = path.read_text().splitlines()
    assert lines[0] == "#EXTM3U" and "#EXT-X-PLAYLIST-TYPE:EVENT" in lines
    target = int(next(line for line in lines if line.startswith("#EXT-X-TARGETDURATION:")).split(":")[1])
    segments = []
    for tag, uri in zip(lines, lines[1:], strict=False):
        if tag.startswith("#EXTINF:"):
            duration = float(tag[len("#EXTINF:"):].rstrip(","))
            assert round(duration) <= target and not uri.startswith("#")
            segments.append((uri, duration))
    ended = ENDLIST in lines
    assert not ended or lines[-1] == ENDLIST
    return segments, ended


def decode_segment(path: Path) -> tuple[torch.Tensor, float, int]:
    """(frames [n, H, W, 3] uint8, start time of the first frame in s, audio samples) of one segment."""
    with av.open(str(path)) as container:
        pictures = list(container.decode(video=0))
    with av.open(str(path)) as container:
        samples = sum(frame.samples for frame in container.decode(audio=0))
    frames = torch.stack([torch.from_numpy(p.to_ndarray(format="rgb24")) for p in pictures])
    return frames, float(pictures[0].time), samples


def check_playlist(playlist: Path, finished_windows: int, *, ended: bool) -> torch.Tensor:
    """Assert the playlist lists the first `finished_windows` windows, playable back to back; returns their
    frames."""
    segments, is_ended = parse_playlist(playlist)
    assert is_ended == ended and len(segments) == finished_windows
    frames, start = [], 0
    for (uri, duration), new_frames in zip(segments, NEW_FRAMES, strict=False):
        pictures, first_time, samples = decode_segment(playlist.parent / uri)
        assert len(pictures) == new_frames and duration == pytest.approx(new_frames / 25)
        # continues the previous segment
        assert first_time == pytest.approx(TIMESTAMP_OFFSET_S + start / 25, abs=1e-4)
        assert samples >= round(new_frames / 25 * 16000)  # the window's sound is in its segment
        frames.append(pictures)
        start += new_frames
    return torch.cat(frames) if frames else torch.zeros(0)


def render(directory: Path, callback=None, prefix: str = "live/talk"):
    return stream_video(RecordingModel(), make_vae(), make_picture(), make_audio(45), make_text(), SETTINGS,
                        directory=directory, filename_prefix=prefix, live=True, callback=callback, crf=18)


def mp4_frames(path: Path) -> torch.Tensor:
    with av.open(str(path)) as container:
        pictures = container.decode(video=0)
        return torch.stack([torch.from_numpy(p.to_ndarray(format="rgb24")) for p in pictures])


def test_the_playlist_lists_each_finished_window_and_ends_only_when_the_video_is_done(tmp_path: Path) -> None:
    playlist = tmp_path / "live" / "talk.m3u8"
    seen = []

    def after_each_window(progress) -> None:
        if progress.step == 0 and progress.window > 0:  # window - 1 has just been published
            check_playlist(playlist, progress.window, ended=False)
            seen.append(progress.window)

    result = render(tmp_path, after_each_window)
    assert seen == [1, 2, 3]
    frames = check_playlist(playlist, 4, ended=True)
    assert torch.equal(frames, mp4_frames(result.path))  # the same H.264 pictures, not a second encode
    segments, _ = parse_playlist(playlist)
    assert segments[0][0] == f"{result.path.stem}.hls/000000.ts"  # relative to the playlist's folder


def cancel_in_window_2(progress) -> None:
    if progress.window == 2:
        raise Interrupted("stop")


def test_a_resumed_render_continues_the_playlist(tmp_path: Path) -> None:
    with pytest.raises(Interrupted):
        render(tmp_path, cancel_in_window_2)
    playlist = tmp_path / "live" / "talk.m3u8"
    first_two = check_playlist(playlist, 2, ended=False)  # still open, nothing half-written listed
    assert not list((tmp_path / "live").glob("**/*.tmp"))
    made_again = []
    result = render(tmp_path, lambda progress: made_again.append(progress.window))
    assert set(made_again) == {2, 3}
    frames = check_playlist(playlist, 4, ended=True)
    assert torch.equal(frames[: len(first_two)], first_two)
    assert torch.equal(frames, mp4_frames(result.path))


def test_a_resume_remakes_segments_that_went_missing_from_the_mp4_parts(tmp_path: Path) -> None:
    with pytest.raises(Interrupted):
        render(tmp_path, cancel_in_window_2)
    (segment,) = (tmp_path / "live").glob("*.hls/000001.ts")
    segment.unlink()
    result = render(tmp_path)
    frames = check_playlist(tmp_path / "live" / "talk.m3u8", 4, ended=True)
    assert torch.equal(frames, mp4_frames(result.path))


def test_a_finished_render_asked_again_publishes_its_ended_playlist(tmp_path: Path) -> None:
    result = render(tmp_path)
    playlist = tmp_path / "live" / "talk.m3u8"
    playlist.write_text("#EXTM3U\n#EXT-X-PLAYLIST-TYPE:EVENT\n#EXT-X-TARGETDURATION:1\n")  # another render's
    again = render(tmp_path, lambda progress: pytest.fail("nothing is sampled again"))
    assert again.path == result.path
    assert torch.equal(check_playlist(playlist, 4, ended=True), mp4_frames(result.path))


def test_a_finished_render_that_was_not_live_leaves_no_other_renders_playlist(tmp_path: Path) -> None:
    plain = stream_video(RecordingModel(), make_vae(), make_picture(), make_audio(45), make_text(), SETTINGS,
                         directory=tmp_path, filename_prefix="live/talk")
    playlist = tmp_path / "live" / "talk.m3u8"
    playlist.write_text("#EXTM3U\n")
    again = render(tmp_path)
    assert again.path == plain.path and not playlist.exists()


def test_a_live_start_finished_as_a_plain_file_publishes_no_partial_playlist(tmp_path: Path) -> None:
    with pytest.raises(Interrupted):
        render(tmp_path, cancel_in_window_2)
    finished = stream_video(RecordingModel(), make_vae(), make_picture(), make_audio(45), make_text(),
                            SETTINGS, directory=tmp_path, filename_prefix="live/talk")  # resumed, not live
    again = render(tmp_path)
    assert again.path == finished.path and not (tmp_path / "live" / "talk.m3u8").exists()
