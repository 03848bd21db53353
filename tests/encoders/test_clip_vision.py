"""CLIP vision loader: ComfyUI's clip_vision file layout, parity with ComfyUI's own ClipVisionModel.

A tiny ViT (64 wide, 16 heads as every CLIP vision ComfyUI loads, 3 layers, patch 14, 56 px) is saved in
clip_vision_h.safetensors' names (Hugging Face CLIPVisionModelWithProjection) and described to ComfyUI by a
JSON file like its clip_vision_config_h.json. ComfyUI's ClipVisionModel + load_sd + encode_image(crop=False)
and ours encode the same non-square image.
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from magicinfinite_core.encoders.clip_vision import load_clip_vision
from magicinfinite_core.errors import CheckpointError, InputError
from tests.encoders.encoder_files import CLIP_CONFIG, clip_vision_state, comfy_module
from tests.host.checkout import requires_comfyui

CONFIG = CLIP_CONFIG
TOKENS = 1 + (56 // 14) ** 2


@pytest.fixture(scope="module")
def weights() -> dict[str, torch.Tensor]:
    return clip_vision_state()


@pytest.fixture(scope="module")
def clip_file(weights, tmp_path_factory):
    path = tmp_path_factory.mktemp("clip_vision") / "clip_vision_tiny.safetensors"
    save_file(weights, str(path))
    return path


def _image() -> torch.Tensor:
    return torch.rand(1, 90, 61, 3, generator=torch.Generator().manual_seed(1))


@requires_comfyui
def test_matches_comfyui_penultimate_hidden_states(clip_file, weights, tmp_path, monkeypatch):
    args = comfy_module("comfy.cli_args").args
    monkeypatch.setattr(args, "fp32_text_enc", True)  # ComfyUI holds CLIP vision in fp16 on the CPU otherwise
    clip_vision = comfy_module("comfy.clip_vision")
    config_file = tmp_path / "clip_vision_config_tiny.json"
    config_file.write_text(json.dumps(CONFIG))
    comfy_model = clip_vision.ClipVisionModel(str(config_file))
    missing, unexpected = comfy_model.load_sd(dict(weights))
    assert not missing and not unexpected
    image = _image()
    expected = comfy_model.encode_image(image, crop=False).penultimate_hidden_states

    tokens = load_clip_vision(clip_file, dtype=torch.float32).encode(image)
    assert tokens.shape == expected.shape == (1, TOKENS, CONFIG["hidden_size"])
    assert tokens.dtype == torch.float32
    error = (tokens - expected).norm() / expected.norm()
    assert error <= 1e-5, f"relative error {error:.2e}"


def test_encode_shape_and_last_layer_left_out(clip_file, weights):
    encoder = load_clip_vision(clip_file, dtype=torch.bfloat16)
    assert encoder.width == CONFIG["hidden_size"] and encoder.image_size == CONFIG["image_size"]
    assert encoder.model.config.num_hidden_layers == CONFIG["num_hidden_layers"] - 1
    tokens = encoder.encode(_image())
    assert tokens.shape == (1, TOKENS, CONFIG["hidden_size"]) and tokens.dtype == torch.float32
    assert torch.isfinite(tokens).all()


def test_image_of_wrong_shape_is_refused(clip_file):
    with pytest.raises(InputError, match=r"CLIP vision image: expected \[B, H, W, 3\].*\[1, 3, 64, 64\]"):
        load_clip_vision(clip_file).encode(torch.rand(1, 3, 64, 64))


def test_not_safetensors_is_refused(tmp_path):
    path = tmp_path / "clip_vision_h.pth"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"clip_vision_h\.pth.*pickle"):
        load_clip_vision(path)


def test_other_model_is_refused_naming_the_expected_keys(tmp_path):
    path = tmp_path / "umt5_xxl_fp16.safetensors"
    save_file({"shared.weight": torch.zeros(4, 4)}, str(path))
    with pytest.raises(CheckpointError, match=r"umt5_xxl_fp16\.safetensors: not a CLIP vision encoder.*"
                                              r"vision_model\.embeddings\.class_embedding.*clip_vision_h"):
        load_clip_vision(path)
