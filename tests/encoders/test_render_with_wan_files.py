"""`render --model` with every part from the files ComfyUI users have (tiny, in the real key layouts): the
Wan2.1 VAE, umT5 with its embedded tokenizer, CLIP vision, a wav2vec2 single file. Each part must reach the
video, and a part that does not fit the DiT is refused naming its flag."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import av
import numpy as np
import pytest
from safetensors.torch import save_file

from magicinfinite_core.__main__ import main
from magicinfinite_core.checkpoints import config_metadata
from magicinfinite_core.models.config import tiny_config
from tests.audio.wav2vec2_fixtures import save_single_file, tiny_module
from tests.conftest import make_tiny_model
from tests.encoders.encoder_files import CLIP_CONFIG, UMT5_SIZES, clip_vision_state, umt5_state, write_wan_vae
from tests.host.checkout import requires_comfyui
from tests.mini.test_demo import write_png, write_wav

pytestmark = requires_comfyui  # the Wan VAE file is laid out by ComfyUI's own module


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("wan_files")
    wav2vec2 = tiny_module()
    base = tiny_config(num_layers=2)
    config = replace(base, text_dim=UMT5_SIZES["d_model"], text_len=512, image_dim=CLIP_CONFIG["hidden_size"],
                     audio=replace(base.audio, feature_layers=wav2vec2.config.num_hidden_layers,
                                   feature_width=wav2vec2.config.hidden_size))
    model = make_tiny_model(config, seed=3)
    paths = {name: folder / name for name in ("dit.safetensors", "wan_2.1_vae.safetensors",
                                              "umt5_tiny.safetensors", "clip_vision_tiny.safetensors",
                                              "wav2vec2.safetensors", "face.png", "voice.wav")}
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(paths["dit.safetensors"]),
              metadata=config_metadata(config))
    write_wan_vae(paths["wan_2.1_vae.safetensors"], dim=8)
    save_file(umt5_state(), str(paths["umt5_tiny.safetensors"]))
    save_file(clip_vision_state(), str(paths["clip_vision_tiny.safetensors"]))
    save_single_file(wav2vec2, paths["wav2vec2.safetensors"])
    write_png(paths["face.png"], 48, 32)
    write_wav(paths["voice.wav"], 0.5)
    return paths


def command(files: dict[str, Path], out: Path, *, prompt: str = "a woman talks",
            clip: bool = True) -> list[str]:
    argv = ["render", "--image", str(files["face.png"]), "--audio", str(files["voice.wav"]),
            "--out", str(out),
            "--model", str(files["dit.safetensors"]), "--vae", str(files["wan_2.1_vae.safetensors"]),
            "--text-encoder", str(files["umt5_tiny.safetensors"]),
            "--audio-encoder", str(files["wav2vec2.safetensors"]), "--prompt", prompt,
            "--width", "48", "--height", "32", "--window-frames", "9", "--motion-frames", "1",
            "--steps", "2", "--device", "cpu", "--seed", "5"]
    return argv + (["--clip-vision", str(files["clip_vision_tiny.safetensors"])] if clip else [])


def frames(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


def test_every_part_reaches_the_video(files, tmp_path, capsys) -> None:
    assert main(command(files, tmp_path / "base.mp4")) == 0
    assert "Wrote " in capsys.readouterr().err
    base = frames(tmp_path / "base.mp4")
    assert base.shape == (12, 32, 48, 3)  # 0.5 s at 25 fps, the size asked for
    assert main(command(files, tmp_path / "prompt.mp4", prompt="two men laugh")) == 0
    assert main(command(files, tmp_path / "noclip.mp4", clip=False)) == 0
    for other in ("prompt.mp4", "noclip.mp4"):  # the text and CLIP encoders changed what was sampled
        assert np.abs(frames(tmp_path / other).astype(int) - base).mean() > 0.5, other
    assert sorted(p.name for p in tmp_path.iterdir()) == ["base.mp4", "noclip.mp4", "prompt.mp4"]


@pytest.mark.parametrize(("flag", "wrong", "message"), [
    ("--text-encoder", "clip_vision_tiny.safetensors",
     "--text-encoder: clip_vision_tiny.safetensors: not a umT5"),
    ("--clip-vision", "umt5_tiny.safetensors", "--clip-vision: umt5_tiny.safetensors: not a CLIP vision"),
    ("--vae", "umt5_tiny.safetensors", "--vae: .*umt5_tiny.safetensors is not a Wan VAE"),
])
def test_a_wrong_file_for_a_part_is_refused(files, tmp_path, capsys, flag, wrong, message) -> None:
    argv = command(files, tmp_path / "x.mp4")
    argv[argv.index(flag) + 1] = str(files[wrong])
    assert main(argv) == 2
    assert re.search(message, capsys.readouterr().err)
    assert not list(tmp_path.iterdir())
