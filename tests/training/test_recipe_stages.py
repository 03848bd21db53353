"""Each stage of the MagicInfinite-Mini recipe lowers its loss in a few steps, on a handful of world clips,
and a stage interrupted and run again reaches the same weights as an uninterrupted one."""

from pathlib import Path

import pytest
import torch
from torch import nn

from magicinfinite_core.audio import AudioEncoder
from training.architecture import AUDIO_LAYERS, AUDIO_WIDTH, random_parts
from training.codec_stages import LoudnessVowelProbe, audio_loss, vae_loss
from training.continuation import continuation_targets, relayed_motion
from training.continuation import main as continuation_main
from training.distill import student_loss, teacher_targets
from training.flow_stages import flow_loss
from training.loop import Schedule, run_stage
from training.natural_images import natural_clip
from training.world_data import HELD_LATENTS, encode_clips

pytestmark = pytest.mark.usefixtures("one_thread")

SEEDS = [0, 1, 2, 3]  # seed 3 has two characters


@pytest.fixture(scope="module")
def parts():
    return random_parts(0)


@pytest.fixture(scope="module")
def sets(parts):
    encoder = AudioEncoder(module=parts.audio_encoder, name="mini", do_normalize=False)
    return encode_clips(SEEDS, parts.vae, parts.text_encoder, encoder)


def _fixed_loss(loss_fn, seed: int = 123) -> float:
    with torch.no_grad():
        return float(loss_fn(torch.Generator().manual_seed(seed)))


def _train(tmp_path: Path, name: str, modules: dict[str, nn.Module], loss_fn, steps: int, lr: float) -> None:
    for module in modules.values():
        module.requires_grad_(True)
    run_stage(name, tmp_path, modules, lambda step, g: loss_fn(g), Schedule(steps, lr, warmup=1), seed=0,
              log=lambda line: None)
    for module in modules.values():
        module.requires_grad_(False)


def test_vae_stage_lowers_reconstruction_loss(tmp_path):
    vae = random_parts(1).vae
    before = _fixed_loss(lambda g: vae_loss(vae, g))
    _train(tmp_path, "vae", {"vae": vae}, lambda g: vae_loss(vae, g, batch=1), steps=12, lr=2e-3)
    assert _fixed_loss(lambda g: vae_loss(vae, g)) < before


def test_natural_clips_are_seeded_moving_pictures():
    a = natural_clip(torch.Generator().manual_seed(3), 9, 64, 64)
    b = natural_clip(torch.Generator().manual_seed(3), 9, 64, 64)
    assert a.shape == (9, 64, 64, 3) and torch.equal(a, b)
    assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0
    assert float(a.std()) > 0.05  # a picture, not a flat field
    assert 0.0 < float((a[1:] - a[:-1]).abs().mean()) < 0.1  # a slow pan
    other = natural_clip(torch.Generator().manual_seed(4), 9, 64, 64)
    assert (a - other).abs().mean() > 0.05


def test_audio_encoder_stage_lowers_probe_loss(tmp_path):
    module = random_parts(1).audio_encoder
    probe = LoudnessVowelProbe(AUDIO_LAYERS, AUDIO_WIDTH)
    before = _fixed_loss(lambda g: audio_loss(module, probe, g))
    _train(tmp_path, "audio", {"encoder": module, "probe": probe},
           lambda g: audio_loss(module, probe, g, batch=2), steps=12, lr=2e-3)
    assert _fixed_loss(lambda g: audio_loss(module, probe, g)) < before


@pytest.mark.parametrize("with_audio", [False, True], ids=["stage1", "stage2"])
def test_flow_stages_lower_their_loss(tmp_path, parts, sets, with_audio):
    dit = random_parts(0).dit
    empty = parts.text_encoder.encode([""])

    def loss(g):
        return flow_loss(dit, sets, empty, g, batch=4, with_audio=with_audio)

    before = sum(_fixed_loss(loss, seed) for seed in range(3))
    _train(tmp_path, "flow", {"dit": dit}, loss, steps=15, lr=1e-3)
    assert sum(_fixed_loss(loss, seed) for seed in range(3)) < before


def test_teacher_samples_keep_the_stored_held_latents(parts, sets):
    empty = parts.text_encoder.encode([""])
    targets = teacher_targets(parts.dit, sets[1], empty, 4, torch.Generator().manual_seed(1))
    assert targets.x0.shape == targets.noise.shape
    for i, (index, window) in enumerate(zip(targets.index, targets.window, strict=True)):
        held = HELD_LATENTS[window]
        assert torch.equal(targets.x0[i, :, :held], sets[1].latents[index, window, :, :held])
        assert not torch.equal(targets.x0[i, :, held:], sets[1].latents[index, window, :, held:])


def test_continuation_targets_hold_motion_frames_the_student_produced(parts, sets):
    empty = parts.text_encoder.encode([""])
    student = random_parts(1).dit
    targets = continuation_targets(parts.dit, student, parts.vae, sets[1], empty, 2,
                                   torch.Generator().manual_seed(0))
    held = HELD_LATENTS[1]
    assert (targets.window == 1).all() and targets.x0.shape == targets.noise.shape
    stored = sets[1].latents[targets.index, 1]
    assert (targets.x0[:, :, :held] - stored[:, :, :held]).abs().mean() > 0.05  # not the true frames' latents
    generator = torch.Generator().manual_seed(0)
    index = torch.randint(len(sets[1]), (2,), generator=generator)  # as continuation_targets draws it
    relayed = relayed_motion(student, parts.vae, sets[1], index, empty, generator)
    assert torch.equal(targets.x0[:, :, :held], relayed[:, :, :held])
    assert torch.equal(relayed[:, :, held:], stored[:, :, held:])


def test_continuation_trial_needs_a_finished_recipe(tmp_path):
    with pytest.raises(SystemExit, match="--run-dir: .* holds no finished recipe"):
        continuation_main(["--run-dir", str(tmp_path), "--bundle", str(tmp_path / "bundle")])
    assert not (tmp_path / "bundle").exists()


def test_student_moves_towards_the_teacher_samples(tmp_path, parts, sets):
    empty = parts.text_encoder.encode([""])
    teacher = parts.dit
    targets = {1: teacher_targets(teacher, sets[1], empty, 2, torch.Generator().manual_seed(0))
               + continuation_targets(teacher, teacher, parts.vae, sets[1], empty, 2,
                                      torch.Generator().manual_seed(1))}
    student = random_parts(0).dit

    def loss(g):
        return student_loss(student, sets, targets, empty, g, batch=2)

    before = sum(_fixed_loss(loss, seed) for seed in range(4))
    _train(tmp_path, "student", {"dit": student}, loss, steps=12, lr=1e-3)
    assert sum(_fixed_loss(loss, seed) for seed in range(4)) < before


class _Stop(Exception):
    pass


def test_interrupted_stage_resumes_to_the_same_weights(tmp_path):
    def build():
        torch.manual_seed(0)
        return nn.Linear(3, 1)

    def loss_fn(module, stop_at=None):
        def fn(step, g):
            if step == stop_at:
                raise _Stop
            x = torch.randn(8, 3, generator=g)
            return (module(x) - x.sum(dim=1, keepdim=True)).square().mean()
        return fn

    schedule = Schedule(steps=6, lr=0.05, warmup=2)
    whole = build()
    run_stage("s", tmp_path / "whole", {"m": whole}, loss_fn(whole), schedule, seed=7, checkpoint_every=3,
              log=lambda line: None)

    first = build()
    with pytest.raises(_Stop):
        run_stage("s", tmp_path / "split", {"m": first}, loss_fn(first, stop_at=4), schedule, seed=7,
                  checkpoint_every=3, log=lambda line: None)
    resumed = build()  # a new process: fresh weights, everything else from the checkpoint
    run_stage("s", tmp_path / "split", {"m": resumed}, loss_fn(resumed), schedule, seed=7, checkpoint_every=3,
              log=lambda line: None)
    for key, value in whole.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key])
    assert not torch.equal(build().weight, resumed.weight)


def test_a_finished_stage_is_loaded_or_says_it_trains_on_to_a_larger_budget(tmp_path):
    module = nn.Linear(3, 1)

    def loss_fn(step, g):
        x = torch.randn(4, 3, generator=g)
        return (module(x) - x.sum(dim=1, keepdim=True)).square().mean()

    run_stage("s", tmp_path, {"m": module}, loss_fn, Schedule(steps=3, lr=0.05, warmup=1), seed=0,
              log=lambda line: None)
    finished = module.weight.detach().clone()
    lines: list[str] = []
    assert run_stage("s", tmp_path, {"m": module}, loss_fn, Schedule(steps=3, lr=0.05, warmup=1), seed=0,
                     log=lines.append) == []
    assert lines == ["[s] finished earlier; loading it"] and torch.equal(module.weight, finished)
    lines.clear()
    losses = run_stage("s", tmp_path, {"m": module}, loss_fn, Schedule(steps=5, lr=0.05, warmup=1), seed=0,
                       log=lines.append, log_every=100)
    assert lines[0] == "[s] finished earlier at step 3; training on to 5" and len(losses) == 2
