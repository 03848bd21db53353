"""Speed of the procedural world on the CPU: clip generation in frames per second at 64x64 and 256x256.

    OMP_NUM_THREADS=1 python bench/world.py

Each figure is the best of a few runs over several seeds (81-frame clips at 25 fps, audio included), so
it reads what one training data worker can produce.
"""

from __future__ import annotations

import time

import torch

from magicinfinite_core.mini.world.clips import ClipSpec, generate_clip
from magicinfinite_core.mini.world.speech import synthesize_speech

SEEDS = range(4)
REPEATS = 3


def best_seconds(work) -> float:
    best = float("inf")
    for _ in range(REPEATS):
        start = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    for size in (64, 256):
        for characters in (1, 2):
            spec = ClipSpec(height=size, width=size, num_characters=characters)
            seconds = best_seconds(lambda spec=spec: [generate_clip(seed, spec) for seed in SEEDS])
            frames = spec.num_frames * len(SEEDS)
            print(f"{size}x{size}, {characters} character(s): {frames / seconds:8.0f} frames/s "
                  f"({60 * frames / seconds:9.0f} frames/min, {1000 * seconds / len(SEEDS):6.1f} ms per "
                  f"{spec.num_frames}-frame clip)")
    duration_s = 10.0
    seconds = best_seconds(lambda: [synthesize_speech(seed, duration_s) for seed in SEEDS])
    print(f"speech alone: {duration_s * len(SEEDS) / seconds:.0f}x real time at 16 kHz")


if __name__ == "__main__":
    main()
