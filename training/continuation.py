"""Continuation training, measured and not part of the recipe (docs/mini.md, "What is open").

The sampler starts every window after the first from motion frames the model itself wrote, decoded and
encoded again; the recipe's windows start from the ground truth's. This trial trains the recipe's finished
student further on both: the recipe's teacher samples, and window-1 teacher samples held on motion frames the
student produced (`relayed_motion`), so that it learns what to make of its own frames at a seam. `--control`
runs the same fine-tune on the recipe's teacher samples alone, which tells the continuation's effect from
that of more training. Either writes a bundle that `bench/quality.py --bundle` measures:

    python -m training.continuation --run-dir training/runs/mini --bundle /tmp/continued [--control]

The run folder must hold a finished recipe; its stages are loaded, not run, and the trial's own stage and
samples are written beside them.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from magicinfinite_core.latents import decode, encode
from magicinfinite_core.mini.vae import SmallVideoVAE
from magicinfinite_core.models.wan import WanModel
from training.architecture import Parts, random_parts
from training.distill import Targets, load_targets, sample_windows, save_targets, student_loss
from training.loop import Log, Schedule, run_stage
from training.recipe import DEFAULT_RUN_DIR, FULL, INIT_SEED, Budget, train, write_bundle
from training.settings import MOTION_FRAMES, RECIPE_VERSION
from training.world_data import MOTION_STRIDE, WindowSet, load_sets

WINDOWS = (256, 96)  # relayed windows sampled by the teacher: one speaker, two speakers
SCHEDULE = Schedule(steps=750, lr=5e-5, warmup=50)
SEED = 7


@torch.no_grad()
def relayed_motion(student: WanModel, vae: SmallVideoVAE, data: WindowSet, index: torch.Tensor,
                   empty_context: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The motion latents the sampler hands on, made by the student: it samples window 0 of each clip, the
    VAE decodes it, and the MOTION_FRAMES frames where window 1 starts are encoded again, as the sampler
    encodes the last frames it wrote. Returns window-1 latents [N, 16, T, h, w] with those held."""
    window = torch.zeros_like(index)
    noise = torch.randn((len(index), *data.latents.shape[2:]), generator=generator)
    sampled = sample_windows(student, data, index, window, noise, empty_context, teacher=False,
                             generator=generator)
    frames = slice(MOTION_STRIDE, MOTION_STRIDE + MOTION_FRAMES)
    motion = torch.cat([encode(vae, decode(vae, latent[None])[frames]) for latent in sampled])
    latents = data.latents[index, 1].clone()
    latents[:, :, : motion.shape[2]] = motion
    return latents


@torch.no_grad()
def continuation_targets(teacher: WanModel, student: WanModel, vae: SmallVideoVAE, data: WindowSet,
                         empty_context: torch.Tensor, count: int, generator: torch.Generator) -> Targets:
    """Window-1 teacher samples held on motion frames the student itself produced (`relayed_motion`): what
    the student should make of its own frames at a seam."""
    index = torch.randint(len(data), (count,), generator=generator)
    window = torch.ones_like(index)
    held = relayed_motion(student, vae, data, index, empty_context, generator)
    noise = torch.randn((count, *data.latents.shape[2:]), generator=generator)
    x0 = sample_windows(teacher, data, index, window, noise, empty_context, teacher=True, generator=generator,
                        x0=held)
    return Targets(index, window, noise, x0)


def continue_student(run_dir: Path, *, control: bool, budget: Budget = FULL,
                     windows: tuple[int, int] = WINDOWS, schedule: Schedule = SCHEDULE,
                     log: Log = print) -> Parts:
    """Train a finished recipe's student further (resumable, as a recipe stage); returns the parts with it."""
    parts = train(run_dir, budget, log=log)  # every stage is finished: loaded, not run
    student = parts.dit
    teacher = random_parts(INIT_SEED).dit
    teacher.load_state_dict(load_file(str(run_dir / "teacher.safetensors")))
    sets = load_sets(run_dir / "data.safetensors")
    empty = parts.text_encoder.encode([""])
    targets = load_targets(run_dir / "teacher_targets.safetensors")
    if not control:
        relayed_file = run_dir / "continuation_targets.safetensors"
        if not relayed_file.is_file():
            started = time.monotonic()
            generator = torch.Generator().manual_seed(SEED)
            counts = zip((1, 2), windows, strict=True)
            save_targets(relayed_file, {
                count: continuation_targets(teacher, student, parts.vae, sets[count], empty, n, generator)
                for count, n in counts if count in sets and n})
            log(f"[continuation] {sum(windows)} windows relayed and sampled "
                f"({time.monotonic() - started:.0f} s)")
        relayed = load_targets(relayed_file)
        targets = {count: t + relayed[count] if count in relayed else t for count, t in targets.items()}
    student.requires_grad_(True)
    run_stage("continuation_control" if control else "continuation", run_dir, {"dit": student},
              lambda step, g: student_loss(student, sets, targets, empty, g, batch=budget.batch),
              schedule, seed=SEED + 1, checkpoint_every=budget.checkpoint_every, log=log)
    student.requires_grad_(False)
    return parts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", type=Path, default=DEFAULT_RUN_DIR,
                        help="a finished recipe's run folder")
    parser.add_argument("--bundle", type=Path, required=True, help="bundle folder to write")
    parser.add_argument("--control", action="store_true",
                        help="fine-tune on the recipe's teacher samples only (no relayed windows)")
    args = parser.parse_args(argv)
    if not (args.run_dir / "student" / "done").is_file():
        raise SystemExit(f"--run-dir: {args.run_dir} holds no finished recipe (no student/done); "
                         "run python -m training.recipe --run-dir on it first")
    torch.set_num_threads(1)
    started = time.monotonic()
    parts = continue_student(args.run_dir, control=args.control)
    notes = (f"Recipe {RECIPE_VERSION}'s student trained further by `python -m training.continuation"
             f"{' --control' if args.control else ''}` (not the shipped bundle). See docs/mini.md.")
    print(write_bundle(parts, args.bundle, trained=True, notes=notes))
    print(f"continuation{' control' if args.control else ''} finished in "
          f"{(time.monotonic() - started) / 60:.1f} min")


if __name__ == "__main__":
    main()
