"""`python -m magicinfinite_core demo`: its options, the checks that need no model, and how it ends.

This module imports no torch: the options are parsed and checked, and the output folder is probed, before
demo.py (the pipeline) brings in torch and transformers, which takes seconds. Every way the command can end
is one line on stderr: the video written, what went wrong, or (from demo.py, through __main__) stopped:
what is kept and how to continue.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from magicinfinite_core.errors import InputError, Interrupted, MagicInfiniteError

DESCRIPTION = ("Runs the whole pipeline (audio features, text, window sampler, MP4 with audio) on the "
               "embedded MagicInfinite-Mini model: a small stand-in, not the real Wan2.1 model.")
DEFAULT_OUT = "magicinfinite_demo.mp4"
MAX_SEED = 2**64 - 1
# Exit codes: a bad option or input (as argparse's), a failure while running.
EXIT_INPUT, EXIT_FAILED = 2, 1


@dataclass(frozen=True)
class DemoOptions:
    """What the user chose, as the argument parser checked it. seconds: length of the generated voice, or
    the cut of --audio (None: the bundled 4 s sample, or the whole --audio file)."""

    out: Path = Path(DEFAULT_OUT)
    seconds: float | None = None
    seed: int = 0
    image: Path | None = None
    audio: Path | None = None
    prompt: str | None = None
    live: bool = False  # also publish each finished window to the HLS playlist <out>.m3u8


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"expected a whole number from 0 to {MAX_SEED}, got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=_positive_seconds, default=None, help=(
        "length of the video: a generated speech-like voice this long, or the first SECONDS of --audio "
        "(default: the bundled 4 s sample voice)"))
    parser.add_argument("--out", type=Path, default=Path(DEFAULT_OUT), help=(
        f"the MP4 to write (default: {DEFAULT_OUT} in the current folder); an interrupted run continues "
        "where it stopped when run again with the same options"))
    parser.add_argument("--seed", type=_seed, default=0, help="same seed, same video (default: 0)")
    parser.add_argument("--image", type=Path, default=None, help=(
        "your portrait (PNG, JPEG, WebP ...; default: the bundled sample portrait)"))
    parser.add_argument("--audio", type=Path, default=None, help=(
        "your voice recording (WAV, MP3, FLAC, M4A ...); the video is as long as it"))
    parser.add_argument("--prompt", default=None, help=(
        "what the video shows; or a schedule, e.g. '0: a neutral person / 2: a smiling person' "
        "(default: the model's own prompt)"))
    parser.add_argument("--live", action="store_true", help=(
        "also publish each finished window to an HLS playlist beside --out (<name>.m3u8), playable while "
        "the video is made, e.g. with ffplay or VLC"))


def check_output(path: Path) -> None:
    """--out names an MP4 in a folder that exists and takes a new file (probed by writing one)."""
    if path.suffix.lower() != ".mp4":
        raise InputError(f"--out: the demo writes an MP4 video; give a name ending in .mp4, got "
                         f"{str(path)!r}.")
    if not path.parent.is_dir():
        raise InputError(f"--out: the folder {str(path.parent)!r} does not exist (or is not a folder); "
                         "create it first or choose another path.")
    if path.is_dir():
        raise InputError(f"--out: {str(path)!r} is a folder; give a file name ending in .mp4.")
    try:
        with tempfile.TemporaryFile(dir=path.parent, prefix=f".{path.name}.probe"):
            pass
    except OSError as err:
        raise InputError(f"--out: cannot write into the folder {str(path.parent)!r} ({err.strerror}); choose "
                         "an --out in a folder you can write to.") from err


def write_failure(out: Path, err: BaseException) -> str:
    """The one line for a failure other than the pack's own errors (a full disk, a read-only folder, a
    bug)."""
    if isinstance(err, OSError):
        where = f" ({err.filename})" if err.filename else ""
        return (f"error: --out {out}: writing the video failed: {err.strerror or err}{where}. Free disk "
                "space or choose another --out; finished windows are kept, so the same command continues "
                "them.")
    return (f"error: the demo failed while making --out {out}: {type(err).__name__}: {err}. Finished windows "
            "are kept, so the same command continues them.")


def main(args: argparse.Namespace, *, log: TextIO | None = None) -> int:
    log = sys.stderr if log is None else log
    options = DemoOptions(out=args.out, seconds=args.seconds, seed=args.seed, image=args.image,
                          audio=args.audio, prompt=args.prompt, live=args.live)
    try:
        check_output(options.out)
        from magicinfinite_core.mini.demo import run_demo  # torch and transformers: seconds to import

        run_demo(options, log=log)
    except Interrupted:  # reported by __main__, as Ctrl-C at any other moment
        raise
    except MagicInfiniteError as err:
        log.write(f"\nerror: {err}\n")
        return EXIT_INPUT
    except Exception as err:  # a full disk, a read-only folder or a bug: one line, not a traceback
        log.write(f"\n{write_failure(options.out, err)}\n")
        return EXIT_FAILED
    return 0
