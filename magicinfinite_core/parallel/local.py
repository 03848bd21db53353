"""Run a function in N processes on this machine, joined in a gloo process group over 127.0.0.1 (CPU
parity tests and benchmarks of the sequence parallel path)."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from datetime import timedelta

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.multiprocessing.spawn import ProcessException

from magicinfinite_core.errors import MagicInfiniteError


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _entry(rank: int, world: int, port: int, timeout_s: float, threads: int,
           fn: Callable[..., None], args: tuple) -> None:
    torch.set_num_threads(threads)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world,
                            timeout=timedelta(seconds=timeout_s))
    try:
        fn(rank, world, *args)
    finally:
        dist.destroy_process_group()


def run_local(fn: Callable[..., None], world: int, args: tuple = (), *, timeout_s: float = 120.0,
              threads: int = 1) -> None:
    """Call `fn(rank, world, *args)` in `world` spawned processes (fn must be importable by name).

    Raises MagicInfiniteError when a process fails, or when they have not all finished after `timeout_s`
    (the processes are then killed); the group's own collective timeout is `timeout_s` too.
    """
    context = mp.start_processes(_entry, args=(world, free_port(), timeout_s, threads, fn, args),
                                 nprocs=world, join=False, start_method="spawn")
    deadline = time.monotonic() + timeout_s
    try:
        while not context.join(timeout=max(deadline - time.monotonic(), 0.01)):
            if time.monotonic() >= deadline:
                raise MagicInfiniteError(f"{world} local processes did not finish within {timeout_s:g} s.")
    except ProcessException as error:
        raise MagicInfiniteError(f"a local process failed: {error}") from error
    finally:
        for process in context.processes:
            if process.is_alive():
                process.kill()
                process.join()
