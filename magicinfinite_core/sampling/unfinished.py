"""Unfinished streamed renders: the `<name>.mp4.parts/` folders a stopped render leaves in its output folder.

They hold the finished windows and the resume state, so queueing the same inputs again continues the
render; one never continued stays until deleted. `unfinished_renders` lists them (windows kept, size, age)
and `remove_stale` deletes those untouched for a number of days. Only folders holding nothing but what the
sampler writes there are deleted: a folder with any other file in it is left alone.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from magicinfinite_core.errors import InputError
from magicinfinite_core.sampling.resume import STATE_FILE
from magicinfinite_core.sampling.sinks import PARTS_SUFFIX, SEGMENT_SUFFIX

_DAY_S = 24 * 3600
_SAMPLER_SUFFIXES = (SEGMENT_SUFFIX, ".tmp")


@dataclass(frozen=True)
class UnfinishedRender:
    parts: Path
    windows_kept: int
    size_bytes: int
    modified: float  # newest file's modification time, seconds since the epoch

    def age_days(self, now: float) -> float:
        return max(0.0, now - self.modified) / _DAY_S


def _sampler_files_only(folder: Path) -> bool:
    return all(p.is_file() and (p.name == STATE_FILE or p.suffix in _SAMPLER_SUFFIXES)
               for p in folder.iterdir())


def unfinished_renders(folder: Path | str) -> list[UnfinishedRender]:
    """Every `*.mp4.parts` folder under `folder` (subfolders included) that holds only the sampler's files."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"folder: {str(folder)!r} is not a folder; give the output folder the renders "
                         "stream into.")
    found = []
    for parts in sorted(folder.rglob(f"*.mp4{PARTS_SUFFIX}")):
        if not parts.is_dir() or parts.is_symlink() or not _sampler_files_only(parts):
            continue
        contents = list(parts.iterdir())
        files = [p.stat() for p in contents]
        windows = sum(1 for p in contents if p.suffix == SEGMENT_SUFFIX)
        modified = max((f.st_mtime for f in files), default=parts.stat().st_mtime)
        found.append(UnfinishedRender(parts, windows, sum(f.st_size for f in files), modified))
    return found


def remove_stale(folder: Path | str, older_than_days: float, *, now: float | None = None
                 ) -> list[UnfinishedRender]:
    """Delete the unfinished renders under `folder` untouched for more than `older_than_days`; returns
    them."""
    if not older_than_days >= 0:
        raise InputError(f"days: expected a number of days of 0 or more, got {older_than_days}.")
    now = time.time() if now is None else now
    stale = [render for render in unfinished_renders(folder) if render.age_days(now) > older_than_days]
    for render in stale:
        shutil.rmtree(render.parts)
    return stale
