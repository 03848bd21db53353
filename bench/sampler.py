"""Where the window loop's time goes, and whether long videos stay flat in memory and linear in time.

    OMP_NUM_THREADS=1 python bench/sampler.py [--minutes 10]

With the tiniest model (1 block, width 32), the small VAE, 64x64 pixels, the default 81-frame windows with
9 motion frames and the default 4-step distilled schedule, every run streaming into an MP4:

(a) a breakdown of the wall time of 1 minute of video (colour matching on) into model forward (including
    the audio adapter), VAE encode/decode, colour matching, video encoding (segments + final mux) and
    everything else (goal: everything else <= 5%);
(b) the peak RSS (VmHWM) of 30 s and of 10 min of audio, each in a fresh process (goal: ratio <= 1.2);
(c) the time of 10 min over the time of 1 min (goal <= 11; 10x the frames).

The model is tiny so that the loop's own costs show: with a real 14B model the forward is ~all the time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch

SIZE = 64
FPS = 25.0
SAMPLE_RATE = 16000


def build_inputs(seconds: float):
    """The tiniest model, the small VAE, a portrait, random audio features and one prompt."""
    from magicinfinite_core.audio.features import AudioFeatures, FrameStore
    from magicinfinite_core.mini.vae import SmallVideoVAE
    from magicinfinite_core.models.config import tiny_config
    from magicinfinite_core.models.wan import WanModel
    from magicinfinite_core.sampling import TextConditioning

    torch.manual_seed(0)
    config = tiny_config(dim=32, num_heads=2, num_layers=1)
    model = WanModel(config).eval().requires_grad_(False)
    vae = SmallVideoVAE(width=8).eval()
    num_frames = int(seconds * FPS)
    adapter = config.audio
    store = FrameStore(1, num_frames, adapter.feature_layers, adapter.feature_width)
    chunk = 1500
    for start in range(0, num_frames, chunk):
        rows = min(chunk, num_frames - start)
        store.write(0, start, torch.randn(rows, adapter.feature_layers, adapter.feature_width))
    waveform = 0.1 * torch.randn(1, int(seconds * SAMPLE_RATE))
    audio = AudioFeatures(num_speakers=1, fps=FPS, num_frames=num_frames, mode="para",
                          sample_rate=SAMPLE_RATE, waveform=waveform, feature_layers=adapter.feature_layers,
                          feature_width=adapter.feature_width, encoder_name="bench", store=store)
    text = TextConditioning.single(torch.randn(1, 8, config.text_dim), torch.randn(1, 8, config.text_dim))
    portrait = torch.rand(1, 96, 80, 3)
    return model, vae, portrait, audio, text


def settings(colour_match: float = 0.0):
    from magicinfinite_core.sampling import SamplerOptions, SamplerSettings

    return SamplerSettings(SIZE, SIZE, seed=1, options=SamplerOptions(colour_match=colour_match))


def peak_rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def child(seconds: float, directory: Path) -> dict:
    """One streamed render in this (fresh) process: its wall time and the process's peak RSS."""
    from magicinfinite_core.sampling import stream_video

    model, vae, portrait, audio, text = build_inputs(seconds)
    start = time.perf_counter()
    result = stream_video(model, vae, portrait, audio, text, settings(), directory=directory,
                          filename_prefix=f"bench_{seconds:g}s")
    elapsed = time.perf_counter() - start
    assert result.num_frames == audio.num_frames
    return {"seconds": elapsed, "peak_rss_mib": peak_rss_mib(), "frames": result.num_frames}


def run_child(seconds: float, directory: Path) -> dict:
    command = [sys.executable, __file__, "--child", str(seconds), "--dir", str(directory)]
    out = subprocess.run(command, check=True, capture_output=True, text=True, env=os.environ.copy())
    return json.loads(out.stdout.strip().splitlines()[-1])


class Timers:
    def __init__(self):
        self.total: dict[str, float] = defaultdict(float)

    def wrap(self, name: str, function):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.total[name] += time.perf_counter() - start

        return timed


def breakdown(seconds: float, directory: Path) -> None:
    """Run in this process with timers around each part."""
    import magicinfinite_core.sampling.loop as loop
    from magicinfinite_core.sampling import Mp4Sink, sample_video

    model, vae, portrait, audio, text = build_inputs(seconds)
    timers = Timers()

    class TimedModel:
        config = model.config
        __call__ = staticmethod(timers.wrap("model forward", model.__call__))
        encode_audio = staticmethod(timers.wrap("model forward", model.encode_audio))

    class TimedVAE:
        encode = staticmethod(timers.wrap("VAE encode/decode", vae.encode))
        decode = staticmethod(timers.wrap("VAE encode/decode", vae.decode))

    class TimedSink(Mp4Sink):
        write = timers.wrap("video encoding", Mp4Sink.write)
        finish = timers.wrap("video encoding", Mp4Sink.finish)

    loop.match_colour = timers.wrap("colour matching", loop.match_colour)
    sink = TimedSink(directory / "breakdown.mp4", num_frames=audio.num_frames, fps=FPS,
                     waveform=audio.waveform, sample_rate=SAMPLE_RATE)
    start = time.perf_counter()
    sample_video(TimedModel(), TimedVAE(), portrait, audio, text, settings(colour_match=1.0), sink=sink)
    total = time.perf_counter() - start
    parts = dict(timers.total)
    parts["everything else"] = total - sum(parts.values())
    print(f"(a) wall time of {seconds:g} s of video ({audio.num_frames} frames, {SIZE}x{SIZE} px): "
          f"{total:.2f} s")
    for name, value in parts.items():
        print(f"    {name:<18} {value:7.2f} s  {100 * value / total:5.1f}%")
    met = parts["everything else"] <= 0.05 * total
    print(f"    goal: everything else <= 5% -> {'met' if met else 'NOT met'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the long run (default 10)")
    parser.add_argument("--dir", type=Path, default=None, help="where the videos go (default: a temp folder)")
    parser.add_argument("--child", type=float, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
        print(json.dumps(child(args.child, args.dir)))
        return
    with tempfile.TemporaryDirectory() as temporary:
        directory = args.dir or Path(temporary)
        breakdown(60.0, directory)
        # Each run in its own folder: the same inputs would otherwise find the earlier finished video.
        short, one, long = (run_child(seconds, directory / f"run{i}")
                            for i, seconds in enumerate((30.0, 60.0, 60.0 * args.minutes)))
    print(f"(b) peak RSS, fresh process each: 30 s {short['peak_rss_mib']:.0f} MiB, "
          f"{args.minutes:g} min {long['peak_rss_mib']:.0f} MiB -> ratio "
          f"{long['peak_rss_mib'] / short['peak_rss_mib']:.3f} (goal <= 1.2)")
    print(f"(c) time: 1 min {one['seconds']:.1f} s, {args.minutes:g} min {long['seconds']:.1f} s -> ratio "
          f"{long['seconds'] / one['seconds']:.2f} (goal <= {args.minutes + 1:g}; frames x{args.minutes:g})")


if __name__ == "__main__":
    main()
