"""Peak memory and time of loading a 1.3B-shaped bf16 checkpoint.

    OMP_NUM_THREADS=2 python bench/load.py [--dir /tmp] [--keep]

Writes a Wan2.1 t2v 1.3B-shaped checkpoint of random bf16 weights (~2.8 GB) once, tensor by tensor (the
writer never holds more than one tensor), then in a fresh Python process per case: measures the RSS after
importing torch and the pack (baseline), loads the file with `load_model`, runs one forward on a one-token
latent (every linear weight and the patch embedding are read in full by it), and reads the peak RSS
(VmHWM). Figures are printed as ratios to the file size: the peak above the baseline (what the loader
and the loaded weights cost; goal <= 1.3 for bf16 into bf16) and the whole process peak.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

CASES = {"bf16 file -> bf16 weights": "bf16", "bf16 file -> fp8 weights": "fp8_e4m3fn"}


def bench_config():
    from magicinfinite_core.models import WAN_1_3B

    return replace(WAN_1_3B, model_type="t2v", in_dim=16, audio=None)


def write_checkpoint(path: Path) -> None:
    """A safetensors file written by hand: the header from meta-device shapes, then one tensor at a time."""
    from magicinfinite_core.models import WanModel

    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in WanModel(bench_config()).state_dict().items()}
    header, offset = {}, 0
    for key, shape in shapes.items():
        size = 2 * int(torch.Size(shape).numel())
        header[key] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)
    generator = torch.Generator().manual_seed(0)
    with open(path, "wb") as out:
        out.write(len(encoded).to_bytes(8, "little") + encoded)
        for shape in shapes.values():
            tensor = (torch.randn(shape, generator=generator) * 0.02).to(torch.bfloat16)
            out.write(tensor.view(torch.int16).numpy().tobytes())


def rss_mib() -> dict[str, float]:
    fields = {}
    with open("/proc/self/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                fields[name] = int(value.split()[0]) / 1024
    return fields


def measure(path: str, storage: str) -> None:
    """Child process: load, forward once, print figures as JSON."""
    from magicinfinite_core.checkpoints import STORAGE_DTYPES, load_model

    baseline = rss_mib()["VmRSS"]
    start = time.perf_counter()
    loaded = load_model(path, compute_dtype=torch.bfloat16, storage_dtype=STORAGE_DTYPES[storage])
    load_s = time.perf_counter() - start
    after_load = rss_mib()["VmRSS"]
    config = loaded.config
    start = time.perf_counter()
    with torch.inference_mode():
        out = loaded.module(
            torch.randn(1, 16, 1, 2, 2), torch.tensor([500.0]), torch.randn(1, 8, config.text_dim)
        )
    forward_s = time.perf_counter() - start
    memory = rss_mib()
    print(
        json.dumps(
            {
                "baseline_mib": baseline,
                "after_load_mib": after_load,
                "peak_mib": memory["VmHWM"],
                "load_s": load_s,
                "forward_s": forward_s,
                "finite": bool(torch.isfinite(out).all()),
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dir", default=tempfile.gettempdir(), help="where the ~2.8 GB file is written")
    parser.add_argument("--keep", action="store_true", help="keep (and reuse) the checkpoint file")
    parser.add_argument("--child", nargs=2, metavar=("PATH", "STORAGE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        measure(*args.child)
        return

    path = Path(args.dir) / "magicinfinite_bench_wan1.3b_bf16.safetensors"
    if not path.exists():
        start = time.perf_counter()
        write_checkpoint(path)
        print(f"wrote {path} in {time.perf_counter() - start:.1f} s")
    size_mib = path.stat().st_size / 2**20
    print(f"checkpoint: Wan2.1 t2v 1.3B shape, bf16, {size_mib:.0f} MiB")
    try:
        for case, storage in CASES.items():
            result = subprocess.run(
                [sys.executable, __file__, "--child", str(path), storage],
                check=True,
                capture_output=True,
                text=True,
                env=os.environ,
            )
            r = json.loads(result.stdout.strip().splitlines()[-1])
            print(
                f"{case}: load {r['load_s']:.1f} s, forward {r['forward_s']:.1f} s (finite: {r['finite']}); "
                f"RSS baseline {r['baseline_mib']:.0f} MiB, after load {r['after_load_mib']:.0f} MiB, "
                f"peak {r['peak_mib']:.0f} MiB; peak above baseline / file = "
                f"{(r['peak_mib'] - r['baseline_mib']) / size_mib:.2f}, process peak / file = "
                f"{r['peak_mib'] / size_mib:.2f}"
            )
    finally:
        if not args.keep:
            path.unlink()


if __name__ == "__main__":
    main()
