"""MagicInfiniteSampler / MagicInfiniteSamplerOptions: declarations, one call into the engine, host glue
(progress with preview, cancel, device moves, file output)."""

import av
import pytest
import torch

import nodes.sampler as sampler_node
from magicinfinite_core.checkpoints.loader import LoadedModel
from magicinfinite_core.errors import InputError
from magicinfinite_core.sampling import SamplerOptions
from nodes.model_loader import MagicInfiniteModel
from nodes.sampler import (
    NODE_CLASS_MAPPINGS,
    NODE_DISPLAY_NAME_MAPPINGS,
    MagicInfiniteSampler,
    MagicInfiniteSamplerOptions,
)
from tests.conftest import make_tiny_model
from tests.nodes.sampler_node_fixtures import HostManagement, inputs
from tests.sampling.sampler_fixtures import CONFIG, make_vae


@pytest.fixture(scope="module")
def loaded() -> MagicInfiniteModel:
    return MagicInfiniteModel(
        LoadedModel(make_tiny_model(CONFIG), CONFIG, torch.float32, None, ("tiny.safetensors",), ()))


def test_registered_with_tooltips_on_every_input() -> None:
    for name, cls in (("MagicInfiniteSampler", MagicInfiniteSampler),
                      ("MagicInfiniteSamplerOptions", MagicInfiniteSamplerOptions)):
        assert NODE_CLASS_MAPPINGS[name] is cls and name in NODE_DISPLAY_NAME_MAPPINGS
        spec = cls.INPUT_TYPES()
        for key, (_, options) in {**spec["required"], **spec.get("optional", {})}.items():
            assert options.get("tooltip"), key
        assert hasattr(cls, cls.FUNCTION) and len(cls.RETURN_TYPES) == len(cls.OUTPUT_TOOLTIPS)
    assert MagicInfiniteSampler.RETURN_TYPES == ("IMAGE", "AUDIO", "FLOAT", "STRING")
    assert MagicInfiniteSampler.OUTPUT_NODE


def test_frames_output_returns_every_frame_the_audio_and_fps(loaded) -> None:
    images, sound, fps, path = MagicInfiniteSampler().sample(**inputs(loaded))
    assert images.shape == (20, 32, 32, 3) and fps == 25.0 and path == ""
    assert sound["sample_rate"] == 16000 and sound["waveform"].shape == (1, 1, round(20 / 25 * 16000))


def test_file_output_streams_an_mp4_into_the_output_folder(loaded, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(sampler_node, "output_directory", lambda: tmp_path)
    out = MagicInfiniteSampler().sample(**inputs(loaded, output="file"))
    images, _, _, path = out["result"]
    assert images.shape == (1, 32, 32, 3)
    (saved,) = out["ui"]["images"]
    assert saved["subfolder"] == "test" and (tmp_path / "test" / saved["filename"]).is_file()
    with av.open(path) as container:
        assert sum(1 for _ in container.decode(video=0)) == 20


def test_live_output_also_publishes_an_ended_hls_playlist(loaded, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(sampler_node, "output_directory", lambda: tmp_path)
    out = MagicInfiniteSampler().sample(**inputs(loaded, output="live"))
    path = out["result"][3]
    lines = (tmp_path / "test" / "talk.m3u8").read_text().splitlines()
    segments = [line for line in lines if not line.startswith("#")]
    assert lines[-1] == "#EXT-X-ENDLIST" and len(segments) == 2  # 20 frames: windows of 17 and 3 new
    assert all((tmp_path / "test" / uri).is_file() for uri in segments) and path.endswith(".mp4")


def test_progress_counts_every_step_with_a_preview_and_cancel_is_honoured(loaded, monkeypatch) -> None:
    calls = []

    def progress_callback(total):
        def advance(step, preview=None):
            calls.append((step, total, preview))
            if step == 5:
                raise KeyboardInterrupt("the host's interrupt")

        return advance

    monkeypatch.setattr(sampler_node, "progress_callback", progress_callback)
    with pytest.raises(KeyboardInterrupt):
        MagicInfiniteSampler().sample(**inputs(loaded))  # 20 frames: 2 windows x 4 steps
    assert [step for step, _, _ in calls] == [1, 2, 3, 4, 5]
    assert {total for _, total, _ in calls} == {8}
    kind, picture, size = calls[0][2]
    assert kind == "JPEG" and picture.size == (4, 4) and size == 512


def test_the_model_moves_to_the_compute_device_and_back(loaded, monkeypatch) -> None:
    management = HostManagement()
    monkeypatch.setattr(sampler_node, "model_management", management)
    MagicInfiniteSampler().sample(**inputs(loaded))
    assert management.calls == [("free", 1024, "cpu"), "offload", "empty cache"]


def test_clip_vision_output_penultimate_states_are_used(loaded, monkeypatch) -> None:
    seen = {}

    def fake_sample_video(*args, **kwargs):
        seen.update(kwargs)
        raise RuntimeError("stop here")

    class ClipVisionOutput:
        penultimate_hidden_states = torch.randn(1, 257, CONFIG.image_dim)

    monkeypatch.setattr(sampler_node, "sample_video", fake_sample_video)
    with pytest.raises(RuntimeError, match="stop here"):
        MagicInfiniteSampler().sample(**inputs(loaded), clip_vision_output=ClipVisionOutput())
    assert seen["clip_tokens"] is ClipVisionOutput.penultimate_hidden_states


def test_clear_errors_for_bad_inputs(loaded) -> None:
    with pytest.raises(InputError, match="width"):
        MagicInfiniteSampler().sample(**inputs(loaded, width=40))
    with pytest.raises(InputError, match="vae"):
        MagicInfiniteSampler().sample(**inputs(loaded, vae=None))


def test_options_node_builds_sampler_options() -> None:
    sigmas = torch.tensor([1.0, 0.5, 0.0])
    (options,) = MagicInfiniteSamplerOptions().build(33, 9, "multitalk", 0.0, 0.5, sigmas=sigmas)
    assert options == SamplerOptions(33, 9, "multitalk", None, (1.0, 0.5, 0.0), 0.5)
    (options,) = MagicInfiniteSamplerOptions().build(81, 9, "infinitetalk", 3.0, 0.0)
    assert options.shift == 3.0 and options.sigmas is None
    with pytest.raises(InputError, match="motion_frames"):
        MagicInfiniteSamplerOptions().build(17, 17, "infinitetalk", 0.0, 0.0)


def test_the_options_preset_replaces_the_samplers_settings(loaded, monkeypatch) -> None:
    (options,) = MagicInfiniteSamplerOptions().build(17, 5, "infinitetalk", 0.0, 0.0, preset="flashtalk")
    seen = []

    def capture(model, vae, image, audio, text, settings, **kwargs):
        seen.append(settings)
        raise InputError("stop here")

    monkeypatch.setattr(sampler_node, "sample_video", capture)
    with pytest.raises(InputError, match="stop here"):
        MagicInfiniteSampler().sample(**inputs(loaded, options=options, steps=8, text_cfg=3.0))
    (settings,) = seen
    assert (settings.width, settings.height, settings.steps, settings.text_cfg) == (448, 768, 4, 1.0)
    assert (settings.options.window_frames, settings.options.motion_frames) == (33, 5)


def test_exactly_one_model_stack_must_be_connected(loaded) -> None:
    sampler = MagicInfiniteSampler()
    host_model, adapter = object(), object()  # never reached: the inputs are refused first
    with pytest.raises(InputError, match="model: connect either an MI_MODEL .* not both"):
        sampler.sample(**inputs(loaded, wan_model=host_model, model_patch=adapter))
    with pytest.raises(InputError, match="wan_model: no model connected; connect MagicInfinite Model Loader"):
        sampler.sample(**inputs(None))
    with pytest.raises(InputError, match="model_patch: a MODEL needs its audio adapter"):
        sampler.sample(**inputs(None, wan_model=host_model))


def test_a_comfyui_vae_is_named_in_the_resume_identity_by_its_weights() -> None:
    from nodes.host import vae_identity

    class HostVAE:  # ComfyUI's VAE object wraps its module in first_stage_model
        def __init__(self, seed: int) -> None:
            torch.manual_seed(seed)
            self.first_stage_model = torch.nn.Linear(3, 3)

    assert vae_identity(HostVAE(0)) == vae_identity(HostVAE(0)) != vae_identity(HostVAE(1))
    assert vae_identity(make_vae()) == ""  # the engine's own VAE is a module: the engine names it


def test_several_devices_need_our_own_model(loaded) -> None:
    host_model, adapter = object(), object()  # never called: the device count is refused first
    options = SamplerOptions(devices=2)
    with pytest.raises(InputError, match="options: devices 2 needs our MI_MODEL"):
        MagicInfiniteSampler().sample(**inputs(None, wan_model=host_model, model_patch=adapter,
                                               options=options))
