"""scripts/api_example.py without a server: uploaded names go to the right loader nodes in node-id order,
--set overrides, and the saved videos are found in a history entry."""

import json

import pytest

from scripts.api_example import (
    ComfyUIError,
    apply_settings,
    fill_inputs,
    follow_live,
    make_live,
    read_playlist,
    saved_videos,
)
from tests.workflows.validate import ROOT

TWO_SPEAKERS = json.loads((ROOT / "workflows" / "api" / "magicinfinite_two_speakers_masks.json").read_text())


def test_uploads_fill_the_loader_nodes_in_node_id_order_and_leave_the_original_alone() -> None:
    prompt = {"10": {"class_type": "LoadAudio", "inputs": {"audio": "x"}},
              "2": {"class_type": "LoadAudio", "inputs": {"audio": "y"}},
              "3": {"class_type": "LoadImage", "inputs": {"image": "z"}}}
    filled = fill_inputs(prompt, {"LoadAudio": ["first.wav", "second.wav"], "LoadImage": ["me.png"]})
    assert filled["2"]["inputs"]["audio"] == "first.wav" and filled["10"]["inputs"]["audio"] == "second.wav"
    assert filled["3"]["inputs"]["image"] == "me.png"
    assert prompt["2"]["inputs"]["audio"] == "y"


def test_the_two_speaker_workflow_takes_a_picture_two_masks_and_two_voices() -> None:
    filled = fill_inputs(TWO_SPEAKERS, {"LoadImage": ["both.png"], "LoadImageMask": ["l.png", "r.png"],
                                        "LoadAudio": ["a.wav", "b.wav"]})
    files = {node["_meta"]["title"]: next(iter(node["inputs"].values())) for node in filled.values()
             if node["class_type"].startswith("Load")}
    assert files == {"Picture of both speakers": "both.png", "Speaker 1 region": "l.png",
                     "Speaker 2 region": "r.png", "Voice of speaker 1": "a.wav",
                     "Voice of speaker 2": "b.wav"}


def test_more_files_than_loader_nodes_is_an_error() -> None:
    with pytest.raises(ComfyUIError, match="3 files for LoadAudio, but the workflow has 2"):
        fill_inputs(TWO_SPEAKERS, {"LoadAudio": ["a.wav", "b.wav", "c.wav"]})


def test_settings_are_read_as_json_or_text() -> None:
    prompt = {"5": {"class_type": "X", "inputs": {}}}
    apply_settings(prompt, ["5.seed=7", "5.output=file", '5.text="7"', "5.flag=true"])
    assert prompt["5"]["inputs"] == {"seed": 7, "output": "file", "text": "7", "flag": True}
    with pytest.raises(ComfyUIError, match="NODE_ID.INPUT=VALUE"):
        apply_settings(prompt, ["99.seed=1"])


def test_saved_videos_are_read_from_every_output_node_of_a_history_entry() -> None:
    video = {"filename": "talk_00001_.mp4", "subfolder": "x", "type": "output"}
    entry = {"outputs": {"5": {"images": [{"filename": "preview.png", "subfolder": "", "type": "temp"}]},
                         "9": {"images": [video], "animated": [True]}}}
    assert saved_videos(entry) == [video]


class GrowingRender:
    """Stands in for ComfyUI's /view and /history during a live render: each playlist poll publishes one more
    segment (the first poll finds no playlist yet); once all `windows` are out the playlist is ended, unless
    the run `fails`, and the history then reports the run finished."""

    def __init__(self, windows: int, *, fails: bool = False):
        self.windows, self.fails = windows, fails
        self.polls = 0
        self.files: dict[tuple[str, str], bytes] = {}

    def history(self, prompt_id: str):
        if self.polls <= self.windows:
            return None
        status = "error" if self.fails else "success"
        messages = [["execution_error", {"node_id": "7", "node_type": "MagicInfiniteSampler",
                                         "exception_message": "out of memory"}]] if self.fails else []
        return {"status": {"status_str": status, "messages": messages}}

    def view(self, filename: str, subfolder: str = "", kind: str = "output"):
        if not filename.endswith(".m3u8"):
            return self.files.get((subfolder, filename))
        self.polls += 1
        if self.polls == 1:
            return None
        published = min(self.polls - 1, self.windows)
        lines = ["#EXTM3U", "#EXT-X-PLAYLIST-TYPE:EVENT", "#EXT-X-TARGETDURATION:2"]
        for index in range(published):
            self.files[("live/job_ab.hls", f"{index:06d}.ts")] = f"segment {index}".encode()
            lines += ["#EXTINF:1.0,", f"job_ab.hls/{index:06d}.ts"]
        if published == self.windows and not self.fails:
            lines.append("#EXT-X-ENDLIST")
        return "\n".join(lines).encode()


def test_follow_live_mirrors_each_segment_once_and_stops_at_the_end_of_the_playlist(tmp_path) -> None:
    reports = []
    local = follow_live(GrowingRender(3), "id", "live/job", tmp_path, report=reports.append, poll_s=0)
    assert local == tmp_path / "job.m3u8" and local.read_text().endswith("#EXT-X-ENDLIST")
    assert reports[1:] == [f"segment {i + 1}: job_ab.hls/{i:06d}.ts" for i in range(3)]
    assert [(tmp_path / "job_ab.hls" / f"{i:06d}.ts").read_bytes() for i in range(3)] == [
        b"segment 0", b"segment 1", b"segment 2"]


def test_follow_live_raises_the_runs_error_when_it_stops_before_the_playlist_ends(tmp_path) -> None:
    with pytest.raises(ComfyUIError, match="node 7 .MagicInfiniteSampler. failed: out of memory"):
        follow_live(GrowingRender(2, fails=True), "id", "live/job", tmp_path, report=lambda _: None, poll_s=0)
    # what was mirrored is playable: every segment the local playlist lists is there
    listed = [line for line in (tmp_path / "job.m3u8").read_text().splitlines() if not line.startswith("#")]
    assert listed and all((tmp_path / uri).is_file() for uri in listed)


def test_make_live_gives_the_sampler_live_output_under_its_own_prefix() -> None:
    prompt = {"3": {"class_type": "MagicInfiniteSampler",
                    "inputs": {"output": "frames", "filename_prefix": "x/y"}},
              "4": {"class_type": "MagicInfiniteSaveVideo", "inputs": {"images": ["3", 0], "fps": ["3", 2]}}}
    assert make_live(prompt, "0123456789") == "x/y_01234567"
    assert prompt["3"]["inputs"]["output"] == "live"
    assert prompt["4"]["inputs"]["video_file"] == ["3", 3]  # the streamed file, not its last frame
    with pytest.raises(ComfyUIError, match="one MagicInfiniteSampler node, this one has 0"):
        make_live({}, "id")


def test_read_playlist_lists_uris_in_order_and_sees_the_end() -> None:
    text = "#EXTM3U\n#EXTINF:1.2,\na/0.ts\n#EXTINF:1.0,\na/1.ts\n"
    assert read_playlist(text) == (["a/0.ts", "a/1.ts"], False)
    assert read_playlist(text + "#EXT-X-ENDLIST\n")[1]
