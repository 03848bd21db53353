"""The window loop: frame counts, passes per window, the InfiniteTalk motion scheme, dubbing, determinism,
cancel, resume, streaming and input errors.

Bookkeeping is checked with a recording stand-in for the model; what the video looks like end to end is
checked with the real tiny WanModel.
"""

import av
import pytest
import torch
from conftest import make_tiny_model
from hypothesis import given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st
from sampler_fixtures import (
    CONFIG,
    RecordingModel,
    make_audio,
    make_picture,
    make_settings,
    make_text,
    make_vae,
)

from magicinfinite_core.errors import InputError, Interrupted
from magicinfinite_core.imaging import fit_image
from magicinfinite_core.latents import encode, image_conditioning
from magicinfinite_core.masks import Regions
from magicinfinite_core.sampling.loop import sample_video, stream_video
from magicinfinite_core.sampling.sinks import Mp4Sink
from magicinfinite_core.sampling.window import plan_windows

SIZE = {"width": 32, "height": 32}
SMALL = {**SIZE, "window_frames": 17, "motion_frames": 5}


def run(model, frames: int = 30, *, reference=None, vae=None, text=None, **overrides):
    settings = make_settings(**{**SMALL, **overrides})
    vae = vae if vae is not None else make_vae()
    reference = reference if reference is not None else make_picture()
    return sample_video(model, vae, reference, make_audio(frames), text or make_text(), settings)


@pytest.fixture(scope="module")
def tiny():
    return make_tiny_model(CONFIG)


@pytest.mark.parametrize("frames", [1, 2, 17, 18, 30, 64])
def test_frame_count_equals_the_audio_frame_count(tiny, frames) -> None:
    result = run(tiny, frames)
    assert result.frames.shape == (frames, 32, 32, 3) and result.num_frames == frames
    assert torch.isfinite(result.frames).all()
    assert result.waveform.shape[1] == round(frames / 25 * 16000)


@pytest.mark.parametrize(
    ("options", "passes_per_window"),
    [
        ({}, 4),  # distilled, both scales 1
        ({"audio_cfg": 2.0}, 8),  # audio-only CFG
        ({"solver": "euler", "steps": 5, "text_cfg": 5.0, "audio_cfg": 4.0}, 15),  # three passes x steps
    ],
)
def test_model_passes_per_window(options, passes_per_window) -> None:
    model = RecordingModel()
    run(model, 30, **options)
    assert len(model.calls) == 3 * passes_per_window  # 30 frames at W 17, M 5 make 3 windows


def test_distilled_timesteps_are_1000_750_500_250_through_shift_5() -> None:
    model = RecordingModel()
    run(model, 10)
    timesteps = [call["timestep"].item() for call in model.calls]
    assert timesteps == pytest.approx([1000.0, 937.5, 833.333, 625.0], abs=1e-2)


def test_motion_frames_are_held_clean_at_every_step_and_the_reference_stays_in_y() -> None:
    model, vae, reference = RecordingModel(), make_vae(), make_picture()
    result = run(model, 30, vae=vae, reference=reference)
    fitted = fit_image(reference, 32, 32)
    windows = plan_windows(30, 17, 5)
    calls = [model.calls[4 * w.index : 4 * w.index + 4] for w in windows]
    # Window 0 holds the reference's latent in its first latent frame.
    for call in calls[0]:
        assert torch.allclose(call["x"][:, :, :1], encode(vae, fitted), atol=1e-6)
    # Later windows hold the previous window's last 5 decoded frames (2 latents) clean at every step.
    for window, window_calls in zip(windows[1:], calls[1:], strict=True):
        motion = result.frames[window.start : window.start + 5]
        for call in window_calls:
            assert torch.allclose(call["x"][:, :, :2], encode(vae, motion), atol=1e-5)
            assert not torch.allclose(call["x"][:, :, 2:3], encode(vae, motion)[:, :, 1:2], atol=1e-2)
            y = image_conditioning(vae, fitted, window.num_frames)
            assert torch.allclose(call["image_latent"], y, atol=1e-6)


def test_first_output_frame_is_the_reference_through_the_vae(tiny) -> None:
    vae, reference = make_vae(), make_picture()
    result = run(tiny, 20, vae=vae, reference=reference)
    fitted = fit_image(reference, 32, 32)
    assert torch.allclose(result.frames[0], vae.decode(vae.encode(fitted))[0, 0], atol=1e-4)


def test_each_window_reads_the_audio_of_its_own_frames() -> None:
    model = RecordingModel()
    audio = make_audio(30)
    sample_video(model, make_vae(), make_picture(), audio, make_text(), make_settings(**SMALL))
    for window, features in zip(plan_windows(30, 17, 5), model.features, strict=True):
        assert torch.equal(features[0], audio.window(window.start, window.stop))


def test_unconditional_audio_is_the_adapter_on_zero_features() -> None:
    model = RecordingModel()
    run(model, 10, audio_cfg=3.0)
    assert len(model.features) == 2 and model.features[1].eq(0).all()
    conditional, unconditional = model.calls[0]["audio_tokens"], model.calls[1]["audio_tokens"]
    assert torch.equal(unconditional, model.encode_audio(torch.zeros_like(model.features[0])))
    assert not torch.equal(conditional, unconditional)


def test_a_window_takes_the_prompt_at_its_centre_and_cfg_the_negative() -> None:
    model = RecordingModel()
    text = make_text(schedule=(0.0, 0.5))  # the prompt changes at frame 12.5
    run(model, 30, text=text, text_cfg=2.0)
    windows = plan_windows(30, 17, 5)  # centres at frames 8, 20 and 25
    contexts = [model.calls[8 * w.index]["context"] for w in windows]
    assert contexts[0] is text.prompts[0][1] and contexts[1] is text.prompts[1][1]
    assert contexts[2] is text.prompts[1][1]
    assert model.calls[1]["context"] is text.negative


def test_dubbing_takes_each_windows_reference_from_the_source_video() -> None:
    model, vae = RecordingModel(), make_vae()
    source = make_picture(40, seed=3)
    run(model, 30, vae=vae, reference=source)
    for window in plan_windows(30, 17, 5):
        reference = fit_image(source[window.start : window.start + 1], 32, 32)
        y = image_conditioning(vae, reference, window.num_frames)
        assert torch.allclose(model.calls[4 * window.index]["image_latent"], y, atol=1e-6)
    first = fit_image(source[:1], 32, 32)
    assert torch.allclose(model.calls[0]["x"][:, :, :1], encode(vae, first), atol=1e-6)


def test_multitalk_scheme_renoises_motion_to_the_current_sigma_and_conditions_on_the_last_frame() -> None:
    model, vae = RecordingModel(), make_vae()
    result = run(model, 30, vae=vae, motion_mode="multitalk")
    window = plan_windows(30, 17, 5)[1]
    motion = result.frames[window.start : window.start + 5]
    held = encode(vae, motion)
    for call in model.calls[4:8]:
        sigma = call["timestep"].item() / 1000
        noise = (call["x"][:, :, :2] - (1 - sigma) * held) / sigma
        assert 0.7 < noise.std() < 1.3  # fresh unit noise at this sigma
        y = image_conditioning(vae, motion[-1:], window.num_frames)
        assert torch.allclose(call["image_latent"], y, atol=1e-6)


def test_same_seed_same_video_other_seed_other_video(tiny) -> None:
    a, b, c = (run(tiny, 30, seed=seed) for seed in (5, 5, 6))
    assert torch.equal(a.frames, b.frames)
    assert not torch.allclose(a.frames, c.frames, atol=1e-3)


def test_every_solver_and_colour_match_run_end_to_end(tiny) -> None:
    for options in ({"solver": "euler", "steps": 3}, {"solver": "dpmpp_2m", "steps": 3, "shift": 3.0},
                    {"sigmas": (1.0, 0.5, 0.0)}, {"colour_match": 1.0}, {"motion_mode": "multitalk"}):
        result = run(tiny, 20, **options)
        assert result.frames.shape[0] == 20 and torch.isfinite(result.frames).all(), options


def test_progress_counts_every_step_of_every_window() -> None:
    seen = []
    sample_video(RecordingModel(), make_vae(), make_picture(), make_audio(30), make_text(),
                 make_settings(**SMALL), callback=seen.append)
    assert [p.done for p in seen] == list(range(1, 13)) and {p.total for p in seen} == {12}
    assert [(p.window, p.step) for p in seen[:5]] == [(0, 0), (0, 1), (0, 2), (0, 3), (1, 0)]
    assert seen[0].latent.shape == (1, 16, 5, 4, 4)


def test_cancel_stops_within_one_step() -> None:
    model = RecordingModel()

    def cancel_at_window_1_step_1(progress):
        if (progress.window, progress.step) == (1, 1):
            raise Interrupted("cancelled")

    with pytest.raises(Interrupted):
        sample_video(model, make_vae(), make_picture(), make_audio(30), make_text(),
                     make_settings(**SMALL, audio_cfg=2.0), callback=cancel_at_window_1_step_1)
    assert len(model.calls) == 2 * (4 + 2)  # two passes per step; nothing after the cancelled step


def test_speaker_regions_and_clip_tokens_reach_the_model() -> None:
    model = RecordingModel()
    masks = torch.zeros(2, 64, 64)
    masks[0, :, :32], masks[1, :, 32:] = 1, 1
    regions, clip = Regions(masks), torch.randn(1, 257, CONFIG.image_dim)
    audio = make_audio(10, speakers=2)
    sample_video(model, make_vae(), make_picture(), audio, make_text(), make_settings(**SMALL),
                 regions=regions, clip_tokens=clip)
    assert torch.equal(model.calls[0]["speaker_masks"], regions.token_masks(32, 32))
    assert model.calls[0]["clip_tokens"] is clip or torch.equal(model.calls[0]["clip_tokens"], clip)


class CancelAfter:
    def __init__(self, window: int):
        self.window = window

    def __call__(self, progress):
        if progress.window == self.window:
            raise Interrupted("stop")


class RecordingMp4Sink(Mp4Sink):
    """Keeps what it was given, to compare runs frame by frame before encoding."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.received: dict[int, torch.Tensor] = {}

    def write(self, window_index, frames):
        super().write(window_index, frames)
        self.received[window_index] = frames.clone()


def stream(model, path, audio, callback=None, **overrides):
    sink = RecordingMp4Sink(path, num_frames=audio.num_frames, fps=audio.fps, waveform=audio.waveform,
                            sample_rate=audio.sample_rate, preset="ultrafast")
    result = sample_video(model, make_vae(), make_picture(), audio, make_text(),
                          make_settings(**{**SMALL, **overrides}), sink=sink, callback=callback)
    return result, sink


def decoded(path) -> torch.Tensor:
    with av.open(str(path)) as container:
        return torch.stack([torch.from_numpy(f.to_ndarray(format="rgb24"))
                            for f in container.decode(video=0)])


def test_resume_after_an_interruption_gives_the_same_video(tiny, tmp_path) -> None:
    audio = make_audio(45)  # 4 windows
    _, whole = stream(tiny, tmp_path / "whole.mp4", audio)
    with pytest.raises(Interrupted):
        stream(tiny, tmp_path / "cut.mp4", audio, callback=CancelAfter(2))
    assert not (tmp_path / "cut.mp4").exists()
    result, resumed = stream(tiny, tmp_path / "cut.mp4", audio)
    assert sorted(resumed.received) == [2, 3]  # windows 0 and 1 were not made again
    for index in (2, 3):
        assert torch.equal(resumed.received[index], whole.received[index])
    assert torch.equal(decoded(tmp_path / "cut.mp4"), decoded(tmp_path / "whole.mp4"))
    assert result.num_frames == 45


def test_a_resume_with_other_inputs_starts_over(tiny, tmp_path) -> None:
    audio = make_audio(30)
    with pytest.raises(Interrupted):
        stream(tiny, tmp_path / "v.mp4", audio, callback=CancelAfter(1))
    _, sink = stream(tiny, tmp_path / "v.mp4", audio, seed=99)
    assert sorted(sink.received) == [0, 1, 2]


def test_streamed_file_has_frames_fps_and_audio_of_the_audio(tiny, tmp_path) -> None:
    audio = make_audio(30)
    result, _ = stream(tiny, tmp_path / "s.mp4", audio)
    with av.open(str(result.path)) as container:
        video = container.streams.video[0]
        assert float(video.average_rate) == 25.0
        assert sum(1 for _ in container.decode(video)) == 30
    with av.open(str(result.path)) as container:
        samples = sum(frame.samples for frame in container.decode(audio=0))
    assert round(30 / 25 * 16000) <= samples <= round(30 / 25 * 16000) + 1024
    assert result.frames.shape == (1, 32, 32, 3)  # the preview: the last frame


def test_stream_video_names_the_file_by_its_inputs_and_does_not_redo_a_finished_one(tiny, tmp_path) -> None:
    audio, settings = make_audio(20), make_settings(**SMALL)

    def render(model, **extra):
        return stream_video(model, make_vae(), make_picture(), audio, make_text(), settings,
                            directory=tmp_path / "out", filename_prefix="talk", **extra)

    first = render(tiny)
    assert first.path.parent == tmp_path / "out" and first.path.name.startswith("talk_")
    recording, steps = RecordingModel(), []
    again = render(tiny, callback=steps.append)
    assert again.path == first.path and again.num_frames == 20 and steps == []  # nothing sampled again
    # The last frame, read back from the file: H.264 (crf 18) loses about 0.02 on these 32x32 frames.
    assert (again.frames - first.frames).abs().mean() < 0.03
    other = render(recording, resume_key="another LoRA")
    assert other.path != first.path and len(recording.calls) > 0


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"width": 40}, "width: expected a multiple of 16"),
        ({"height": 8}, "height"),
        ({"window_frames": 16}, "4k\\+1"),
        ({"motion_frames": 17}, "motion_frames"),
        ({"solver": "ddim"}, "solver"),
        ({"colour_match": 2.0}, "colour_match"),
    ],
)
def test_bad_settings_are_refused_with_the_input_named(overrides, message) -> None:
    with pytest.raises(InputError, match=message):
        make_settings(**{**SMALL, **overrides})


def test_bad_inputs_are_refused_with_the_input_named() -> None:
    settings, vae, picture = make_settings(**SMALL), make_vae(), make_picture()
    with pytest.raises(InputError, match="audio"):
        sample_video(RecordingModel(), vae, picture, None, make_text(), settings)
    with pytest.raises(InputError, match="negative"):
        sample_video(RecordingModel(), vae, picture, make_audio(5), make_text(negative=False),
                     make_settings(**SMALL, text_cfg=4.0))
    with pytest.raises(InputError, match=r"2 speaker region\(s\) but the audio has 1 track\(s\)"):
        sample_video(RecordingModel(), vae, picture, make_audio(5), make_text(), settings,
                     regions=Regions(torch.ones(2, 8, 8)))
    with pytest.raises(InputError, match="IMAGE"):
        sample_video(RecordingModel(), vae, picture[0], make_audio(5), make_text(), settings)


class CountingSink:
    """Records how many frames each window hands over."""

    resume_store = None

    def __init__(self):
        self.sizes: dict[int, int] = {}

    def start(self, windows_done):
        self.sizes = {}

    def write(self, window_index, frames):
        assert window_index not in self.sizes
        self.sizes[window_index] = len(frames)

    def finish(self):
        return sum(self.sizes.values())

    def abort(self):
        raise AssertionError("not expected")


@hyp_settings(max_examples=15, deadline=None)
@given(st.data())
def test_the_loop_hands_every_window_its_planned_frames_for_any_window_and_length(data) -> None:
    window_frames = data.draw(st.sampled_from([5, 9, 13]))
    motion_frames = data.draw(st.integers(1, window_frames - 1))
    num_frames = data.draw(st.integers(1, 3 * window_frames))
    sink = CountingSink()
    total = sample_video(RecordingModel(), make_vae(), make_picture(), make_audio(num_frames), make_text(),
                         make_settings(width=16, height=16, window_frames=window_frames,
                                       motion_frames=motion_frames, steps=1), sink=sink)
    plan = plan_windows(num_frames, window_frames, motion_frames)
    assert total == num_frames
    assert sink.sizes == {w.index: w.num_output for w in plan}
