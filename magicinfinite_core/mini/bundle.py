"""The embedded model bundle: a complete small model (DiT + audio adapter, VAE, text encoder, audio encoder)
in one folder, loaded by the same loaders as real checkpoints, with nothing to download.

A bundle folder holds:

    dit.safetensors            Wan2.1 native keys incl. the MultiTalk adapter (read by checkpoints.load_model;
                               its metadata states what shapes cannot say: heads, text length, feature layers)
    vae.safetensors            SmallVideoVAE state dict
    text_encoder.safetensors   SmallTextEncoder state dict (umT5 encoder over bytes)
    audio_encoder.safetensors  wav2vec2 state dict (read by audio.load_audio_encoder; config from shapes)
    bundle.json                BundleInfo: format version, text encoder and VAE sizes, the resolution, frame
                               rate and schedule the model was trained for, its prompt words, trained or not

The shipped bundle (`EMBEDDED_BUNDLE_DIR`) is MagicInfinite-Mini, made by `python -m training.recipe`
(docs/mini.md). Nothing here knows how it was trained: the sampler and nodes treat it as any other model.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import UMT5Config, Wav2Vec2Model

from magicinfinite_core.audio.encoder import AudioEncoder, load_audio_encoder
from magicinfinite_core.checkpoints import LoadedModel, config_metadata, load_model
from magicinfinite_core.errors import CheckpointError
from magicinfinite_core.mini.text_encoder import SmallTextEncoder
from magicinfinite_core.mini.vae import SmallVideoVAE
from magicinfinite_core.models.wan import WanModel

BUNDLE_FORMAT = 1
EMBEDDED_BUNDLE_NAME = "(embedded) MagicInfinite-Mini"
EMBEDDED_BUNDLE_DIR = Path(__file__).resolve().parent.parent / "assets" / "mini"
DIT_FILE = "dit.safetensors"
VAE_FILE = "vae.safetensors"
TEXT_ENCODER_FILE = "text_encoder.safetensors"
AUDIO_ENCODER_FILE = "audio_encoder.safetensors"
INFO_FILE = "bundle.json"
BUNDLE_FILES = (DIT_FILE, VAE_FILE, TEXT_ENCODER_FILE, AUDIO_ENCODER_FILE, INFO_FILE)


@dataclass(frozen=True)
class BundleInfo:
    """bundle.json: how to rebuild the parts that shapes do not describe, and how the model is meant to run.

    width, height, fps, window_frames, motion_frames, steps, shift: the video size, frame rate, window and
    distilled schedule it was trained for (the defaults a caller should use with it). prompt_words: the
    words its prompts were made of (e.g. expressions); default_prompt / negative_prompt: prompts that work.
    trained: False for the seeded random initialisation; recipe: the training recipe's version.
    text_encoder: the UMT5Config fields of the text encoder (every other field keeps transformers' default).
    """

    name: str
    trained: bool
    recipe: str
    text_encoder: dict[str, int]
    text_len: int
    vae_width: int
    width: int
    height: int
    fps: float
    window_frames: int
    motion_frames: int
    steps: int
    shift: float
    prompt_words: tuple[str, ...]
    default_prompt: str
    negative_prompt: str
    notes: str = ""
    format: int = BUNDLE_FORMAT

    def text_encoder_config(self) -> UMT5Config:
        return UMT5Config(**self.text_encoder)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str = INFO_FILE) -> BundleInfo:
        try:
            raw = json.loads(text)
        except ValueError as err:
            raise CheckpointError(f"{source}: not valid JSON ({err}).") from err
        if not isinstance(raw, dict):
            raise CheckpointError(f"{source}: expected a JSON object, found {type(raw).__name__}.")
        if raw.get("format") != BUNDLE_FORMAT:
            raise CheckpointError(
                f"{source}: bundle format {raw.get('format')!r}, this pack reads format {BUNDLE_FORMAT}; "
                "update the pack or remake the bundle with `python -m training.recipe`."
            )
        names = {f.name for f in fields(cls)}
        missing = sorted(names - set(raw) - {"notes"})
        unknown = sorted(set(raw) - names)
        if missing or unknown:
            raise CheckpointError(f"{source}: missing fields {missing}, unknown fields {unknown}.")
        raw["prompt_words"] = tuple(raw["prompt_words"])
        return cls(**raw)


@dataclass(frozen=True, eq=False)
class MiniBundle:
    """A loaded bundle: the DiT with its adapter, the VAE, the text and audio encoders, and bundle.json."""

    model: LoadedModel
    vae: SmallVideoVAE
    text_encoder: SmallTextEncoder
    audio_encoder: AudioEncoder
    info: BundleInfo
    path: Path

    @property
    def name(self) -> str:
        return EMBEDDED_BUNDLE_NAME if self.path == EMBEDDED_BUNDLE_DIR else self.info.name


def load_bundle(path: str | Path | None = None, *, compute_dtype: torch.dtype = torch.float32) -> MiniBundle:
    """Load a bundle folder (default: the embedded MagicInfinite-Mini). Every part is in eval mode on the CPU
    with gradients off; the DiT goes through `checkpoints.load_model` like any checkpoint."""
    folder = EMBEDDED_BUNDLE_DIR if path is None else Path(path)
    missing = [name for name in BUNDLE_FILES if not (folder / name).is_file()]
    if missing:
        raise CheckpointError(
            f"{folder}: not a complete model bundle, missing {', '.join(missing)} (a bundle holds "
            f"{', '.join(BUNDLE_FILES)}). Reinstall the pack or remake it with `python -m training.recipe`."
        )
    info = BundleInfo.from_json((folder / INFO_FILE).read_text(encoding="utf-8"), str(folder / INFO_FILE))
    model = load_model(folder / DIT_FILE, compute_dtype=compute_dtype)

    vae = SmallVideoVAE(info.vae_width)
    _load_state(vae, folder / VAE_FILE)
    text_encoder = SmallTextEncoder(info.text_encoder_config(), info.text_len)
    _load_state(text_encoder, folder / TEXT_ENCODER_FILE)
    if text_encoder.width != model.config.text_dim or info.text_len != model.config.text_len:
        raise CheckpointError(
            f"{folder}: the text encoder gives {info.text_len} x {text_encoder.width} contexts but the DiT "
            f"reads {model.config.text_len} x {model.config.text_dim}; the bundle's parts do not belong "
            "together."
        )
    audio_encoder = load_audio_encoder(folder / AUDIO_ENCODER_FILE)
    return MiniBundle(model=model, vae=vae, text_encoder=text_encoder, audio_encoder=audio_encoder,
                      info=info, path=folder)


def save_bundle(directory: str | Path, *, model: WanModel, vae: SmallVideoVAE, text_encoder: SmallTextEncoder,
                audio_encoder: Wav2Vec2Model, info: BundleInfo, dtype: torch.dtype = torch.float16) -> Path:
    """Write a bundle folder loadable by `load_bundle`. Floating tensors are stored in `dtype` (half the
    size of float32; the loaders cast them back)."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    save_file(_stored(model.state_dict(), dtype), folder / DIT_FILE, metadata=config_metadata(model.config))
    save_file(_stored(vae.state_dict(), dtype), folder / VAE_FILE)
    save_file(_stored(text_encoder.state_dict(), dtype), folder / TEXT_ENCODER_FILE)
    save_file(_stored(audio_encoder.state_dict(), dtype), folder / AUDIO_ENCODER_FILE)
    (folder / INFO_FILE).write_text(info.to_json(), encoding="utf-8")
    return folder


def _stored(state: dict[str, torch.Tensor], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Own contiguous copies (safetensors refuses tensors sharing memory, e.g. umT5's tied embeddings)."""
    return {key: (t.to(dtype) if t.is_floating_point() else t).detach().cpu().contiguous().clone()
            for key, t in state.items()}


def _load_state(module: nn.Module, path: Path) -> None:
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{path}: cannot be read as safetensors ({err}).") from err
    expected = module.state_dict()
    try:
        module.load_state_dict({k: v.to(expected[k].dtype) if k in expected else v for k, v in state.items()})
    except RuntimeError as err:
        raise CheckpointError(f"{path}: does not fit the sizes bundle.json gives ({err}).") from err
    module.eval().requires_grad_(False)
