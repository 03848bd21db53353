"""ComfyUI entry point of the MagicInfinite node pack."""

import sys
from pathlib import Path

# ComfyUI imports this folder as a package but does not put it on sys.path; the engine is imported
# by its absolute name, so make it importable when the pack was not pip-installed.
_PACK_DIR = str(Path(__file__).resolve().parent)
if _PACK_DIR not in sys.path:
    sys.path.append(_PACK_DIR)

# ComfyUI always imports this file as a package. pytest imports it on its own (no parent package) when the
# checkout's folder name is not a Python identifier (e.g. a clone into ci-clone/): the nodes are not needed
# there, and the relative import would fail every test.
if __package__:
    from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS  # noqa: E402

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
