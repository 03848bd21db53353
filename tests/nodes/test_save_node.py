"""MagicInfiniteSaveVideo: an output node that writes an MP4 (frames + audio, or a streamed file copied as it
is) into the output folder with the workflow embedded, shows it in the UI, and never leaves a partial file
that looks finished."""

import json
from fractions import Fraction
from types import SimpleNamespace

import av
import pytest
import torch

import magicinfinite_core.video_file as video_file
from magicinfinite_core.errors import InputError
from nodes import host
from nodes.save import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS, MagicInfiniteSaveVideo

PROMPT = {"3": {"class_type": "MagicInfiniteSaveVideo", "inputs": {"filename_prefix": "x"}}}
WORKFLOW = {"nodes": [{"id": 3, "type": "MagicInfiniteSaveVideo"}], "links": [], "version": 0.4}


def frames(count: int, height: int = 32, width: int = 48) -> torch.Tensor:
    """Frames whose brightness ramps, so frame order and count can be read back."""
    ramp = torch.linspace(0.1, 0.9, count).view(count, 1, 1, 1)
    return ramp.expand(count, height, width, 3).clone()


def tone(seconds: float, sample_rate: int = 16000, channels: int = 1) -> dict:
    t = torch.arange(int(seconds * sample_rate)) / sample_rate
    wave = 0.3 * torch.sin(2 * torch.pi * 440 * t)
    return {"waveform": wave.expand(1, channels, -1).clone(), "sample_rate": sample_rate}


def probe(path) -> dict:
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        audio = container.streams.audio[0] if container.streams.audio else None
        decoded = list(container.decode(video=0))
        return {
            "frames": len(decoded),
            "rate": video.average_rate,
            "size": (video.codec_context.width, video.codec_context.height),
            "codec": video.codec_context.name,
            "audio_codec": audio.codec_context.name if audio else None,
            "audio_seconds": float(audio.duration * audio.time_base) if audio else None,
            "tags": dict(container.metadata),
            "first_mean": decoded[0].to_ndarray(format="rgb24").mean() / 255,
            "last_mean": decoded[-1].to_ndarray(format="rgb24").mean() / 255,
        }


@pytest.fixture
def output(tmp_path, monkeypatch):
    """Without ComfyUI the output folder is ./output (also when another test put ComfyUI on sys.path)."""
    monkeypatch.setattr(host, "folder_paths", None)
    monkeypatch.chdir(tmp_path)
    return tmp_path / "output"


def save(**inputs):
    defaults = {"filename_prefix": "MagicInfinite/video", "fps": 25.0, "prompt": PROMPT,
                "extra_pnginfo": {"workflow": WORKFLOW}}
    return MagicInfiniteSaveVideo().save(**(defaults | inputs))


def test_declared_as_an_output_node_with_hidden_prompt_and_tooltips() -> None:
    assert NODE_CLASS_MAPPINGS["MagicInfiniteSaveVideo"] is MagicInfiniteSaveVideo
    assert "MagicInfiniteSaveVideo" in NODE_DISPLAY_NAME_MAPPINGS
    assert MagicInfiniteSaveVideo.OUTPUT_NODE is True
    assert MagicInfiniteSaveVideo.CATEGORY.startswith("MagicInfinite/")
    spec = MagicInfiniteSaveVideo.INPUT_TYPES()
    assert spec["hidden"] == {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"}
    for name, (_, options) in {**spec["required"], **spec["optional"]}.items():
        assert options.get("tooltip"), name
    assert spec["optional"]["video_file"][1]["forceInput"] is True


def test_frames_and_audio_become_an_h264_aac_mp4_shown_in_the_ui(output) -> None:
    result = save(images=frames(30), audio=tone(2.0), fps=25.0)
    assert result["result"] == ()
    assert result["ui"] == {"images": [{"filename": "video_00001_.mp4", "subfolder": "MagicInfinite",
                                        "type": "output"}], "animated": (True,)}
    info = probe(output / "MagicInfinite" / "video_00001_.mp4")
    assert info["frames"] == 30 and info["rate"] == 25 and info["size"] == (48, 32)
    assert (info["codec"], info["audio_codec"]) == ("h264", "aac")
    # audio cut to the video's 1.2 s (AAC may pad up to one 1024-sample frame)
    assert 1.2 <= info["audio_seconds"] <= 1.2 + 1024 / 16000 + 1e-6
    assert info["first_mean"] < 0.2 and info["last_mean"] > 0.8  # order kept


def test_the_prompt_and_the_workflow_are_embedded_as_json_tags(output) -> None:
    save(images=frames(3))
    tags = probe(output / "MagicInfinite" / "video_00001_.mp4")["tags"]
    assert json.loads(tags["prompt"]) == PROMPT
    assert json.loads(tags["workflow"]) == WORKFLOW


def test_comfyuis_disable_metadata_flag_leaves_the_workflow_out(output, monkeypatch) -> None:
    monkeypatch.setattr(host, "cli_args", SimpleNamespace(disable_metadata=True))
    save(images=frames(2))
    tags = probe(output / "MagicInfinite" / "video_00001_.mp4")["tags"]
    assert "prompt" not in tags and "workflow" not in tags


def test_each_save_takes_the_next_counter_and_never_overwrites(output) -> None:
    names = [save(images=frames(2), filename_prefix="clip")["ui"]["images"][0]["filename"] for _ in range(3)]
    assert names == ["clip_00001_.mp4", "clip_00002_.mp4", "clip_00003_.mp4"]
    assert sorted(p.name for p in output.iterdir()) == names


def test_without_audio_the_video_has_no_audio_track_and_odd_sizes_lose_one_pixel(output) -> None:
    save(images=frames(5, height=33, width=47), fps=12.5)
    info = probe(output / "MagicInfinite" / "video_00001_.mp4")
    assert info["audio_codec"] is None
    assert info["size"] == (46, 32) and info["rate"] == Fraction(25, 2) and info["frames"] == 5


@pytest.mark.parametrize(("fps", "rate"),
                         [(30000 / 1001, Fraction(30000, 1001)), (29.97, Fraction(2997, 100))])
def test_fractional_rates_are_written_exactly(output, fps, rate) -> None:
    save(images=frames(4), fps=fps)
    assert probe(output / "MagicInfinite" / "video_00001_.mp4")["rate"] == rate


def test_a_streamed_file_is_copied_without_re_encoding_and_gets_the_workflow(output) -> None:
    streamed = output / "render" / "MagicInfinite_abc.mp4"
    streamed.parent.mkdir(parents=True)
    video_file.write_mp4(streamed, frames(20), 25.0, **{"waveform": tone(1.0)["waveform"][0],
                                                       "sample_rate": 16000})
    result = save(video_file=str(streamed), images=frames(1), filename_prefix="long/talk", fps=10.0)
    saved = output / "long" / "talk_00001_.mp4"
    assert result["ui"]["images"] == [{"filename": saved.name, "subfolder": "long", "type": "output"}]

    def packets(path):
        with av.open(str(path)) as container:
            return [(p.stream.type, bytes(p), p.pts) for p in container.demux() if p.dts is not None]

    assert packets(saved) == packets(streamed)  # the same coded bytes: nothing re-encoded
    info = probe(saved)
    assert info["frames"] == 20 and info["rate"] == 25 and info["audio_codec"] == "aac"
    assert json.loads(info["tags"]["workflow"]) == WORKFLOW
    assert streamed.is_file()  # the sampler's file stays where its resume state expects it


def test_a_missing_streamed_file_is_a_clear_error(output) -> None:
    with pytest.raises(InputError, match="does not exist"):
        save(video_file=str(output / "gone.mp4"))


def test_nothing_connected_is_a_clear_error(output) -> None:
    with pytest.raises(InputError, match="connect the sampler's frames"):
        save()


def test_a_prefix_leading_outside_the_output_folder_is_refused(output) -> None:
    with pytest.raises(InputError, match="outside the output folder"):
        save(images=frames(2), filename_prefix="../escape/video")


def test_a_save_that_fails_midway_leaves_no_file_that_looks_finished(output, monkeypatch) -> None:
    real = av.VideoFrame.from_ndarray
    calls = []

    def failing(array, format):  # noqa: A002  (PyAV's keyword)
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("disk full")
        return real(array, format=format)

    monkeypatch.setattr(av.VideoFrame, "from_ndarray", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        save(images=frames(6), audio=tone(1.0))
    assert list((output / "MagicInfinite").iterdir()) == []


def test_a_broken_streamed_file_leaves_no_copy(output) -> None:
    output.mkdir()
    broken = output / "broken.mp4"
    video_file.write_mp4(broken, frames(10), 25.0)
    broken.write_bytes(broken.read_bytes()[: broken.stat().st_size // 2])
    with pytest.raises(InputError, match="cut short"):
        save(video_file=str(broken))
    saved = output / "MagicInfinite"
    assert not saved.exists() or list(saved.iterdir()) == []


REFUSED = ("video_file: only a video in ComfyUI's output or temp folder can be saved; connect the "
           "MagicInfinite Sampler's 'file' output (with output = file), or the path of a video rendered into "
           "the output folder.")


def test_a_rendered_file_in_the_temp_folder_or_named_relative_to_the_output_folder_is_taken(output) -> None:
    for rendered in (output / "MagicInfinite" / "talk_abc.mp4", output.parent / "temp" / "preview.mp4"):
        rendered.parent.mkdir(parents=True, exist_ok=True)
        video_file.write_mp4(rendered, frames(3), 25.0)
    save(video_file="MagicInfinite/talk_abc.mp4", filename_prefix="a")
    save(video_file=str(output.parent / "temp" / "preview.mp4"), filename_prefix="b")
    assert probe(output / "a_00001_.mp4")["frames"] == probe(output / "b_00001_.mp4")["frames"] == 3


@pytest.mark.parametrize("where", ["elsewhere", "dot-dot", "sibling folder", "link pointing out",
                                   "relative dot-dot", "missing elsewhere"])
def test_a_file_outside_the_output_and_temp_folders_is_refused_and_its_existence_not_told(output, tmp_path,
                                                                                        where) -> None:
    secret = tmp_path / "private" / "secret.mp4"
    secret.parent.mkdir()
    video_file.write_mp4(secret, frames(3), 25.0)
    (output / "render").mkdir(parents=True)
    evil = tmp_path / "output_evil" / "clip.mp4"  # shares the output folder's name as a prefix
    evil.parent.mkdir()
    video_file.write_mp4(evil, frames(3), 25.0)
    (output / "render" / "link.mp4").symlink_to(secret)
    given = {
        "elsewhere": str(secret),
        "dot-dot": f"{output}/render/../../private/secret.mp4",
        "sibling folder": str(evil),
        "link pointing out": str(output / "render" / "link.mp4"),
        "relative dot-dot": "../private/secret.mp4",
        "missing elsewhere": str(tmp_path / "private" / "no_such.mp4"),
    }[where]
    with pytest.raises(InputError) as refused:
        save(video_file=given)
    assert str(refused.value) == REFUSED  # the same words for every path: nothing told about it
    assert sorted(p.name for p in output.rglob("*")) == ["link.mp4", "render"]  # nothing copied in
