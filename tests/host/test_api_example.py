"""scripts/api_example.py without a server: uploaded names go to the right loader nodes in node-id order,
--set overrides, and the saved videos are found in a history entry."""

import json

import pytest

from scripts.api_example import ComfyUIError, apply_settings, fill_inputs, saved_videos
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
