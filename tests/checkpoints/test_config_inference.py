"""The config is read back from tensor names and shapes (plus metadata hints for non-128-wide heads)."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from magicinfinite_core.checkpoints import config_metadata, infer_config
from magicinfinite_core.checkpoints.config_inference import describe, read_hints
from magicinfinite_core.errors import CheckpointError
from magicinfinite_core.models.config import WAN_1_3B, WAN_14B, AudioAdapterConfig, WanConfig, tiny_config
from magicinfinite_core.models.wan import WanModel


def shapes_of(config: WanConfig) -> dict[str, tuple[int, ...]]:
    with torch.device("meta"):
        model = WanModel(config)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


@pytest.mark.parametrize(
    "config",
    [
        replace(WAN_14B),  # MultiTalk / InfiniteTalk: i2v 14B, adapter on every block
        WAN_14B.with_audio(None),
        replace(WAN_1_3B, model_type="t2v", in_dim=16, audio=None),
        replace(WAN_14B, audio=AudioAdapterConfig(blocks=(30, 35, 39))),  # adapter in the last blocks only
        # an adapter for wav2vec2-large features: 24 x 1024 per frame, which is also 32 x 768
        replace(WAN_1_3B, audio=AudioAdapterConfig(feature_layers=24, feature_width=1024)),
    ],
    ids=["i2v-14B-multitalk", "i2v-14B", "t2v-1.3B", "14B-audio-last-blocks", "1.3B-wav2vec2-large"],
)
def test_released_sizes_are_read_from_shapes_alone(config):
    assert infer_config(shapes_of(config)) == config


def test_type_size_and_adapter_come_from_tensors_not_names():
    shapes = shapes_of(WAN_14B)
    config = infer_config(shapes)
    assert (config.model_type, config.in_dim, config.dim, config.num_heads) == ("i2v", 36, 5120, 40)
    assert config.audio == AudioAdapterConfig()  # 12 x 768 wav2vec2 features, window 5/8, 32 tokens
    assert describe(config) == "Wan2.1 i2v 14B (40 blocks, 40 heads), audio adapter on 40/40 blocks"


@settings(max_examples=30, deadline=None)
@given(
    heads=st.integers(1, 4),
    head_dim=st.sampled_from([8, 16]),
    layers=st.integers(1, 4),
    model_type=st.sampled_from(["t2v", "i2v"]),
    audio=st.booleans(),
    audio_first=st.integers(0, 3),
)
def test_tiny_configs_round_trip_through_shapes_and_metadata(
    heads, head_dim, layers, model_type, audio, audio_first
):
    blocks = tuple(range(min(audio_first, layers - 1), layers))
    config = tiny_config(
        dim=heads * head_dim,
        num_heads=heads,
        num_layers=layers,
        model_type=model_type,
        with_audio=audio,
        audio_blocks=blocks,
    )
    if config.audio is not None and blocks == tuple(range(layers)):
        config = config.with_audio(replace(config.audio, blocks=None))
    if model_type == "t2v":  # no image layers, so nothing records the CLIP width
        config = replace(config, image_dim=WanConfig.image_dim)
    hints = read_hints(config_metadata(config), "tiny.safetensors")
    assert infer_config(shapes_of(config), hints) == config


def test_a_width_without_128_wide_heads_needs_metadata():
    shapes = shapes_of(tiny_config())
    with pytest.raises(CheckpointError, match="head count cannot be read"):
        infer_config(shapes)


def test_missing_size_tensors_are_named():
    shapes = shapes_of(WAN_1_3B)
    del shapes["blocks.0.ffn.0.weight"]
    with pytest.raises(CheckpointError, match=r"missing tensor blocks.0.ffn.0.weight"):
        infer_config(shapes)
    shapes = shapes_of(WAN_1_3B)
    for key in [k for k in shapes if k.startswith("blocks.3.")]:
        del shapes[key]
    with pytest.raises(CheckpointError, match=r"blocks \[3\] are missing"):
        infer_config(shapes)


def test_bad_metadata_is_refused_with_the_file_name():
    with pytest.raises(CheckpointError, match="tiny.safetensors.*unknown fields"):
        read_hints({"magicinfinite.config": '{"heads": 2}'}, "tiny.safetensors")
