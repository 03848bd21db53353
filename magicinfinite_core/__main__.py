"""Command line of the engine: `python -m magicinfinite_core demo|render [options]` (see mini/demo.py and
render.py; `torchrun --nproc-per-node N -m magicinfinite_core render ...` splits each window over N GPUs)."""

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
    from magicinfinite_core import render  # imported here: the demo does not need it

    render.add_arguments(commands.add_parser(
        "render",
        help="make a talking video from checkpoint files, on one or (under torchrun) several processes",
        description=("Renders with the DiT/adapter/LoRA files given (default: the embedded small model), "
                     "the VAE and text encoder of a MagicInfinite-Mini bundle (the engine has no loader for "
                     "the Wan2.1 VAE or umT5). Under torchrun each window's DiT is split over the processes "
                     "(sequence parallel); rank 0 writes the MP4."),
    ))
    args = parser.parse_args(argv)
    return demo.main(args) if args.command == "demo" else render.main(args)


if __name__ == "__main__":
    sys.exit(main())
