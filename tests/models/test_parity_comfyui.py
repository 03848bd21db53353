"""Parity with ComfyUI's Wan DiT and MultiTalk adapter (comfy/ldm/wan/model.py, model_multitalk.py).

Needs COMFYUI_DIR: a ComfyUI checkout whose Python dependencies are installed (skipped when it is unset).
ComfyUI's adapter fixes 40 heads and 12 x 768 wav2vec2 features, so the tiny config uses width 320
(40 heads of 8).
The audio is driven the way WanInfiniteTalkToVideo (comfy_extras/nodes_wan.py) drives it: tokens from
`project_audio_features` in transformer_options["audio_embeds"], `MultiTalkCrossAttnPatch` as attn2_patch
and, for two speakers, `MultiTalkGetAttnMapPatch` as attn1_patch with the background mask as a third class
(as the MultiTalk reference passes it).
"""

from __future__ import annotations

import importlib
import sys
from types import SimpleNamespace

import pytest
import torch
from conftest import make_inputs, make_tiny_model

from magicinfinite_core.models.config import AudioAdapterConfig, WanConfig
from tests.host.checkout import comfyui_dir, requires_comfyui

pytestmark = requires_comfyui

TOLERANCE = 1e-5
CONFIG = WanConfig(
    dim=320,
    ffn_dim=640,
    num_heads=40,
    num_layers=2,
    model_type="i2v",
    text_dim=32,
    text_len=16,
    freq_dim=32,
    audio=AudioAdapterConfig(intermediate_dim=16, context_tokens=4),
)
FRAMES, HEIGHT, WIDTH = 3, 4, 6  # latent; token grid 3 x 2 x 3
AUDIO_START = 2  # video frame of the feature sequence where the window starts


@pytest.fixture(scope="module")
def comfy():
    # Appended: ComfyUI's top-level nodes.py must not shadow this pack's nodes/.
    sys.path.append(str(comfyui_dir()))
    cli_args = importlib.import_module("comfy.cli_args")
    cli_args.args.cpu = True  # ComfyUI picks its device when comfy.model_management is first imported
    return SimpleNamespace(
        wan=importlib.import_module("comfy.ldm.wan.model"),
        multitalk=importlib.import_module("comfy.ldm.wan.model_multitalk"),
        ops=importlib.import_module("comfy.ops"),
    )


def comfy_models(comfy, state_dict: dict[str, torch.Tensor]):
    """ComfyUI's DiT and MultiTalk patch module with our weights (strict loads: every key maps)."""
    operations = comfy.ops.disable_weight_init
    dit = comfy.wan.WanModel(
        model_type="i2v",
        text_len=CONFIG.text_len,
        in_dim=CONFIG.in_dim,
        dim=CONFIG.dim,
        ffn_dim=CONFIG.ffn_dim,
        freq_dim=CONFIG.freq_dim,
        text_dim=CONFIG.text_dim,
        out_dim=CONFIG.out_dim,
        num_heads=CONFIG.num_heads,
        num_layers=CONFIG.num_layers,
        eps=CONFIG.eps,
        operations=operations,
    )
    audio = CONFIG.audio
    adapter = torch.nn.Module()
    adapter.audio_proj = comfy.multitalk.MultiTalkAudioProjModel(
        seq_len=audio.window,
        seq_len_vf=audio.window_vf,
        intermediate_dim=audio.intermediate_dim,
        out_dim=audio.token_dim,
        context_tokens=audio.context_tokens,
        operations=operations,
    )
    adapter.blocks = torch.nn.ModuleList(
        comfy.multitalk.WanMultiTalkAttentionBlock(CONFIG.dim, audio.token_dim, operations=operations)
        for _ in range(CONFIG.num_layers)
    )
    for block in adapter.blocks:
        # ComfyUI builds norm_x with LayerNorm's default eps 1e-5; the MultiTalk/InfiniteTalk reference
        # (WanLayerNorm(dim, eps)) and this pack use the model's 1e-6.
        block.norm_x.eps = CONFIG.eps
    adapter_keys = {
        k for k in state_dict if k.startswith("audio_proj.") or ".norm_x." in k or ".audio_cross_attn." in k
    }
    dit.load_state_dict({k: v for k, v in state_dict.items() if k not in adapter_keys}, strict=True)
    adapter.load_state_dict({k: state_dict[k] for k in adapter_keys}, strict=True)
    return dit.eval(), SimpleNamespace(model=adapter.eval())


def feature_sequences(speakers: int, seed: int) -> list[torch.Tensor]:
    """Per speaker, wav2vec2 features of a clip longer than the window: [frames, 12, 768]."""
    g = torch.Generator().manual_seed(seed)
    video_frames = 4 * (FRAMES - 1) + 1
    return [torch.randn(AUDIO_START + video_frames + 3, 12, 768, generator=g) for _ in range(speakers)]


def windows(sequences: list[torch.Tensor]) -> torch.Tensor:
    """[1, S, F, 5, 12, 768]: frames i-2..i+2 (clamped) of each video frame of the window."""
    video_frames = 4 * (FRAMES - 1) + 1
    centres = torch.arange(AUDIO_START, AUDIO_START + video_frames)
    index = (centres[:, None] + torch.arange(-2, 3)).clamp(0, sequences[0].shape[0] - 1)
    return torch.stack([seq[index] for seq in sequences])[None]


def speaker_masks() -> torch.Tensor:
    """Two disjoint regions on the 2 x 3 token grid, leaving one background token."""
    masks = torch.zeros(2, HEIGHT // 2, WIDTH // 2)
    masks[0, :, 0] = 1
    masks[1, :, 2] = 1
    masks[1, 0, 1] = 1
    return masks


def relative_error(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    return ((ours - theirs).abs().max() / theirs.abs().max()).item()


@pytest.mark.parametrize("speakers", [1, 2])
def test_forward_matches_comfyui(comfy, speakers):
    model = make_tiny_model(CONFIG, seed=speakers)
    inputs = make_inputs(CONFIG, frames=FRAMES, height=HEIGHT, width=WIDTH, seed=speakers)
    dit, patch = comfy_models(comfy, model.state_dict())
    sequences = feature_sequences(speakers, seed=10 + speakers)

    their_tokens = comfy.multitalk.project_audio_features(
        patch.model.audio_proj, sequences, AUDIO_START, AUDIO_START + 4 * (FRAMES - 1) + 1
    )
    our_tokens = model.encode_audio(windows(sequences))
    # theirs: [1, T, S*K, C], speakers concatenated along tokens; ours: [1, S, T, K, C]
    assert relative_error(our_tokens.transpose(1, 2).flatten(2, 3), their_tokens) <= TOLERANCE

    options = {
        "audio_embeds": their_tokens,
        "patches": {"attn2_patch": [comfy.multitalk.MultiTalkCrossAttnPatch(patch, audio_scale=1.0)]},
    }
    masks = None
    if speakers == 2:
        masks = speaker_masks()
        flat = masks.flatten(1).bool()
        classes = torch.cat([flat, ~flat.any(dim=0, keepdim=True)])
        options["patches"]["attn1_patch"] = [comfy.multitalk.MultiTalkGetAttnMapPatch(classes)]

    with torch.no_grad():
        theirs = dit(
            torch.cat([inputs["x"], inputs["image_latent"]], dim=1),
            inputs["timestep"],
            inputs["context"],
            clip_fea=inputs["clip_tokens"],
            transformer_options=options,
        )
        ours = model(
            inputs["x"],
            inputs["timestep"],
            inputs["context"],
            image_latent=inputs["image_latent"],
            clip_tokens=inputs["clip_tokens"],
            audio_tokens=our_tokens,
            speaker_masks=masks,
            region_gate=False,
        )
    error = relative_error(ours, theirs)
    print(f"parity with ComfyUI, {speakers} speaker(s): max relative error {error:.2e}")
    assert error <= TOLERANCE
