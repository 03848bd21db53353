"""Command line of the engine: `python -m magicinfinite_core COMMAND [options]`; `torchrun --nproc-per-node N
-m magicinfinite_core render ...` splits each window over N GPUs.

Only the chosen command's module is imported, and the light ones (demo, parts) import nothing heavy
themselves, so `--help` and argument errors answer at once; torch (seconds to import) comes in only once a
command runs. Ctrl-C at any moment ends with one line, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from magicinfinite_core.errors import Interrupted

# Command -> (module with DESCRIPTION, add_arguments(parser) and main(args) -> exit code, one-line help).
COMMANDS = {
    "demo": ("magicinfinite_core.mini.demo_command",
             "make a talking video with the embedded small model (no model files to download)"),
    "render": ("magicinfinite_core.render",
               "make a talking video from checkpoint files, on one or (under torchrun) several processes"),
    "parts": ("magicinfinite_core.parts_command",
              "list the unfinished renders (*.mp4.parts folders) in an output folder; delete stale ones"),
}
EXIT_STOPPED = 130  # as a shell reports a program ended by Ctrl-C


def build_parser(chosen: str | None) -> argparse.ArgumentParser:
    """The parser, with the arguments of the `chosen` command only (its module is the one imported)."""
    parser = argparse.ArgumentParser(prog="python -m magicinfinite_core",
                                     description="MagicInfinite engine, outside ComfyUI.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        if name != chosen:
            commands.add_parser(name, help=help_text)
            continue
        command = importlib.import_module(module_name)
        subparser = commands.add_parser(name, help=help_text, description=command.DESCRIPTION)
        command.add_arguments(subparser)
        subparser.set_defaults(run=command.main)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    chosen = next((word for word in argv if not word.startswith("-")), None)
    try:
        args = build_parser(chosen if chosen in COMMANDS else None).parse_args(argv)
        return args.run(args)
    except Interrupted as stopped:  # the command's own line: what is kept, how to continue
        sys.stderr.write(f"\n{stopped}\n")
        return EXIT_STOPPED
    except KeyboardInterrupt:  # before the command could say more (e.g. while torch is imported)
        sys.stderr.write("\nStopped.\n")
        return EXIT_STOPPED


if __name__ == "__main__":
    sys.exit(main())
