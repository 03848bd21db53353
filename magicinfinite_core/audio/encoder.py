"""Loading a wav2vec2 audio encoder from what users have: a Hugging Face folder or one safetensors file.

Accepted: a folder with config.json + model.safetensors (+ preprocessor_config.json), or a single
.safetensors file as ComfyUI keeps them in models/audio_encoders, with or without the `wav2vec2.` key
prefix (pretraining-head keys such as quantizer.* are ignored). Without config.json the configuration is
read from the tensor shapes. Only safetensors are read: pickles (.bin/.pt/.ckpt) can run code when loaded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor
from transformers import Wav2Vec2Config, Wav2Vec2Model

from magicinfinite_core.errors import CheckpointError

CHINESE_WAV2VEC2_BASE_HINT = (
    "For MultiTalk/InfiniteTalk use chinese-wav2vec2-base as safetensors: the model.safetensors file of "
    "TencentGameMate/chinese-wav2vec2-base on its refs/pr/1 branch (see docs/audio.md).")
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
_MODEL_PARTS = ("feature_extractor.", "feature_projection.", "encoder.")
# The weight-normalised positional convolution is stored under either name, depending on the torch version
# that saved it.
_POS_CONV = "encoder.pos_conv_embed.conv."
_WEIGHT_NORM_NAMES = {"weight_g": "parametrizations.weight.original0",
                      "weight_v": "parametrizations.weight.original1"}
# Head counts of the released wav2vec2 widths (base, large, XLS-R 1B/2B): shapes do not say them.
_HEADS_BY_WIDTH = {768: 12, 1024: 16, 1280: 16, 1920: 16}
_STANDARD_KERNELS = (10, 3, 3, 3, 3, 2, 2)
_STANDARD_STRIDES = (5, 2, 2, 2, 2, 2, 2)


@dataclass(frozen=True, eq=False)
class AudioEncoder:
    """A loaded wav2vec2 (the MI_AUDIO_ENCODER value).

    feature_layers x feature_width: the stacked hidden states it gives per frame (12 x 768 for
    chinese-wav2vec2-base). do_normalize: whether its feature extractor standardises the waveform first
    (chinese-wav2vec2-base: no; the large lv60/XLS-R models: yes).
    """

    module: Wav2Vec2Model
    name: str
    do_normalize: bool

    @property
    def feature_layers(self) -> int:
        return self.module.config.num_hidden_layers

    @property
    def feature_width(self) -> int:
        return self.module.config.hidden_size


def load_audio_encoder(path: str | Path) -> AudioEncoder:
    """Load a wav2vec2 encoder (float32, CPU, eval mode) from a folder or a .safetensors file."""
    path = Path(path)
    weights_file, folder = _locate(path)
    state = _read_state(weights_file)
    config_file = folder / "config.json" if folder is not None else None
    has_config = config_file is not None and config_file.is_file()
    if has_config:
        config = Wav2Vec2Config.from_dict(_read_json(config_file))
    else:
        config = infer_wav2vec2_config({k: tuple(v.shape) for k, v in state.items()}, weights_file)
    # Inference only: no SpecAugment vector, memory-efficient attention.
    config.mask_time_prob = 0.0
    config.mask_feature_prob = 0.0
    config._attn_implementation = "sdpa"
    with torch.device("meta"):
        module = Wav2Vec2Model(config)
    try:
        module.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as err:
        where = "in config.json" if has_config else "read from its shapes"
        raise CheckpointError(f"{weights_file}: the weights do not fit a wav2vec2 of the configuration "
                              f"{where} ({err}). {CHINESE_WAV2VEC2_BASE_HINT}") from err
    module.eval().requires_grad_(False)
    return AudioEncoder(module=module, name=weights_file.name if folder is None else str(folder.name),
                        do_normalize=_do_normalize(folder, config))


def infer_wav2vec2_config(shapes: dict[str, tuple[int, ...]],
                          source: Path | str = "checkpoint") -> Wav2Vec2Config:
    """Wav2Vec2Config from the (prefix-free) key -> shape map of a wav2vec2 checkpoint."""
    conv = []
    while f"feature_extractor.conv_layers.{len(conv)}.conv.weight" in shapes:
        conv.append(shapes[f"feature_extractor.conv_layers.{len(conv)}.conv.weight"])
    layers = 0
    while f"encoder.layers.{layers}.attention.q_proj.weight" in shapes:
        layers += 1
    pos_v = shapes.get(_POS_CONV + "parametrizations.weight.original1")
    if not conv or layers == 0 or pos_v is None or "feature_projection.projection.weight" not in shapes:
        raise CheckpointError(f"{source}: not a wav2vec2 checkpoint (no feature_extractor / encoder.layers / "
                              f"positional-convolution keys). {CHINESE_WAV2VEC2_BASE_HINT}")
    kernels = tuple(shape[2] for shape in conv)
    if kernels != _STANDARD_KERNELS:
        raise CheckpointError(f"{source}: convolution kernels {kernels} are not the wav2vec2 layout "
                              f"{_STANDARD_KERNELS}; its strides cannot be read from the file. Put its "
                              "config.json next to it.")
    hidden = shapes["feature_projection.projection.weight"][0]
    layer_norm_conv = "feature_extractor.conv_layers.1.layer_norm.weight" in shapes
    return Wav2Vec2Config(
        conv_dim=tuple(shape[0] for shape in conv),
        conv_kernel=kernels,
        conv_stride=_STANDARD_STRIDES,
        conv_bias="feature_extractor.conv_layers.1.conv.bias" in shapes,
        feat_extract_norm="layer" if layer_norm_conv else "group",
        # Every released wav2vec2 with layer-normed convolutions (lv60, XLS-R) also uses pre-norm layers.
        do_stable_layer_norm=layer_norm_conv,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=_HEADS_BY_WIDTH.get(hidden, max(1, hidden // 64)),
        intermediate_size=shapes["encoder.layers.0.feed_forward.intermediate_dense.weight"][0],
        num_conv_pos_embeddings=pos_v[2],
        num_conv_pos_embedding_groups=hidden // pos_v[1],
    )


def _locate(path: Path) -> tuple[Path, Path | None]:
    """(weights file, Hugging Face folder or None for a lone file)."""
    if path.is_dir():
        weights = path / "model.safetensors"
        if weights.is_file():
            return weights, path
        pickles = sorted(p.name for p in path.iterdir() if p.suffix in _PICKLE_SUFFIXES)
        raise CheckpointError(
            f"{path}: no model.safetensors in this folder"
            + (f" (found {', '.join(pickles)}: pickles, which are not loaded since they can run code)"
               if pickles else "") + f". {CHINESE_WAV2VEC2_BASE_HINT}")
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file or folder.")
    if path.suffix in _PICKLE_SUFFIXES:
        raise CheckpointError(f"{path}: a pickle file; only .safetensors are loaded, since pickles can run "
                              f"code. {CHINESE_WAV2VEC2_BASE_HINT}")
    if path.suffix not in (".safetensors", ".sft"):
        raise CheckpointError(f"{path}: expected a .safetensors file, found '{path.suffix}'.")
    # A lone model.safetensors picked from a Hugging Face folder: use its config.json too.
    return path, path.parent if (path.parent / "config.json").is_file() else None


def _read_state(weights_file: Path) -> dict[str, Tensor]:
    try:
        raw = load_file(str(weights_file))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{weights_file}: cannot be read as safetensors ({err}). The file may be "
                              "incomplete; download it again.") from err
    state: dict[str, Tensor] = {}
    for key, tensor in raw.items():
        name = key.removeprefix("wav2vec2.")
        if not name.startswith(_MODEL_PARTS):
            continue  # pretraining heads (quantizer, project_q/hid), masked_spec_embed, CTC heads
        if name.startswith(_POS_CONV):
            leaf = name[len(_POS_CONV):]
            name = _POS_CONV + _WEIGHT_NORM_NAMES.get(leaf, leaf)
        state[name] = tensor.to(torch.float32)
    return state


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise CheckpointError(f"{path}: cannot be read as JSON ({err}).") from err


def _do_normalize(folder: Path | None, config: Wav2Vec2Config) -> bool:
    """The feature extractor's waveform standardisation: preprocessor_config.json when present, else the
    convention of the released models (off for group-norm base models such as chinese-wav2vec2-base, on
    for the layer-norm large ones), as ComfyUI assumes too."""
    if folder is not None and (folder / "preprocessor_config.json").is_file():
        return bool(_read_json(folder / "preprocessor_config.json").get("do_normalize", True))
    return config.feat_extract_norm == "layer"
