"""ComfyUI entry point of the MagicInfinite node pack."""

import sys
from pathlib import Path

# ComfyUI imports this folder as a package but does not put it on sys.path; the engine is imported
# by its absolute name, so make it importable when the pack was not pip-installed.
_PACK_DIR = str(Path(__file__).resolve().parent)
if _PACK_DIR not in sys.path:
    sys.path.append(_PACK_DIR)

from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS  # noqa: E402

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
