"""Sinks: frames in memory, or an MP4 streamed window by window with the audio muxed."""

import av
import pytest
import torch

from magicinfinite_core.sampling.sinks import MemorySink, Mp4Sink
from magicinfinite_core.video_file import trimmed_audio

FPS, RATE = 25.0, 16000


def windows_of(frames: torch.Tensor, sizes: list[int]) -> list[torch.Tensor]:
    return list(torch.split(frames, sizes))


def read_back(path) -> dict:
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        info = {"frames": sum(1 for _ in container.decode(video)), "fps": float(video.average_rate),
                "size": (video.codec_context.width, video.codec_context.height)}
    with av.open(str(path)) as container:
        info["samples"] = sum(frame.samples for frame in container.decode(audio=0))
        info["sample_rate"] = container.streams.audio[0].codec_context.sample_rate
    return info


def test_memory_sink_returns_every_frame_and_trimmed_audio() -> None:
    frames = torch.rand(10, 8, 8, 3)
    sink = MemorySink(10, FPS, torch.randn(2, 8000), RATE)
    sink.start(0)
    for index, part in enumerate(windows_of(frames, [6, 3, 1])):
        sink.write(index, part)
    result = sink.finish()
    assert torch.equal(result.frames, frames)
    assert result.waveform.shape == (2, 6400)  # 10 frames at 25 fps = 0.4 s


def test_trimmed_audio_pads_short_audio_with_silence() -> None:
    out = trimmed_audio(torch.ones(1, 100), RATE, 1, FPS)
    assert out.shape == (1, 640) and out[0, :100].eq(1).all() and out[0, 100:].eq(0).all()


def test_mp4_has_the_frame_count_fps_and_audio_duration(tmp_path) -> None:
    path = tmp_path / "talk.mp4"
    sink = Mp4Sink(path, num_frames=23, fps=FPS, waveform=torch.randn(1, 20000) * 0.1, sample_rate=RATE)
    sink.start(0)
    for index, part in enumerate(windows_of(torch.rand(23, 32, 48, 3), [17, 4, 2])):
        sink.write(index, part)
        assert not path.exists(), "no complete-looking file before the end"
    result = sink.finish()
    info = read_back(path)
    assert result.path == path and result.num_frames == 23
    assert info["frames"] == 23 and info["fps"] == FPS and info["size"] == (48, 32)
    expected = round(23 / FPS * RATE)
    assert expected <= info["samples"] <= expected + 1024  # AAC pads up to one 1024-sample frame
    assert sorted(p.name for p in tmp_path.iterdir()) == ["talk.mp4"]  # parts removed


def test_mp4_frames_survive_encoding_closely(tmp_path) -> None:
    path = tmp_path / "grey.mp4"
    frames = torch.linspace(0.2, 0.8, 5)[:, None, None, None].expand(5, 16, 16, 3).contiguous()
    sink = Mp4Sink(path, num_frames=5, fps=FPS, waveform=torch.zeros(1, 4000), sample_rate=RATE)
    sink.start(0)
    sink.write(0, frames)
    sink.finish()
    with av.open(str(path)) as container:
        decoded = torch.stack([torch.from_numpy(f.to_ndarray(format="rgb24"))
                               for f in container.decode(video=0)])
    assert (decoded.float() / 255 - frames).abs().max() < 0.03


def test_abort_leaves_no_output_but_keeps_finished_parts(tmp_path) -> None:
    path = tmp_path / "cut.mp4"
    sink = Mp4Sink(path, num_frames=30, fps=FPS, waveform=torch.zeros(1, 20000), sample_rate=RATE)
    sink.start(0)
    sink.write(0, torch.rand(17, 16, 16, 3))
    sink.abort()
    assert not path.exists() and not (tmp_path / "cut.mp4.partial").exists()
    assert [p.name for p in (tmp_path / "cut.mp4.parts").iterdir()] == ["000000.seg"]


def test_restart_drops_parts_past_the_resume_point_and_needs_the_ones_before(tmp_path) -> None:
    path = tmp_path / "again.mp4"

    def sink():
        return Mp4Sink(path, num_frames=9, fps=FPS, waveform=torch.zeros(1, 8000), sample_rate=RATE)

    first = sink()
    first.start(0)
    first.write(0, torch.rand(5, 16, 16, 3))
    first.write(1, torch.rand(2, 16, 16, 3))
    second = sink()
    second.start(1)  # the state said one window was done: part 1 is made again
    assert [p.name for p in (tmp_path / "again.mp4.parts").iterdir()] == ["000000.seg"]
    second.write(1, torch.rand(4, 16, 16, 3))
    assert second.finish().num_frames == 9
    with pytest.raises(Exception, match="missing"):
        broken = sink()
        broken.start(1)


def test_output_must_be_mp4(tmp_path) -> None:
    with pytest.raises(Exception, match=".mp4"):
        Mp4Sink(tmp_path / "x.mkv", num_frames=1, fps=FPS, waveform=torch.zeros(1, 10), sample_rate=RATE)
