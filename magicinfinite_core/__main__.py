"""Command line of the engine: `python -m magicinfinite_core demo|render|parts [options]` (see mini/demo.py,
render.py and parts_command.py; `torchrun --nproc-per-node N -m magicinfinite_core render ...` splits each
window over N GPUs)."""

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
    from magicinfinite_core import parts_command, render  # imported here: the demo does not need them

    render.add_arguments(commands.add_parser(
        "render",
        help="make a talking video from checkpoint files, on one or (under torchrun) several processes",
        description=("Renders with the DiT/adapter/LoRA files given (default: the embedded small model), "
                     "the VAE and text encoder of a MagicInfinite-Mini bundle (the engine has no loader for "
                     "the Wan2.1 VAE or umT5). Under torchrun each window's DiT is split over the processes "
                     "(sequence parallel); rank 0 writes the MP4."),
    ))
    parts_command.add_arguments(commands.add_parser(
        "parts",
        help="list the unfinished renders (*.mp4.parts folders) in an output folder; delete stale ones",
        description=("A stopped streamed render keeps its finished windows in <name>.mp4.parts/ so that the "
                     "same inputs continue it; these folders stay until deleted. Lists them, or deletes "
                     "those untouched for more than --delete-older-than DAYS."),
    ))
    args = parser.parse_args(argv)
    commands_main = {"demo": demo.main, "render": render.main, "parts": parts_command.main}
    return commands_main[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
