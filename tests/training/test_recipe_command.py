"""The recipe as one command on a micro budget: every stage runs, a second run loads them all instead of
training again, and the continuation trial (training.continuation) trains the finished student further."""

import pytest
import torch
from safetensors.torch import load_file

from magicinfinite_core.mini.bundle import load_bundle
from training.continuation import continue_student
from training.loop import Schedule
from training.recipe import Budget, train, write_bundle

pytestmark = pytest.mark.usefixtures("one_thread")

STEPS = Schedule(steps=2, lr=1e-3, warmup=1)
MICRO = Budget(vae=STEPS, audio_encoder=STEPS, clips=4, stage1=STEPS, stage2=STEPS, teacher_windows=(2, 1),
               student=STEPS, batch=2)
STAGES = ("vae", "audio_encoder", "stage1", "stage2", "student")


def _weights(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items()}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


def test_recipe_runs_resumes_and_the_continuation_trial_trains_its_student_further(tmp_path):
    student = _weights(train(tmp_path, MICRO, log=lambda line: None).dit)
    assert all((tmp_path / stage / "done").is_file() for stage in STAGES)

    lines: list[str] = []
    assert _same(student, _weights(train(tmp_path, MICRO, log=lines.append).dit))
    assert sum("finished earlier; loading it" in line for line in lines) == len(STAGES)
    assert not any("step" in line for line in lines)  # nothing trained again

    continued = continue_student(tmp_path, control=False, budget=MICRO, windows=(2, 1), schedule=STEPS,
                                 log=lambda line: None)
    relayed = load_file(str(tmp_path / "continuation_targets.safetensors"))
    assert relayed["1.x0"].shape[0] == 2 and relayed["2.x0"].shape[0] == 1
    assert (relayed["1.window"] == 1).all()
    control = continue_student(tmp_path, control=True, budget=MICRO, schedule=STEPS, log=lambda line: None)
    trained = _weights(continued.dit)
    assert not _same(student, trained) and not _same(trained, _weights(control.dit))

    folder = write_bundle(continued, tmp_path / "bundle", trained=True, notes="trial")
    stored = load_bundle(folder).model.module.state_dict()  # float16 in the bundle
    assert all(torch.equal(stored[k].float(), v.half().float()) for k, v in trained.items())
