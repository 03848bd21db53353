"""Multi-GPU sampling for MI_MODEL: the sampler's model becomes a view of the pack's worker pool (one process
per GPU, each loading the model's files once; see magicinfinite_core.parallel.pool)."""

from __future__ import annotations

from magicinfinite_core.checkpoints import LoadedModel
from magicinfinite_core.parallel.pool import ModelFiles, PooledModel, check_devices, shared_pool

from .host import model_management


def pooled_model(dit: LoadedModel, devices: int) -> PooledModel:
    """The sampler's model for `devices` GPUs; CUDA workers when the host computes on CUDA, CPU (gloo)
    workers when it runs on the CPU (ComfyUI --cpu, or no host)."""
    kind = "cpu" if model_management is None else model_management.get_torch_device().type
    check_devices(devices, kind, dit.config)
    return PooledModel(dit.module, shared_pool(ModelFiles.of(dit), devices, device_kind=kind))
