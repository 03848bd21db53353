"""COMFYUI_DIR: unset, the real-host tests skip; set to what is not a ComfyUI checkout, they fail."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.host.checkout import CHECKOUT_MARKERS, comfyui_dir


def test_unset_skips(monkeypatch) -> None:
    monkeypatch.delenv("COMFYUI_DIR", raising=False)
    with pytest.raises(pytest.skip.Exception):
        comfyui_dir()


@pytest.mark.parametrize("layout", ["missing", "empty", "file", "no_comfy_package"])
def test_a_broken_path_fails_naming_it(monkeypatch, tmp_path: Path, layout: str) -> None:
    path = tmp_path / "ComfyUI"
    if layout == "empty":
        path.mkdir()
    elif layout == "file":
        path.write_text("not a folder")
    elif layout == "no_comfy_package":
        path.mkdir()
        (path / "main.py").write_text("")
        (path / "requirements.txt").write_text("")
    monkeypatch.setenv("COMFYUI_DIR", str(path))
    with pytest.raises(pytest.fail.Exception, match=f"COMFYUI_DIR={path} is not a ComfyUI checkout"):
        comfyui_dir()


def test_a_checkout_is_returned_resolved(monkeypatch, tmp_path: Path) -> None:
    for name in CHECKOUT_MARKERS:
        (tmp_path / name).mkdir()
    monkeypatch.setenv("COMFYUI_DIR", str(tmp_path / "." / ""))
    assert comfyui_dir() == tmp_path.resolve()
