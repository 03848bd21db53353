"""MagicInfiniteModelLoader / MagicInfiniteLoraSelect: valid V1 declarations with tooltips, files listed
from the model folders, and one call into load_model with the chosen files, dtypes and LoRA chain."""

from __future__ import annotations

import pytest
import torch
from conftest import make_tiny_model
from safetensors.torch import save_file

from magicinfinite_core.checkpoints import LoadedModel, LoraSpec, config_metadata
from magicinfinite_core.checkpoints.layouts import is_adapter_key
from magicinfinite_core.errors import CheckpointError
from magicinfinite_core.mini.bundle import EMBEDDED_BUNDLE_NAME
from nodes.model_loader import (
    NODE_CLASS_MAPPINGS,
    NODE_DISPLAY_NAME_MAPPINGS,
    MagicInfiniteLoraSelect,
    MagicInfiniteModel,
    MagicInfiniteModelLoader,
)

NODES = [MagicInfiniteModelLoader, MagicInfiniteLoraSelect]


@pytest.fixture
def models_dir(tmp_path, monkeypatch):
    """models/{diffusion_models,model_patches,loras} holding a tiny DiT, its adapter and a LoRA."""
    model = make_tiny_model(num_layers=1)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    metadata = config_metadata(model.config)
    for folder in ("diffusion_models", "model_patches", "loras"):
        (tmp_path / folder).mkdir()
    save_file(
        {k: v for k, v in state.items() if not is_adapter_key(k)},
        str(tmp_path / "diffusion_models" / "tiny_dit.safetensors"),
        metadata=metadata,
    )
    save_file(
        {k: v for k, v in state.items() if is_adapter_key(k)},
        str(tmp_path / "model_patches" / "tiny_infinitetalk.safetensors"),
        metadata=metadata,
    )
    g = torch.Generator().manual_seed(0)
    save_file(
        {
            "diffusion_model.blocks.0.self_attn.q.lora_down.weight": torch.randn(2, 64, generator=g),
            "diffusion_model.blocks.0.self_attn.q.lora_up.weight": torch.randn(64, 2, generator=g),
        },
        str(tmp_path / "loras" / "style.safetensors"),
    )
    torch.save({}, tmp_path / "diffusion_models" / "old.pt")
    monkeypatch.setenv("MAGICINFINITE_MODELS_DIR", str(tmp_path))
    return tmp_path, model


@pytest.mark.parametrize("node", NODES)
def test_nodes_declare_v1_inputs_outputs_and_tooltips(models_dir, node):
    assert NODE_CLASS_MAPPINGS[node.__name__] is node
    assert NODE_DISPLAY_NAME_MAPPINGS[node.__name__].startswith("MagicInfinite ")
    assert node.CATEGORY == "MagicInfinite/loaders"
    assert callable(getattr(node, node.FUNCTION))
    assert len(node.RETURN_TYPES) == len(node.RETURN_NAMES) == len(node.OUTPUT_TOOLTIPS)
    spec = node.INPUT_TYPES()
    assert set(spec) <= {"required", "optional"}
    for name, (kind, options) in {**spec["required"], **spec.get("optional", {})}.items():
        assert isinstance(kind, (str, list)), name
        assert options.get("tooltip"), name
        if isinstance(kind, list) and "default" in options:
            assert options["default"] in kind, name


def test_file_choices_come_from_the_model_folders(models_dir):
    required = MagicInfiniteModelLoader.INPUT_TYPES()["required"]
    assert required["dit_name"][0] == [EMBEDDED_BUNDLE_NAME, "old.pt", "tiny_dit.safetensors"]
    assert required["adapter_name"][0] == ["none", "tiny_infinitetalk.safetensors"]
    assert required["compute_dtype"][0] == ["bf16", "fp16", "fp32"]
    assert required["weight_dtype"][0] == ["default", "fp8_e4m3fn", "bf16", "fp16", "fp32"]
    assert MagicInfiniteLoraSelect.INPUT_TYPES()["required"]["lora_name"][0] == ["style.safetensors"]
    assert MagicInfiniteModelLoader.RETURN_TYPES == ("MI_MODEL",)
    assert MagicInfiniteLoraSelect.RETURN_TYPES == ("MI_LORAS",)


def test_lora_select_nodes_chain_into_a_tuple(models_dir):
    folder, _ = models_dir
    (first,) = MagicInfiniteLoraSelect().select("style.safetensors", 0.5)
    (chain,) = MagicInfiniteLoraSelect().select("style.safetensors", -1.0, previous=first)
    path = str(folder / "loras" / "style.safetensors")
    assert chain == (LoraSpec(path, 0.5), LoraSpec(path, -1.0))


def test_loader_loads_dit_adapter_and_loras(models_dir):
    _, model = models_dir
    (loras,) = MagicInfiniteLoraSelect().select("style.safetensors", 1.0)
    (model_value,) = MagicInfiniteModelLoader().load(
        "tiny_dit.safetensors", "tiny_infinitetalk.safetensors", "fp32", "fp8_e4m3fn", loras=loras
    )
    assert isinstance(model_value, MagicInfiniteModel) and model_value.vae is None
    loaded = model_value.dit
    assert isinstance(loaded, LoadedModel)
    assert loaded.config == model.config and loaded.loras == loras
    assert loaded.compute_dtype == torch.float32 and loaded.storage_dtype == torch.float8_e4m3fn
    assert loaded.module.get_parameter("blocks.0.ffn.0.weight").dtype == torch.float8_e4m3fn
    assert len(loaded.module.get_submodule("blocks.0.self_attn.q").patches) == 1


def test_loader_without_adapter_gives_a_silent_model_and_refuses_pickles(models_dir):
    loaded = MagicInfiniteModelLoader().load("tiny_dit.safetensors", "none", "bf16", "default")[0].dit
    assert loaded.config.audio is None and loaded.module.compute_dtype == torch.bfloat16
    with pytest.raises(CheckpointError, match="old.pt: refusing to load a pickle"):
        MagicInfiniteModelLoader().load("old.pt", "none", "bf16", "default")
