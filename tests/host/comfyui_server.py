"""A real ComfyUI (the checkout at $COMFYUI_DIR) started on 127.0.0.1 with this pack installed.

The checkout itself is left untouched: a copy of it runs from a temporary folder, with --base-directory set
to that folder, which holds custom_nodes/ (a link to this pack), models/, input/, output/ and user/, and
with an in-memory database. The server runs in its own process group and is stopped by its process id when
the tests end, whether they passed or not.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.host.checkout import comfyui_dir

PACK_DIR = Path(__file__).resolve().parents[2]
PACK_NAME = "comfyui-magicinfinite"
START_TIMEOUT_S = 300


def _copy_checkout(source: Path, target: Path) -> None:
    """ComfyUI's files copied with write permission, so the copy can be deleted even when the checkout is
    read-only (CI's shared/ has no write bits)."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(".git", "__pycache__"),
                    copy_function=shutil.copyfile)
    for folder, _, _ in os.walk(target):
        os.chmod(folder, 0o755)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ComfyUIServer:
    def __init__(self, comfyui_dir: Path, base_dir: Path):
        self.comfyui_dir = comfyui_dir
        self.base_dir = base_dir
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = base_dir / "comfyui.log"
        self.process: subprocess.Popen | None = None

    @property
    def code_dir(self) -> Path:
        """Where the copy of the checkout runs from."""
        return self.base_dir / "comfyui"

    @property
    def models_dir(self) -> Path:
        return self.base_dir / "models"

    @property
    def input_dir(self) -> Path:
        return self.base_dir / "input"

    @property
    def output_dir(self) -> Path:
        return self.base_dir / "output"

    def start(self) -> None:
        _copy_checkout(self.comfyui_dir, self.code_dir)
        for folder in ("custom_nodes", "models", "input", "output", "user"):
            (self.base_dir / folder).mkdir(parents=True, exist_ok=True)
        link = self.base_dir / "custom_nodes" / PACK_NAME
        if not link.exists():
            link.symlink_to(PACK_DIR, target_is_directory=True)
        command = [os.environ.get("COMFYUI_PYTHON", sys.executable), "main.py", "--cpu",
                   "--listen", "127.0.0.1", "--port", str(self.port),
                   "--base-directory", str(self.base_dir), "--database-url", "sqlite:///:memory:"]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(command, cwd=self.code_dir, stdout=log,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ComfyUI exited with code {self.process.returncode}:\n{self.log_tail()}")
            try:
                self.get_json("/system_stats")
                return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(1)
        self.stop()
        raise RuntimeError(f"ComfyUI did not answer within {START_TIMEOUT_S} s:\n{self.log_tail()}")

    def stop(self) -> None:
        """Stop the server's process group (it was started in its own session: group id == its pid)."""
        if self.process is None or self.process.poll() is not None:
            return
        for sig, wait_s in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.process.wait(timeout=wait_s)
                return
            except subprocess.TimeoutExpired:
                continue

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def get_json(self, path: str):
        with urllib.request.urlopen(self.url + path, timeout=60) as response:
            return json.load(response)

    def post_json(self, path: str, body: dict) -> tuple[int, dict]:
        request = urllib.request.Request(self.url + path, data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"{}")


_shared: ComfyUIServer | None = None
_start_failure: str | None = None


def _stop_shared() -> None:
    if _shared is not None:
        _shared.stop()
        shutil.rmtree(_shared.base_dir, ignore_errors=True)


def shared_server() -> ComfyUIServer:
    """One server for the whole test session (started on first use, stopped when Python exits)."""
    global _shared, _start_failure
    if _start_failure is not None:
        raise RuntimeError(_start_failure)
    if _shared is None:
        _shared = ComfyUIServer(comfyui_dir(), Path(tempfile.mkdtemp(prefix="magicinfinite-comfyui-")))
        atexit.register(_stop_shared)
        try:
            _shared.start()
        except RuntimeError as err:
            _start_failure = str(err)
            raise
    return _shared
