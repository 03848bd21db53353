"""API prompts a hostile or mistaken client can send, through a real ComfyUI (the checkout at $COMFYUI_DIR,
started on 127.0.0.1 by comfyui_server.py).

Save Video's `video_file`, a plain string in an API prompt, copies only videos inside ComfyUI's output or
temp folder: a video elsewhere (named directly, through `..`, through a link inside the output folder, or
in a sibling folder named like it) is refused with the same words whether it exists or not, nothing is
copied and /view has nothing to serve. A fifth voice linked as `audio_5`, which ComfyUI hands to the node
although it is not declared, is refused by name instead of left out of the video.

Skipped unless COMFYUI_DIR is set (failed when it is set but not a ComfyUI checkout):
COMFYUI_DIR=/path/to/ComfyUI pytest tests/host -s
"""

from __future__ import annotations

import os
import urllib.error
import urllib.parse
import urllib.request

import pytest
import torch

from magicinfinite_core.assets import SAMPLE_SPEECH_WAV
from magicinfinite_core.mini.bundle import EMBEDDED_BUNDLE_NAME
from magicinfinite_core.video_file import write_mp4
from scripts.api_example import ComfyUI, ComfyUIError, wait
from tests.host.checkout import requires_comfyui

pytestmark = requires_comfyui

REFUSED = ("node 1 (MagicInfiniteSaveVideo) failed: video_file: only a video in ComfyUI's output or temp "
           "folder can be saved; connect the MagicInfinite Sampler's 'file' output (with output = file), or "
           "the path of a video rendered into the output folder.")


@pytest.fixture(scope="module")
def server():
    from tests.host.comfyui_server import shared_server

    return shared_server()


def video(path, frames: int = 3):
    path.parent.mkdir(parents=True, exist_ok=True)
    ramp = torch.linspace(0.1, 0.9, frames).view(frames, 1, 1, 1).expand(frames, 16, 16, 3)
    return write_mp4(path, ramp, 25.0)


def save_prompt(video_file: str, prefix: str) -> dict:
    return {"1": {"class_type": "MagicInfiniteSaveVideo",
                  "inputs": {"filename_prefix": prefix, "fps": 25.0, "video_file": video_file}}}


def view_status(server, filename: str, subfolder: str) -> int:
    query = urllib.parse.urlencode({"filename": filename, "subfolder": subfolder, "type": "output"})
    try:
        with urllib.request.urlopen(f"{server.url}/view?{query}", timeout=60) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code


def test_a_rendered_video_in_the_output_folder_is_saved_and_served(server) -> None:
    rendered = video(server.output_dir / "paths" / "render_abc.mp4")
    comfy = ComfyUI(server.url)
    entry = wait(comfy, comfy.queue(save_prompt(str(rendered), "paths_ok/clip")), report=lambda _: None)
    (saved,) = entry["outputs"]["1"]["images"]
    assert saved == {"filename": "clip_00001_.mp4", "subfolder": "paths_ok", "type": "output"}
    fetched = comfy._request("/view?" + urllib.parse.urlencode(saved))
    assert fetched == (server.output_dir / "paths_ok" / "clip_00001_.mp4").read_bytes()


@pytest.mark.parametrize("where", ["elsewhere", "dot-dot", "link pointing out", "sibling folder",
                                   "missing elsewhere"])
def test_a_video_outside_the_output_and_temp_folders_is_neither_copied_nor_served(server, tmp_path,
                                                                                  where) -> None:
    secret = video(tmp_path / "private" / "secret.mp4")
    evil = video(server.base_dir / "output_evil" / "clip.mp4")  # beside output/, named like it
    link = server.output_dir / f"links_{where.replace(' ', '_')}" / "clip.mp4"
    link.parent.mkdir()
    link.symlink_to(secret)
    given = {
        "elsewhere": str(secret),
        # From inside the output folder up to / and down to the secret.
        "dot-dot": os.path.join(link.parent, *[".."] * (len(link.parent.parts) - 1), *secret.parts[1:]),
        "link pointing out": str(link),
        "sibling folder": str(evil),
        "missing elsewhere": str(tmp_path / "private" / "no_such.mp4"),
    }[where]
    assert os.path.isabs(given)
    prefix = f"leak_{where.replace(' ', '_')}"
    comfy = ComfyUI(server.url)
    with pytest.raises(ComfyUIError) as refused:
        wait(comfy, comfy.queue(save_prompt(given, f"{prefix}/clip")), report=lambda _: None)
    assert str(refused.value) == REFUSED  # the same words whatever the path: nothing told about it
    assert not (server.output_dir / prefix).exists()
    assert view_status(server, "clip_00001_.mp4", prefix) == 404


def test_a_fifth_voice_linked_in_an_api_prompt_is_refused_by_name(server) -> None:
    comfy = ComfyUI(server.url)
    voice = comfy.upload(SAMPLE_SPEECH_WAV)
    prompt = {
        "1": {"class_type": "LoadAudio", "inputs": {"audio": voice}},
        "2": {"class_type": "MagicInfiniteAudioEncoderLoader",
              "inputs": {"audio_encoder_name": EMBEDDED_BUNDLE_NAME}},
        "3": {"class_type": "MagicInfiniteAudioEmbed", "inputs": {
            "audio_1": ["1", 0], "audio_2": ["1", 0], "audio_5": ["1", 0], "audio_encoder": ["2", 0],
            "fps": 25.0, "mode": "para", "normalize_loudness": True}},
        "4": {"class_type": "PreviewAudio", "inputs": {"audio": ["3", 1]}},
    }
    with pytest.raises(ComfyUIError, match=(
            r"^node 3 \(MagicInfiniteAudioEmbed\) failed: audio_5: MagicInfinite Audio Embed takes at most 4 "
            r"speakers \(audio_1 to audio_4\); speaker 5 would be left out of the video, so it is refused")):
        wait(comfy, comfy.queue(prompt), report=lambda _: None)
