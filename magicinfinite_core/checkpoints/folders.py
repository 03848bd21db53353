"""Model folders in the diffusers layout: `config.json` + `diffusion_pytorch_model*.safetensors` (+ index).

SoulX-FlashTalk-14B ships its DiT this way: Wan2.1 i2v with the InfiniteTalk audio adapter merged in, under
Wan's original tensor names (`blocks.N.self_attn.q.weight`, `audio_proj.proj1.weight`, ...), with the
`config.json` that diffusers' ConfigMixin writes for the `WanModel` class of its code (`_class_name`, then
the constructor's arguments: `dim`, `num_heads`, `audio_window`, ...). The folder also holds T5, CLIP and
VAE files (pickles); the host's loaders provide those, so only the DiT is read here.

The config gives what tensor shapes cannot (head count, text length, norm epsilon); every size it states
that the shapes also give must agree with them, so a folder whose weights and config disagree is refused.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..errors import CheckpointError
from ..models.config import WanConfig
from .safetensors_io import INDEX_SUFFIX

CONFIG_FILE = "config.json"
WEIGHTS_STEM = "diffusion_pytorch_model"
CLASS_NAME = "WanModel"
VAE_TIME_STRIDE = 4  # `vae_scale`: video frames per later latent frame
EXPECTED = (
    f"a folder with {CONFIG_FILE} (a Wan2.1 i2v + InfiniteTalk '{CLASS_NAME}', as SoulX-FlashTalk-14B ships) "
    f"and {WEIGHTS_STEM}.safetensors or {WEIGHTS_STEM}-0000k-of-0000n.safetensors shards with their "
    f"{WEIGHTS_STEM}.safetensors{INDEX_SUFFIX}"
)
# config.json keys read as hints: what shapes cannot give.
HINT_KEYS = ("num_heads", "text_len", "eps")


@dataclass(frozen=True)
class ModelFolder:
    """A diffusers-layout model folder: where its weights are and what its config.json says."""

    path: Path
    weights: Path  # the single weights file, or the shard index
    config: Mapping[str, object]

    @property
    def config_file(self) -> Path:
        return self.path / CONFIG_FILE

    def hints(self) -> dict[str, float]:
        """Head count, text length and epsilon, for `infer_config`."""
        return {key: self.config[key] for key in HINT_KEYS if key in self.config}

    def check(self, config: WanConfig, *, adapter_file: bool) -> None:
        """Refuse weights that are not the Wan2.1 i2v + InfiniteTalk model config.json describes."""
        if config.audio is None and not adapter_file:
            raise CheckpointError(
                f"{self.path}: its weights hold no InfiniteTalk audio adapter (no audio_proj.* tensors); "
                f"expected {EXPECTED}. Give the adapter file beside it, or use a merged FlashTalk folder."
            )
        stated = {key: self.config[key] for key in _sizes(config) if key in self.config}
        found = _sizes(config)
        wrong = {key: value for key, value in stated.items() if _normalised(value) != found[key]}
        if wrong:
            listing = ", ".join(f"{key} {value!r} (tensors: {found[key]!r})" for key, value in wrong.items())
            raise CheckpointError(
                f"{self.config_file}: does not describe the weights beside it: {listing}. The folder mixes "
                "files of different models; download it again."
            )


def model_folder(path: Path) -> ModelFolder | None:
    """The folder `path` is (a directory) or whose weights file it is (a file beside a config.json named
    like diffusers' weights), else None."""
    if path.is_dir():
        return open_model_folder(path)
    if path.name.startswith(WEIGHTS_STEM) and (path.parent / CONFIG_FILE).is_file():
        return open_model_folder(path.parent, weights=path)
    return None


def open_model_folder(folder: Path, *, weights: Path | None = None) -> ModelFolder:
    """Read and check a folder's config.json and find its weights; raise CheckpointError naming the folder
    and what was expected."""
    config_file = folder / CONFIG_FILE
    if not config_file.is_file():
        raise CheckpointError(f"{folder}: no {CONFIG_FILE}; expected {EXPECTED}.")
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CheckpointError(f"{config_file}: not readable as JSON ({exc}).") from exc
    if not isinstance(config, dict):
        raise CheckpointError(f"{config_file}: expected a JSON object, found {type(config).__name__}.")
    _check_kind(config_file, config)
    return ModelFolder(folder, weights or _weights(folder), config)


def _check_kind(config_file: Path, config: Mapping[str, object]) -> None:
    class_name = config.get("_class_name", CLASS_NAME)
    if class_name != CLASS_NAME:
        raise CheckpointError(
            f"{config_file}: describes a {class_name!r}; expected a Wan2.1 i2v + InfiniteTalk "
            f"'{CLASS_NAME}' (Wan's original tensor names). diffusers-format Wan folders "
            "(WanTransformer3DModel) use other names: use the ComfyUI-repackaged single file instead."
        )
    model_type = config.get("model_type", "i2v")
    if model_type != "i2v":
        raise CheckpointError(
            f"{config_file}: model_type {model_type!r}; expected 'i2v': InfiniteTalk and FlashTalk animate a "
            "portrait with the image-to-video model."
        )
    vae_scale = config.get("vae_scale", VAE_TIME_STRIDE)
    if vae_scale != VAE_TIME_STRIDE:
        raise CheckpointError(
            f"{config_file}: vae_scale {vae_scale!r}; expected {VAE_TIME_STRIDE} (the Wan2.1 VAE packs 4 "
            "video frames per latent frame)."
        )


def _weights(folder: Path) -> Path:
    index = folder / f"{WEIGHTS_STEM}.safetensors{INDEX_SUFFIX}"
    if index.is_file():
        return index
    single = folder / f"{WEIGHTS_STEM}.safetensors"
    if single.is_file():
        return single
    shards = sorted(folder.glob(f"{WEIGHTS_STEM}-*-of-*.safetensors"))
    if shards:
        return shards[0]  # opening one shard brings in the rest (or names the missing ones)
    present = ", ".join(sorted(p.name for p in folder.iterdir())[:10]) or "nothing"
    raise CheckpointError(f"{folder}: no DiT weights (found: {present}); expected {EXPECTED}.")


def _sizes(config: WanConfig) -> dict[str, object]:
    """config.json keys (the upstream constructor's names) -> the value our config read from the shapes."""
    sizes: dict[str, object] = {
        "dim": config.dim,
        "ffn_dim": config.ffn_dim,
        "num_layers": config.num_layers,
        "num_heads": config.num_heads,
        "in_dim": config.in_dim,
        "out_dim": config.out_dim,
        "freq_dim": config.freq_dim,
        "text_dim": config.text_dim,
        "text_len": config.text_len,
        "eps": config.eps,
        "patch_size": list(config.patch_size),
    }
    if config.audio is not None:
        sizes.update(
            audio_window=config.audio.window,
            intermediate_dim=config.audio.intermediate_dim,
            output_dim=config.audio.token_dim,
            context_tokens=config.audio.context_tokens,
        )
    return sizes


def _normalised(value: object) -> object:
    return list(value) if isinstance(value, (list, tuple)) else value
