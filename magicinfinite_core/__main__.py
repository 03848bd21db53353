"""Command line of the engine: `python -m magicinfinite_core demo [options]` (see demo.py)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from magicinfinite_core.mini import demo


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m magicinfinite_core",
        description="MagicInfinite engine, outside ComfyUI.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo.add_arguments(commands.add_parser(
        "demo",
        help="make a talking video with the embedded small model (no download)",
        description=("Runs the whole pipeline (audio features, text, window sampler, MP4 with audio) on the "
                     "embedded MagicInfinite-Mini model: a small stand-in, not the real Wan2.1 model."),
    ))
    args = parser.parse_args(argv)
    return demo.main(args)


if __name__ == "__main__":
    sys.exit(main())
