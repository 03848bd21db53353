"""Model figures: CPU forward time of one 81-frame window (21 latent frames) and the FLOPs of a 14B forward.

    OMP_NUM_THREADS=2 python bench/model.py [--blocks 3]

- tiny config (tests' size) and a 1.3B-shaped model (WAN_1_3B: i2v + audio adapter, one speaker) at
  128x128 px (16x16 latent), random weights. The 1.3B model is built with `--blocks` of its 30 blocks (a full
  CPU forward takes about a minute), the time inside blocks measured per block and the 30-block forward
  extrapolated; the output says so.
- analytic matmul FLOPs of one Wan2.1-14B forward at 480x832, 81 frames, and the GPU time floor they imply.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import torch

from magicinfinite_core.models import WAN_1_3B, WAN_14B, WanConfig, WanModel, tiny_config
from magicinfinite_core.models.flops import forward_flops

LATENT_FRAMES, LATENT_SIZE = 21, 16  # 81 video frames at 128 x 128 px
H100_BF16_DENSE_FLOPS = 989e12  # H100 SXM spec sheet, dense bf16 tensor cores


def window_inputs(config: WanConfig, dtype: torch.dtype) -> tuple[dict, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    shape = (1, 16, LATENT_FRAMES, LATENT_SIZE, LATENT_SIZE)
    audio = config.audio
    features = torch.randn(
        1,
        1,
        4 * (LATENT_FRAMES - 1) + 1,
        audio.window,
        audio.feature_layers,
        audio.feature_width,
        generator=g,
    )
    kwargs = {
        "x": torch.randn(shape, generator=g),
        "timestep": torch.tensor([500.0]),
        "context": torch.randn(1, config.text_len, config.text_dim, generator=g).to(dtype),
        "image_latent": torch.randn(1, 20, *shape[2:], generator=g),
        "clip_tokens": torch.randn(1, 257, config.image_dim, generator=g).to(dtype),
    }
    return kwargs, features


def build(config: WanConfig, dtype: torch.dtype) -> WanModel:
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # create the weights in `dtype` directly: no float32 copy of a 1.3B model
    try:
        model = WanModel(config).eval().requires_grad_(False)
    finally:
        torch.set_default_dtype(previous)
    model.compute_dtype = dtype
    return model


class BlockTimer:
    """Seconds spent inside the model's blocks during each forward, via forward hooks."""

    def __init__(self, model: WanModel) -> None:
        self.seconds = 0.0
        for block in model.blocks:
            block.register_forward_pre_hook(self.start)
            block.register_forward_hook(self.stop)

    def start(self, *_) -> None:
        self.started = time.perf_counter()

    def stop(self, *_) -> None:
        self.seconds += time.perf_counter() - self.started


def time_forward(model: WanModel, kwargs: dict, features: torch.Tensor, repeats: int) -> dict[str, float]:
    """Seconds of encode_audio, and the fastest of `repeats` forwards (after a warm-up) with the time
    spent in its blocks (the fastest run: other work on a shared machine only ever adds time)."""
    timer = BlockTimer(model)
    with torch.inference_mode():
        model(**kwargs, audio_tokens=model.encode_audio(features))
        start = time.perf_counter()
        tokens = model.encode_audio(features)
        encode = time.perf_counter() - start
        runs = []
        for _ in range(repeats):
            timer.seconds = 0.0
            start = time.perf_counter()
            model(**kwargs, audio_tokens=tokens)
            runs.append((time.perf_counter() - start, timer.seconds))
    forward, blocks = min(runs)
    return {"encode": encode, "forward": forward, "blocks": blocks}


def bench_tiny() -> None:
    config = tiny_config()
    kwargs, features = window_inputs(config, torch.float32)
    timed = time_forward(build(config, torch.float32), kwargs, features, repeats=5)
    flops = forward_flops(config, LATENT_FRAMES, LATENT_SIZE, LATENT_SIZE).total
    print(f"tiny config ({config.num_layers} blocks, dim {config.dim}), fp32, 128x128 px x 81 frames:")
    print(
        f"  forward {timed['forward'] * 1e3:.1f} ms (blocks {timed['blocks'] * 1e3:.1f} ms), "
        f"encode_audio {timed['encode'] * 1e3:.1f} ms, {flops / timed['forward'] / 1e9:.1f} GFLOP/s"
    )


def bench_1_3b(blocks: int) -> None:
    dtype = torch.bfloat16
    config = replace(WAN_1_3B, num_layers=blocks)
    kwargs, features = window_inputs(config, dtype)
    timed = time_forward(build(config, dtype), kwargs, features, repeats=2)
    per_block = timed["blocks"] / blocks
    outside = timed["forward"] - timed["blocks"]
    full = outside + WAN_1_3B.num_layers * per_block
    flops = forward_flops(WAN_1_3B, LATENT_FRAMES, LATENT_SIZE, LATENT_SIZE).total
    print(
        "1.3B-shaped (WAN_1_3B: i2v + audio adapter, 1 speaker), bf16 weights and compute, 128x128 px x 81:"
    )
    print(f"  timed with {blocks} of its {WAN_1_3B.num_layers} blocks: forward {timed['forward']:.2f} s")
    print(
        f"  per block {per_block:.2f} s, outside the blocks {outside:.2f} s, "
        f"encode_audio {timed['encode']:.3f} s"
    )
    print(
        f"  full forward extrapolated (outside + {WAN_1_3B.num_layers} x per block): "
        f"{full:.1f} s ({flops / 1e12:.2f} TFLOP, {flops / full / 1e9:.0f} GFLOP/s)"
    )


def bench_flops() -> None:
    frames, height, width = 21, 480 // 8, 832 // 8
    base = forward_flops(WAN_14B.with_audio(None), frames, height, width, speakers=0)
    one = forward_flops(WAN_14B, frames, height, width, speakers=1)
    two = forward_flops(WAN_14B, frames, height, width, speakers=2, speaker_masks=True)
    print(
        "Wan2.1-14B i2v forward at 480x832 px, 81 frames (21 x 30 x 52 = 32760 tokens), "
        "analytic matmul FLOPs:"
    )
    print(f"  DiT alone {base.total:.3e} (linear {base.linear:.3e}, attention {base.attention:.3e})")
    print(f"  + audio adapter, 1 speaker {one.total:.3e} (adapter {one.audio / one.total:.1%})")
    print(f"  + audio adapter, 2 speakers with L-RoPE map {two.total:.3e}")
    print(
        f"  GPU floor at {H100_BF16_DENSE_FLOPS / 1e12:.0f} TFLOP/s (H100 dense bf16): "
        f"{one.total / H100_BF16_DENSE_FLOPS:.2f} s per forward, "
        f"{4 * one.total / H100_BF16_DENSE_FLOPS:.1f} s per 4-step window"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=3, help="1.3B blocks to time; the rest is extrapolated")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    bench_flops()
    bench_tiny()
    bench_1_3b(args.blocks)


if __name__ == "__main__":
    main()
