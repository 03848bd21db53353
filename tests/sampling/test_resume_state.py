"""Resume state: saved beside the partial output, read back only by a run with the same inputs and the same
format; fingerprints that read evenly spaced elements of tensors of any size."""

import json
import logging

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from safetensors.torch import save_file
from sampler_fixtures import RecordingModel, make_audio, make_picture, make_settings, make_text, make_vae

from magicinfinite_core.errors import Interrupted
from magicinfinite_core.models.config import WAN_14B
from magicinfinite_core.models.wan import WanModel
from magicinfinite_core.sampling.loop import sample_video, stream_video
from magicinfinite_core.sampling.resume import (
    FORMAT_VERSION,
    STATE_FILE,
    ResumeState,
    ResumeStore,
    fingerprint,
    module_fingerprint,
    sample_positions,
)
from magicinfinite_core.sampling.sinks import Mp4Sink

SMALL = {"width": 32, "height": 32, "window_frames": 17, "motion_frames": 5}


def test_state_round_trips_and_belongs_to_its_inputs(tmp_path) -> None:
    store = ResumeStore(tmp_path / "out.mp4.parts")
    motion = torch.rand(9, 16, 16, 3)
    store.save(ResumeState("abc", 7, 3, motion))
    state = store.load("abc")
    assert (state.seed, state.next_window) == (7, 3) and torch.equal(state.motion_frames, motion)
    assert store.load("other inputs") is None
    assert store.saved_seed() == 7  # read without the inputs' hash: which seed an unfinished render is


def test_a_damaged_state_file_is_ignored(tmp_path) -> None:
    store = ResumeStore(tmp_path)
    store.path.write_bytes(b"not safetensors")
    assert store.load("abc") is None and store.saved_format() is None


def test_fingerprint_sees_values_shapes_and_dtypes() -> None:
    x = torch.arange(10_000, dtype=torch.float32)
    y = x.clone()
    y[-1] += 1
    assert fingerprint(x) == fingerprint(x.clone())
    assert len({fingerprint(x), fingerprint(y), fingerprint(x.view(100, 100)), fingerprint(x.double())}) == 4
    assert fingerprint({"a": 1, "b": x}) != fingerprint({"a": 2, "b": x})


@pytest.mark.parametrize("numel", [1, 2, 4095, 4096, 4097, 2**24, 2**24 + 1, 17_280_000, 70_778_880,
                                   2**27 - 1, 16_000 * 60 * 60 * 24])
def test_sample_positions_run_from_the_first_to_the_last_element(numel) -> None:
    positions = sample_positions(numel)
    assert positions.dtype == torch.int64 and len(positions) == min(numel, 4096)
    assert positions[0] == 0 and positions[-1] == numel - 1
    assert bool((positions[1:] > positions[:-1]).all())  # distinct, in order, so never past the end


@given(st.integers(min_value=0, max_value=2**45))
def test_sample_positions_stay_inside_any_tensor(numel) -> None:
    positions = sample_positions(numel)
    assert len(positions) == min(numel, 4096)
    assert numel == 0 or (positions[0] == 0 and positions[-1] == numel - 1)
    assert bool((positions[1:] > positions[:-1]).all())


def test_fingerprint_reads_the_last_element_of_tensors_past_2_to_24_elements() -> None:
    # A 6-minute 48 kHz voice: 17,280,000 samples (uint8 keeps it at 17 MB).
    audio = torch.zeros(1, 17_280_000, dtype=torch.uint8)
    before = fingerprint(audio)
    audio[0, -1] = 1
    assert fingerprint(audio) != before
    # blocks.N.ffn.0.weight of Wan2.1 14B, 13824 x 5120 = 70,778,880 elements, as a view of one column:
    # each row holds one value, so changing the last row changes the last element.
    column = torch.zeros(13_824, 1, dtype=torch.bfloat16)
    weight = column.expand(13_824, 5_120)
    first = fingerprint(weight)
    column[-1] = 1
    last_changed = fingerprint(weight)
    column[-1], column[0] = 0, 1
    assert len({first, last_changed, fingerprint(weight)}) == 3


def test_a_14b_model_is_fingerprinted_from_views_of_its_shapes() -> None:
    with torch.device("meta"):
        shapes = {name: p.shape for name, p in WanModel(WAN_14B).state_dict().items()}
    assert shapes["blocks.0.ffn.0.weight"].numel() == 70_778_880
    views = {name: torch.zeros((1,) * len(shape), dtype=torch.bfloat16).expand(shape)
             for name, shape in shapes.items()}
    digest = module_fingerprint(views.items())
    views["blocks.39.ffn.2.weight"] = torch.ones(1, 1, dtype=torch.bfloat16).expand(5120, 13824)
    assert module_fingerprint(views.items()) != digest


def write_state_of_format(directory, version: str, params_hash: str = "old", next_window: int = 1) -> None:
    """A resume state as another version of the pack saved it."""
    directory.mkdir(parents=True, exist_ok=True)
    meta = {"format": version, "params_hash": params_hash, "seed": 0, "next_window": next_window}
    save_file({"motion_frames": torch.rand(5, 32, 32, 3)}, str(directory / STATE_FILE),
              metadata={"state": json.dumps(meta)})


def test_a_state_of_another_format_starts_over_and_says_so(tmp_path, caplog) -> None:
    audio, path = make_audio(30), tmp_path / "v.mp4"  # 3 windows

    def render(callback=None):
        sink = Mp4Sink(path, num_frames=audio.num_frames, fps=audio.fps, waveform=audio.waveform,
                       sample_rate=audio.sample_rate, preset="ultrafast")
        model = RecordingModel()
        sample_video(model, make_vae(), make_picture(), audio, make_text(), make_settings(**SMALL),
                     sink=sink, callback=callback)
        return model

    def stop_in_window_2(progress):
        if progress.window == 2:
            raise Interrupted("stop")

    with pytest.raises(Interrupted):
        render(stop_in_window_2)
    parts = tmp_path / "v.mp4.parts"
    saved = ResumeStore(parts).load(ResumeStore(parts)._metadata()["params_hash"])
    assert saved.next_window == 2
    # The same inputs, as the previous format saved them: not continued.
    meta = ResumeStore(parts)._metadata() | {"format": "1"}
    save_file({"motion_frames": saved.motion_frames}, str(parts / STATE_FILE),
              metadata={"state": json.dumps(meta)})
    caplog.clear()  # the stopped run said where its parts are; only the second run's words count here
    with caplog.at_level(logging.WARNING):
        model = render()
    assert len(model.calls) == 3 * 4  # every window sampled again
    assert [r.getMessage() for r in caplog.records] == [
        f"{parts}: an unfinished render saved by another version of MagicInfinite (resume format 1; this "
        f"version reads {FORMAT_VERSION}) cannot be continued: this render starts over from the first window "
        "and replaces it."]
    assert path.is_file() and not parts.exists()


def test_stream_video_names_unfinished_renders_of_its_prefix_left_by_another_format(tmp_path, caplog) -> None:
    out = tmp_path / "out"
    old = out / "talk_0123456789ab.mp4.parts"
    write_state_of_format(old, "1")
    write_state_of_format(out / "talk_fedcba987654.mp4.parts", FORMAT_VERSION)  # this version's: resumable
    write_state_of_format(out / "other_0123456789ab.mp4.parts", "1")  # another prefix: not this render's
    with caplog.at_level(logging.WARNING):
        result = stream_video(RecordingModel(), make_vae(), make_picture(), make_audio(10), make_text(),
                              make_settings(**SMALL), directory=out, filename_prefix="talk")
    assert [r.getMessage() for r in caplog.records] == [
        f"{old}: an unfinished render saved by another version of MagicInfinite (resume format 1; this "
        f"version reads {FORMAT_VERSION}) cannot be continued: this render starts over as "
        f"{result.path.name}; delete that folder to free its disk space."]
    assert old.is_dir()  # the user's files are left for the user to delete
