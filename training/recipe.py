"""The whole MagicInfinite-Mini recipe in one command (docs/mini.md):

    python -m training.recipe [--run-dir training/runs/mini] [--bundle magicinfinite_core/assets/mini]
    python -m training.recipe --init-only   # only the seeded random bundle (trained: false)

Stages, each checkpointed under the run folder and resumed when the command is run again:
  vae            the small VAE on world clips (face/mouth-weighted) and procedural natural-image clips
  audio_encoder  the small wav2vec2, so its features carry loudness and vowel (linear probe, discarded)
  data           training windows encoded with the trained codecs (cached)
  stage1         image + text -> video, no audio
  stage2         + audio cross-attention on the face regions, face/mouth-weighted loss
  teacher        the stage-2 model samples windows with text + audio CFG (16 steps, 3 passes a step)
  student        4-step, CFG-free student distilled from those samples
The bundle gets the student as its DiT; the teacher is kept in the run folder (teacher.safetensors) for
bench/quality.py. The text encoder stays at its seeded random initialisation (the DiT learns to read it).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from safetensors.torch import save_file

from magicinfinite_core.audio import AudioEncoder
from magicinfinite_core.checkpoints import config_metadata
from magicinfinite_core.mini.bundle import EMBEDDED_BUNDLE_DIR, save_bundle
from training.architecture import AUDIO_LAYERS, AUDIO_WIDTH, Parts, random_parts
from training.codec_stages import LoudnessVowelProbe, audio_loss, vae_loss
from training.distill import load_targets, save_targets, student_loss, teacher_targets
from training.flow_stages import flow_loss
from training.loop import Log, Schedule, run_stage
from training.settings import RECIPE_VERSION, bundle_info
from training.world_data import encode_clips, load_sets, save_sets

INIT_SEED = 0
RANDOM_NOTES = "Seeded random initialisation (training.architecture.random_parts(0)): a stand-in, untrained."
DEFAULT_RUN_DIR = Path(__file__).resolve().parent / "runs" / "mini"


@dataclass(frozen=True)
class Budget:
    """How much of each stage to run (the full recipe, or a micro one for tests)."""

    vae: Schedule = Schedule(steps=6000, lr=2e-3)
    audio_encoder: Schedule = Schedule(steps=250, lr=1e-3)
    clips: int = 800
    stage1: Schedule = Schedule(steps=2200, lr=5e-4, warmup=100)
    stage2: Schedule = Schedule(steps=4500, lr=3e-4, warmup=100)
    teacher_windows: tuple[int, int] = (256, 96)  # one speaker, two speakers
    student: Schedule = Schedule(steps=1500, lr=1e-4, warmup=50)
    batch: int = 8
    checkpoint_every: int = 250


FULL = Budget()


def write_bundle(parts: Parts, directory: Path, *, trained: bool, notes: str) -> Path:
    return save_bundle(directory, model=parts.dit, vae=parts.vae, text_encoder=parts.text_encoder,
                       audio_encoder=parts.audio_encoder, info=bundle_info(trained=trained, notes=notes))


def _trainable(*modules: torch.nn.Module) -> None:
    for module in modules:
        module.requires_grad_(True)


def _frozen(*modules: torch.nn.Module) -> None:
    for module in modules:
        module.requires_grad_(False)


def train(run_dir: Path, budget: Budget = FULL, *, log: Log = print) -> Parts:
    """Run (or resume) every stage; returns the trained parts with the student as the DiT."""
    torch.manual_seed(INIT_SEED)
    parts = random_parts(INIT_SEED)
    _frozen(parts.dit, parts.vae, parts.text_encoder, parts.audio_encoder)
    every = budget.checkpoint_every

    _trainable(parts.vae)
    run_stage("vae", run_dir, {"vae": parts.vae}, lambda step, g: vae_loss(parts.vae, g), budget.vae,
              seed=1, checkpoint_every=every, log=log)
    _frozen(parts.vae)

    probe = LoudnessVowelProbe(AUDIO_LAYERS, AUDIO_WIDTH)
    _trainable(parts.audio_encoder)
    run_stage("audio_encoder", run_dir, {"audio_encoder": parts.audio_encoder, "probe": probe},
              lambda step, g: audio_loss(parts.audio_encoder, probe, g), budget.audio_encoder, seed=2,
              checkpoint_every=every, log=log)
    _frozen(parts.audio_encoder)

    data_file = run_dir / "data.safetensors"
    if not data_file.is_file():
        started = time.monotonic()
        encoder = AudioEncoder(module=parts.audio_encoder, name="mini wav2vec2", do_normalize=False)
        save_sets(data_file, encode_clips(list(range(budget.clips)), parts.vae, parts.text_encoder, encoder))
        log(f"[data] {budget.clips} clips encoded ({time.monotonic() - started:.0f} s)")
    sets = load_sets(data_file)
    empty = parts.text_encoder.encode([""])

    dit = parts.dit
    _trainable(dit)
    run_stage("stage1", run_dir, {"dit": dit},
              lambda step, g: flow_loss(dit, sets, empty, g, batch=budget.batch, with_audio=False),
              budget.stage1, seed=3, checkpoint_every=every, log=log)
    if not (run_dir / "stage2" / "checkpoint.safetensors").is_file():
        for block in dit.blocks:  # the adapter starts silent: stage 1's video model is kept at first
            if hasattr(block, "audio_cross_attn"):
                torch.nn.init.zeros_(block.audio_cross_attn.proj.weight)
                torch.nn.init.zeros_(block.audio_cross_attn.proj.bias)
    run_stage("stage2", run_dir, {"dit": dit},
              lambda step, g: flow_loss(dit, sets, empty, g, batch=budget.batch, with_audio=True),
              budget.stage2, seed=4, checkpoint_every=every, log=log)
    _frozen(dit)
    save_file({k: v.contiguous() for k, v in dit.state_dict().items()}, run_dir / "teacher.safetensors",
              metadata=config_metadata(dit.config))

    targets_file = run_dir / "teacher_targets.safetensors"
    if not targets_file.is_file():
        started = time.monotonic()
        generator = torch.Generator().manual_seed(5)
        targets = {count: teacher_targets(dit, sets[count], empty, n, generator)
                   for count, n in zip((1, 2), budget.teacher_windows, strict=True) if count in sets and n}
        save_targets(targets_file, targets)
        log(f"[teacher] {sum(budget.teacher_windows)} windows sampled ({time.monotonic() - started:.0f} s)")
    targets = load_targets(targets_file)

    student = random_parts(INIT_SEED).dit
    student.load_state_dict(dit.state_dict())
    _trainable(student)
    run_stage("student", run_dir, {"dit": student},
              lambda step, g: student_loss(student, sets, targets, empty, g, batch=budget.batch),
              budget.student, seed=6, checkpoint_every=every, log=log)
    _frozen(student)
    return replace(parts, dit=student)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, default=EMBEDDED_BUNDLE_DIR, help="bundle folder to write")
    parser.add_argument("--run-dir", type=Path, default=DEFAULT_RUN_DIR, help="checkpoints and caches")
    parser.add_argument("--init-only", action="store_true", help="write the seeded random bundle and stop")
    args = parser.parse_args(argv)
    if args.init_only:
        print(write_bundle(random_parts(INIT_SEED), args.bundle, trained=False, notes=RANDOM_NOTES))
        return
    torch.set_num_threads(1)
    started = time.monotonic()
    parts = train(args.run_dir)
    minutes = (time.monotonic() - started) / 60
    notes = (f"Trained by `python -m training.recipe` (recipe {RECIPE_VERSION}) on the procedural world; "
             "the DiT is the 4-step CFG-free student. See docs/mini.md.")
    print(write_bundle(parts, args.bundle, trained=True, notes=notes))
    print(f"recipe finished in {minutes:.1f} min")


if __name__ == "__main__":
    main()
