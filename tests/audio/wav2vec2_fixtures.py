"""Tiny wav2vec2 models and test signals for the audio tests (no downloads: built here, saved to tmp).

The tiny models keep the real front-end geometry (kernels/strides: 320-sample hop, 400-sample receptive
field) and the real 128-frame positional convolution, but are narrow (16 CNN channels, 128 wide, 2 layers).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import Tensor
from transformers import Wav2Vec2Config, Wav2Vec2Model

from magicinfinite_core.audio.encoder import AudioEncoder


def tiny_config(**overrides) -> Wav2Vec2Config:
    settings = dict(conv_dim=(16,) * 7, hidden_size=128, num_hidden_layers=2, num_attention_heads=2,
                    intermediate_size=64, num_conv_pos_embeddings=128, num_conv_pos_embedding_groups=16,
                    mask_time_prob=0.0)
    settings.update(overrides)
    return Wav2Vec2Config(**settings)


def tiny_module(seed: int = 0, **overrides) -> Wav2Vec2Model:
    """A tiny wav2vec2 with random weights; norms get non-trivial scales so swapped weights show."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        module = Wav2Vec2Model(tiny_config(**overrides))
        for name, param in module.named_parameters():
            if "norm" in name and name.endswith("weight"):
                param.data = 1.0 + 0.2 * torch.randn_like(param)
            elif "norm" in name and name.endswith("bias"):
                param.data = 0.2 * torch.randn_like(param)
    return module.eval().requires_grad_(False)


def tiny_encoder(seed: int = 0, *, do_normalize: bool = False, **overrides) -> AudioEncoder:
    module = tiny_module(seed, **overrides)
    return AudioEncoder(module=module, name="tiny-wav2vec2", do_normalize=do_normalize)


def save_hf_folder(module: Wav2Vec2Model, folder: Path, *, do_normalize: bool | None = None) -> Path:
    """config.json + model.safetensors (+ preprocessor_config.json), as a Hugging Face snapshot has them."""
    module.save_pretrained(folder)
    if do_normalize is not None:
        (folder / "preprocessor_config.json").write_text(json.dumps(
            {"do_normalize": do_normalize, "feature_size": 1, "sampling_rate": 16000}))
    return folder


def save_single_file(module: Wav2Vec2Model, path: Path, *, prefix: str = "wav2vec2.",
                     old_weight_norm: bool = True, pretraining_keys: bool = True,
                     dtype: torch.dtype = torch.float32) -> Path:
    """One .safetensors as the hub's converted pretraining checkpoints (and ComfyUI's folder) hold them:
    `wav2vec2.` prefix, weight_g/weight_v names, quantizer/projection heads beside the encoder."""
    state = {}
    for key, tensor in module.state_dict().items():
        if old_weight_norm:
            key = key.replace("parametrizations.weight.original0", "weight_g")
            key = key.replace("parametrizations.weight.original1", "weight_v")
        state[prefix + key] = tensor.to(dtype).contiguous()
    if pretraining_keys:
        state["quantizer.codevectors"] = torch.randn(1, 8, 4)
        state["project_q.weight"] = torch.randn(4, 4)
        state[prefix + "masked_spec_embed"] = torch.randn(module.config.hidden_size)
    save_file(state, str(path))
    return path


def speech_like(seconds: float, sample_rate: int = 16000, *, seed: int = 0, channels: int = 1) -> Tensor:
    """[channels, samples] voiced syllables (~4 a second) with a gliding pitch, plus a little noise."""
    generator = torch.Generator().manual_seed(seed)
    n = round(seconds * sample_rate)
    t = torch.arange(n, dtype=torch.float64) / sample_rate
    pitch = 140 + 40 * torch.sin(2 * math.pi * 0.7 * t + seed)
    phase = 2 * math.pi * torch.cumsum(pitch, 0) / sample_rate
    voice = sum(torch.sin(k * phase) / k for k in range(1, 6))
    envelope = torch.sin(math.pi * 4.1 * t + seed).clamp(min=0) ** 2
    mono = 0.3 * voice * envelope + 0.01 * torch.randn(n, generator=generator, dtype=torch.float64)
    waves = [mono * (1.0 - 0.1 * c) for c in range(channels)]
    return torch.stack(waves).to(torch.float32)


def reference_features(module: Wav2Vec2Model, samples: Tensor, num_frames: int) -> Tensor:
    """The MultiTalk computation, written as the reference does it on the whole clip: CNN, interpolate to
    num_frames (align_corners), transformer; hidden_states[1:] -> [num_frames, layers, width].

    A pre-norm (stable layer norm) model's last entry is taken after its final LayerNorm, as transformers 4
    (the reference's version) returns it."""
    original = module.feature_extractor

    class Interpolated(torch.nn.Module):
        def forward(self, values: Tensor) -> Tensor:
            return F.interpolate(original(values), size=num_frames, mode="linear", align_corners=True)

    module.feature_extractor = Interpolated()
    try:
        with torch.no_grad():
            out = module(samples[None], output_hidden_states=True)
    finally:
        module.feature_extractor = original
    states = list(out.hidden_states[1:])
    if module.config.do_stable_layer_norm:
        states[-1] = out.last_hidden_state
    return torch.stack(states, dim=2)[0]


def host_encoder_output(module: Wav2Vec2Model, samples: Tensor) -> dict:
    """What ComfyUI's AudioEncoderEncode returns for a wav2vec2 (16 kHz mono input): the transformer run
    at the CNN's ~50 Hz, all hidden states (the input to layer 1 first) as [1, frames, width]."""
    with torch.no_grad():
        out = module(samples[None], output_hidden_states=True)
    states = list(out.hidden_states)
    return {"encoded_audio": out.last_hidden_state, "encoded_audio_all_layers": tuple(states),
            "audio_samples": samples.shape[-1]}
