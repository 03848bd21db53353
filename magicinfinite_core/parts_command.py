"""`python -m magicinfinite_core parts FOLDER`: list the unfinished streamed renders (`*.mp4.parts/`) under an
output folder (ComfyUI's output/, or the demo's folder), and delete those untouched for more than
--delete-older-than DAYS."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TextIO

from magicinfinite_core.errors import MagicInfiniteError
from magicinfinite_core.sampling.unfinished import UnfinishedRender, remove_stale, unfinished_renders

DESCRIPTION = ("A stopped streamed render keeps its finished windows in <name>.mp4.parts/ so that the same "
               "inputs continue it; these folders stay until deleted. Lists them, or deletes those untouched "
               "for more than --delete-older-than DAYS.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", type=Path, help="the output folder to look in (subfolders included)")
    parser.add_argument("--delete-older-than", type=float, default=None, metavar="DAYS", help=(
        "delete the unfinished renders untouched for more than DAYS days (they can no longer be continued); "
        "without it nothing is deleted"))


def _line(render: UnfinishedRender, now: float) -> str:
    return (f"{render.parts}  {render.windows_kept} window(s), {render.size_bytes / 2**20:.1f} MiB, "
            f"untouched for {render.age_days(now):.1f} days")


def main(args: argparse.Namespace, *, log: TextIO | None = None) -> int:
    log = sys.stdout if log is None else log
    now = time.time()
    try:
        if args.delete_older_than is None:
            renders = unfinished_renders(args.folder)
            for render in renders:
                log.write(_line(render, now) + "\n")
            log.write(f"{len(renders)} unfinished render(s) under {args.folder}; queue the same inputs "
                      "again to continue one, or delete stale ones with --delete-older-than DAYS.\n")
        else:
            removed = remove_stale(args.folder, args.delete_older_than, now=now)
            for render in removed:
                log.write("deleted " + _line(render, now) + "\n")
            log.write(f"{len(removed)} unfinished render(s) older than {args.delete_older_than:g} days "
                      f"deleted under {args.folder}.\n")
    except MagicInfiniteError as err:
        sys.stderr.write(f"error: {err}\n")
        return 2
    return 0
