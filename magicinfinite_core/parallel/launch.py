"""Joining the process group torchrun starts (`torchrun --nproc-per-node N -m magicinfinite_core render`).

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE and the rendezvous address; every process
runs the same command. Each takes GPU LOCAL_RANK (NCCL), or the CPU (gloo). A collective that waits longer
than the group timeout (a process died) fails instead of hanging: gloo's own default is 30 minutes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

import torch
import torch.distributed as dist

from magicinfinite_core.errors import InputError

DeviceKind = Literal["cpu", "cuda"]
DEFAULT_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class Process:
    """Where this process stands: rank 0 writes the output, the others only compute."""

    rank: int
    world: int
    device: torch.device

    @property
    def writes_output(self) -> bool:
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    try:
        return default if value is None else int(value)
    except ValueError:
        raise InputError(
            f"environment: {name} must be a whole number (torchrun sets it), got {value!r}."
        ) from None


def join(device: DeviceKind, timeout_s: float = DEFAULT_TIMEOUT_S) -> Process:
    """This process's place in the torchrun group (a group of one without torchrun), the group joined."""
    if device not in ("cpu", "cuda"):
        raise InputError(f"--device: expected cpu or cuda, got {device!r}.")
    world = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", 0)
    local_world = _env_int("LOCAL_WORLD_SIZE", world)
    if device == "cuda":
        available = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if local_world > available:
            raise InputError(
                f"--device cuda: {local_world} process(es) on this machine need one GPU each, but it has "
                f"{available}; start at most {available} (torchrun --nproc-per-node {max(available, 1)}), "
                "or use --device cpu."
            )
        torch.cuda.set_device(local_rank)
        where = torch.device("cuda", local_rank)
    else:
        where = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device == "cuda" else "gloo", timeout=timedelta(seconds=timeout_s))
    return Process(rank, world, where)


def leave() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
