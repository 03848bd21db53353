"""`render`: one process, and `torchrun --nproc-per-node 2` (sequence parallel over gloo on the CPU) give
the same video; rank 0 alone writes it; bad launches and files the engine cannot load are refused."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from magicinfinite_core.__main__ import main
from magicinfinite_core.errors import InputError
from magicinfinite_core.parallel.launch import join
from magicinfinite_core.parallel.local import free_port
from tests.mini.test_demo import write_png, write_wav

ROOT = Path(__file__).resolve().parents[2]


def frames(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


def inputs(tmp_path: Path) -> list[str]:
    write_png(tmp_path / "face.png", 64, 64)
    write_wav(tmp_path / "one.wav", 0.5)
    write_wav(tmp_path / "two.wav", 0.4, rate=16000, channels=1)
    return ["render", "--image", str(tmp_path / "face.png"), "--audio", str(tmp_path / "one.wav"),
            "--audio", str(tmp_path / "two.wav"), "--device", "cpu", "--seed", "7"]


def test_two_processes_render_the_one_process_video(tmp_path) -> None:
    argv = inputs(tmp_path)
    assert main([*argv, "--out", str(tmp_path / "one.mp4")]) == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr",
               "127.0.0.1", "--master-port", str(free_port()), "-m", "magicinfinite_core", *argv,
               "--out", str(tmp_path / "two.mp4"), "--timeout", "120"]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr.count("Wrote ") == 1  # rank 0 only
    one, two = frames(tmp_path / "one.mp4"), frames(tmp_path / "two.mp4")
    assert one.shape == two.shape == (12, 64, 64, 3)
    # Both files went through H.264 (crf 18), which turns a rounding difference of one level in a few
    # pixels into changes of up to ~15 levels in later frames (measured); the mean tells videos apart (seed
    # 8 against 7: 2.5 levels on average; the two launches here: 0.05), the maximum does not.
    assert np.abs(one.astype(int) - two).mean() < 0.2
    left = sorted(p.name for p in tmp_path.iterdir())  # no parts or partial files
    assert left == ["face.png", "one.mp4", "one.wav", "two.mp4", "two.wav"]


def test_more_processes_than_gpus_is_refused(monkeypatch) -> None:
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(InputError, match=r"2 process\(es\) on this machine need one GPU each, but it has 1"):
        join("cuda")


def test_a_vae_file_it_cannot_use_is_refused_with_what_to_do(tmp_path, capsys) -> None:
    save_file({"encoder.conv_in.weight": torch.zeros(96, 3, 3, 3)}, tmp_path / "sd_vae.safetensors")
    argv = inputs(tmp_path)
    code = main([*argv, "--vae", str(tmp_path / "sd_vae.safetensors"), "--out", str(tmp_path / "x.mp4")])
    assert code == 2
    error = capsys.readouterr().err
    assert "is neither a Wan2.1 VAE nor a small VAE of width" in error and "wan_2.1_vae.safetensors" in error
    assert not (tmp_path / "x.mp4").exists()


def test_a_wan_dit_without_its_parts_is_refused_naming_each_file(tmp_path, capsys) -> None:
    argv = inputs(tmp_path)
    code = main([*argv, "--model", str(tmp_path / "wan.safetensors"),
                 "--vae", str(tmp_path / "v.safetensors"), "--out", str(tmp_path / "x.mp4")])
    assert code == 2
    error = capsys.readouterr().err
    assert "--text-encoder umt5_xxl_fp16.safetensors" in error
    assert "--audio-encoder the chinese-wav2vec2" in error
    assert "give --vae" not in error and not (tmp_path / "x.mp4").exists()
