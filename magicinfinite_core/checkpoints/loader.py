"""Load a Wan2.1 DiT (+ MultiTalk/InfiniteTalk adapter, + LoRAs) from safetensors into a WanModel.

The module is built on the meta device from the config read off the tensor shapes, then each tensor is
read, converted to the dtype it is held in (merging LoRAs on the way) and assigned, one at a time: RAM
holds the weights once, plus one tensor in flight.

Held dtypes: linear-layer weights are held in `storage_dtype` (None: as in the file, so fp8 files stay
fp8). An fp8 storage keeps fp8 weights with a per-tensor scale (bf16/fp16/fp32 weights are quantised
with one) and applies LoRAs beside the weight, in the compute dtype, so fp8 rounding cannot swallow
them. Every other tensor (biases, norms, modulation, patch embedding) is held in `storage_dtype` when that
is a 16/32-bit float, else in its file dtype (upcast to the compute dtype if the file holds it in fp8).
LoRAs on non-fp8 weights are merged in float32 and cast back once, all LoRAs of the chain together.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..errors import CheckpointError, InputError
from ..models.cast import CastLinear
from ..models.config import WanConfig
from ..models.wan import WanModel
from .config_inference import describe, infer_config, read_hints
from .folders import model_folder
from .fp8 import FP8, dequantize, is_fp8, quantize_fp8, scale_for
from .layouts import Layout, detect_layout, is_adapter_key
from .lora import LoraDelta, LoraSpec, read_lora
from .safetensors_io import TensorFile, open_tensor_file

log = logging.getLogger(__name__)

COMPUTE_DTYPES: dict[str, torch.dtype] = {
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
    "fp32": torch.float32,
}
STORAGE_DTYPES: dict[str, torch.dtype | None] = {
    "default": None,
    "fp8_e4m3fn": FP8,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
    "fp32": torch.float32,
}
MAX_LISTED = 8


@dataclass(frozen=True)
class LoadedModel:
    """A loaded DiT and how it was loaded. Move it with `module.to(device)` only (fp8 weights)."""

    module: WanModel
    config: WanConfig
    compute_dtype: torch.dtype
    storage_dtype: torch.dtype | None  # None: linear weights as stored in the file
    sources: tuple[str, ...]
    loras: tuple[LoraSpec, ...]


@dataclass(frozen=True)
class _Source:
    """Where one internal tensor is read from."""

    file: TensorFile
    key: str
    scale_key: str | None


def load_model(
    dit_path: str | Path,
    *,
    adapter_path: str | Path | None = None,
    loras: Sequence[LoraSpec] = (),
    compute_dtype: torch.dtype = torch.bfloat16,
    storage_dtype: torch.dtype | None = None,
    device: torch.device | str = "cpu",
) -> LoadedModel:
    """Load a DiT (a safetensors file, shards, or a diffusers-layout folder with config.json such as
    SoulX-FlashTalk's), optionally an adapter file beside it and a chain of LoRAs, into a WanModel whose
    sub-layers compute in `compute_dtype`."""
    if compute_dtype not in COMPUTE_DTYPES.values():
        raise InputError(f"compute dtype: expected one of bf16, fp16, fp32, got {compute_dtype}")
    if storage_dtype is not None and storage_dtype not in STORAGE_DTYPES.values():
        raise InputError(
            f"weight storage dtype: expected fp8_e4m3fn, bf16, fp16 or fp32, got {storage_dtype}"
        )

    folder = model_folder(Path(dit_path))
    if folder is None:
        base = open_tensor_file(dit_path)
    else:
        try:
            base = open_tensor_file(folder.weights)
        except CheckpointError as exc:
            raise CheckpointError(f"{folder.path}: {exc}") from exc
    adapter = None if adapter_path is None else open_tensor_file(adapter_path)
    names = base.name if adapter is None else f"{base.name} + {adapter.name}"
    sources = _sources(base, adapter)
    shapes = {key: src.file.infos[src.key].shape for key, src in sources.items()}

    hints = {} if folder is None else folder.hints()
    hints.update(read_hints(base.metadata, base.name))
    if adapter is not None:
        hints.update(read_hints(adapter.metadata, adapter.name))
    try:
        config = infer_config(shapes, hints)
    except CheckpointError as exc:
        raise CheckpointError(f"{names}: {exc}") from exc
    if folder is not None:
        folder.check(config, adapter_file=adapter is not None)

    with torch.device("meta"):
        module = WanModel(config)
    expected = {key: tuple(t.shape) for key, t in module.state_dict().items()}
    _check_shapes(names, describe(config), expected, shapes)

    deltas: dict[str, list[LoraDelta]] = {}
    for spec in loras:
        for key, found in read_lora(spec, expected).items():
            deltas.setdefault(key, []).extend(d for d in found if d.scale != 0)

    linear_weights = {f"{name}.weight" for name, m in module.named_modules() if isinstance(m, CastLinear)}
    scales = _read_scales(sources)
    for key, tensor in _read_all(sources, expected):
        scale = scales.get(key)
        keep_fp8 = storage_dtype == FP8 or (storage_dtype is None and is_fp8(tensor.dtype))
        if key in linear_weights and keep_fp8:
            _assign_fp8_linear(module, key, tensor, scale, deltas.get(key, ()), compute_dtype, device)
        else:
            held = _held_dtype(tensor.dtype, storage_dtype, compute_dtype)
            _assign(module, key, _converted(tensor, scale, deltas.get(key, ()), held).to(device))

    module.compute_dtype = compute_dtype
    module.eval().requires_grad_(False)
    log.info("loaded %s: %s", names, describe(config))
    return LoadedModel(
        module=module,
        config=config,
        compute_dtype=compute_dtype,
        storage_dtype=storage_dtype,
        sources=tuple(str(f) for f in (base.path, *(() if adapter is None else (adapter.path,)))),
        loras=tuple(loras),
    )


def _sources(base: TensorFile, adapter: TensorFile | None) -> dict[str, _Source]:
    base_layout = detect_layout(base)
    if base_layout.is_adapter:
        raise CheckpointError(
            f"{base.name} holds only a MultiTalk/InfiniteTalk audio adapter "
            f"({len(base_layout.sources)} tensors). Pick a Wan2.1 DiT (e.g. "
            "wan2.1_i2v_480p_14B_bf16.safetensors) as the model file and this file as the adapter."
        )
    sources = _layout_sources(base, base_layout)
    if adapter is None:
        return sources
    adapter_layout = detect_layout(adapter)
    if not adapter_layout.is_adapter:
        extra = [k for k in adapter_layout.sources if not is_adapter_key(k)]
        raise CheckpointError(
            f"{adapter.name}: expected a MultiTalk/InfiniteTalk adapter (audio_proj.*, "
            f"blocks.N.audio_cross_attn.*, blocks.N.norm_x.*), but it also holds DiT tensors, e.g. "
            f"{', '.join(extra[:5])}. Load it as the model file instead."
        )
    replaced = [key for key in sources if is_adapter_key(key)]
    if replaced:
        log.warning("%s already holds an audio adapter; the one in %s replaces it", base.name, adapter.name)
        for key in replaced:
            del sources[key]
    sources.update(_layout_sources(adapter, adapter_layout))
    return sources


def _layout_sources(file: TensorFile, layout: Layout) -> dict[str, _Source]:
    log.info("%s: %s", file.name, layout.name)
    return {key: _Source(file, src, layout.scales.get(key)) for key, src in layout.sources.items()}


def _check_shapes(
    names: str, model: str, expected: dict[str, tuple[int, ...]], found: dict[str, tuple[int, ...]]
) -> None:
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    misshaped = [k for k in expected if k in found and found[k] != expected[k]]
    problems = []
    if missing:
        listing = _listing(f"{k} (expected {list(expected[k])})" for k in missing)
        problems.append(f"{len(missing)} missing tensors: {listing}")
    if misshaped:
        problems.append(
            f"{len(misshaped)} tensors of the wrong shape: "
            + _listing(f"{k} (expected {list(expected[k])}, found {list(found[k])})" for k in misshaped)
        )
    if unexpected:
        problems.append(
            f"{len(unexpected)} tensors this model does not have: "
            + _listing(f"{k} {list(found[k])}" for k in unexpected)
        )
    if problems:
        raise CheckpointError(
            f"{names}: does not match the {model} its shapes describe:\n  " + "\n  ".join(problems)
            + "\nThe file may be truncated, of another model family, or a variant this pack does not know."
        )


def _listing(items: Iterable[str]) -> str:
    items = list(items)
    more = f", ... ({len(items) - MAX_LISTED} more)" if len(items) > MAX_LISTED else ""
    return ", ".join(items[:MAX_LISTED]) + more


def _read_scales(sources: dict[str, _Source]) -> dict[str, torch.Tensor]:
    """Per-tensor weight scales (fp8 scaled files), keyed by the internal name of their weight."""
    by_file: dict[int, tuple[TensorFile, dict[str, str]]] = {}
    for key, src in sources.items():
        if src.scale_key is not None:
            by_file.setdefault(id(src.file), (src.file, {}))[1][src.scale_key] = key
    scales = {}
    for file, weights in by_file.values():
        for scale_key, scale in file.read(weights):
            src = sources[weights[scale_key]]
            name = f"{file.name}: {src.key}"
            scales[weights[scale_key]] = scale_for(scale, file.infos[src.key].shape, name)
    return scales


def _read_all(sources: dict[str, _Source], order: Iterable[str]) -> Iterable[tuple[str, torch.Tensor]]:
    """(internal key, tensor) for every tensor, file by file, in the model's order within each file."""
    by_file: dict[int, tuple[TensorFile, list[str]]] = {}
    for key in order:
        src = sources[key]
        by_file.setdefault(id(src.file), (src.file, []))[1].append(key)
    for file, keys in by_file.values():
        internal = {sources[k].key: k for k in keys}
        for file_key, tensor in file.read(sources[k].key for k in keys):
            yield internal[file_key], tensor


def _held_dtype(file_dtype: torch.dtype, storage: torch.dtype | None, compute: torch.dtype) -> torch.dtype:
    if not file_dtype.is_floating_point:
        return file_dtype
    if storage is not None and not is_fp8(storage):
        return storage
    return compute if is_fp8(file_dtype) else file_dtype


def _converted(
    tensor: torch.Tensor, scale: torch.Tensor | None, deltas: Sequence[LoraDelta], dtype: torch.dtype
) -> torch.Tensor:
    """The real tensor (scale applied, LoRAs merged in float32) in `dtype`."""
    if scale is None and not deltas:
        return tensor.to(dtype)
    merged = dequantize(tensor, scale)
    for delta in deltas:
        merged += delta.dense(merged.shape)
    return merged.to(dtype)


def _assign_fp8_linear(
    module: nn.Module,
    key: str,
    tensor: torch.Tensor,
    scale: torch.Tensor | None,
    deltas: Sequence[LoraDelta],
    compute_dtype: torch.dtype,
    device: torch.device | str,
) -> None:
    """Hold a linear weight in fp8 (+ scale); its LoRAs go beside it as patches."""
    if tensor.dtype != FP8:
        tensor, scale = quantize_fp8(dequantize(tensor, scale))
    _assign(module, key, tensor.to(device))
    layer = module.get_submodule(key.rpartition(".")[0])
    layer.scale_weight = None if scale is None else scale.to(device)
    layer.patches = [delta.patch(compute_dtype, device) for delta in deltas]


def _assign(module: nn.Module, key: str, tensor: torch.Tensor) -> None:
    owner_name, _, attr = key.rpartition(".")
    owner = module.get_submodule(owner_name) if owner_name else module
    if attr in owner._parameters:
        owner._parameters[attr] = nn.Parameter(tensor, requires_grad=False)
    else:
        owner._buffers[attr] = tensor
