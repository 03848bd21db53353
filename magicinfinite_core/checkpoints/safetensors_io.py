"""Lazy reading of safetensors checkpoints: single files and shards with a `*.index.json` weight map.

Only safetensors are read. Pickle-based files (.pt .pth .ckpt .bin) are refused: unpickling runs
arbitrary code from the file.

Tensors are read through safetensors' memory map one at a time and copied out, so RAM never holds a
second full copy of the weights. The map is reopened every `RELEASE_BYTES` read: a mapping keeps every
page it has touched resident until it is closed, and tensors kept as views of it would pin the whole
file; copying out and reopening keeps the resident file pages bounded by `RELEASE_BYTES`.
"""

from __future__ import annotations

import ctypes
import functools
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open

from ..errors import CheckpointError

PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".pkl", ".pickle")
SAFETENSORS_SUFFIXES = (".safetensors", ".sft")
INDEX_SUFFIX = ".index.json"
RELEASE_BYTES = 256 * 2**20
# The JSON header is parsed whole before anything else: a hostile 88 MB one took 24 s and 1.1 GB. A Wan2.1
# 14B file's header (1,633 tensors with the adapter) is about 210 KB, and LoRAs carrying training metadata
# a few MB: 16 MB keeps a wide margin over both and bounds what a damaged or hostile file can cost.
MAX_HEADER_BYTES = 16 * 2**20

DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "F8_E4M3": torch.float8_e4m3fn,
    "F8_E5M2": torch.float8_e5m2,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}

_SHARD_NAME = re.compile(r"^(?P<stem>.+)-(?P<index>\d+)-of-(?P<count>\d+)\.safetensors$")


@dataclass(frozen=True)
class TensorInfo:
    shape: tuple[int, ...]
    dtype: torch.dtype
    file: Path

    @property
    def nbytes(self) -> int:
        numel = 1
        for size in self.shape:
            numel *= size
        return numel * self.dtype.itemsize


class TensorFile:
    """The tensors of one checkpoint (one file or a set of shards), read on demand."""

    def __init__(self, path: Path, infos: dict[str, TensorInfo], metadata: dict[str, str]) -> None:
        self.path = path
        self.infos = infos
        self.metadata = metadata

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def files(self) -> tuple[Path, ...]:
        return tuple(sorted({info.file for info in self.infos.values()}))

    def keys(self) -> list[str]:
        return list(self.infos)

    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {key: info.shape for key, info in self.infos.items()}

    def read(
        self, keys: Iterable[str], device: torch.device | str = "cpu"
    ) -> Iterator[tuple[str, torch.Tensor]]:
        """Yield (key, tensor) in the order given; each tensor is a copy owned by the caller."""
        handles: dict[Path, object] = {}
        read_bytes = 0
        try:
            for key in keys:
                info = self.infos.get(key)
                if info is None:
                    raise CheckpointError(f"{self.name}: no tensor named {key!r}")
                handle = handles.get(info.file)
                if handle is None:
                    handle = handles[info.file] = _open(info.file)
                view = handle.get_tensor(key)
                tensor = view.to(device, copy=True)
                del view
                yield key, tensor
                read_bytes += info.nbytes
                if read_bytes >= RELEASE_BYTES:
                    _close_all(handles)
                    _release_free_heap()
                    read_bytes = 0
        finally:
            _close_all(handles)
            _release_free_heap()


def open_tensor_file(path: str | Path) -> TensorFile:
    """Open a checkpoint for lazy reading: a `.safetensors` file, a shard of a sharded checkpoint (all
    shards are then opened, found through the `*.index.json` beside it or the `-0000k-of-0000n` names),
    or the `*.safetensors.index.json` itself."""
    path = Path(path)
    name = path.name.lower()
    if name.endswith(PICKLE_SUFFIXES):
        raise CheckpointError(
            f"{path.name}: refusing to load a pickle checkpoint ({path.suffix}). Loading a pickle can run "
            "arbitrary code hidden in the file. Use a .safetensors copy of this model instead (the "
            "ComfyUI-repackaged and Kijai Wan files are safetensors, e.g. "
            "wan2.1_i2v_480p_14B_bf16.safetensors)."
        )
    if not path.exists():
        raise CheckpointError(f"{path}: file not found")
    if name.endswith(INDEX_SUFFIX):
        return _open_index(path)
    if not name.endswith(SAFETENSORS_SUFFIXES):
        raise CheckpointError(
            f"{path.name}: not a safetensors file (expected a .safetensors file or a "
            f"*.safetensors.index.json of shards, found '{path.suffix}'). Only safetensors are loaded."
        )
    shard = _SHARD_NAME.match(path.name)
    if shard is not None and int(shard["count"]) > 1:
        return _open_shards_of(path, shard)
    return TensorFile(path, *_scan(path))


def _check_header_size(file: Path) -> None:
    """Refuse a header larger than MAX_HEADER_BYTES from its 8-byte length prefix, before parsing it."""
    with open(file, "rb") as stream:
        prefix = stream.read(8)
    size = int.from_bytes(prefix, "little") if len(prefix) == 8 else 0  # too short: safe_open says so
    if size > MAX_HEADER_BYTES:
        raise CheckpointError(
            f"{file.name}: its safetensors header claims {size:,} bytes, over the {MAX_HEADER_BYTES:,}-byte "
            "limit (a Wan2.1 14B checkpoint's header is about 210 KB), so it is not read: the file is "
            "damaged or not a real checkpoint. Download it again from its source."
        )


def _open(file: Path):
    try:
        _check_header_size(file)
        return safe_open(str(file), framework="pt")
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"{file.name}: cannot be read as safetensors ({exc}). The file may be truncated (an "
            "interrupted download) or another format renamed to .safetensors."
        ) from exc


@functools.cache
def _malloc_trim():
    """glibc's malloc_trim, looked up on first use among the symbols already loaded (no library search:
    ctypes.util.find_library runs `ldconfig -p` in a subprocess); None where the C library has none."""
    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError, TypeError):  # not glibc (Windows, macOS, musl): nothing to do
        return None


def _release_free_heap() -> None:
    """Hand freed heap pages back to the OS. glibc keeps freed mid-sized blocks (the per-tensor
    conversion buffers) in its heap, where they are interleaved with the weights kept: without this,
    converting a checkpoint to another dtype leaves RSS about two file sizes high."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def _close_all(handles: dict[Path, object]) -> None:
    for handle in handles.values():
        handle.__exit__(None, None, None)
    handles.clear()


def _scan(file: Path) -> tuple[dict[str, TensorInfo], dict[str, str]]:
    """Header of one file: shapes and dtypes of its tensors, and its metadata."""
    with _open(file) as handle:
        infos = {}
        keys = handle.keys()
        for key in keys:
            view = handle.get_slice(key)
            dtype_name = view.get_dtype()
            dtype = DTYPES.get(dtype_name)
            if dtype is None:
                raise CheckpointError(f"{file.name}: tensor {key!r} has unsupported dtype {dtype_name}")
            infos[key] = TensorInfo(tuple(view.get_shape()), dtype, file)
        return infos, dict(handle.metadata() or {})


def _open_index(index: Path) -> TensorFile:
    try:
        content = json.loads(index.read_text())
        weight_map: dict[str, str] = content["weight_map"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{index.name}: not a shard index with a 'weight_map' ({exc})") from exc
    shard_files = sorted({index.parent / shard for shard in weight_map.values()})
    missing = [file.name for file in shard_files if not file.exists()]
    if missing:
        raise CheckpointError(f"{index.name}: shards listed in the index are missing: {', '.join(missing)}")
    infos, metadata = _merge_shards(index, shard_files)
    misplaced = [k for k, shard in weight_map.items() if k not in infos or infos[k].file.name != shard]
    if misplaced:
        raise CheckpointError(
            f"{index.name}: {len(misplaced)} tensors are not in the shard the index names, e.g. "
            + ", ".join(f"{key} (index: {weight_map[key]})" for key in misplaced[:5])
        )
    metadata.update({k: str(v) for k, v in (content.get("metadata") or {}).items()})
    return TensorFile(index, infos, metadata)


def _open_shards_of(path: Path, shard: re.Match) -> TensorFile:
    """A shard was picked (ComfyUI lists files, not indexes): open the whole set."""
    for index in sorted(path.parent.glob("*" + INDEX_SUFFIX)):
        try:
            weight_map = json.loads(index.read_text()).get("weight_map", {})
        except (OSError, ValueError, AttributeError):
            continue
        if path.name in set(weight_map.values()):
            return _open_index(index)
    count = int(shard["count"])
    width = len(shard["index"])
    names = [f"{shard['stem']}-{i:0{width}d}-of-{shard['count']}.safetensors" for i in range(1, count + 1)]
    missing = [n for n in names if not (path.parent / n).exists()]
    if missing:
        raise CheckpointError(
            f"{path.name}: is shard {int(shard['index'])} of {count}, but shards are missing: "
            + ", ".join(missing)
        )
    infos, metadata = _merge_shards(path, [path.parent / n for n in names])
    return TensorFile(path, infos, metadata)


def _merge_shards(origin: Path, files: list[Path]) -> tuple[dict[str, TensorInfo], dict[str, str]]:
    infos: dict[str, TensorInfo] = {}
    metadata: dict[str, str] = {}
    for file in files:
        shard_infos, shard_metadata = _scan(file)
        repeated = sorted(set(shard_infos) & set(infos))
        if repeated:
            raise CheckpointError(
                f"{origin.name}: tensors stored in more than one shard ({file.name} and "
                f"{infos[repeated[0]].file.name}), e.g. {', '.join(repeated[:5])}"
            )
        infos.update(shard_infos)
        metadata.update(shard_metadata)
    return infos, metadata
