"""Audio adapter: per-latent-frame windows, frame-local attention, the region gate and the L-RoPE binding."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from conftest import make_inputs, make_tiny_model
from hypothesis import given, settings
from hypothesis import strategies as st

from magicinfinite_core.models.audio_adapter import (
    BACKGROUND_POSITION,
    AudioConditioning,
    AudioCrossAttention,
    RegionGate,
    SpeakerBinding,
    latent_frame_windows,
)

DIM, HEADS, TOKEN_DIM, K = 32, 4, 12, 3
ATOL = 1e-6


def model_inputs(inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in inputs.items() if k != "features"}


def layer_case(speakers: int, frames: int, h: int, w: int, seed: int, gate: bool, binding: bool):
    """An audio cross-attention layer, its input, audio conditioning, L-RoPE positions and masks."""
    g = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        layer = AudioCrossAttention(DIM, TOKEN_DIM, HEADS).eval()
    masks = (torch.rand(speakers, h, w, generator=g) < 0.4).float()
    tokens = torch.randn(2, frames, speakers * K, TOKEN_DIM, generator=g)
    x = torch.randn(2, frames * h * w, DIM, generator=g)
    audio = AudioConditioning(
        tokens=tokens,
        scale=1.0,
        binding=SpeakerBinding.from_masks(masks, K) if binding else None,
        gate=RegionGate.from_masks(masks, K) if gate else None,
    )
    positions = torch.rand(2, frames * h * w, generator=g) * 24 if binding else None
    return layer, x, audio, positions, masks


def with_tokens(audio: AudioConditioning, tokens: torch.Tensor) -> AudioConditioning:
    return dataclasses.replace(audio, tokens=tokens)


def test_latent_frame_windows_take_the_multitalk_rows():
    frames, window = 9, 5
    # features[0, f, r] = 10 * f + r, so every picked row says where it came from
    code = 10 * torch.arange(frames)[:, None] + torch.arange(window)[None, :]
    features = code[None, :, :, None, None].float()
    first, later = latent_frame_windows(features)
    assert first[0, 0, :, 0, 0].tolist() == [0, 1, 2, 3, 4]
    for t in (1, 2):
        a, b, c, d = 4 * t - 3, 4 * t - 2, 4 * t - 1, 4 * t
        rows = [10 * a, 10 * a + 1, 10 * a + 2, 10 * b + 2, 10 * c + 2, 10 * d + 2, 10 * d + 3, 10 * d + 4]
        assert later[0, t - 1, :, 0, 0].tolist() == rows


@settings(max_examples=25, deadline=None)
@given(
    speakers=st.integers(2, 4),
    frames=st.integers(1, 3),
    h=st.integers(1, 3),
    w=st.integers(1, 4),
    seed=st.integers(0, 10_000),
    speaker=st.integers(0, 3),
)
def test_gate_keeps_each_speakers_audio_inside_its_region(speakers, frames, h, w, seed, speaker):
    speaker %= speakers
    layer, x, audio, positions, masks = layer_case(
        speakers, frames, h, w, seed, gate=True, binding=speakers == 2
    )
    changed = audio.tokens.clone()
    changed[:, :, speaker * K : (speaker + 1) * K] += 3.0
    out = layer(x, audio, positions)
    out_changed = layer(x, with_tokens(audio, changed), positions)

    outside = (masks[speaker].flatten() == 0).repeat(frames)
    torch.testing.assert_close(out[:, outside], out_changed[:, outside], rtol=0, atol=ATOL)
    if (~outside).any():
        assert not torch.allclose(out[:, ~outside], out_changed[:, ~outside], atol=1e-4)


@settings(max_examples=25, deadline=None)
@given(speakers=st.integers(1, 4), h=st.integers(1, 3), w=st.integers(1, 3), seed=st.integers(0, 10_000))
def test_tokens_in_no_region_get_exactly_zero_and_nothing_is_nan(speakers, h, w, seed):
    layer, x, audio, positions, masks = layer_case(speakers, 2, h, w, seed, gate=True, binding=speakers == 2)
    out = layer(x, audio, positions)
    assert torch.isfinite(out).all()
    uncovered = (masks.sum(dim=0).flatten() == 0).repeat(2)
    assert (out[:, uncovered] == 0).all()


@pytest.mark.parametrize(("gate", "binding"), [(False, False), (True, False), (True, True), (False, True)])
def test_audio_attention_is_frame_local(gate, binding):
    frames, h, w = 3, 2, 3
    layer, x, audio, positions, _ = layer_case(2, frames, h, w, seed=1, gate=gate, binding=binding)
    for t in range(frames):
        changed = audio.tokens.clone()
        changed[:, t] += 3.0
        out = layer(x, audio, positions).unflatten(1, (frames, h * w))
        out_changed = layer(x, with_tokens(audio, changed), positions).unflatten(1, (frames, h * w))
        others = [f for f in range(frames) if f != t]
        torch.testing.assert_close(out[:, others], out_changed[:, others], rtol=0, atol=ATOL)
        assert not torch.allclose(out[:, t], out_changed[:, t], atol=1e-4)


def test_without_the_gate_every_token_hears_every_speaker():
    layer, x, audio, positions, masks = layer_case(2, 2, 3, 3, seed=3, gate=False, binding=True)
    changed = audio.tokens.clone()
    changed[:, :, K:] += 3.0
    outside = (masks[1].flatten() == 0).repeat(2)
    out = layer(x, audio, positions)[:, outside]
    out_changed = layer(x, with_tokens(audio, changed), positions)[:, outside]
    assert not torch.allclose(out, out_changed, atol=1e-4)


def two_speaker_case(num_layers: int, seed: int = 0):
    model = make_tiny_model(num_layers=num_layers, seed=seed)
    inputs = make_inputs(model.config, frames=3, height=6, width=8, speakers=2, seed=seed)
    masks = torch.zeros(2, 3, 4)
    masks[0, :, :2] = 1  # speaker 1: left half
    masks[1, :2, 2:] = 1  # speaker 2: top right; the bottom-right tokens are background
    changed = inputs["features"].clone()
    changed[:, 1] = torch.randn(changed[:, 1].shape, generator=torch.Generator().manual_seed(seed + 99))
    return model, inputs, masks, changed


def test_every_audio_layer_keeps_speaker_2_inside_its_region():
    """In each audio cross-attention layer of a 3-block model, given that layer's own inputs, the output
    outside speaker 2's region does not depend on speaker 2's audio."""
    model, inputs, masks, changed_features = two_speaker_case(num_layers=3)
    calls = []
    hooks = [
        block.audio_cross_attn.register_forward_hook(lambda _m, args, out: calls.append((args, out)))
        for block in model.blocks
    ]
    model(**model_inputs(inputs), audio_tokens=model.encode_audio(inputs["features"]), speaker_masks=masks)
    for hook in hooks:
        hook.remove()
    changed = model.audio_conditioning(model.encode_audio(changed_features), masks, True, 1.0)

    assert len(calls) == 3
    outside = (masks[1].flatten() == 0).repeat(3)
    for block, ((x, _audio, positions, _shard), out) in zip(model.blocks, calls, strict=True):
        out_changed = block.audio_cross_attn(x, changed, positions)
        torch.testing.assert_close(out[:, outside], out_changed[:, outside], rtol=0, atol=ATOL)
        assert not torch.allclose(out[:, ~outside], out_changed[:, ~outside], atol=1e-4)


def latent_region(masks: torch.Tensor) -> torch.Tensor:
    """Token-grid masks [S, h, w] -> latent-pixel masks [S, 2h, 2w] (patch 2 x 2)."""
    return masks.repeat_interleave(2, dim=1).repeat_interleave(2, dim=2).bool()


def test_one_block_model_output_outside_speaker_2s_region_ignores_speaker_2s_audio():
    model, inputs, masks, changed_features = two_speaker_case(num_layers=1)
    kwargs = model_inputs(inputs) | {"speaker_masks": masks}
    out = model(**kwargs, audio_tokens=model.encode_audio(inputs["features"]))
    out_changed = model(**kwargs, audio_tokens=model.encode_audio(changed_features))

    region_2 = latent_region(masks)[1]
    speaker_1 = latent_region(masks)[0]
    torch.testing.assert_close(out[..., speaker_1], out_changed[..., speaker_1], rtol=0, atol=ATOL)
    torch.testing.assert_close(out[..., ~region_2], out_changed[..., ~region_2], rtol=0, atol=ATOL)
    assert (out[..., region_2] - out_changed[..., region_2]).abs().max() > 1e-3


def test_model_with_no_token_in_any_region_gets_no_audio_at_all():
    model, inputs, masks, _ = two_speaker_case(num_layers=2)
    tokens = model.encode_audio(inputs["features"])
    out = model(**model_inputs(inputs), audio_tokens=tokens, speaker_masks=torch.zeros_like(masks))
    assert torch.equal(out, model(**model_inputs(inputs)))


def test_one_speaker_is_not_rope_bound_so_ungated_masks_change_nothing():
    model = make_tiny_model()
    inputs = make_inputs(model.config, speakers=1)
    tokens = model.encode_audio(inputs["features"])
    mask = torch.zeros(1, 2, 2)
    mask[0, 0] = 1
    plain = model(**model_inputs(inputs), audio_tokens=tokens)
    ungated = model(**model_inputs(inputs), audio_tokens=tokens, speaker_masks=mask, region_gate=False)
    assert torch.equal(plain, ungated)


def test_three_speakers_have_no_rope_binding_so_ungated_masks_change_nothing():
    model = make_tiny_model()
    inputs = make_inputs(model.config, speakers=3)
    tokens = model.encode_audio(inputs["features"])
    masks = torch.eye(3)[:, :, None].expand(3, 3, 2)[:, :2].contiguous()
    plain = model(**model_inputs(inputs), audio_tokens=tokens)
    ungated = model(**model_inputs(inputs), audio_tokens=tokens, speaker_masks=masks, region_gate=False)
    assert torch.equal(plain, ungated)


def test_two_speakers_with_masks_are_rope_bound_even_without_the_gate():
    model, inputs, masks, _ = two_speaker_case(num_layers=1)
    tokens = model.encode_audio(inputs["features"])
    plain = model(**model_inputs(inputs), audio_tokens=tokens)
    bound = model(**model_inputs(inputs), audio_tokens=tokens, speaker_masks=masks, region_gate=False)
    assert not torch.allclose(plain, bound, atol=1e-4)


def test_binding_classes_tokens_by_their_attention_to_each_region():
    """Queries aligned with speaker 1's / speaker 2's / the background's first-frame keys get positions
    in [0, 4], in [20, 24] and exactly 12; audio keys sit at 2 and 22."""
    head_dim, scale = 8, 20.0
    masks = torch.tensor([[[1.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]]])  # 1 x 3 grid; third token is background
    axes = torch.eye(head_dim)[:3] * scale
    k = axes[None, :, None, :]  # [1, 3 tokens, 1 head, D]: token i's key along axis i
    q = torch.stack([axes[0], axes[1], axes[2], 0.5 * axes[0]])[None, :, None, :]
    binding = SpeakerBinding.from_masks(masks, tokens_per_speaker=2)
    positions = binding.query_positions(q, k)[0]
    assert 0.0 <= positions[0] <= 4.0 and 0.0 <= positions[3] <= 4.0
    assert positions[0] == pytest.approx(4.0)  # the strongest speaker-1 score maps to the top of its range
    assert 20.0 <= positions[1] <= 24.0
    assert positions[2] == BACKGROUND_POSITION
    assert binding.key_positions(torch.device("cpu")).tolist() == [2.0, 2.0, 22.0, 22.0]
