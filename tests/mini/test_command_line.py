"""`python -m magicinfinite_core` as a user meets it, in a subprocess: --help and bad options answer without
importing torch, and Ctrl-C (SIGINT) ends the command with one line and no traceback at any moment."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Runs the command line in-process, then tells which heavy modules it imported.
_IMPORTS_AFTER = """
import sys
from magicinfinite_core.__main__ import main
try:
    code = main(sys.argv[1:])
except SystemExit as stop:
    code = stop.code
heavy = sorted(name for name in ("torch", "transformers", "av", "numpy") if name in sys.modules)
print(f"exit={code} heavy={','.join(heavy) or 'none'}")
"""


@pytest.mark.parametrize("argv, code", [
    (["--help"], 0),
    (["demo", "--help"], 0),
    (["demo", "--seconds", "0"], 2),
    (["demo", "--seed", "x"], 2),
    (["demo", "--out", "video.avi"], 2),
    (["demo", "--out", "no/such/folder/video.mp4"], 2),
])
def test_help_and_bad_options_answer_before_torch_is_imported(argv, code, tmp_path):
    done = subprocess.run([sys.executable, "-c", _IMPORTS_AFTER, *argv], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.stdout.splitlines()[-1] == f"exit={code} heavy=none", done.stderr


def _stop_demo(tmp_path: Path, wait_for: str | None) -> tuple[int, str]:
    """Start the demo, send SIGINT once stderr shows a line starting with `wait_for` (None: at once, while
    Python imports), and return (exit code, stderr)."""
    command = [sys.executable, "-m", "magicinfinite_core", "demo", "--seconds", "3", "--out",
               str(tmp_path / "stopped.mp4")]
    # A job started in the background of a non-interactive shell (`nohup ... &`) inherits SIGINT ignored, and
    # Python then never installs its handler: give the demo the disposition a terminal's Ctrl-C meets.
    process = subprocess.Popen(command, cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    lines = []
    try:
        if wait_for is None:
            # Past the interpreter's own start (0.02 s here; a SIGINT there is Python's, before any code of
            # ours runs, and on a loaded machine it took over 0.5 s), inside the demo's ~4.7 s of imports.
            time.sleep(1.0)
        else:
            for line in process.stderr:
                lines.append(line)
                if line.startswith(wait_for):
                    break
        process.send_signal(signal.SIGINT)
        _, rest = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return process.returncode, "".join(lines) + rest


@pytest.mark.parametrize("wait_for", [None, "Model:", "sample "], ids=["importing", "loading", "sampling"])
def test_ctrl_c_at_any_moment_ends_with_one_line(wait_for, tmp_path):
    code, err = _stop_demo(tmp_path, wait_for)
    # 130 from our handler; a SIGINT that lands inside torch's import is sometimes also re-delivered by the
    # interpreter at exit (-SIGINT here). A shell reports 130 for both; what the user sees is the one line.
    assert code in (130, -signal.SIGINT), err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert err.rstrip("\n").splitlines()[-1].startswith("Stopped"), err
    assert not (tmp_path / "stopped.mp4").exists()
