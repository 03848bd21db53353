"""A pool of worker processes, one per GPU, holding a sequence parallel DiT for a host process (ComfyUI).

The host keeps the window loop (its VAE, its progress bar and previews, the output file); only the DiT
forwards go to the workers. Each worker loads the model files once, joins a process group with the others
and serves forward requests until closed: the host sends every worker the same request, the workers run
the split forward together and worker 0 sends the result back. The pool outlives one render, so queue items
with the same model and device count reuse it.

A worker that dies (or a forward that takes longer than the timeout) fails the request with
`WorkerError` within about the timeout; the pool is then closed (every worker stopped) and the next
render starts fresh workers. The surviving workers' collectives time out as well (the group timeout), so
none is left waiting.
"""

from __future__ import annotations

import queue
import time
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from magicinfinite_core.checkpoints import LoadedModel, LoraSpec, load_model
from magicinfinite_core.errors import InputError, MagicInfiniteError
from magicinfinite_core.models.config import WanConfig

from .local import free_port
from .split import Mode, attention_mode, parallelize

POLL_S = 0.5
START_TIMEOUT_S = 900.0  # loading a 14B checkpoint from disk


class WorkerError(MagicInfiniteError):
    """A worker process of the multi-GPU pool died or stopped answering."""


@dataclass(frozen=True)
class ModelFiles:
    """What a worker needs to load the same model as the host: the files and how they were loaded."""

    sources: tuple[str, ...]  # the DiT, then the adapter if there is one
    loras: tuple[LoraSpec, ...]
    compute_dtype: torch.dtype
    storage_dtype: torch.dtype | None

    @classmethod
    def of(cls, loaded: LoadedModel) -> ModelFiles:
        return cls(loaded.sources, loaded.loras, loaded.compute_dtype, loaded.storage_dtype)

    def load(self, device: torch.device) -> LoadedModel:
        adapter = self.sources[1] if len(self.sources) > 1 else None
        return load_model(self.sources[0], adapter_path=adapter, loras=self.loras,
                          compute_dtype=self.compute_dtype, storage_dtype=self.storage_dtype, device=device)


def check_devices(devices: int, device_kind: str, config: WanConfig, mode: Mode = "auto") -> None:
    """InputError unless `devices` processes can run `config` on this machine."""
    if devices < 1:
        raise InputError(f"devices: expected 1 or more, got {devices}.")
    if device_kind not in ("cuda", "cpu"):
        raise InputError(
            f"devices: splitting a window over {devices} devices needs CUDA GPUs (or CPU workers), but the "
            f"host computes on {device_kind!r}; set devices to 1."
        )
    if device_kind == "cuda":
        available = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if devices > available:
            raise InputError(
                f"devices: {devices} GPUs asked for, this machine has {available}; set devices to at most "
                f"{max(available, 1)}."
            )
    attention_mode(mode, config.num_heads, devices)


def _serve(rank: int, world: int, port: int, files: ModelFiles, device_kind: str, mode: Mode,
           timeout_s: float, requests: list, results: mp.Queue) -> None:
    device = torch.device("cuda", rank) if device_kind == "cuda" else torch.device("cpu")
    if device_kind == "cuda":
        torch.cuda.set_device(device)
    else:
        torch.set_num_threads(1)
    dist.init_process_group("nccl" if device_kind == "cuda" else "gloo",
                            init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world,
                            timeout=timedelta(seconds=timeout_s))
    model = parallelize(files.load(device).module, mode=mode)
    results.put(("ready", rank))
    try:
        while (request := requests[rank].get()) is not None:
            args, kwargs = request
            try:
                with torch.no_grad():
                    out = model(*(a.to(device) for a in args), **{
                        k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in kwargs.items()})
            except MagicInfiniteError as error:  # bad input: all workers refuse it before any collective
                if rank == 0:
                    results.put(("error", error))
                continue
            if rank == 0:
                results.put(("out", out.cpu()))
    finally:
        dist.destroy_process_group()


class WorkerPool:
    """`devices` worker processes serving sequence parallel forwards of the model in `files`."""

    def __init__(self, files: ModelFiles, devices: int, *, device_kind: str = "cuda", mode: Mode = "auto",
                 timeout_s: float = 300.0):
        self.files, self.devices, self.device_kind, self.mode = files, devices, device_kind, mode
        self.timeout_s = timeout_s
        context = mp.get_context("spawn")
        self._requests = [context.Queue() for _ in range(devices)]
        self._results = context.Queue()
        port = free_port()
        self._processes = [
            context.Process(target=_serve, args=(rank, devices, port, files, device_kind, mode, timeout_s,
                                                 self._requests, self._results), daemon=True)
            for rank in range(devices)
        ]
        for process in self._processes:
            process.start()
        for _ in range(devices):
            self._receive("ready", START_TIMEOUT_S)

    @property
    def alive(self) -> bool:
        return bool(self._processes) and all(p.is_alive() for p in self._processes)

    def key(self) -> tuple:
        return (self.files, self.devices, self.device_kind, self.mode)

    def _receive(self, kind: str, timeout_s: float) -> object:
        deadline = time.monotonic() + timeout_s
        while True:
            dead = [rank for rank, p in enumerate(self._processes) if not p.is_alive()]
            if dead:
                codes = ", ".join(f"worker {r} exit code {self._processes[r].exitcode}" for r in dead)
                self.close()
                raise WorkerError(
                    f"multi-GPU: {codes}; the render stopped (finished windows are kept: queue it again to "
                    "continue, with fresh workers)."
                )
            try:
                got, value = self._results.get(timeout=POLL_S)
            except queue.Empty:
                if time.monotonic() > deadline:
                    self.close()
                    raise WorkerError(
                        f"multi-GPU: no answer from the workers within {timeout_s:g} s; they were stopped "
                        "(finished windows are kept: queue it again to continue)."
                    ) from None
                continue
            if got == "error":
                raise value
            if got == kind:
                return value

    def forward(self, *args: torch.Tensor, **kwargs: object) -> torch.Tensor:
        if not self.alive:
            raise WorkerError("multi-GPU: the worker pool is closed.")
        request = (tuple(a.cpu() for a in args),
                   {k: v.cpu() if isinstance(v, torch.Tensor) else v for k, v in kwargs.items()})
        for requests in self._requests:
            requests.put(request)
        return self._receive("out", self.timeout_s)

    def close(self) -> None:
        """Ask every worker to stop, then stop those that do not within a few seconds (idempotent)."""
        if not self._processes:
            return
        for process, requests in zip(self._processes, self._requests, strict=True):
            if process.is_alive():
                requests.put(None)
        for process in self._processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join()
        self._processes = []


class PooledModel(nn.Module):
    """The host's view of a pooled model: the sampler's model, whose forwards run on the workers.

    `local` is the host's own copy (on the CPU): it encodes the audio (a small projection) and gives the
    model's identity (its state dict) to the resume hash, so a render may continue on another device count.
    """

    def __init__(self, local: nn.Module, pool: WorkerPool):
        super().__init__()
        self.local, self.pool = local, pool
        self.config = local.config

    def state_dict(self, *args, **kwargs):  # the identity of the model, not of this wrapper
        return self.local.state_dict(*args, **kwargs)

    def encode_audio(self, features: torch.Tensor) -> torch.Tensor:
        return self.local.encode_audio(features.cpu()).to(features.device)

    def forward(self, *args: torch.Tensor, **kwargs: object) -> torch.Tensor:
        return self.pool.forward(*args, **kwargs).to(args[0].device)


_POOL: WorkerPool | None = None


def shared_pool(files: ModelFiles, devices: int, *, device_kind: str = "cuda", mode: Mode = "auto",
                timeout_s: float = 300.0) -> WorkerPool:
    """The process-wide pool for these files and devices: the running one when it matches and is alive,
    else a new one (the old one closed)."""
    global _POOL
    key = (files, devices, device_kind, mode)
    if _POOL is not None and (_POOL.key() != key or not _POOL.alive):
        _POOL.close()
        _POOL = None
    if _POOL is None:
        _POOL = WorkerPool(files, devices, device_kind=device_kind, mode=mode, timeout_s=timeout_s)
    return _POOL


def close_shared_pool() -> None:
    global _POOL
    if _POOL is not None:
        _POOL.close()
        _POOL = None
