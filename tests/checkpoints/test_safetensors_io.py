"""Lazy safetensors reading: single files, shards found through an index or their names, refusals."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from magicinfinite_core.checkpoints import open_tensor_file
from magicinfinite_core.errors import CheckpointError


def tensors(count: int = 6) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {f"blocks.{i}.ffn.0.weight": torch.randn(3, i + 1, generator=g) for i in range(count)}


def write_shards(folder, data, count, *, index=True):
    keys = list(data)
    weight_map = {}
    for i in range(count):
        name = f"model-{i + 1:05d}-of-{count:05d}.safetensors"
        part = {k: data[k] for k in keys[i::count]}
        save_file(part, str(folder / name), metadata={"shard": str(i)})
        weight_map.update(dict.fromkeys(part, name))
    if index:
        (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    return weight_map


def test_single_file_gives_shapes_dtypes_metadata_and_tensors(tmp_path):
    data = tensors() | {
        "half": torch.ones(2, dtype=torch.bfloat16),
        "e4m3": torch.ones(2, dtype=torch.float8_e4m3fn),
    }
    save_file(data, str(tmp_path / "m.safetensors"), metadata={"a": "1"})
    file = open_tensor_file(tmp_path / "m.safetensors")
    assert file.metadata == {"a": "1"}
    assert file.shapes() == {k: tuple(v.shape) for k, v in data.items()}
    assert file.infos["e4m3"].dtype == torch.float8_e4m3fn
    read = dict(file.read(file.keys()))
    for key, value in data.items():
        assert read[key].dtype == value.dtype and torch.equal(read[key].float(), value.float())


def test_read_tensors_are_copies_that_outlive_the_file_handle(tmp_path):
    data = tensors()
    save_file(data, str(tmp_path / "m.safetensors"))
    file = open_tensor_file(tmp_path / "m.safetensors")
    read = dict(file.read(file.keys()))
    read["blocks.0.ffn.0.weight"].add_(1)  # writable, and not a view of the file
    again = dict(file.read(["blocks.0.ffn.0.weight"]))
    assert torch.equal(again["blocks.0.ffn.0.weight"], data["blocks.0.ffn.0.weight"])


@pytest.mark.parametrize("pick", ["index", "first shard", "last shard"])
def test_shards_are_opened_as_one_checkpoint(tmp_path, pick):
    data = tensors()
    weight_map = write_shards(tmp_path, data, 3)
    path = {
        "index": tmp_path / "model.safetensors.index.json",
        "first shard": tmp_path / "model-00001-of-00003.safetensors",
        "last shard": tmp_path / "model-00003-of-00003.safetensors",
    }[pick]
    file = open_tensor_file(path)
    assert set(file.keys()) == set(data)
    assert {k: info.file.name for k, info in file.infos.items()} == weight_map
    assert len(file.files) == 3
    read = dict(file.read(reversed(file.keys())))
    assert all(torch.equal(read[k], v) for k, v in data.items())


def test_shards_without_an_index_are_found_by_their_names(tmp_path):
    data = tensors()
    write_shards(tmp_path, data, 2, index=False)
    file = open_tensor_file(tmp_path / "model-00002-of-00002.safetensors")
    assert set(file.keys()) == set(data)


def test_a_missing_shard_is_named(tmp_path):
    write_shards(tmp_path, tensors(), 3)
    (tmp_path / "model-00002-of-00003.safetensors").unlink()
    with pytest.raises(CheckpointError, match="model-00002-of-00003.safetensors"):
        open_tensor_file(tmp_path / "model.safetensors.index.json")


def test_an_index_naming_the_wrong_shard_is_an_error(tmp_path):
    weight_map = write_shards(tmp_path, tensors(), 2)
    weight_map["blocks.0.ffn.0.weight"] = "model-00002-of-00002.safetensors"
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    with pytest.raises(CheckpointError, match=r"model.safetensors.index.json.*blocks.0.ffn.0.weight"):
        open_tensor_file(tmp_path / "model.safetensors.index.json")


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".ckpt", ".bin"])
def test_pickles_are_refused_with_the_reason_and_the_remedy(tmp_path, suffix):
    path = tmp_path / f"wan_model{suffix}"
    torch.save({"w": torch.ones(1)}, path)
    with pytest.raises(CheckpointError) as error:
        open_tensor_file(path)
    message = str(error.value)
    assert f"wan_model{suffix}" in message
    assert "arbitrary code" in message and ".safetensors" in message


def test_a_broken_safetensors_file_is_named_with_the_likely_cause(tmp_path):
    path = tmp_path / "truncated.safetensors"
    save_file(tensors(), str(path))
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match=r"truncated.safetensors.*(truncated|renamed)"):
        open_tensor_file(path)


def test_other_formats_and_missing_files_are_refused(tmp_path):
    (tmp_path / "model.gguf").write_bytes(b"GGUF")
    with pytest.raises(CheckpointError, match=r"model.gguf: not a safetensors file"):
        open_tensor_file(tmp_path / "model.gguf")
    with pytest.raises(CheckpointError, match="not found"):
        open_tensor_file(tmp_path / "absent.safetensors")
