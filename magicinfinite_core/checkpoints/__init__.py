"""Checkpoint loading: safetensors (single or sharded), key layouts, config from shapes, fp8, LoRAs."""

from .config_inference import config_metadata, infer_config
from .loader import COMPUTE_DTYPES, STORAGE_DTYPES, LoadedModel, load_model
from .lora import LoraSpec
from .safetensors_io import open_tensor_file

__all__ = [
    "COMPUTE_DTYPES",
    "STORAGE_DTYPES",
    "LoadedModel",
    "LoraSpec",
    "config_metadata",
    "infer_config",
    "load_model",
    "open_tensor_file",
]
