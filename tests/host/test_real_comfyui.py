"""The pack inside a real ComfyUI (the checkout at $COMFYUI_DIR, started on 127.0.0.1 by comfyui_server.py):
/object_info lists our nodes as declared, ComfyUI accepts every shipped API workflow, the embedded model
runs a shipped workflow end to end through scripts/api_example.py, and tiny model files written into the
models folders are found and used, with a long-video style streamed file saved by the output node.

Skipped unless COMFYUI_DIR is set (failed when it is set but not a ComfyUI checkout):
COMFYUI_DIR=/path/to/ComfyUI pytest tests/host -s
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import wave
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save_file

from magicinfinite_core.assets import SAMPLE_PORTRAIT_PNG, SAMPLE_SPEECH_WAV
from magicinfinite_core.mini.bundle import (
    AUDIO_ENCODER_FILE,
    DIT_FILE,
    EMBEDDED_BUNDLE_DIR,
    EMBEDDED_BUNDLE_NAME,
)
from magicinfinite_core.video_file import write_mp4
from nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
from scripts.api_example import ComfyUI, ComfyUIError, saved_videos, wait
from tests.host.checkout import requires_comfyui
from tests.workflows import validate

pytestmark = requires_comfyui

ROOT = Path(__file__).resolve().parents[2]
API_WORKFLOWS = ROOT / "workflows" / "api"
EMBEDDED_DEMO = API_WORKFLOWS / "magicinfinite_embedded_demo.json"
VOICE_SECONDS = 1.3  # one window of the embedded model (33 frames at 25 fps)
LOADERS = {"MagicInfiniteModelLoader", "MagicInfiniteAudioEncoderLoader", "CLIPLoader", "CLIPVisionLoader",
           "VAELoader", "UNETLoader", "ModelPatchLoader", "LoraLoaderModelOnly", "AudioEncoderLoader"}


@pytest.fixture(scope="module")
def server():
    from tests.host.comfyui_server import shared_server

    return shared_server()


@pytest.fixture(scope="module")
def short_voice(tmp_path_factory) -> tuple[Path, int]:
    """The first VOICE_SECONDS of the sample voice as a WAV file, and the video frames it makes at 25 fps."""
    path = tmp_path_factory.mktemp("voice") / "short_voice.wav"
    with wave.open(str(SAMPLE_SPEECH_WAV)) as source, wave.open(str(path), "wb") as target:
        target.setparams(source.getparams())
        samples = round(VOICE_SECONDS * source.getframerate())
        target.writeframes(source.readframes(samples))
        frames = int(samples / source.getframerate() * 25)
    return path, frames


def probe(path: Path) -> dict:
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        audio = container.streams.audio
        return {"frames": sum(1 for _ in container.decode(video=0)), "fps": video.average_rate,
                "size": (video.codec_context.width, video.codec_context.height),
                "audio": audio[0].codec_context.name if audio else None,
                "audio_seconds": float(audio[0].duration * audio[0].time_base) if audio else 0.0,
                "tags": dict(container.metadata)}


def test_object_info_lists_our_nodes_with_the_declared_inputs_and_outputs(server) -> None:
    info = server.get_json("/object_info")
    assert len(info) > 500  # ComfyUI's own nodes loaded too: the pack did not break the others
    for name, cls in NODE_CLASS_MAPPINGS.items():
        live, declared = info[name], cls.INPUT_TYPES()
        assert live["display_name"] == NODE_DISPLAY_NAME_MAPPINGS[name]
        assert live["category"] == cls.CATEGORY
        assert live["output"] == list(cls.RETURN_TYPES)
        assert live["output_node"] == bool(getattr(cls, "OUTPUT_NODE", False))
        assert live["input_order"] == {section: list(inputs) for section, inputs in declared.items()}
        ordered = validate.ordered_inputs({"input": declared, "input_order": live["input_order"]})
        for section, name_, spec in ordered:
            live_spec = live["input"][section][name_]
            assert validate.kind(live_spec) == validate.kind(spec), f"{name}.{name_}"
            assert validate.options(live_spec).get("tooltip") == validate.options(spec)["tooltip"]
            if validate.kind(spec) == "COMBO" and (name, name_) not in validate.OUR_FILE_INPUTS:
                assert validate.choices(live_spec) == validate.choices(spec), f"{name}.{name_}"
    assert info["MagicInfiniteSaveVideo"]["input"]["hidden"] == {"prompt": "PROMPT",
                                                                  "extra_pnginfo": "EXTRA_PNGINFO"}


def test_the_ui_workflows_are_offered_as_templates(server) -> None:
    from tests.host.comfyui_server import PACK_NAME

    ui_files = sorted((ROOT / "workflows").glob("*.json"))
    assert sorted(server.get_json("/workflow_templates")[PACK_NAME]) == [p.stem for p in ui_files]
    served = server.get_json(f"/api/workflow_templates/{PACK_NAME}/{ui_files[0].name}")
    assert served == json.loads(ui_files[0].read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def tiny_model_files(server) -> dict[str, str]:
    """A tiny LoRA for the embedded DiT in models/loras and a copy of the embedded wav2vec2 in
    models/audio_encoders: files of the user's own folders, as ComfyUI lists them."""
    with safe_open(str(EMBEDDED_BUNDLE_DIR / DIT_FILE), "pt") as dit:
        out_features, in_features = dit.get_slice("blocks.0.self_attn.q.weight").get_shape()
    generator = torch.Generator().manual_seed(0)
    module = "diffusion_model.blocks.0.self_attn.q"
    lora = {f"{module}.lora_A.weight": torch.randn(4, in_features, generator=generator),
            f"{module}.lora_B.weight": torch.randn(out_features, 4, generator=generator)}
    (server.models_dir / "loras").mkdir(parents=True, exist_ok=True)
    save_file(lora, server.models_dir / "loras" / "tiny_lora.safetensors")
    (server.models_dir / "audio_encoders").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(EMBEDDED_BUNDLE_DIR / AUDIO_ENCODER_FILE,
                    server.models_dir / "audio_encoders" / "tiny_wav2vec2.safetensors")
    return {"lora": "tiny_lora.safetensors", "audio_encoder": "tiny_wav2vec2.safetensors"}


def test_our_loaders_list_the_models_folders_and_the_embedded_model(server, tiny_model_files) -> None:
    def choices(node: str, name: str) -> list:
        return validate.choices(server.get_json(f"/object_info/{node}")[node]["input"]["required"][name])

    assert choices("MagicInfiniteLoraSelect", "lora_name") == [tiny_model_files["lora"]]
    assert choices("MagicInfiniteAudioEncoderLoader", "audio_encoder_name") == [
        EMBEDDED_BUNDLE_NAME, tiny_model_files["audio_encoder"]]
    assert choices("MagicInfiniteModelLoader", "dit_name")[0] == EMBEDDED_BUNDLE_NAME


def _placeholder_inputs(server, short_voice: Path) -> None:
    """Real files under the names the shipped workflows load from the input folder."""
    portrait = Image.open(SAMPLE_PORTRAIT_PNG).convert("RGB")
    for name in ("portrait.png", "two_speakers.png"):
        portrait.save(server.input_dir / name)
    for index, name in enumerate(("speaker1_mask.png", "speaker2_mask.png")):
        mask = np.zeros((portrait.height, portrait.width), np.uint8)
        mask[:, index * portrait.width // 2:(index + 1) * portrait.width // 2] = 255
        Image.fromarray(mask).convert("RGB").save(server.input_dir / name)
    for name in ("speech.wav", "new_speech.wav", "speaker1.wav", "speaker2.wav", "long_speech.wav"):
        shutil.copyfile(short_voice, server.input_dir / name)
    write_mp4(server.input_dir / "source.mp4", torch.rand(8, 64, 64, 3), 25.0)


@pytest.mark.parametrize("path", sorted(p for p in API_WORKFLOWS.glob("*.json") if p != EMBEDDED_DEMO),
                         ids=lambda p: p.name)
def test_comfyui_accepts_each_shipped_api_workflow(server, short_voice, path) -> None:
    """ComfyUI's own prompt validation passes (node types, links, required inputs, values, files). The model
    files are empty stand-ins named as in the workflow, so the run then stops at the first loader."""
    prompt = json.loads(path.read_text(encoding="utf-8"))
    _placeholder_inputs(server, short_voice[0])
    for node in prompt.values():
        for name, spec in node["inputs"].items():
            folder = validate.OUR_FILE_INPUTS.get((node["class_type"], name)) or validate.file_folder(
                node["class_type"], name, [], validate.core_table()["nodes"])
            if folder and folder != "input" and spec not in (EMBEDDED_BUNDLE_NAME, "none"):
                (server.models_dir / folder).mkdir(parents=True, exist_ok=True)
                (server.models_dir / folder / spec).touch()
    status, reply = server.post_json("/prompt", {"prompt": prompt})
    assert status == 200, reply
    assert reply["node_errors"] == {}
    with pytest.raises(ComfyUIError) as failure:
        wait(ComfyUI(server.url), reply["prompt_id"], report=lambda _: None)
    failed_type = str(failure.value).split("(", 1)[1].split(")", 1)[0]
    assert failed_type in LOADERS, str(failure.value)  # an empty stand-in model file, nothing else


def test_the_embedded_demo_runs_end_to_end_through_the_api_example(server, short_voice, tmp_path) -> None:
    voice, frames = short_voice
    out = tmp_path / "demo.mp4"
    started = time.monotonic()
    run = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "api_example.py"), str(EMBEDDED_DEMO), "--server", server.url,
         "--image", str(SAMPLE_PORTRAIT_PNG), "--audio", str(voice), "--out", str(out)],
        capture_output=True, text=True, timeout=900, check=False)
    seconds = time.monotonic() - started
    assert run.returncode == 0, run.stdout + run.stderr + server.log_tail()
    version = server.get_json("/system_stats")["system"]["comfyui_version"]
    print(f"\nComfyUI {version}: embedded demo ({frames} frames) uploaded, run and downloaded in "
          f"{seconds:.1f} s")

    info = probe(out)
    assert info["frames"] == frames and info["fps"] == 25 and info["size"] == (64, 64)
    assert info["audio"] == "aac" and abs(info["audio_seconds"] - frames / 25) < 0.1
    prompt = json.loads(info["tags"]["prompt"])
    assert {"MagicInfiniteSampler", "MagicInfiniteSaveVideo"} <= {n["class_type"] for n in prompt.values()}
    # the copy in ComfyUI's output folder is the file listed in /history and downloaded through /view
    saved = sorted((server.output_dir / "MagicInfinite").glob("embedded_demo_*_.mp4"))
    assert saved and saved[-1].read_bytes() == out.read_bytes()


def test_tiny_model_files_and_a_streamed_file_saved_by_the_output_node(server, short_voice,
                                                                       tiny_model_files) -> None:
    """The embedded DiT with a LoRA from models/loras, the wav2vec2 from models/audio_encoders, output
    'file': the sampler streams an MP4, the save node copies it under its prefix with the prompt embedded."""
    voice, frames = short_voice
    comfy = ComfyUI(server.url)
    prompt = json.loads(EMBEDDED_DEMO.read_text(encoding="utf-8"))
    by_type = {node["class_type"]: node_id for node_id, node in prompt.items()}
    prompt[by_type["LoadImage"]]["inputs"]["image"] = comfy.upload(SAMPLE_PORTRAIT_PNG)
    prompt[by_type["LoadAudio"]]["inputs"]["audio"] = comfy.upload(voice)
    prompt[by_type["MagicInfiniteAudioEncoderLoader"]]["inputs"]["audio_encoder_name"] = tiny_model_files[
        "audio_encoder"]
    prompt["100"] = {"class_type": "MagicInfiniteLoraSelect",
                     "inputs": {"lora_name": tiny_model_files["lora"], "strength": 0.5}}
    prompt[by_type["MagicInfiniteModelLoader"]]["inputs"]["loras"] = ["100", 0]
    sampler_id, save_id = by_type["MagicInfiniteSampler"], by_type["MagicInfiniteSaveVideo"]
    prompt[sampler_id]["inputs"] |= {"output": "file", "filename_prefix": "host/render"}
    prompt[save_id]["inputs"] = {"filename_prefix": "host/talk", "fps": 25.0, "video_file": [sampler_id, 3]}

    entry = wait(comfy, comfy.queue(prompt), report=lambda _: None)
    (rendered,) = entry["outputs"][sampler_id]["images"]
    (saved,) = entry["outputs"][save_id]["images"]
    assert saved == {"filename": "talk_00001_.mp4", "subfolder": "host", "type": "output"}
    assert sorted(saved_videos(entry), key=str) == sorted([rendered, saved], key=str)
    render_path = server.output_dir / rendered["subfolder"] / rendered["filename"]
    saved_path = server.output_dir / "host" / "talk_00001_.mp4"
    info = probe(saved_path)
    assert info["frames"] == frames and info["fps"] == 25 and info["audio"] == "aac"
    assert json.loads(info["tags"]["prompt"])["100"]["class_type"] == "MagicInfiniteLoraSelect"
    assert probe(render_path)["frames"] == frames and "prompt" not in probe(render_path)["tags"]


def test_the_api_example_follows_a_render_live(server, short_voice, tmp_path) -> None:
    """--live: the sampler publishes each window to its HLS playlist and the client mirrors playlist and
    segments through /view; the mirror is the server's playlist, ended, and every segment decodes."""
    voice, frames = short_voice
    prompt = json.loads(EMBEDDED_DEMO.read_text(encoding="utf-8"))
    options = next(node_id for node_id, node in prompt.items()
                   if node["class_type"] == "MagicInfiniteSamplerOptions")
    live = tmp_path / "live"
    run = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "api_example.py"), str(EMBEDDED_DEMO), "--server", server.url,
         "--image", str(SAMPLE_PORTRAIT_PNG), "--audio", str(voice), "--out", str(tmp_path / "demo.mp4"),
         "--live", str(live), "--set", f"{options}.window_frames=17", "--set", f"{options}.motion_frames=5"],
        capture_output=True, text=True, timeout=900, check=False)
    assert run.returncode == 0, run.stdout + run.stderr + server.log_tail()
    (playlist,) = live.glob("*.m3u8")
    (served,) = server.output_dir.glob(playlist.name)
    assert playlist.read_bytes() == served.read_bytes()
    lines = playlist.read_text().splitlines()
    assert lines[-1] == "#EXT-X-ENDLIST" and "#EXT-X-PLAYLIST-TYPE:EVENT" in lines
    segments = [live / line for line in lines if not line.startswith("#")]
    assert len(segments) == 3 and "segment 3:" in run.stdout  # 32 frames: windows of 17, 12 and 3 new frames
    decoded = 0
    for segment in segments:
        with av.open(str(segment)) as container:
            decoded += sum(1 for _ in container.decode(video=0))
        with av.open(str(segment)) as container:
            assert sum(frame.samples for frame in container.decode(audio=0)) > 0
    (video,) = server.output_dir.glob(f"{served.stem}_*.mp4")  # the render the playlist showed
    assert decoded == frames == probe(video)["frames"]
    downloaded = sorted(tmp_path.glob("demo_*.mp4"))  # the sampler's file and the save node's copy of it
    assert len(downloaded) == 2 and all(probe(path)["frames"] == frames for path in downloaded)
