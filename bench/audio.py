"""Audio embedding: peak memory and time for 30 s, 2 min and 10 min of audio through a wav2vec2-base-shaped
encoder (random weights: 12 layers, 768 wide, 512-channel CNN front end), one speaker, 16 kHz mono, 25 fps.

    OMP_NUM_THREADS=2 python bench/audio.py [--seconds 30 120 600] [--threads 2]

Each length runs in a fresh subprocess. There, once the encoder exists and has embedded 2 s of audio (so
one-off costs such as oneDNN kernel set-up count in no length), the input waveform is made, the kernel's
peak-RSS mark is reset (/proc/self/clear_refs) and `embed_audio` runs; its peak RSS minus the input
waveform's bytes is the memory figure (it includes the encoder's weights, the mix and every feature kept in
RAM; features of long tracks live in a temporary file, outside the process). Time is reported as wall
time and as process CPU time (the sum over threads): on a shared machine the CPU time is the steadier one.
Ratios are 10 min / 30 s: memory goal <= 1.2, time goal <= 22 (for 20x the audio).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path


def _vm_hwm_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def _vm_rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def child(seconds: float, threads: int) -> dict:
    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    from magicinfinite_core.audio import AudioEncoder, SpeakerTrack, embed_audio

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    module = Wav2Vec2Model(Wav2Vec2Config(mask_time_prob=0.0)).eval().requires_grad_(False)
    encoder = AudioEncoder(module=module, name="wav2vec2-base-shaped (random)", do_normalize=False)
    embed_audio(encoder, [SpeakerTrack(0.1 * torch.randn(1, 32000), 16000)], fps=25.0)  # warm-up
    samples = round(seconds * 16000)
    t = torch.arange(samples, dtype=torch.float32) / 16000
    # Noise shaped into ~4 syllables a second: the content does not change the cost.
    wave = (0.1 * torch.randn(samples) * torch.sin(math.pi * 4.1 * t).clamp(min=0))[None]
    del t
    input_bytes = wave.numel() * wave.element_size()
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak-RSS mark
    before = _vm_rss_bytes()
    start, start_cpu = time.perf_counter(), time.process_time()
    features = embed_audio(encoder, [SpeakerTrack(wave, 16000)], fps=25.0)
    elapsed, elapsed_cpu = time.perf_counter() - start, time.process_time() - start_cpu
    peak = _vm_hwm_bytes()
    return {"seconds": seconds, "frames": features.num_frames, "time_s": elapsed, "cpu_s": elapsed_cpu,
            "peak_rss": peak,
            "rss_before": before, "input_bytes": input_bytes,
            "mix_bytes": features.waveform.numel() * features.waveform.element_size(),
            "features_on_disk": features.store.on_disk}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, nargs="+", default=[30.0, 120.0, 600.0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(child(args.child, args.threads)))
        return
    mb = 2**20
    results = []
    for seconds in args.seconds:
        command = [sys.executable, __file__, "--child", str(seconds), "--threads", str(args.threads)]
        out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        results.append(r)
        print(f"{seconds:6.0f} s audio ({r['frames']:5d} frames): wall {r['time_s']:6.1f} s, "
              f"CPU {r['cpu_s']:6.1f} s; "
              f"peak RSS {r['peak_rss'] / mb:5.0f} MB (before embedding {r['rss_before'] / mb:.0f} MB; input "
              f"{r['input_bytes'] / mb:.0f} MB, mix {r['mix_bytes'] / mb:.0f} MB, features "
              f"{'on disk' if r['features_on_disk'] else 'in RAM'})", flush=True)
    first, last = results[0], results[-1]
    memory = (last["peak_rss"] - last["input_bytes"]) / (first["peak_rss"] - first["input_bytes"])
    added = [(r["peak_rss"] - r["rss_before"]) / mb for r in (first, last)]
    ratio = last["seconds"] / first["seconds"]
    print(f"{last['seconds']:.0f} s / {first['seconds']:.0f} s (audio x{ratio:.0f}): "
          f"peak RSS without the input x{memory:.2f} (goal <= 1.2; added by embedding {added[0]:.0f} -> "
          f"{added[1]:.0f} MB); time x{last['time_s'] / first['time_s']:.1f} wall, "
          f"x{last['cpu_s'] / first['cpu_s']:.1f} CPU (goal <= 22)")


if __name__ == "__main__":
    main()
