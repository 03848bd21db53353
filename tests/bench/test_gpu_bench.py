"""bench/gpu.py at tiny shapes on the CPU, as the GPU machine runs it: a fresh interpreter from the repo root,
with PyAV, kornia and ComfyUI unavailable."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BLOCKED = ("import sys; "
           "[sys.modules.__setitem__(name, None) for name in ('av', 'kornia', 'comfy', 'folder_paths')]")


def test_gpu_bench_runs_small_on_cpu_without_av_kornia_comfyui(tmp_path):
    script = (f"{BLOCKED}; import runpy; sys.argv = ['bench/gpu.py', '--device', 'cpu', '--small', "
              "'--budget-dtypes', 'fp8', '--sections', 'pass,budget,window,vae', "
              f"'--out', {str(tmp_path)!r}]; "
              "runpy.run_path('bench/gpu.py', run_name='__main__')")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = json.loads((tmp_path / "gpu.json").read_text())
    values = {row["item"]: row["value"] for row in rows}
    assert not [row for row in rows if row["item"].endswith("error")], rows
    assert (tmp_path / "gpu.md").read_text().startswith("| section | item |")
    numeric = [
        "bf16 480x832x81 (small: 64x96x9) (72 tokens)",
        "fp8 480x832x81 (small: 64x96x9) (72 tokens)",
        "fp8 flashtalk 768x448x33 (small: 64x64x5) (32 tokens)",
        "bf16 flashtalk 768x448x33 (small: 64x64x5) achieved",
        "fp8 weights: resident part",
        "fp8 weights: one block",
        "fp8 no budget: pass",
        *(f"fp8 budget resident+{k} blocks: pass" for k in (1, 2, 3)),
        "480x832x81 (small: 64x96x9) everything else",
        "480x832x81 (small: 64x96x9) fp8: model",
        "flashtalk 768x448x33 (small: 64x64x5) bf16: wall",
        "480x832x81 (small: 64x96x9) encode",
        "flashtalk 768x448x33 (small: 64x64x5) decode",
        "bench wall time",
    ]
    for item in numeric:
        assert isinstance(values[item], float) and values[item] > 0, (item, values.get(item))
    # Peak VRAM has no meaning on the CPU: the rows are there, empty.
    assert values["fp8 no budget: peak"] is None and values["fp8 budget resident+2 blocks: peak"] is None
    assert values["480x832x81 (small: 64x96x9) decode: peak"] is None
    slots = [row["note"] for row in rows
             if row["item"].startswith("fp8 budget") and row["item"].endswith("peak")]
    assert [note.split(" of ")[0] for note in slots] == ["1", "2", "3"]


def test_gpu_bench_sampler_section_matches_the_cpu_video(tmp_path):
    """The sampler section needs the pack's own dependencies (PyAV, kornia): the GPU run carries them."""
    command = [sys.executable, "bench/gpu.py", "--device", "cpu", "--small", "--sections", "sampler",
               "--out", str(tmp_path)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    values = {row["item"]: row["value"] for row in json.loads((tmp_path / "gpu.json").read_text())}
    assert "error" not in values, values
    assert isinstance(values["mini cpu: wall"], float) and values["mini cpu: wall"] > 0
    # The real sampler on the "device" (the CPU here) gives the CPU's video exactly, streamed or not.
    for label in ("whole model on the device", "blocks streamed (resident + 1 block)"):
        assert values[f"mini cpu {label}: max |frame - cpu frame|"] == 0.0
