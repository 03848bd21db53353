"""LoRA files: which model tensor each entry changes, and by how much.

Entry kinds: low rank `lora_down`/`lora_up` or `lora_A`/`lora_B` (delta = alpha/rank * up @ down,
alpha from `.alpha`, else 1), full-rank `.diff` (the weight, or the tensor itself for parameters not
named `.weight` such as `modulation`) and `.diff_b` (the bias).
Names: Wan native module names under `diffusion_model.`, `model.diffusion_model.`, `transformer.` or
no prefix; diffusers Wan names (`attn1.to_q`, `ffn.net.0.proj`, ...); kohya names
(`lora_unet_blocks_0_cross_attn_k`, also `lora_unet__...` of Wan Fun LoRAs).

A LoRA none of whose entries matches the model is an error; a partial match warns with counts.
"""

from __future__ import annotations

import logging
import math
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

from ..errors import CheckpointError
from ..models.cast import DensePatch, LowRankPatch, WeightPatch
from .safetensors_io import open_tensor_file

log = logging.getLogger(__name__)

PREFIXES = ("model.diffusion_model.", "diffusion_model.", "transformer.", "base_model.model.")
KOHYA_PREFIXES = {"lora_unet__": "lora_unet_", "lycoris_": "lora_unet_"}
ENTRY_SUFFIXES = {
    ".lora_down.weight": "down",
    ".lora_up.weight": "up",
    ".lora_A.weight": "down",
    ".lora_B.weight": "up",
    ".alpha": "alpha",
    ".diff_b": "diff_b",
    ".diff": "diff",
    ".dora_scale": "dora_scale",
}

# Wan native -> diffusers module names (diffusers' Wan conversion script).
_DIFFUSERS_TOP = {
    "time_embedding.0": "condition_embedder.time_embedder.linear_1",
    "time_embedding.2": "condition_embedder.time_embedder.linear_2",
    "time_projection.1": "condition_embedder.time_proj",
    "text_embedding.0": "condition_embedder.text_embedder.linear_1",
    "text_embedding.2": "condition_embedder.text_embedder.linear_2",
    "img_emb.proj.0": "condition_embedder.image_embedder.norm1",
    "img_emb.proj.1": "condition_embedder.image_embedder.ff.net.0.proj",
    "img_emb.proj.3": "condition_embedder.image_embedder.ff.net.2",
    "img_emb.proj.4": "condition_embedder.image_embedder.norm2",
    "head.head": "proj_out",
    "head.modulation": "scale_shift_table",
}
_DIFFUSERS_BLOCK = {
    "self_attn.q": "attn1.to_q",
    "self_attn.k": "attn1.to_k",
    "self_attn.v": "attn1.to_v",
    "self_attn.o": "attn1.to_out.0",
    "self_attn.norm_q": "attn1.norm_q",
    "self_attn.norm_k": "attn1.norm_k",
    "cross_attn.q": "attn2.to_q",
    "cross_attn.k": "attn2.to_k",
    "cross_attn.v": "attn2.to_v",
    "cross_attn.o": "attn2.to_out.0",
    "cross_attn.norm_q": "attn2.norm_q",
    "cross_attn.norm_k": "attn2.norm_k",
    "cross_attn.k_img": "attn2.add_k_proj",
    "cross_attn.v_img": "attn2.add_v_proj",
    "cross_attn.norm_k_img": "attn2.norm_added_k",
    "ffn.0": "ffn.net.0.proj",
    "ffn.2": "ffn.net.2",
    "norm3": "norm2",  # diffusers numbers the affine cross-attention norm 2
    "modulation": "scale_shift_table",
}
_BLOCK = re.compile(r"^blocks\.(\d+)\.(.+)$")


@dataclass(frozen=True)
class LoraSpec:
    """One LoRA file in a chain and the strength it is applied with."""

    path: str
    strength: float = 1.0


@dataclass(frozen=True)
class LoraDelta:
    """One LoRA entry's change to one model tensor: scale * up @ down, or scale * diff."""

    scale: float  # strength (x alpha / rank for low rank)
    up: torch.Tensor | None = None
    down: torch.Tensor | None = None
    diff: torch.Tensor | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the dense delta as stored (before reshaping to the target)."""
        if self.diff is not None:
            return tuple(self.diff.shape)
        return (self.up.shape[0], math.prod(self.down.shape[1:]))

    def dense(self, shape: tuple[int, ...]) -> torch.Tensor:
        """The delta in float32, shaped like the target tensor."""
        if self.diff is not None:
            delta = self.diff.float()
        else:
            delta = self.up.float().flatten(1) @ self.down.float().flatten(1)
        return (self.scale * delta).reshape(shape)

    def patch(self, dtype: torch.dtype, device: torch.device | str) -> WeightPatch:
        """The delta as a patch applied beside a linear weight (kept factorised when low rank)."""
        if self.diff is not None:
            return DensePatch(self.diff.to(device, dtype), self.scale)
        down, up = (t.flatten(1).to(device, dtype) for t in (self.down, self.up))
        return LowRankPatch(down, up, self.scale)

    def fits(self, shape: tuple[int, ...]) -> bool:
        if self.diff is not None:
            return self.diff.numel() == math.prod(shape) and self.diff.shape[0] == shape[0]
        return self.up.shape[0] == shape[0] and math.prod(self.down.shape[1:]) == math.prod(shape[1:])


@dataclass
class _Entry:
    parts: dict[str, torch.Tensor] = field(default_factory=dict)


def read_lora(spec: LoraSpec, target_shapes: Mapping[str, tuple[int, ...]]) -> dict[str, list[LoraDelta]]:
    """The deltas of one LoRA file, keyed by the internal name of the tensor each one changes.

    Raises CheckpointError when no entry matches a tensor of the model or when a matched entry has the
    wrong shape (a LoRA made for another model size); warns when only some entries match.
    """
    file = open_tensor_file(spec.path)
    name = file.name
    entries: dict[str, _Entry] = {}
    strays: list[str] = []
    for key, tensor in file.read(file.keys()):
        suffix = next((s for s in ENTRY_SUFFIXES if key.endswith(s)), None)
        if suffix is None:
            strays.append(key)
            continue
        entries.setdefault(key[: -len(suffix)], _Entry()).parts[ENTRY_SUFFIXES[suffix]] = tensor

    aliases = _aliases(target_shapes)
    deltas: dict[str, list[LoraDelta]] = {}
    unmatched: list[str] = list(strays)
    misfits: list[str] = []
    dora = [base for base, entry in entries.items() if "dora_scale" in entry.parts]
    if dora:
        raise CheckpointError(
            f"LoRA {name} is a DoRA ({len(dora)} '.dora_scale' entries, e.g. {dora[0]}), which this pack "
            "does not apply; use a plain LoRA."
        )
    for base, entry in entries.items():
        module = aliases.get(_normalise(base))
        found = _entry_deltas(entry, module, spec.strength, target_shapes) if module is not None else []
        if not found:
            unmatched.append(base)
        for target, delta in found:
            if not delta.fits(target_shapes[target]):
                shapes = f"model {list(target_shapes[target])}, LoRA {list(delta.shape)}"
                misfits.append(f"{base} -> {target}: {shapes}")
            deltas.setdefault(target, []).append(delta)

    total = len(entries) + len(strays)
    if misfits:
        raise CheckpointError(
            f"LoRA {name}: {len(misfits)} entries do not fit the shapes of this model (a LoRA for another "
            "model size?): " + "; ".join(misfits[:5])
        )
    if not deltas:
        raise CheckpointError(
            f"LoRA {name}: none of its {total} entries matches a weight of this model (e.g. "
            f"{', '.join(unmatched[:5])}). It is probably for another model family; expected Wan2.1 names "
            "such as diffusion_model.blocks.0.self_attn.q.lora_down.weight."
        )
    if unmatched:
        message = (
            f"LoRA {name}: {total - len(unmatched)} of {total} entries applied, {len(unmatched)} match no "
            f"weight of this model and are skipped (e.g. {', '.join(unmatched[:5])})"
        )
        warnings.warn(message, stacklevel=2)
        log.warning(message)
    return deltas


def _normalise(base: str) -> str:
    for prefix, replacement in KOHYA_PREFIXES.items():
        if base.startswith(prefix):
            return replacement + base[len(prefix) :]
    for prefix in PREFIXES:
        if base.startswith(prefix):
            return base[len(prefix) :]
    return base


def _aliases(target_shapes: Mapping[str, tuple[int, ...]]) -> dict[str, str]:
    """Every name a LoRA may use for a model module (or bare parameter) -> its internal name."""
    aliases: dict[str, str] = {}
    for key in target_shapes:
        if key.endswith(".bias"):
            continue
        module = key[: -len(".weight")] if key.endswith(".weight") else key
        names = [module]
        diffusers = _diffusers_name(module)
        if diffusers is not None:
            names.append(diffusers)
        for alias in names:
            aliases[alias] = module
            aliases["lora_unet_" + alias.replace(".", "_")] = module
    return aliases


def _diffusers_name(module: str) -> str | None:
    if module in _DIFFUSERS_TOP:
        return _DIFFUSERS_TOP[module]
    match = _BLOCK.match(module)
    if match and match[2] in _DIFFUSERS_BLOCK:
        return f"blocks.{match[1]}.{_DIFFUSERS_BLOCK[match[2]]}"
    return None


def _entry_deltas(
    entry: _Entry, module: str, strength: float, target_shapes: Mapping[str, tuple[int, ...]]
) -> list[tuple[str, LoraDelta]]:
    """(target tensor, delta) pairs of one LoRA entry; empty when it has nothing this pack applies."""
    parts = entry.parts
    weight = module + ".weight" if module + ".weight" in target_shapes else module
    found: list[tuple[str, LoraDelta]] = []
    if "up" in parts and "down" in parts:
        rank = parts["down"].shape[0]
        alpha = float(parts["alpha"]) if "alpha" in parts else rank
        found.append((weight, LoraDelta(strength * alpha / rank, up=parts["up"], down=parts["down"])))
    if "diff" in parts:
        found.append((weight, LoraDelta(strength, diff=parts["diff"])))
    if "diff_b" in parts and module + ".bias" in target_shapes:
        found.append((module + ".bias", LoraDelta(strength, diff=parts["diff_b"])))
    return found
