"""Lazy safetensors reading: single files, shards found through an index or their names, refusals."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from magicinfinite_core.checkpoints import open_tensor_file, safetensors_io
from magicinfinite_core.checkpoints.safetensors_io import MAX_HEADER_BYTES
from magicinfinite_core.errors import CheckpointError

ROOT = Path(__file__).resolve().parents[2]


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


def write_with_header(path, header: dict, data: bytes = b"") -> None:
    """A safetensors file written by hand: 8-byte header length, the JSON header, the data."""
    encoded = json.dumps(header).encode()
    path.write_bytes(len(encoded).to_bytes(8, "little") + encoded + data)


def test_a_hostile_88_mb_header_is_refused_before_it_is_parsed(tmp_path, monkeypatch):
    path = tmp_path / "hostile.safetensors"
    write_with_header(path, {"__metadata__": {"filler": "x" * 88_000_000}, "w": {
        "dtype": "U8", "shape": [1], "data_offsets": [0, 1]}}, b"\0")
    parsed = []
    monkeypatch.setattr(safetensors_io, "safe_open", lambda *args, **kwargs: parsed.append(args))
    with pytest.raises(CheckpointError) as error:
        open_tensor_file(path)
    assert parsed == []  # refused from the 8-byte length alone
    header_bytes = path.stat().st_size - 8 - 1
    assert str(error.value).startswith(
        f"hostile.safetensors: its safetensors header claims {header_bytes:,} bytes, over the "
        f"{MAX_HEADER_BYTES:,}-byte limit")


def test_headers_up_to_the_limit_are_read(tmp_path):
    path = tmp_path / "large_metadata.safetensors"
    header = {"__metadata__": {"ss_tag_frequency": "y" * 4_000_000},  # a LoRA's training metadata
              "w": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]}}
    write_with_header(path, header, b"\1\2")
    opened = open_tensor_file(path)
    assert opened.shapes() == {"w": (2,)} and len(opened.metadata["ss_tag_frequency"]) == 4_000_000
    claims_one_byte_too_many = (MAX_HEADER_BYTES + 1).to_bytes(8, "little")
    path.write_bytes(claims_one_byte_too_many + path.read_bytes()[8:])
    with pytest.raises(CheckpointError, match=f"claims {MAX_HEADER_BYTES + 1:,} bytes"):
        open_tensor_file(path)


def test_importing_the_pack_starts_no_process_and_searches_no_library(tmp_path):
    """ctypes.util.find_library runs `ldconfig -p` in a subprocess; the pack must not do it on import,
    nor when it later reads a checkpoint."""
    save_file(tensors(), str(tmp_path / "m.safetensors"))
    script = r"""
import ctypes.util, json, subprocess, sys
calls = []
real_init, real_find = subprocess.Popen.__init__, ctypes.util.find_library
def popen(self, args, *rest, **options):
    calls.append(["Popen", str(args)])
    return real_init(self, args, *rest, **options)
def find_library(name):
    calls.append(["find_library", name])
    return real_find(name)
subprocess.Popen.__init__, ctypes.util.find_library = popen, find_library
import nodes
from magicinfinite_core.checkpoints import open_tensor_file
dict(open_tensor_file(sys.argv[1]).read(["blocks.0.ffn.0.weight"]))
print(json.dumps(calls))
"""
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "m.safetensors")], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
