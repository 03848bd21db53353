"""Writers of tiny checkpoints in the layouts users have: Wan native, ComfyUI prefixes, fp8 scaled,
shards, adapter-only files, and LoRAs."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors.torch import save_file

from magicinfinite_core.checkpoints import config_metadata
from magicinfinite_core.checkpoints.fp8 import quantize_fp8
from magicinfinite_core.checkpoints.layouts import is_adapter_key
from magicinfinite_core.models.cast import CastLinear
from magicinfinite_core.models.wan import WanModel

Tensors = dict[str, torch.Tensor]


def native_state(model: WanModel) -> Tensors:
    return {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}


def save(path: Path, tensors: Mapping[str, torch.Tensor], model: WanModel | None = None) -> Path:
    """Save with the config metadata tiny models need (their heads are not 128 wide)."""
    metadata = None if model is None else config_metadata(model.config)
    save_file(dict(tensors), str(path), metadata=metadata)
    return path


def prefixed(tensors: Tensors, prefix: str) -> Tensors:
    return {prefix + k: v for k, v in tensors.items()}


def linear_weight_keys(model: WanModel) -> list[str]:
    return [f"{name}.weight" for name, m in model.named_modules() if isinstance(m, CastLinear)]


def fp8_scaled(model: WanModel, prefix: str = "model.diffusion_model.") -> Tensors:
    """ComfyUI `*_fp8_scaled` layout: fp8 linear weights + `.scale_weight`, marker `scaled_fp8`."""
    tensors = native_state(model)
    for key in linear_weight_keys(model):
        weight, scale = quantize_fp8(tensors[key])
        tensors[key] = weight
        tensors[key[: -len(".weight")] + ".scale_weight"] = scale.reshape(1)
    tensors = prefixed(tensors, prefix)
    tensors[prefix + "scaled_fp8"] = torch.zeros(0, dtype=torch.float8_e4m3fn)
    return tensors


def split_adapter(tensors: Tensors) -> tuple[Tensors, Tensors]:
    """(DiT tensors, MultiTalk/InfiniteTalk adapter tensors)."""
    adapter = {k: v for k, v in tensors.items() if is_adapter_key(k)}
    return {k: v for k, v in tensors.items() if k not in adapter}, adapter


def save_shards(
    folder: Path, tensors: Tensors, count: int, model: WanModel, *, index: bool = True
) -> list[Path]:
    """Shards named like Hugging Face's (`name-0000k-of-0000n.safetensors`), plus an index if asked."""
    keys = list(tensors)
    paths, weight_map = [], {}
    for i in range(count):
        name = f"diffusion_pytorch_model-{i + 1:05d}-of-{count:05d}.safetensors"
        part = {k: tensors[k] for k in keys[i::count]}
        paths.append(save(folder / name, part, model))
        weight_map.update(dict.fromkeys(part, name))
    if index:
        content = {"metadata": {"total_size": 0}, "weight_map": weight_map}
        (folder / "diffusion_pytorch_model.safetensors.index.json").write_text(json.dumps(content))
    return paths


def lora_pair(out_features: int, in_features: int, rank: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(down [rank, in], up [out, rank]) with a visible effect on the tiny models."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(rank, in_features, generator=g) * 0.3, torch.randn(
        out_features, rank, generator=g
    ) * 0.3
