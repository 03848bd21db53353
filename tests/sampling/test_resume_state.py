"""Resume state: saved beside the partial output, read back only by a run with the same inputs."""

import torch

from magicinfinite_core.sampling.resume import ResumeState, ResumeStore, fingerprint


def test_state_round_trips_and_belongs_to_its_inputs(tmp_path) -> None:
    store = ResumeStore(tmp_path / "out.mp4.parts")
    motion = torch.rand(9, 16, 16, 3)
    store.save(ResumeState("abc", 7, 3, motion))
    state = store.load("abc")
    assert (state.seed, state.next_window) == (7, 3) and torch.equal(state.motion_frames, motion)
    assert store.load("other inputs") is None
    store.clear()
    assert store.load("abc") is None


def test_a_damaged_state_file_is_ignored(tmp_path) -> None:
    store = ResumeStore(tmp_path)
    store.path.write_bytes(b"not safetensors")
    assert store.load("abc") is None


def test_fingerprint_sees_values_shapes_and_dtypes() -> None:
    x = torch.arange(10_000, dtype=torch.float32)
    y = x.clone()
    y[-1] += 1
    assert fingerprint(x) == fingerprint(x.clone())
    assert len({fingerprint(x), fingerprint(y), fingerprint(x.view(100, 100)), fingerprint(x.double())}) == 4
    assert fingerprint({"a": 1, "b": x}) != fingerprint({"a": 2, "b": x})
