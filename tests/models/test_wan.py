"""WanModel: shapes for t2v/i2v and 1-4 speakers, native key layout, audio blocks, dtypes, input errors."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from conftest import make_inputs, make_tiny_model

from magicinfinite_core.errors import InputError
from magicinfinite_core.models.cast import CastLinear
from magicinfinite_core.models.config import WAN_1_3B, WAN_14B, tiny_config
from magicinfinite_core.models.wan import WanModel


def forward_kwargs(inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in inputs.items() if k != "features"}


def half_masks(speakers: int, height: int, width: int) -> torch.Tensor:
    """Token-grid masks: speaker s owns column band s (the last column stays background)."""
    masks = torch.zeros(speakers, height // 2, width // 2)
    for s in range(speakers):
        masks[s, :, s] = 1
    return masks


@pytest.mark.parametrize("model_type", ["t2v", "i2v"])
@pytest.mark.parametrize("speakers", [0, 1, 2, 3, 4])
def test_velocity_has_the_latent_shape(model_type, speakers):
    model = make_tiny_model(model_type=model_type)
    inputs = make_inputs(model.config, batch=2, frames=2, height=4, width=10, speakers=speakers)
    kwargs = forward_kwargs(inputs)
    if speakers:
        kwargs["audio_tokens"] = model.encode_audio(inputs["features"])
        kwargs["speaker_masks"] = half_masks(speakers, 4, 10)
    out = model(**kwargs)
    assert out.shape == inputs["x"].shape
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("frames", [1, 5])
def test_encode_audio_gives_k_tokens_per_latent_frame_and_speaker(frames):
    model = make_tiny_model()
    audio = model.config.audio
    features = make_inputs(model.config, batch=2, frames=frames, speakers=3)["features"]
    assert features.shape[2] == 4 * (frames - 1) + 1
    tokens = model.encode_audio(features)
    assert tokens.shape == (2, 3, frames, audio.context_tokens, audio.token_dim)


def test_state_dict_keys_are_wan_native_plus_multitalk_adapter():
    model = make_tiny_model(tiny_config(num_layers=1))
    linear = ["weight", "bias"]
    expected = {
        *(f"patch_embedding.{p}" for p in linear),
        *(f"text_embedding.{i}.{p}" for i in (0, 2) for p in linear),
        *(f"time_embedding.{i}.{p}" for i in (0, 2) for p in linear),
        *(f"time_projection.1.{p}" for p in linear),
        "head.modulation",
        *(f"head.head.{p}" for p in linear),
        *(f"img_emb.proj.{i}.{p}" for i in (0, 1, 3, 4) for p in linear),
        *(f"audio_proj.{n}.{p}" for n in ("proj1", "proj1_vf", "proj2", "proj3", "norm") for p in linear),
        "blocks.0.modulation",
        *(f"blocks.0.self_attn.{n}.{p}" for n in "qkvo" for p in linear),
        "blocks.0.self_attn.norm_q.weight",
        "blocks.0.self_attn.norm_k.weight",
        *(f"blocks.0.norm3.{p}" for p in linear),
        *(f"blocks.0.cross_attn.{n}.{p}" for n in ("q", "k", "v", "o", "k_img", "v_img") for p in linear),
        *(f"blocks.0.cross_attn.{n}.weight" for n in ("norm_q", "norm_k", "norm_k_img")),
        *(f"blocks.0.ffn.{i}.{p}" for i in (0, 2) for p in linear),
        *(f"blocks.0.norm_x.{p}" for p in linear),
        *(f"blocks.0.audio_cross_attn.{n}.{p}" for n in ("q_linear", "kv_linear", "proj") for p in linear),
    }
    assert set(model.state_dict()) == expected


def test_parameter_shapes_follow_the_config():
    config = tiny_config(dim=64, num_heads=2, num_layers=1)
    audio = config.audio
    shapes = {k: tuple(v.shape) for k, v in make_tiny_model(config).state_dict().items()}
    frame_features = audio.feature_layers * audio.feature_width
    assert shapes["patch_embedding.weight"] == (64, 36, 1, 2, 2)
    assert shapes["blocks.0.modulation"] == (1, 6, 64)
    assert shapes["head.modulation"] == (1, 2, 64)
    assert shapes["head.head.weight"] == (16 * 4, 64)
    assert shapes["img_emb.proj.1.weight"] == (config.image_dim, config.image_dim)
    assert shapes["audio_proj.proj1.weight"] == (audio.intermediate_dim, 5 * frame_features)
    assert shapes["audio_proj.proj1_vf.weight"] == (audio.intermediate_dim, 8 * frame_features)
    assert shapes["audio_proj.proj3.weight"] == (
        audio.context_tokens * audio.token_dim,
        audio.intermediate_dim,
    )
    assert shapes["blocks.0.audio_cross_attn.kv_linear.weight"] == (128, audio.token_dim)


def test_t2v_has_no_image_layers():
    keys = make_tiny_model(model_type="t2v").state_dict()
    assert not any("img" in k for k in keys)


def test_audio_layers_only_in_the_configured_blocks():
    keys = make_tiny_model(num_layers=4, audio_blocks=(2, 3)).state_dict()
    with_audio = {int(k.split(".")[1]) for k in keys if ".audio_cross_attn." in k or ".norm_x." in k}
    assert with_audio == {2, 3}
    assert not any("audio" in k for k in make_tiny_model(with_audio=False).state_dict())


def test_audio_blocks_outside_the_model_are_refused():
    with pytest.raises(ValueError, match="outside"):
        WanModel(tiny_config(num_layers=2, audio_blocks=(2,)))


def test_every_linear_layer_is_a_cast_linear():
    linears = [m for m in make_tiny_model().modules() if isinstance(m, torch.nn.Linear)]
    assert linears and all(isinstance(m, CastLinear) for m in linears)


def test_released_sizes_build_on_the_meta_device_with_their_parameter_counts():
    with torch.device("meta"):
        i2v_14b = WanModel(WAN_14B.with_audio(None))
        t2v_1_3b = WanModel(replace(WAN_1_3B, model_type="t2v", in_dim=16, audio=None))
    # Wan2.1-I2V-14B holds 16.39e9 parameters, Wan2.1-T2V-1.3B 1.42e9.
    assert sum(p.numel() for p in i2v_14b.parameters()) == pytest.approx(16.39e9, rel=1e-3)
    assert sum(p.numel() for p in t2v_1_3b.parameters()) == pytest.approx(1.42e9, rel=1e-3)


def test_text_context_is_padded_to_text_len_like_wan():
    model = make_tiny_model()
    inputs = forward_kwargs(make_inputs(model.config))
    short = inputs["context"][:, :5]
    padded = torch.cat([short, torch.zeros_like(inputs["context"][:, 5:])], dim=1)
    assert torch.equal(model(**{**inputs, "context": short}), model(**{**inputs, "context": padded}))


def test_audio_scale_zero_equals_no_audio():
    model = make_tiny_model()
    inputs = make_inputs(model.config, speakers=1)
    tokens = model.encode_audio(inputs["features"])
    without = model(**forward_kwargs(inputs))
    scaled = model(**forward_kwargs(inputs), audio_tokens=tokens, audio_scale=0.0)
    with_audio = model(**forward_kwargs(inputs), audio_tokens=tokens)
    torch.testing.assert_close(scaled, without)
    assert not torch.allclose(with_audio, without, atol=1e-3)


def test_bfloat16_compute_stays_close_to_float32():
    model = make_tiny_model()
    inputs = make_inputs(model.config, speakers=2)
    kwargs = forward_kwargs(inputs) | {"speaker_masks": half_masks(2, 4, 4)}
    reference = model(**kwargs, audio_tokens=model.encode_audio(inputs["features"]))
    model.compute_dtype = torch.bfloat16
    model.to(torch.bfloat16)  # weights stored in bf16 too; the latent stays float32
    out = model(**kwargs, audio_tokens=model.encode_audio(inputs["features"]))
    assert out.dtype == torch.float32
    assert ((out - reference).norm() / reference.norm()).item() < 0.05


def test_a_batch_is_the_same_as_its_items():
    model = make_tiny_model()
    inputs = make_inputs(model.config, batch=2, speakers=2)
    tokens = model.encode_audio(inputs["features"])
    masks = half_masks(2, 4, 4)
    batched = model(**forward_kwargs(inputs), audio_tokens=tokens, speaker_masks=masks)
    for i in range(2):
        item = {k: v[i : i + 1] for k, v in forward_kwargs(inputs).items()}
        single = model(**item, audio_tokens=tokens[i : i + 1], speaker_masks=masks)
        torch.testing.assert_close(batched[i : i + 1], single, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"image_latent": None}, "image_latent"),
        ({"context": torch.zeros(1, 4, 7)}, "text context"),
        ({"x": torch.zeros(1, 16, 3, 5, 4)}, "multiples"),
        ({"x": torch.zeros(1, 36, 3, 4, 4)}, "latent"),
        ({"audio_tokens": torch.zeros(1, 1, 2, 4, 32)}, "audio tokens"),
        ({"speaker_masks": torch.ones(2, 2, 2)}, "speaker masks"),
    ],
)
def test_bad_inputs_raise_input_errors_naming_the_input(change, message):
    model = make_tiny_model()
    inputs = make_inputs(model.config, speakers=1)
    kwargs = forward_kwargs(inputs) | {"audio_tokens": model.encode_audio(inputs["features"])} | change
    with pytest.raises(InputError, match=message):
        model(**kwargs)


def test_audio_for_a_model_without_adapter_is_an_input_error():
    model = make_tiny_model(with_audio=False)
    inputs = forward_kwargs(make_inputs(model.config))
    with pytest.raises(InputError, match="no audio adapter"):
        model(**inputs, audio_tokens=torch.zeros(1, 1, 3, 4, 32))
    with pytest.raises(InputError, match="no audio adapter"):
        model.encode_audio(torch.zeros(1, 1, 9, 5, 3, 16))


def test_encode_audio_checks_layout_and_frame_count():
    model = make_tiny_model()
    with pytest.raises(InputError, match="window, wav2vec2 layers, width"):
        model.encode_audio(torch.zeros(1, 1, 9, 5, 12, 768))
    with pytest.raises(InputError, match="4\\*k\\+1"):
        model.encode_audio(torch.zeros(1, 1, 8, 5, 3, 16))
