"""Read a WanConfig from tensor names and shapes (never from a file name).

Shapes give the width, depth, ffn width, input channels, text/image/frequency widths, and the adapter
layout. Three things they cannot give:
- the head count: both released sizes use 128-wide heads, so heads = dim / 128;
- the text length (512 for every released model) and the norm epsilon (1e-6);
- how the adapter's wav2vec2 input splits into layers x width (only the product is in the shapes;
  768-wide features are assumed, as chinese-wav2vec2-base gives).
A file whose sizes differ from these (the tiny test and bundle models) states them in its safetensors
metadata under `CONFIG_METADATA_KEY` (JSON); `config_metadata` writes that entry.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping

from ..errors import CheckpointError
from ..models.config import HEAD_DIM, AudioAdapterConfig, WanConfig

CONFIG_METADATA_KEY = "magicinfinite.config"
HINT_FIELDS = ("num_heads", "text_len", "eps", "audio_feature_layers")
WAV2VEC2_WIDTH = 768
# Features per video frame -> (layers, width) of the wav2vec2 models adapters are trained on: base and large.
# 24 x 1024 is also 32 x 768, so the known layouts are read before the width rule.
KNOWN_FEATURE_LAYOUTS = {12 * 768: (12, 768), 24 * 1024: (24, 1024)}
_BLOCK = re.compile(r"^blocks\.(\d+)\.")

Shapes = Mapping[str, tuple[int, ...]]


def config_metadata(config: WanConfig) -> dict[str, str]:
    """Safetensors metadata recording what `infer_config` cannot read from the shapes of `config`."""
    hints: dict[str, object] = {"num_heads": config.num_heads, "text_len": config.text_len, "eps": config.eps}
    if config.audio is not None:
        hints["audio_feature_layers"] = config.audio.feature_layers
    return {CONFIG_METADATA_KEY: json.dumps(hints)}


def read_hints(metadata: Mapping[str, str], file_name: str) -> dict[str, float]:
    if CONFIG_METADATA_KEY not in metadata:
        return {}
    try:
        hints = json.loads(metadata[CONFIG_METADATA_KEY])
    except ValueError as exc:
        raise CheckpointError(f"{file_name}: metadata '{CONFIG_METADATA_KEY}' is not JSON ({exc})") from exc
    unknown = sorted(set(hints) - set(HINT_FIELDS))
    if unknown:
        raise CheckpointError(
            f"{file_name}: metadata '{CONFIG_METADATA_KEY}' has unknown fields {unknown}; "
            f"known: {list(HINT_FIELDS)}"
        )
    return hints


def infer_config(keys_and_shapes: Shapes, hints: Mapping[str, float] | None = None) -> WanConfig:
    """The config of a Wan2.1 DiT (with its adapter, if present) from internal tensor names and shapes.

    `hints` may give num_heads, text_len, eps and audio_feature_layers (see the module docstring).
    Raises CheckpointError naming the missing tensor when a size cannot be read.
    """
    shapes = keys_and_shapes
    hints = dict(hints or {})
    dim, in_dim, *patch = _shape(shapes, "patch_embedding.weight", 5)
    num_layers = _num_layers(shapes)
    if "num_heads" in hints:
        num_heads = int(hints["num_heads"])
    elif dim % HEAD_DIM == 0:
        num_heads = dim // HEAD_DIM
    else:
        raise CheckpointError(
            f"the model width {dim} is not a multiple of {HEAD_DIM}, so the head count cannot be read from "
            f"the shapes; a file of this size must state it in its metadata ('{CONFIG_METADATA_KEY}')"
        )
    if num_heads <= 0 or dim % num_heads:
        raise CheckpointError(f"{num_heads} heads do not divide the model width {dim}")
    has_clip = "img_emb.proj.1.weight" in shapes
    config = WanConfig(
        dim=dim,
        ffn_dim=_shape(shapes, "blocks.0.ffn.0.weight", 2)[0],
        num_heads=num_heads,
        num_layers=num_layers,
        model_type="i2v" if has_clip else "t2v",
        in_dim=in_dim,
        out_dim=_shape(shapes, "head.head.weight", 2)[0] // math.prod(patch),
        text_dim=_shape(shapes, "text_embedding.0.weight", 2)[1],
        text_len=int(hints.get("text_len", 512)),
        freq_dim=_shape(shapes, "time_embedding.0.weight", 2)[1],
        image_dim=_shape(shapes, "img_emb.proj.1.weight", 2)[1] if has_clip else WanConfig.image_dim,
        patch_size=tuple(patch),
        eps=float(hints.get("eps", 1e-6)),
        audio=None,
    )
    return config.with_audio(infer_adapter_config(shapes, num_layers, hints))


def infer_adapter_config(
    shapes: Shapes, num_layers: int, hints: Mapping[str, float] | None = None
) -> AudioAdapterConfig | None:
    """The audio adapter layout, or None when the tensors hold no adapter.

    proj1 takes `window` rows of features and proj1_vf `window + 3` rows (the 4 video frames of a
    later latent frame plus the window's overhang), which fixes the window from the two widths.
    """
    if "audio_proj.proj1.weight" not in shapes:
        return None
    hints = hints or {}
    intermediate_dim, first_width = _shape(shapes, "audio_proj.proj1.weight", 2)
    later_width = _shape(shapes, "audio_proj.proj1_vf.weight", 2)[1]
    token_dim = _shape(shapes, "audio_proj.norm.weight", 1)[0]
    tokens_width = _shape(shapes, "audio_proj.proj3.weight", 2)[0]
    extra = later_width - first_width
    if extra <= 0 or (3 * first_width) % extra or tokens_width % token_dim:
        raise CheckpointError(
            "audio_proj shapes do not fit the MultiTalk adapter: proj1 in "
            f"{first_width}, proj1_vf in {later_width}, proj3 out {tokens_width}, norm {token_dim}"
        )
    window = 3 * first_width // extra
    per_frame = first_width // window
    if "audio_feature_layers" in hints:
        layers = int(hints["audio_feature_layers"])
    elif per_frame in KNOWN_FEATURE_LAYOUTS:
        layers = KNOWN_FEATURE_LAYOUTS[per_frame][0]
    elif per_frame % WAV2VEC2_WIDTH == 0:
        layers = per_frame // WAV2VEC2_WIDTH
    else:
        raise CheckpointError(
            f"the adapter takes {per_frame} features per video frame, not a multiple of the wav2vec2 width "
            f"{WAV2VEC2_WIDTH}; a file of this size must state the layer count in its metadata "
            f"('{CONFIG_METADATA_KEY}': audio_feature_layers)"
        )
    if per_frame % layers:
        raise CheckpointError(f"{layers} audio feature layers do not divide {per_frame} features per frame")
    blocks = sorted(
        int(m[1])
        for key in shapes
        if (m := _BLOCK.match(key)) and key.endswith(".audio_cross_attn.q_linear.weight")
    )
    if not blocks:
        raise CheckpointError("audio_proj is present but no block has audio_cross_attn tensors")
    if blocks[-1] >= num_layers:
        raise CheckpointError(
            f"the adapter has audio attention in block {blocks[-1]} but the model has {num_layers} blocks"
        )
    return AudioAdapterConfig(
        feature_layers=layers,
        feature_width=per_frame // layers,
        window=window,
        window_vf=window + 3,
        intermediate_dim=intermediate_dim,
        context_tokens=tokens_width // token_dim,
        token_dim=token_dim,
        blocks=None if blocks == list(range(num_layers)) else tuple(blocks),
    )


def describe(config: WanConfig) -> str:
    """One line for logs and node tooltips: size, type, adapter."""
    size = {1536: "1.3B", 5120: "14B"}.get(config.dim, f"dim {config.dim}")
    audio = "no audio adapter"
    if config.audio is not None:
        blocks = config.audio.block_ids(config.num_layers)
        audio = f"audio adapter on {len(blocks)}/{config.num_layers} blocks"
    shape = f"{config.num_layers} blocks, {config.num_heads} heads"
    return f"Wan2.1 {config.model_type} {size} ({shape}), {audio}"


def _shape(shapes: Shapes, key: str, ndim: int) -> tuple[int, ...]:
    shape = shapes.get(key)
    if shape is None:
        raise CheckpointError(f"missing tensor {key} (needed to read the model size)")
    if len(shape) != ndim:
        raise CheckpointError(f"tensor {key} has shape {list(shape)}, expected {ndim} dimensions")
    return tuple(shape)


def _num_layers(shapes: Shapes) -> int:
    indices = {int(m[1]) for key in shapes if (m := _BLOCK.match(key))}
    if not indices:
        raise CheckpointError("no blocks.N.* tensors: not a Wan2.1 DiT")
    missing = sorted(set(range(max(indices) + 1)) - indices)
    if missing:
        raise CheckpointError(f"blocks {missing[:10]} are missing (found blocks up to {max(indices)})")
    return max(indices) + 1
