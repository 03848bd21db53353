"""Resume state of a long render, kept beside its partial output.

After every finished window the loop saves which window comes next, the motion frames it starts from, the
seed and a hash of every input that shapes the video. A later run with the same hash continues from there;
per-window seeds make the continued video equal to an uninterrupted one. A run whose inputs differ gets
nothing (and starts over). Stored as safetensors (tensors + string metadata), written atomically.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

STATE_FILE = "resume.safetensors"
FORMAT_VERSION = "1"
_FINGERPRINT_ELEMENTS = 4096  # evenly spaced elements read per tensor: cheap even for 14B weights


def fingerprint(value: object) -> str:
    """A short digest of a value; tensors are read at evenly spaced elements (plus dtype and shape)."""
    digest = hashlib.sha256()
    if isinstance(value, torch.Tensor):
        flat = value.detach().reshape(-1)
        digest.update(f"{value.dtype}{tuple(value.shape)}".encode())
        if flat.numel():
            index = torch.linspace(0, flat.numel() - 1, min(flat.numel(), _FINGERPRINT_ELEMENTS)).long()
            digest.update(flat[index.to(flat.device)].to("cpu", torch.float64).numpy().tobytes())
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

    def load(self, params_hash: str) -> ResumeState | None:
        """The saved state when it belongs to a run with these inputs, else None."""
        if not self.path.is_file():
            return None
        try:
            with safe_open(str(self.path), framework="pt") as handle:
                meta = json.loads(handle.metadata()["state"])
            tensors = load_file(str(self.path))
        except (OSError, KeyError, ValueError, RuntimeError, SafetensorError):  # damaged: as good as none
            return None
        if meta.get("format") != FORMAT_VERSION or meta.get("params_hash") != params_hash:
            return None
        return ResumeState(params_hash, int(meta["seed"]), int(meta["next_window"]), tensors["motion_frames"])

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

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)
