"""The real ComfyUI the host, parity and live-workflow tests run against: the checkout at $COMFYUI_DIR
(.ci/run sets it to ../shared/comfyui-0.33.0).

Unset, those tests skip. Set to anything that is not a ComfyUI checkout, they fail: a run that was meant to
use the real host must not pass by skipping it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# What every ComfyUI checkout has at its top level.
CHECKOUT_MARKERS = ("main.py", "comfy", "requirements.txt")

requires_comfyui = pytest.mark.skipif(
    not os.environ.get("COMFYUI_DIR"), reason="COMFYUI_DIR is not set (bash .ci/run sets it)")


def comfyui_dir() -> Path:
    """$COMFYUI_DIR, resolved; skips the calling test when it is unset and fails it when it is broken."""
    value = os.environ.get("COMFYUI_DIR")
    if not value:
        pytest.skip("COMFYUI_DIR is not set (bash .ci/run sets it)")
    path = Path(value).resolve()
    missing = [name for name in CHECKOUT_MARKERS if not (path / name).exists()]
    if missing:
        pytest.fail(f"COMFYUI_DIR={value} is not a ComfyUI checkout (it has no {', '.join(missing)}): "
                    "point it at ComfyUI 0.33.0, or unset it to skip the tests that need the real host",
                    pytrace=False)
    return path
