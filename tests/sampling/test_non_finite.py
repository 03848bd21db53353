"""NaN, infinite and out-of-range values: a bad image is refused before any work, and a window that comes
out as NaN (a NaN weight or LoRA) stops the render before it is written, leaving no file that looks
complete."""

import math

import pytest
import torch
import torch.nn.functional as F
from conftest import make_tiny_model
from safetensors.torch import save_file
from sampler_fixtures import (
    CONFIG,
    RecordingModel,
    make_audio,
    make_picture,
    make_settings,
    make_text,
    make_vae,
)

from magicinfinite_core.checkpoints import LoraSpec, config_metadata, load_model
from magicinfinite_core.errors import InputError
from magicinfinite_core.sampling.loop import sample_video, stream_video
from magicinfinite_core.sampling.resume import ResumeStore
from magicinfinite_core.sampling.sinks import Mp4Sink

SMALL = {"width": 32, "height": 32, "window_frames": 17, "motion_frames": 5}
NAN_WINDOW = r"model: window 1 of 2 came out as NaN \(not a number\) pixels.*LoRA"


def render(model, picture=None, frames: int = 20, **extra):
    return sample_video(model, make_vae(), make_picture() if picture is None else picture, make_audio(frames),
                        make_text(), make_settings(**SMALL), **extra)


def with_value(picture: torch.Tensor, value: float) -> torch.Tensor:
    picture = picture.clone()
    picture[0, 3, 4, 1] = value
    return picture


@pytest.mark.parametrize(("value", "message"), [
    (math.nan, r"image: the picture contains NaN \(not a number\) values; expected an IMAGE with values "
               r"from 0 to 1"),
    (math.inf, r"image: the picture contains infinite values \(from 0.200000003 to inf\); expected an IMAGE"),
    (-math.inf, r"image: the picture contains infinite values \(from -inf to"),
])
def test_a_nan_or_infinite_image_is_refused_before_any_work(value, message) -> None:
    model = RecordingModel()
    picture = with_value(make_picture().clamp_min(0.2), value)
    with pytest.raises(InputError, match=message):
        render(model, picture)
    assert model.calls == []


def test_a_0_to_255_image_is_refused_with_what_to_do() -> None:
    model = RecordingModel()
    picture = (make_picture() * 255).round()
    low, high = picture.min().item(), picture.max().item()
    with pytest.raises(InputError, match=(
            rf"image: the picture has values from {low:.9g} to {high:.9g}; expected an IMAGE with values "
            r"from 0 to 1 \(ComfyUI's IMAGE range\). It looks like a 0..255 picture: divide it by 255.")):
        render(model, picture)
    with pytest.raises(InputError, match=r"values from -0.600000024 to .* It looks like a -1..1 picture"):
        render(model, with_value(make_picture(), -0.6))
    assert model.calls == []


def test_a_bicubic_resize_overshooting_0_to_1_is_still_taken() -> None:
    # ComfyUI's ImageScale (bicubic) leaves values a little outside 0..1 at hard edges.
    checker = (torch.arange(8)[:, None] + torch.arange(8)[None, :]) % 2
    picture = checker.float()[None, None].expand(1, 3, 8, 8)
    scaled = F.interpolate(picture, size=(48, 40), mode="bicubic").permute(0, 2, 3, 1)
    assert scaled.max() > 1.1 and scaled.min() < -0.1
    assert render(RecordingModel(), scaled).num_frames == 20


class NanFromCall(RecordingModel):
    """A model whose velocity turns NaN from the given call on (a weight that overflows mid-video)."""

    def __init__(self, first_nan_call: int):
        super().__init__()
        self.first_nan_call = first_nan_call

    def velocity(self, x, sigma, conditioning):
        v = super().velocity(x, sigma, conditioning)
        return v * math.nan if len(self.calls) > self.first_nan_call else v


def test_a_window_that_turns_nan_is_not_written_and_the_finished_ones_stay_resumable(tmp_path) -> None:
    audio, path = make_audio(30), tmp_path / "v.mp4"  # 3 windows of 4 steps
    sink = Mp4Sink(path, num_frames=audio.num_frames, fps=audio.fps, waveform=audio.waveform,
                   sample_rate=audio.sample_rate, preset="ultrafast")
    message = r"model: window 2 of 3 came out as NaN.*this window was not written"
    with pytest.raises(InputError, match=message):
        sample_video(NanFromCall(first_nan_call=4), make_vae(), make_picture(), audio, make_text(),
                     make_settings(**SMALL), sink=sink)
    parts = tmp_path / "v.mp4.parts"
    assert sorted(p.name for p in parts.iterdir()) == ["000000.seg", "resume.safetensors"]
    assert ResumeStore(parts)._metadata()["next_window"] == 1
    assert list(tmp_path.glob("*.mp4*")) == [parts]  # no video, no .partial


def tiny_model_with_nan(tmp_path, where: str):
    """The tiny model loaded from files, with NaN in one weight of the model file or of a LoRA."""
    model = make_tiny_model(CONFIG)
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    loras = ()
    if where == "weight":
        state["blocks.0.ffn.0.weight"][3, 5] = math.nan
    else:
        out_features, in_features = state["blocks.0.ffn.0.weight"].shape
        up = torch.full((out_features, 2), 0.1)
        up[7, 1] = math.nan  # one bad value spreads over a whole row of the merged weight
        lora = tmp_path / "nan_lora.safetensors"
        save_file({"diffusion_model.blocks.0.ffn.0.lora_down.weight": torch.full((2, in_features), 0.1),
                   "diffusion_model.blocks.0.ffn.0.lora_up.weight": up}, str(lora))
        loras = (LoraSpec(str(lora), 0.5),)
    save_file(state, str(tmp_path / "dit.safetensors"), metadata=config_metadata(CONFIG))
    return load_model(tmp_path / "dit.safetensors", loras=loras, compute_dtype=torch.float32).module


@pytest.mark.parametrize("where", ["weight", "lora"])
def test_a_nan_model_or_lora_stops_before_the_first_window_is_written(tmp_path, where) -> None:
    model = tiny_model_with_nan(tmp_path, where)
    with pytest.raises(InputError, match=NAN_WINDOW):
        render(model)
    out = tmp_path / "out"
    with pytest.raises(InputError, match=NAN_WINDOW):
        stream_video(model, make_vae(), make_picture(), make_audio(20), make_text(), make_settings(**SMALL),
                     directory=out, filename_prefix="talk")
    assert list(out.iterdir()) == []  # no video, and no parts: no window was finished
