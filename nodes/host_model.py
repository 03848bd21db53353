"""ComfyUI's MODEL (a Wan2.1 i2v DiT from UNETLoader, GGUF or checkpoint loaders, with whatever the graph
patched into it) plus an InfiniteTalk/MultiTalk MODEL_PATCH, as the engine's VideoDenoiser.

Each call goes through the MODEL as ComfyUI's own samplers call it: ComfyUI's model management loads the DiT
with the adapter (partially when the card is small), and `apply_model` runs with the MODEL's
transformer_options (its LoRAs, attention and compile patches, wrappers) plus our two audio block patches.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F

from magicinfinite_core.errors import InputError
from magicinfinite_core.latents import LATENT_CHANNELS
from magicinfinite_core.models.audio_adapter import AudioConditioning
from magicinfinite_core.models.wan import I2V_CONDITION_CHANNELS
from magicinfinite_core.sampling.denoiser import ModelFacts, WindowConditioning
from magicinfinite_core.sampling.resume import fingerprint, module_fingerprint

from . import host
from .audio_patches import AUDIO_KEY, AudioAdapter, AudioAttentionPatch, SpeakerPositionsPatch

I2V_CHANNELS = LATENT_CHANNELS + I2V_CONDITION_CHANNELS  # 16 noisy latent + 4 mask + 16 reference latent


def wan_i2v_diffusion_model(model: object) -> torch.nn.Module:
    """The Wan2.1 i2v DiT inside a MODEL, or an InputError naming what the MODEL holds instead."""
    base = getattr(model, "model", None)
    diffusion_model = getattr(base, "diffusion_model", None)
    if host.is_wan21(base):
        kind, channels = getattr(diffusion_model, "model_type", "?"), getattr(diffusion_model, "in_dim", "?")
        if kind == "i2v" and channels == I2V_CHANNELS:
            return diffusion_model
        found = f"{type(base).__name__} ({kind}, {channels} input channels)"
    else:
        found = type(base if base is not None else model).__name__
    raise InputError(
        f"wan_model: expected a Wan2.1 image-to-video MODEL ({I2V_CHANNELS} input channels; e.g. UNETLoader "
        f"with wan2.1_i2v_480p_14B_fp8_scaled.safetensors), found {found}; load the Wan2.1 I2V 14B model, "
        "which InfiniteTalk and MultiTalk were trained with.")


class HostDenoiser:
    """ComfyUI's MODEL + MODEL_PATCH as a VideoDenoiser; use inside `session()`."""

    def __init__(self, model: object, model_patch: object) -> None:
        diffusion_model = wan_i2v_diffusion_model(model)
        self.adapter = AudioAdapter(model_patch, dim=diffusion_model.dim, num_heads=diffusion_model.num_heads,
                                    num_layers=len(diffusion_model.blocks))
        self.source, self.model_patch = model, model_patch
        self.patcher = model.clone()
        self.patcher.set_model_attn1_patch(SpeakerPositionsPatch())
        self.patcher.set_model_attn2_patch(AudioAttentionPatch(model_patch, self.adapter))
        self.text_len = diffusion_model.text_len
        self.facts = ModelFacts(True, self.adapter.config, tuple(diffusion_model.patch_size))

    def identity(self) -> str:
        return model_identity(self.source, self.model_patch)

    @contextmanager
    def session(self) -> Iterator[torch.device]:
        """The MODEL's pre-run and clean-up callbacks around a video; yields the compute device."""
        host.load_for_sampling(self.patcher, None)
        self.patcher.pre_run()
        try:
            yield self.patcher.load_device
        finally:
            self.patcher.cleanup()

    def encode_audio(self, features: torch.Tensor) -> torch.Tensor:
        host.load_for_sampling(self.patcher, None)
        batch, speakers = features.shape[:2]
        tokens = self.adapter.projection(features.flatten(0, 1).float())
        return tokens.unflatten(0, (batch, speakers))

    def velocity(self, x: torch.Tensor, sigma: float, conditioning: WindowConditioning) -> torch.Tensor:
        base = host.load_for_sampling(self.patcher, x.shape)
        options = host.transformer_options(self.patcher)
        if conditioning.audio_tokens is not None:
            options[AUDIO_KEY] = AudioConditioning.build(
                conditioning.audio_tokens, conditioning.speaker_masks, dtype=base.get_dtype_inference())
        # Wan pads the text to text_len with zeros; ComfyUI's encoders pad, ours may not.
        context = conditioning.context
        context = F.pad(context, (0, 0, 0, max(0, self.text_len - context.shape[1])))
        extra = {} if conditioning.clip_tokens is None else {"clip_fea": conditioning.clip_tokens}
        sigmas = torch.full((x.shape[0],), sigma, device=x.device)
        options.update(cond_or_uncond=[0], sigmas=sigmas)  # what ComfyUI's samplers tell every call
        denoised = base.apply_model(x, sigmas, c_concat=conditioning.image_latent, c_crossattn=context,
                                    transformer_options=options, **extra)
        # ComfyUI's flow models return x0 = x - sigma * v; the loop never calls at sigma 0.
        return ((x - denoised) / sigma).float()


def check_model_inputs(model: object, wan_model: object, model_patch: object) -> None:
    """Exactly one of MI_MODEL and MODEL + MODEL_PATCH must be connected."""
    if model is not None and (wan_model is not None or model_patch is not None):
        raise InputError("model: connect either an MI_MODEL (model) or a MODEL with its MODEL_PATCH "
                         "(wan_model, model_patch), not both.")
    if model is not None:
        return
    if wan_model is None:
        raise InputError("wan_model: no model connected; connect MagicInfinite Model Loader to model, or "
                         "UNETLoader (Wan2.1 I2V) to wan_model with ModelPatchLoader (InfiniteTalk) to "
                         "model_patch.")
    if model_patch is None:
        raise InputError("model_patch: a MODEL needs its audio adapter; connect ModelPatchLoader with the "
                         "InfiniteTalk or MultiTalk file.")


def model_identity(model: object, model_patch: object) -> str:
    """Resume identity of a MODEL + MODEL_PATCH: the file it was loaded from (when ComfyUI recorded it), its
    weights as loaded (originals of weights ComfyUI patched in place), its LoRAs and strengths, its object
    and transformer patches, wrappers and callbacks, and the adapter's weights."""
    init = getattr(model, "cached_patcher_init", None)
    return fingerprint({
        "model": type(model.model).__qualname__,
        "file": None if init is None else _plain(init[1]),
        "weights": module_fingerprint(_original_weights(model)),
        "patches": _plain(model.patches),
        "object_patches": _plain(model.object_patches),
        "options": _plain(model.model_options),
        "wrappers": _plain(model.wrappers),
        "callbacks": _plain(model.callbacks),
        "adapter": module_fingerprint(model_patch.model.state_dict().items()),
    })


def _original_weights(model: object) -> Iterator[tuple[str, torch.Tensor]]:
    """The DiT's tensors as loaded: ComfyUI patches LoRAs into loaded weights in place and keeps the
    originals in `backup`; weights not materialised yet (meta) are named by the file instead."""
    backup = getattr(model, "backup", {})
    for name, tensor in model.model.state_dict().items():
        if name in backup:
            tensor = backup[name].weight
        if tensor.device.type != "meta":
            yield name, tensor


def _plain(value: object, depth: int = 0) -> object:
    """A host value as something `fingerprint` reads the same in every run: tensors, numbers, strings and
    containers as they are; functions by name; a LoRA adapter by its weights; other objects by their type
    and plain attributes (never their address)."""
    if value is None or isinstance(value, torch.Tensor | str | int | float | bool):
        return value
    if depth > 8:
        return type(value).__qualname__
    if isinstance(value, dict):
        return {str(key): _plain(item, depth + 1) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item, depth + 1) for item in value]
    if isinstance(value, set | frozenset):
        return sorted(str(item) for item in value)
    if hasattr(value, "__qualname__") and callable(value):
        return f"{getattr(value, '__module__', '')}.{value.__qualname__}"
    if hasattr(value, "weights"):
        return [type(value).__qualname__, _plain(value.weights, depth + 1)]
    attributes = {key: item for key, item in getattr(value, "__dict__", {}).items()
                  if item is None or isinstance(item, str | int | float | bool)}
    return [type(value).__qualname__, attributes]
