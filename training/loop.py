"""The optimisation loop every stage shares, with checkpoints that resume to the same state.

A stage is a loss function of (step, generator) over some trainable modules. Its checkpoint (safetensors:
module weights, AdamW moments, the generator's state; the step in the metadata) is written every
`checkpoint_every` steps and at the end; a run started again continues from it, and because all randomness
comes from the checkpointed generator and the learning rate is a function of the step, a resumed run
reaches the same weights as an uninterrupted one (modules stay in eval mode: no dropout draws from the
global generator). A finished stage is not run again.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

LossFn = Callable[[int, torch.Generator], torch.Tensor]
Log = Callable[[str], None]


@dataclass(frozen=True)
class Schedule:
    steps: int
    lr: float
    warmup: int = 50
    weight_decay: float = 0.0

    def lr_at(self, step: int) -> float:
        """Linear warm-up, then cosine decay to a tenth."""
        if step < self.warmup:
            return self.lr * (step + 1) / self.warmup
        progress = (step - self.warmup) / max(1, self.steps - self.warmup)
        return self.lr * (0.1 + 0.45 * (1 + math.cos(math.pi * progress)))


def _trainable(modules: dict[str, nn.Module]) -> list[tuple[str, nn.Parameter]]:
    return [(f"{name}.{key}", p) for name, module in modules.items()
            for key, p in module.named_parameters() if p.requires_grad]


def save_checkpoint(path: Path, modules: dict[str, nn.Module], optimizer: torch.optim.Optimizer, step: int,
                    generator: torch.Generator) -> None:
    tensors = {f"module.{name}.{key}": t.detach().contiguous().clone()
               for name, module in modules.items() for key, t in module.state_dict().items()}
    state = optimizer.state_dict()["state"]
    for index, moments in state.items():
        for key, value in moments.items():
            tensors[f"optim.{index}.{key}"] = torch.as_tensor(value).detach().clone()
    tensors["generator"] = generator.get_state()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    save_file(tensors, partial, metadata={"step": json.dumps(step)})
    partial.replace(path)  # a crash while writing never leaves a broken checkpoint


def load_checkpoint(path: Path, modules: dict[str, nn.Module], optimizer: torch.optim.Optimizer,
                    generator: torch.Generator) -> int:
    """Restore modules, optimizer moments and generator; returns the step to continue from."""
    tensors = load_file(str(path))
    for name, module in modules.items():
        prefix = f"module.{name}."
        module.load_state_dict({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})
    state = optimizer.state_dict()
    moments: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            moments.setdefault(int(index), {})[name] = value
    state["state"] = moments
    optimizer.load_state_dict(state)
    generator.set_state(tensors["generator"])
    with open(path, "rb") as handle:  # the step lives in the safetensors header
        header = json.loads(handle.read(int.from_bytes(handle.read(8), "little")))
    return int(json.loads(header["__metadata__"]["step"]))


def run_stage(name: str, run_dir: Path, modules: dict[str, nn.Module], loss_fn: LossFn, schedule: Schedule, *,
              seed: int, checkpoint_every: int = 250, log: Log = print, log_every: int = 50) -> list[float]:
    """Train `modules` (their parameters with requires_grad) for `schedule.steps` steps; resumable.

    Returns the losses of the steps run in this call. `run_dir/name/done` marks a finished stage."""
    folder = run_dir / name
    done, checkpoint = folder / "done", folder / "checkpoint.safetensors"
    named = _trainable(modules)
    optimizer = torch.optim.AdamW([p for _, p in named], lr=schedule.lr, weight_decay=schedule.weight_decay)
    generator = torch.Generator().manual_seed(seed)
    step = 0
    if checkpoint.is_file():
        step = load_checkpoint(checkpoint, modules, optimizer, generator)
        if not done.is_file():
            log(f"[{name}] resuming at step {step}/{schedule.steps}")
        elif step < schedule.steps:  # a larger budget than the run had: it trains on
            log(f"[{name}] finished earlier at step {step}; training on to {schedule.steps}")
        else:
            log(f"[{name}] finished earlier; loading it")
    losses: list[float] = []
    started = time.monotonic()
    while step < schedule.steps:
        for group in optimizer.param_groups:
            group["lr"] = schedule.lr_at(step)
        loss = loss_fn(step, generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for _, p in named], 1.0)
        optimizer.step()
        losses.append(float(loss.detach()))
        step += 1
        if step % log_every == 0 or step == schedule.steps:
            recent = losses[-log_every:]
            log(f"[{name}] step {step}/{schedule.steps} loss {sum(recent) / len(recent):.4f} "
                f"({time.monotonic() - started:.0f} s)")
        if step % checkpoint_every == 0 or step == schedule.steps:
            save_checkpoint(checkpoint, modules, optimizer, step, generator)
    done.write_text(f"{step}\n")
    return losses
