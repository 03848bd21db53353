"""Resume state of a long render, kept beside its partial output.

After every finished window the loop saves which window comes next, the motion frames it starts from, the
seed and a hash of every input that shapes the video. A later run with the same hash continues from there;
per-window seeds make the continued video equal to an uninterrupted one. A run whose inputs differ gets
nothing (and starts over). Stored as safetensors (tensors + string metadata), written atomically.

A state saved by another format version (the digests it holds were computed differently) cannot be
continued: finding one is logged as a warning that names its folder, so the user knows why the render
starts over and where the old parts are.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

STATE_FILE = "resume.safetensors"
# 2: fingerprint positions in integer arithmetic (1 placed them with float32 and saw other elements).
FORMAT_VERSION = "2"
_FINGERPRINT_ELEMENTS = 4096  # evenly spaced elements read per tensor: cheap even for 14B weights

log = logging.getLogger(__name__)


def sample_positions(numel: int, count: int = _FINGERPRINT_ELEMENTS) -> torch.Tensor:
    """min(numel, count) evenly spaced flat indices of a tensor with `numel` elements, int64, from 0 to
    numel - 1 inclusive. Integer arithmetic: float32 cannot tell indices above 2**24 apart."""
    count = min(numel, count)
    if count <= 1:
        return torch.zeros(count, dtype=torch.int64)
    return torch.arange(count, dtype=torch.int64) * (numel - 1) // (count - 1)


def fingerprint(value: object) -> str:
    """A short digest of a value; tensors are read at evenly spaced elements (plus dtype and shape)."""
    digest = hashlib.sha256()
    if isinstance(value, torch.Tensor):
        tensor = value.detach()
        digest.update(f"{value.dtype}{tuple(value.shape)}".encode())
        if tensor.numel():
            # Indexing per dimension reads only the sampled elements, even of a non-contiguous view.
            index = torch.unravel_index(sample_positions(tensor.numel()), tensor.shape)
            picked = tensor[tuple(i.to(tensor.device) for i in index)] if tensor.ndim else tensor
            digest.update(picked.to("cpu", torch.float64).numpy().tobytes())
    elif isinstance(value, dict):
        for key in sorted(value):
            digest.update(f"{key}={fingerprint(value[key])};".encode())
    elif isinstance(value, (list, tuple)):
        for item in value:
            digest.update(f"{fingerprint(item)},".encode())
    else:
        digest.update(repr(value).encode())
    return digest.hexdigest()[:32]


def module_fingerprint(tensors: Iterable[tuple[str, torch.Tensor]]) -> str:
    """Digest of named parameters/buffers (a model's identity for resume)."""
    return fingerprint({name: tensor for name, tensor in tensors})


@dataclass(frozen=True)
class ResumeState:
    params_hash: str
    seed: int
    next_window: int
    motion_frames: torch.Tensor  # [M, H, W, 3] decoded frames the next window starts from (empty when done)


class ResumeStore:
    """Reads and writes the resume state in `directory`."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)

    @property
    def path(self) -> Path:
        return self.directory / STATE_FILE

    def _metadata(self) -> dict | None:
        """The saved state's metadata; None when there is none or it cannot be read (damaged: as good as
        none)."""
        if not self.path.is_file():
            return None
        try:
            with safe_open(str(self.path), framework="pt") as handle:
                meta = json.loads(handle.metadata()["state"])
        except (OSError, KeyError, TypeError, ValueError, SafetensorError):
            return None
        return meta if isinstance(meta, dict) else None

    def saved_format(self) -> str | None:
        """The format version of the state saved here; None when there is none or it cannot be read."""
        meta = self._metadata()
        return None if meta is None else str(meta.get("format"))

    def load(self, params_hash: str) -> ResumeState | None:
        """The saved state when it belongs to a run with these inputs, else None (a state of another
        format is logged as a warning)."""
        meta = self._metadata()
        if meta is None:
            return None
        if meta.get("format") != FORMAT_VERSION:
            log.warning(outdated_message(self.directory, meta.get("format"),
                                         "this render starts over from the first window and replaces it."))
            return None
        if meta.get("params_hash") != params_hash:
            return None
        try:
            motion = load_file(str(self.path))["motion_frames"]
            return ResumeState(params_hash, int(meta["seed"]), int(meta["next_window"]), motion)
        except (OSError, KeyError, TypeError, ValueError, RuntimeError, SafetensorError):
            return None

    def save(self, state: ResumeState) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        meta = {
            "format": FORMAT_VERSION,
            "params_hash": state.params_hash,
            "seed": state.seed,
            "next_window": state.next_window,
        }
        temporary = self.path.with_suffix(".tmp")
        save_file({"motion_frames": state.motion_frames.detach().cpu().contiguous()}, str(temporary),
                  metadata={"state": json.dumps(meta)})
        os.replace(temporary, self.path)

    def saved_seed(self) -> int | None:
        """The seed of the render whose state is saved here, whatever its inputs and format; None when none
        can be read."""
        meta = self._metadata()
        seed = None if meta is None else meta.get("seed")
        return seed if isinstance(seed, int) else None


def outdated_message(directory: Path, found_format: object, consequence: str) -> str:
    return (f"{directory}: an unfinished render saved by another version of MagicInfinite (resume format "
            f"{found_format}; this version reads {FORMAT_VERSION}) cannot be continued: {consequence}")


def warn_outdated(directories: Iterable[Path], consequence: str) -> list[Path]:
    """Log a warning for each folder that holds a resume state of another format, ending with
    `consequence` (what happens now); returns those folders."""
    found = []
    for directory in directories:
        saved = ResumeStore(directory).saved_format()
        if saved is not None and saved != FORMAT_VERSION:
            log.warning(outdated_message(directory, saved, consequence))
            found.append(Path(directory))
    return found
