"""The embedded bundle: every part loads through the pack's own loaders and the parts fit each other."""

import json
import shutil

import pytest
import torch

from magicinfinite_core.audio import SpeakerTrack, embed_audio
from magicinfinite_core.errors import CheckpointError
from magicinfinite_core.latents import decode, encode, image_conditioning
from magicinfinite_core.mini.bundle import (
    EMBEDDED_BUNDLE_DIR,
    EMBEDDED_BUNDLE_NAME,
    INFO_FILE,
    VAE_FILE,
    load_bundle,
    save_bundle,
)
from magicinfinite_core.mini.world import generate_clip
from magicinfinite_core.mini.world.clips import ClipSpec
from training.natural_images import dead_leaves


@pytest.fixture(scope="module")
def bundle():
    return load_bundle()


def _window_inputs(bundle, num_frames: int = 9):
    info = bundle.info
    clip = generate_clip(3, ClipSpec(height=info.height, width=info.width, num_frames=num_frames))
    latent = encode(bundle.vae, clip.frames)
    y = image_conditioning(bundle.vae, clip.frames[:1], num_frames)
    context = bundle.text_encoder.encode([clip.prompt])
    track = SpeakerTrack(clip.audio, clip.sample_rate)
    features = embed_audio(bundle.audio_encoder, [track], fps=info.fps)
    return clip, latent, y, context, features


def test_embedded_bundle_runs_a_window_forward(bundle):
    clip, latent, y, context, features = _window_inputs(bundle)
    model = bundle.model.module
    tokens = model.encode_audio(features.window(0, 9)[None])
    assert tokens.shape[:3] == (1, 1, latent.shape[2])
    velocity = model(latent, torch.tensor([500.0]), context, image_latent=y, audio_tokens=tokens,
                     speaker_masks=torch.ones(1, latent.shape[3] // 2, latent.shape[4] // 2))
    assert velocity.shape == latent.shape
    assert velocity.isfinite().all()
    assert bundle.name == EMBEDDED_BUNDLE_NAME


def test_vae_round_trip_keeps_video_shape(bundle):
    clip, latent, *_ = _window_inputs(bundle)
    assert latent.shape == (1, 16, 3, bundle.info.height // 8, bundle.info.width // 8)
    assert bundle.vae.decode(latent).shape == (1, 9, bundle.info.height, bundle.info.width, 3)


def test_the_codec_keeps_a_picture_that_is_not_a_cartoon_face(bundle):
    """A picture with natural-image statistics (occlusion at every scale, shading, texture; seeds the
    recipe never draws) comes back from the VAE as itself, not as 8x8-pixel mush: recipe mini-2, which saw
    only the cartoon world, gave 17.0 dB on these, mini-3 19.8 dB, mini-4 20.5 dB (photos: bench/quality.py
    --only codec)."""
    scores = []
    for seed in range(5):
        canvas = dead_leaves(torch.Generator().manual_seed(2_000_000 + seed))
        picture = canvas[16:80, 16:80][None].contiguous()
        decoded = decode(bundle.vae, encode(bundle.vae, picture))
        scores.append(float(10 * torch.log10(1 / (decoded - picture).square().mean())))
    assert sum(scores) / len(scores) >= 19.0, scores


def test_text_encoder_matches_the_dit(bundle):
    context = bundle.text_encoder.encode([bundle.info.default_prompt, bundle.info.negative_prompt])
    assert context.shape == (2, bundle.model.config.text_len, bundle.model.config.text_dim)
    assert not torch.equal(context[0], context[1])


def test_audio_features_fit_the_adapter(bundle):
    *_, features = _window_inputs(bundle)
    adapter = bundle.model.config.audio
    found = (features.feature_layers, features.feature_width)
    assert found == (adapter.feature_layers, adapter.feature_width)
    assert features.num_frames == 9


def test_save_then_load_gives_the_same_model(bundle, tmp_path):
    save_bundle(tmp_path, model=bundle.model.module, vae=bundle.vae, text_encoder=bundle.text_encoder,
                audio_encoder=bundle.audio_encoder.module, info=bundle.info)
    again = load_bundle(tmp_path)
    assert again.info == bundle.info
    for mine, theirs in ((bundle.model.module, again.model.module), (bundle.vae, again.vae),
                         (bundle.text_encoder, again.text_encoder),
                         (bundle.audio_encoder.module, again.audio_encoder.module)):
        a, b = mine.state_dict(), theirs.state_dict()
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k].float(), b[k].float()) for k in a)
    assert again.name == bundle.info.name


def test_incomplete_or_foreign_bundles_are_refused_by_name(tmp_path):
    shutil.copytree(EMBEDDED_BUNDLE_DIR, tmp_path / "b")
    (tmp_path / "b" / VAE_FILE).unlink()
    with pytest.raises(CheckpointError, match="vae.safetensors"):
        load_bundle(tmp_path / "b")
    shutil.copytree(EMBEDDED_BUNDLE_DIR, tmp_path / "c")
    info = json.loads((tmp_path / "c" / INFO_FILE).read_text())
    info["format"] = 99
    (tmp_path / "c" / INFO_FILE).write_text(json.dumps(info))
    with pytest.raises(CheckpointError, match="format 99"):
        load_bundle(tmp_path / "c")
