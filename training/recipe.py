"""The whole MagicInfinite-Mini recipe in one command: `python -m training.recipe` (docs/mini.md).

    python -m training.recipe [--run-dir training/runs/mini] [--bundle magicinfinite_core/assets/mini]
    python -m training.recipe --init-only   # the seeded random bundle (trained: false)
"""

from __future__ import annotations

import argparse
from pathlib import Path

from magicinfinite_core.bundle import EMBEDDED_BUNDLE_DIR, save_bundle
from training.architecture import Parts, random_parts
from training.settings import bundle_info

INIT_SEED = 0
RANDOM_NOTES = "Seeded random initialisation (training.architecture.random_parts(0)): a stand-in, untrained."


def write_bundle(parts: Parts, directory: Path, *, trained: bool, notes: str) -> Path:
    return save_bundle(directory, model=parts.dit, vae=parts.vae, text_encoder=parts.text_encoder,
                       audio_encoder=parts.audio_encoder, info=bundle_info(trained=trained, notes=notes))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, default=EMBEDDED_BUNDLE_DIR, help="bundle folder to write")
    parser.add_argument("--init-only", action="store_true", help="write the seeded random bundle and stop")
    args = parser.parse_args(argv)
    if args.init_only:
        print(write_bundle(random_parts(INIT_SEED), args.bundle, trained=False, notes=RANDOM_NOTES))
        return


if __name__ == "__main__":
    main()
