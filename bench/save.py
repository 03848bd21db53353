"""Saving a finished video: encoding frames + audio (MagicInfinite Save Video with images) against copying a
streamed MP4 without re-encoding (with video_file), at 480 x 832.

    python bench/save.py [--frames 50]

Prints seconds per frame for each and the ratio: copying is what makes saving a long streamed video cheap.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from magicinfinite_core.video_file import copy_mp4, write_mp4

WIDTH, HEIGHT, FPS, SAMPLE_RATE = 480, 832, 25.0, 16000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=50)
    args = parser.parse_args()
    generator = torch.Generator().manual_seed(0)
    # A smooth moving picture (noise would make the encoder's work unrepresentative).
    base = torch.rand(1, HEIGHT // 16, WIDTH // 16, 3, generator=generator)
    base = torch.nn.functional.interpolate(base.permute(0, 3, 1, 2), size=(HEIGHT, WIDTH), mode="bilinear")
    frames = torch.stack([base[0].roll(shifts=i * 2, dims=2) for i in range(args.frames)]).permute(0, 2, 3, 1)
    waveform = 0.1 * torch.randn(1, round(args.frames / FPS * SAMPLE_RATE), generator=generator)
    tags = {"prompt": "{}" * 2000, "workflow": "{}" * 20000}
    with tempfile.TemporaryDirectory() as folder:
        encoded, copied = Path(folder) / "encoded.mp4", Path(folder) / "copied.mp4"
        start = time.perf_counter()
        write_mp4(encoded, frames, FPS, waveform=waveform, sample_rate=SAMPLE_RATE, tags=tags)
        encode_s = time.perf_counter() - start
        start = time.perf_counter()
        copy_mp4(encoded, copied, tags=tags)
        copy_s = time.perf_counter() - start
        size_mb = copied.stat().st_size / 1e6
    print(f"{args.frames} frames {WIDTH}x{HEIGHT} + audio, {size_mb:.1f} MB")
    print(f"encode (images):    {encode_s:.2f} s = {1000 * encode_s / args.frames:.1f} ms/frame")
    print(f"copy (video_file):  {copy_s:.3f} s = {1000 * copy_s / args.frames:.2f} ms/frame")
    print(f"copy / encode time: {copy_s / encode_s:.3f}")


if __name__ == "__main__":
    main()
