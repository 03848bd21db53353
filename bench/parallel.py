"""Sequence parallel figures: collective traffic per step at real shapes, and CPU tokens/s over gloo.

    PYTHONPATH=. python bench/parallel.py [--repeats 2] [--skip-cpu]

1. Bytes each process sends per forward (= per step of the distilled, CFG-free schedule; CFG runs 2-3
   forwards per step) for Ulysses and ring, Wan2.1-14B with the InfiniteTalk adapter in every block, bf16:
   480x832x81 (21 x 60 x 104 latent, 32,760 tokens) and FlashTalk's 768x448x33 (9 x 56 x 96, 12,096 tokens),
   with the FLOPs per process (models/flops.py) and a projection at 8 x H100: compute at an assumed
   achieved fraction of the dense bf16 peak, all-to-all / ring traffic at an assumed NVLink bandwidth.
2. Tokens/s of a tiny DiT forward on 1, 2, 3, 4 gloo processes on this CPU (the order of process counts
   alternates between repeats). On a machine with fewer cores than processes this shows the overhead of
   the split, not a speed-up.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch

from magicinfinite_core.models import WAN_14B, WanModel, tiny_config
from magicinfinite_core.models.flops import forward_flops
from magicinfinite_core.parallel import attention_mode, parallelize
from magicinfinite_core.parallel.local import run_local
from magicinfinite_core.parallel.traffic import forward_traffic

H100_BF16_DENSE_FLOPS = 989e12  # H100 SXM spec sheet, dense bf16 tensor cores
ACHIEVED_FRACTION = 0.5  # assumed: large bf16 GEMMs and FlashAttention reach about half the peak
NVLINK_BYTES_PER_S = 450e9  # assumed achievable per direction per GPU for all-to-all on H100 NVLink 4
SHAPES = {"480x832x81": (21, 60, 104), "FlashTalk 768x448x33": (9, 56, 96)}
TINY = tiny_config(dim=64, num_heads=4, num_layers=2)
TINY_LATENT = (5, 10, 10)  # token grid (frames, height, width): 500 tokens
TINY_RUNS = 5


def traffic_table() -> None:
    print("Traffic per forward per process (bf16), FLOPs per process, projected step time at 8 x H100")
    print(f"  assumptions: {ACHIEVED_FRACTION:.0%} of {H100_BF16_DENSE_FLOPS / 1e12:.0f} TFLOP/s, "
          f"{NVLINK_BYTES_PER_S / 1e9:.0f} GB/s per direction, communication not overlapped with compute")
    for name, (frames, height, width) in SHAPES.items():
        flops = forward_flops(WAN_14B, frames, height, width, speakers=1).total
        for world in (1, 2, 4, 5, 8, 3, 6):
            kernel = attention_mode("auto", WAN_14B.num_heads, world)
            for binding in (False, True):
                traffic = forward_traffic(WAN_14B, frames, height, width, world, kernel, binding=binding)
                compute = flops / world / (H100_BF16_DENSE_FLOPS * ACHIEVED_FRACTION)
                transfer = traffic.total / NVLINK_BYTES_PER_S
                speakers = "2 bound speakers" if binding else "1 speaker"
                print(f"  {name:21s} N={world} {kernel:7s} {speakers:16s} {traffic.total / 1e9:6.2f} GB "
                      f"(attention {traffic.attention / 1e9:.2f}, binding {traffic.binding / 1e9:.2f}, "
                      f"gather {traffic.gather / 1e6:.1f} MB) | {flops / world / 1e12:6.1f} TFLOP | compute "
                      f"{compute:.3f} s + transfer {transfer:.3f} s = {compute + transfer:.3f} s/step")
        ring = forward_traffic(WAN_14B, frames, height, width, 8, "ring")
        print(f"  {name:21s} N=8 ring instead of Ulysses: {ring.total / 1e9:.2f} GB")


def anchors() -> None:
    """The same projection against the published 8-GPU figures (DiT forwards only: no VAE, no audio
    encoder, no text encoder; 4 distilled steps, no CFG)."""
    print("\nAgainst the 8-GPU anchors (projection: DiT forwards only, Ulysses N=8, 1 speaker)")

    def step_time(frames: int, height: int, width: int) -> float:
        flops = forward_flops(WAN_14B, frames, height, width, speakers=1).total
        traffic = forward_traffic(WAN_14B, frames, height, width, 8, "ulysses").total
        return flops / 8 / (H100_BF16_DENSE_FLOPS * ACHIEVED_FRACTION) + traffic / NVLINK_BYTES_PER_S

    step = step_time(21, 60, 104)
    print(f"  LightX2V 14B 480p 81 frames, 8xH100 fp8: 0.35 s/step | projected bf16: {step:.2f} s/step")
    step = step_time(9, 56, 96)
    fps = 28 / (4 * step)  # a 33-frame window with 5 motion frames gives 28 new frames
    print(f"  FlashTalk 768x448, 33-frame windows (28 new), 4 steps, 8xH800: 32 FPS | projected: "
          f"{4 * step:.2f} s per window, {fps:.0f} FPS")
    step = step_time(21, 68, 68)  # 540x540 rounds to 544x544 (multiples of 16)
    windows = 1 + -(-(250 - 81) // (81 - 9))  # 10 s at 25 fps, 81-frame windows, 9 motion frames
    print(f"  MagicInfinite 10 s of 540x540 in 10 s, 8xH100 | projected at 544x544x81, {windows} windows "
          f"x 4 steps: {windows * 4 * step:.1f} s")


def time_forwards(rank: int, world: int, out: Path) -> None:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = WanModel(TINY).eval().requires_grad_(False)
    parallelize(model)
    g = torch.Generator().manual_seed(1)
    frames, height, width = TINY_LATENT
    kwargs = {
        "x": torch.randn(1, 16, frames, 2 * height, 2 * width, generator=g),
        "timestep": torch.tensor([500.0]),
        "context": torch.randn(1, TINY.text_len, TINY.text_dim, generator=g),
        "image_latent": torch.randn(1, 20, frames, 2 * height, 2 * width, generator=g),
    }
    with torch.no_grad():
        model(**kwargs)  # warm-up
        torch.distributed.barrier()
        started = time.perf_counter()
        for _ in range(TINY_RUNS):
            model(**kwargs)
        elapsed = (time.perf_counter() - started) / TINY_RUNS
    if rank == 0:
        (out / f"{world}.txt").write_text(str(elapsed))


def cpu_table(repeats: int) -> None:
    tokens = TINY_LATENT[0] * TINY_LATENT[1] * TINY_LATENT[2]
    print(f"\nTiny DiT (dim {TINY.dim}, {TINY.num_heads} heads, {TINY.num_layers} blocks), {tokens} tokens, "
          f"gloo on this CPU ({os.cpu_count()} cores, 1 thread per process), mean of {TINY_RUNS} forwards; "
          f"load: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    results: dict[int, list[float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        for repeat in range(repeats):
            order = (1, 2, 3, 4) if repeat % 2 == 0 else (4, 3, 2, 1)
            for world in order:
                run_local(time_forwards, world, (Path(folder),), timeout_s=600)
                results.setdefault(world, []).append(float((Path(folder) / f"{world}.txt").read_text()))
    for world, times in sorted(results.items()):
        kernel = attention_mode("auto", TINY.num_heads, world)
        print(f"  N={world} ({kernel:7s}): " + ", ".join(f"{tokens / t:7.0f} tokens/s" for t in times)
              + f"  ({', '.join(f'{1000 * t:.1f} ms' for t in times)} per forward)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--skip-cpu", action="store_true")
    args = parser.parse_args()
    traffic_table()
    anchors()
    if not args.skip_cpu:
        cpu_table(args.repeats)


if __name__ == "__main__":
    main()
