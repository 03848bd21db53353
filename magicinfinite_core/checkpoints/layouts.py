"""Key layouts of the DiT and adapter files users have, mapped to the internal (Wan2.1 native) names.

Known layouts:
- Wan2.1 native: `patch_embedding.weight`, `blocks.0.self_attn.q.weight`, ... (also Kijai's files);
- ComfyUI repackaged: the same names under `model.diffusion_model.` or `diffusion_model.`;
- fp8 scaled (ComfyUI `*_fp8_scaled`, marker key `scaled_fp8`): fp8 weights plus a per-tensor
  `<layer>.scale_weight` (the real weight is fp8 x scale); newer ComfyUI files instead carry
  `<layer>.comfy_quant` + `<layer>.weight_scale` (only the per-tensor float8_e4m3fn format is read);
- MultiTalk / InfiniteTalk adapter: only `audio_proj.*`, `blocks.N.audio_cross_attn.*`,
  `blocks.N.norm_x.*` (the files ComfyUI's ModelPatchLoader reads), with or without the prefixes above.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import torch

from ..errors import CheckpointError
from .safetensors_io import TensorFile

PREFIXES = ("model.diffusion_model.", "diffusion_model.", "")
DIT_ROOTS = frozenset(
    {"patch_embedding", "text_embedding", "time_embedding", "time_projection", "blocks", "head", "img_emb"}
)
ADAPTER_ROOT = "audio_proj"
ADAPTER_BLOCK_PARTS = frozenset({"audio_cross_attn", "norm_x"})
SCALED_FP8_MARKER = "scaled_fp8"
# Per-tensor weight scale keys, legacy (`scale_weight`) and comfy_quant (`weight_scale`) spellings.
SCALE_SUFFIXES = (".scale_weight", ".weight_scale")
# Input scales quantise activations for fp8 matmuls; weights are upcast here, so they are not used.
IGNORED_SUFFIXES = (".scale_input", ".input_scale", ".comfy_quant")
READABLE_QUANT_FORMATS = frozenset({"float8_e4m3fn"})

KNOWN_LAYOUTS = (
    "Wan2.1 native (patch_embedding.weight, blocks.0.self_attn.q.weight, head.head.weight, ...)",
    "ComfyUI repackaged (the same names under 'model.diffusion_model.' or 'diffusion_model.')",
    "ComfyUI fp8_scaled (fp8 weights + '<layer>.scale_weight', marker key 'scaled_fp8')",
    "MultiTalk / InfiniteTalk adapter (audio_proj.*, blocks.N.audio_cross_attn.*, blocks.N.norm_x.*)",
)


@dataclass(frozen=True)
class Layout:
    """Where each internal tensor lives in a file."""

    name: str
    prefix: str
    sources: dict[str, str]  # internal key -> key in the file
    scales: dict[str, str] = field(default_factory=dict)  # internal weight key -> key of its scale

    @property
    def is_adapter(self) -> bool:
        return all(is_adapter_key(key) for key in self.sources)


def is_adapter_key(key: str) -> bool:
    """True for MultiTalk / InfiniteTalk adapter tensors (internal names)."""
    parts = key.split(".")
    if parts[0] == ADAPTER_ROOT:
        return True
    return parts[0] == "blocks" and len(parts) > 2 and parts[2] in ADAPTER_BLOCK_PARTS


def detect_layout(file: TensorFile) -> Layout:
    """Map the keys of `file` to internal names; raise CheckpointError for an unknown layout."""
    keys = file.keys()
    prefix = max(PREFIXES, key=lambda p: (_recognised(keys, p), len(p)))
    if _recognised(keys, prefix) == 0:
        sample = ", ".join(keys[:8]) + (" ..." if len(keys) > 8 else "")
        raise CheckpointError(
            f"{file.name}: unknown key layout; none of its {len(keys)} tensors look like a Wan2.1 DiT or a "
            f"MultiTalk/InfiniteTalk adapter. First keys: {sample}. Layouts this pack loads:\n  - "
            + "\n  - ".join(KNOWN_LAYOUTS)
        )
    sources: dict[str, str] = {}
    scale_keys: dict[str, str] = {}
    for key in keys:
        if not key.startswith(prefix):
            continue  # other parts of a bundle (VAE, text encoder) under their own prefixes
        internal = key[len(prefix) :]
        if internal == SCALED_FP8_MARKER or internal.endswith(IGNORED_SUFFIXES):
            continue
        scale_suffix = next((s for s in SCALE_SUFFIXES if internal.endswith(s)), None)
        if scale_suffix is not None:
            scale_keys[internal[: -len(scale_suffix)] + ".weight"] = key
        else:
            sources[internal] = key
    _check_quant_formats(file, prefix)
    orphans = sorted(set(scale_keys) - set(sources))
    if orphans:
        names = ", ".join(scale_keys[k] for k in orphans[:5])
        raise CheckpointError(f"{file.name}: weight scales without their weights: {names}")
    name = _describe(prefix, scale_keys, sources)
    return Layout(name=name, prefix=prefix, sources=sources, scales=scale_keys)


def _recognised(keys: list[str], prefix: str) -> int:
    count = 0
    for key in keys:
        if key.startswith(prefix):
            root = key[len(prefix) :].split(".", 1)[0]
            count += root in DIT_ROOTS or root == ADAPTER_ROOT
    return count


def _check_quant_formats(file: TensorFile, prefix: str) -> None:
    """Refuse quantised layers in formats other than per-tensor fp8 e4m3 (e.g. nvfp4, mxfp8)."""
    formats: dict[str, str] = {}
    if "_quantization_metadata" in file.metadata:
        layers = json.loads(file.metadata["_quantization_metadata"]).get("layers", {})
        formats.update({layer: conf.get("format", "?") for layer, conf in layers.items()})
    conf_keys = [k for k in file.infos if k.startswith(prefix) and k.endswith(".comfy_quant")]
    for key, tensor in file.read(conf_keys):
        conf = json.loads(bytes(tensor.to(torch.uint8).tolist()).decode("utf-8"))
        formats[key[: -len(".comfy_quant")]] = conf.get("format", "?")
    unreadable = {layer: fmt for layer, fmt in formats.items() if fmt not in READABLE_QUANT_FORMATS}
    if unreadable:
        layer, fmt = next(iter(unreadable.items()))
        raise CheckpointError(
            f"{file.name}: {len(unreadable)} layers are quantised as '{fmt}' (e.g. {layer}); this pack reads "
            "bf16/fp16/fp32 weights and per-tensor fp8 e4m3 (fp8_scaled). Use such a file instead."
        )


def _describe(prefix: str, scale_keys: dict[str, str], sources: dict[str, str]) -> str:
    kind = "MultiTalk/InfiniteTalk adapter" if all(is_adapter_key(k) for k in sources) else "Wan2.1 DiT"
    where = f"ComfyUI repackaged ('{prefix}')" if prefix else "Wan native names"
    return f"{kind}, {where}" + (", fp8 scaled" if scale_keys else "")
