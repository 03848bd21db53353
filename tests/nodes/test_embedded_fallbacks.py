"""The embedded MagicInfinite-Mini bundle inside ComfyUI with no download: both loaders list it first, the
model carries the bundle's VAE and text encoder, the text node encodes with it when no CONDITIONING or CLIP
is connected, the sampler decodes with it when no VAE is connected, and the whole node chain runs on it."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import save_file

import nodes.sampler as sampler_node
from magicinfinite_core.assets import load_sample_portrait, load_sample_speech
from magicinfinite_core.audio import AudioEncoder
from magicinfinite_core.checkpoints import LoraSpec
from magicinfinite_core.errors import InputError
from magicinfinite_core.mini.bundle import EMBEDDED_BUNDLE_NAME, load_bundle
from magicinfinite_core.mini.text_encoder import SmallTextEncoder
from magicinfinite_core.mini.vae import SmallVideoVAE
from nodes.audio import MagicInfiniteAudioEmbed, MagicInfiniteAudioEncoderLoader
from nodes.host import MODELS_DIR_ENV
from nodes.model_loader import MagicInfiniteModel, MagicInfiniteModelLoader
from nodes.sampler import MagicInfiniteSampler
from nodes.text import MagicInfiniteTextConditioning


@pytest.fixture
def empty_models(tmp_path, monkeypatch):
    """A ComfyUI models folder with nothing in it: the embedded bundle is all there is."""
    monkeypatch.setenv(MODELS_DIR_ENV, str(tmp_path))
    return tmp_path


@pytest.fixture(scope="module")
def embedded() -> MagicInfiniteModel:
    (model,) = MagicInfiniteModelLoader().load(EMBEDDED_BUNDLE_NAME, "none", "fp32", "default")
    return model


def sample_voice(seconds: float) -> dict:
    waveform, rate = load_sample_speech()
    return {"waveform": waveform[None, :, : round(seconds * rate)], "sample_rate": rate}


def test_both_loaders_offer_the_embedded_bundle_first_with_an_empty_models_folder(empty_models):
    dit_names = MagicInfiniteModelLoader.INPUT_TYPES()["required"]["dit_name"][0]
    encoder_names = MagicInfiniteAudioEncoderLoader.INPUT_TYPES()["required"]["audio_encoder_name"][0]
    assert dit_names == [EMBEDDED_BUNDLE_NAME] and encoder_names == [EMBEDDED_BUNDLE_NAME]


def test_the_embedded_model_carries_its_vae_and_text_encoder(embedded):
    bundle = load_bundle()
    assert isinstance(embedded.vae, SmallVideoVAE) and isinstance(embedded.text_encoder, SmallTextEncoder)
    assert embedded.dit.config == bundle.model.config and embedded.dit.config.audio is not None
    assert embedded.dit.compute_dtype == torch.float32
    shipped = bundle.vae.state_dict()
    assert all(torch.equal(value, shipped[key]) for key, value in embedded.vae.state_dict().items())


def test_the_embedded_model_refuses_an_extra_adapter(empty_models):
    (empty_models / "model_patches").mkdir()
    with pytest.raises(InputError, match="adapter_name: .* carries its own audio adapter"):
        MagicInfiniteModelLoader().load(EMBEDDED_BUNDLE_NAME, "infinitetalk.safetensors", "fp32", "default")


def test_the_embedded_dit_takes_loras_and_a_weight_dtype(embedded, tmp_path):
    dim = embedded.dit.config.dim
    g = torch.Generator().manual_seed(0)
    lora = tmp_path / "style.safetensors"
    save_file({"diffusion_model.blocks.0.self_attn.q.lora_down.weight": torch.randn(2, dim, generator=g),
               "diffusion_model.blocks.0.self_attn.q.lora_up.weight": torch.randn(dim, 2, generator=g)},
              str(lora))
    (model,) = MagicInfiniteModelLoader().load(EMBEDDED_BUNDLE_NAME, "none", "fp32", "fp8_e4m3fn",
                                               loras=(LoraSpec(str(lora), 0.5),))
    assert model.dit.storage_dtype == torch.float8_e4m3fn and model.dit.loras == (LoraSpec(str(lora), 0.5),)
    assert model.dit.module.get_parameter("blocks.1.ffn.0.weight").dtype == torch.float8_e4m3fn
    assert len(model.dit.module.get_submodule("blocks.0.self_attn.q").patches) == 1  # kept beside fp8
    assert model.vae is not None and model.text_encoder is not None


def test_the_embedded_audio_encoder_fits_the_embedded_model(embedded):
    (encoder,) = MagicInfiniteAudioEncoderLoader().load(EMBEDDED_BUNDLE_NAME)
    adapter = embedded.dit.config.audio
    assert isinstance(encoder, AudioEncoder)
    assert (encoder.feature_layers, encoder.feature_width) == (adapter.feature_layers, adapter.feature_width)


class FakeClip:
    def tokenize(self, text):
        return text

    def encode_from_tokens(self, tokens):
        return torch.full((1, 4, 8), float(len(tokens)))


def test_text_node_encodes_with_the_models_text_encoder_when_nothing_else_is_connected(embedded):
    node = MagicInfiniteTextConditioning()
    (text,) = node.condition("0: a smiling person\n1.5: a surprised person", "blurry", model=embedded)
    encoder = embedded.text_encoder
    assert [start for start, _ in text.prompts] == [0.0, 1.5]
    assert torch.equal(text.context_at(2.0), encoder.encode(["a surprised person"]))
    assert torch.equal(text.negative, encoder.encode(["blurry"]))
    # What the user connected comes first: a CLIP, then CONDITIONING.
    (text,) = node.condition("calm", "", clip=FakeClip(), model=embedded)
    assert text.context_at(0.0).eq(len("calm")).all()
    positive = [[torch.ones(1, 4, 8), {}]]
    (text,) = node.condition("ignored", "", positive=positive, model=embedded)
    assert torch.equal(text.context_at(0.0), positive[0][0])


def test_text_node_says_when_the_model_brings_no_text_encoder(embedded):
    plain = MagicInfiniteModel(embedded.dit)
    with pytest.raises(InputError, match="model: it brings no text encoder.*connect a CLIP"):
        MagicInfiniteTextConditioning().condition("calm", "", model=plain)


def sampler_inputs(model, audio, text, **overrides) -> dict:
    values = {"model": model, "image": load_sample_portrait(), "audio": audio, "text": text, "width": 64,
              "height": 64, "sampler": "distilled", "steps": 4, "text_cfg": 1.0, "audio_cfg": 1.0, "seed": 1,
              "output": "frames", "filename_prefix": "embedded"}
    return {**values, **overrides}


def test_sampler_uses_the_models_vae_unless_one_is_connected(embedded, monkeypatch):
    seen = []

    def fake_sample_video(module, vae, *args, **kwargs):
        seen.append(vae)
        raise RuntimeError("stop here")

    monkeypatch.setattr(sampler_node, "sample_video", fake_sample_video)
    host_vae = SmallVideoVAE(8)
    audio = SimpleNamespace(num_frames=12, fps=25.0)
    for vae in (None, host_vae):
        with pytest.raises(RuntimeError, match="stop here"):
            MagicInfiniteSampler().sample(**sampler_inputs(embedded, audio, None), vae=vae)
    assert seen == [embedded.vae, host_vae]
    plain = MagicInfiniteModel(embedded.dit)
    with pytest.raises(InputError, match="vae: connect a VAE"):
        MagicInfiniteSampler().sample(**sampler_inputs(plain, audio, None))


def test_the_whole_node_chain_runs_on_the_embedded_bundle_with_the_default_precision(empty_models):
    (model,) = MagicInfiniteModelLoader().load(EMBEDDED_BUNDLE_NAME, "none", "bf16", "default")
    (encoder,) = MagicInfiniteAudioEncoderLoader().load(EMBEDDED_BUNDLE_NAME)
    features, mix, num_frames = MagicInfiniteAudioEmbed().embed(sample_voice(0.5), 25.0, "para", True,
                                                                audio_encoder=encoder)
    (text,) = MagicInfiniteTextConditioning().condition("a smiling person", "", model=model)
    images, sound, fps, path = MagicInfiniteSampler().sample(**sampler_inputs(model, features, text))
    assert num_frames == 12 and images.shape == (12, 64, 64, 3) and fps == 25.0 and path == ""
    assert images.isfinite().all() and sound["sample_rate"] == mix["sample_rate"]
