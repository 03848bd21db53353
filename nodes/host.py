"""What the nodes use from the host, with plain fallbacks so the pack imports without ComfyUI.

ComfyUI's modules (folder_paths, comfy.utils, comfy.model_management, comfy.cli_args) exist only inside
the host; tests and the demo run without them.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType

import torch
from torch import nn

from magicinfinite_core.sampling.resume import module_fingerprint

try:  # inside ComfyUI
    import folder_paths  # type: ignore[import-not-found]
except ImportError:  # plain Python: tests, demo
    folder_paths = None

try:
    import comfy.model_management as model_management  # type: ignore[import-not-found]
    import comfy.utils as comfy_utils  # type: ignore[import-not-found]
except ImportError:
    model_management = None
    comfy_utils = None

try:
    from comfy.cli_args import args as cli_args  # type: ignore[import-not-found]
except ImportError:
    cli_args = None

# Outside ComfyUI, model folders are looked up under this directory (models/<folder>/...).
MODELS_DIR_ENV = "MAGICINFINITE_MODELS_DIR"


def list_models(folder: str) -> list[str]:
    """File names in one of ComfyUI's model folders ('diffusion_models', 'loras', ...)."""
    if folder_paths is not None:
        try:
            return sorted(folder_paths.get_filename_list(folder))
        except KeyError:  # folder not registered in this ComfyUI version
            return []
    root = Path(os.environ.get(MODELS_DIR_ENV, "models")) / folder
    if not root.is_dir():
        return []
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def model_path(folder: str, name: str) -> Path:
    """Full path of a file listed by `list_models`."""
    if folder_paths is not None:
        found = folder_paths.get_full_path(folder, name)
        if found is not None:
            return Path(found)
    return Path(os.environ.get(MODELS_DIR_ENV, "models")) / folder / name


def output_directory() -> Path:
    if folder_paths is not None:
        return Path(folder_paths.get_output_directory())
    return Path("output")


def temp_directory() -> Path:
    if folder_paths is not None:
        return Path(folder_paths.get_temp_directory())
    return Path("temp")


def metadata_disabled() -> bool:
    """ComfyUI's --disable-metadata: output files carry no prompt or workflow."""
    return bool(getattr(cli_args, "disable_metadata", False))


def check_interrupted() -> None:
    """Raise the host's interrupt exception when the user pressed cancel."""
    if model_management is not None:
        model_management.throw_exception_if_processing_interrupted()


def progress_callback(total: int) -> Callable[[int, object | None], None]:
    """A callback(step, preview) that advances ComfyUI's progress bar and honours cancel."""
    bar = comfy_utils.ProgressBar(total) if comfy_utils is not None else None

    def advance(step: int, preview: object | None = None) -> None:
        check_interrupted()
        if bar is not None:
            bar.update_absolute(step, total, preview)

    return advance


def vae_identity(vae: object) -> str:
    """Resume identity of a VAE: ComfyUI's VAE object wraps its module in `first_stage_model`; the engine's
    own VAE is a module and needs no name here."""
    module = getattr(vae, "first_stage_model", None)
    return module_fingerprint(module.state_dict().items()) if isinstance(module, nn.Module) else ""


def comfy(name: str) -> ModuleType:
    """A ComfyUI module (`comfy.<name>`), imported when first needed: only a value from the host (a MODEL)
    leads here, so the pack still imports without ComfyUI."""
    return importlib.import_module(f"comfy.{name}")


def is_wan21(base_model: object) -> bool:
    """Whether a MODEL's inner model is ComfyUI's Wan2.1 family (t2v, i2v and their variants)."""
    return base_model is not None and isinstance(base_model, comfy("model_base").WAN21)


def load_for_sampling(patcher: object, latent_shape: Sequence[int] | None) -> object:
    """Load a MODEL (and the models its patches list) as ComfyUI's samplers do, partially when the card is
    small; with the latent's shape, room for its activations is made too. Returns the inner model."""
    if latent_shape is None:
        comfy("model_management").load_models_gpu([patcher])
    else:
        comfy("sampler_helpers").prepare_sampling(patcher, list(latent_shape), {},
                                                  model_options=patcher.model_options)
    return patcher.model


def transformer_options(patcher: object) -> dict:
    """A fresh copy of a MODEL's transformer_options with its wrappers and callbacks, as ComfyUI's samplers
    hand them to every call: the user's patches (attention, compile, LoRA hooks) travel with it."""
    extension = comfy("patcher_extension")
    options = extension.merge_nested_dicts({}, patcher.model_options.get("transformer_options", {}))
    options["wrappers"] = extension.merge_nested_dicts(options.get("wrappers", {}), patcher.wrappers)
    options["callbacks"] = extension.merge_nested_dicts(options.get("callbacks", {}), patcher.callbacks)
    return options


def cast_bias_weight(module: nn.Module, like: torch.Tensor, dtype: torch.dtype) -> tuple:
    """A ComfyUI layer's (weight, bias) on `like`'s device in `dtype`, wherever the host keeps them."""
    return comfy("ops").cast_bias_weight(module, like, dtype=dtype, bias_dtype=dtype)
