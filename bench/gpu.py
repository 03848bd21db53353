"""GPU check: the card, 14B model pass times (bf16, fp8), peak VRAM under a budget, per-window wall time.

    python3 bench/gpu.py [--out DIR]            # on a GPU machine, from the repo root (~3-6 min on a H200)
    python3 bench/gpu.py --device cpu --small   # same code at tiny shapes on the CPU, in seconds (CI)

Needs only torch, safetensors, einops and numpy (PyAV, kornia and ComfyUI are not imported; colour matching
needs kornia and is skipped without it). Random weights, built directly on the device.

Sections (each runs on its own: an error is printed and the rest still runs):
1. card: name, memory, torch and CUDA versions.
2. pass: seconds per model pass for Wan2.1-I2V-14B + InfiniteTalk adapter on every block (dim 5120, ffn 13824,
   40 heads, 40 blocks) at 480x832x81 (32,760 tokens) and at the SoulX-FlashTalk shape 768x448x33 (12,096
   tokens), bf16 and fp8 storage (fp8 weights are cast to bf16 per layer). Only `--blocks` blocks (default 4)
   are built and timed; the 40-block pass is (time outside the blocks) + 40 x (time per block), and the
   achieved TFLOP/s uses the analytic matmul count of the 40-block pass (models/flops.py).
3. budget: the full 40-block model, peak VRAM of one 480p pass with no budget (all weights on the card) and
   with `vram_budget_gb` 12 / 16 / 24 (blocks streamed through the slots the budget holds; the pass time of
   each is printed too: it shows whether the copies hide behind the compute).
4. window: per-window wall time at the distilled 4-step setting (4 passes, no CFG) split into the model
   (4 x the scaled pass of section 2) and everything else: the audio projection of the window (the real
   14B-shaped adapter projection), a VAE stand-in (the pack's small mini VAE: encode of the reference and
   decode of the window; the real Wan VAE is much heavier and is not there) and the colour match (kornia).
5. sampler: the real window sampler end to end with the embedded MagicInfinite-Mini (audio encoder, text
   encoder, DiT, VAE; frames kept in memory): on the CPU, on the device with the whole DiT there, and on the
   device with its blocks streamed through the smallest budget (resident part + one block). Prints the wall
   time of each and the largest frame difference from the CPU's video (float32 everywhere, so only kernel
   rounding may differ). Unlike the other sections it needs the pack's own dependencies (PyAV, kornia), as
   the pack does: carry their wheels to a bare GPU machine.
6. vae: the Wan2.1 VAE as `render` loads it (diffusers' AutoencoderKLWan behind `encoders.wan_vae`, random
   weights at Wan2.1's size, bf16 on a GPU) at each shape: seconds and peak memory to encode a window's
   frames (the i2v conditioning encodes the whole window) and to decode its latent. Needs diffusers (carry
   its wheel).
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the repo travels to the GPU machine but is not installed there

import torch  # noqa: E402

from magicinfinite_core.checkpoints.fp8 import quantize_fp8  # noqa: E402
from magicinfinite_core.latents import LATENT_CHANNELS, SPACE_STRIDE, latent_frames  # noqa: E402
from magicinfinite_core.mini.vae import SmallVideoVAE  # noqa: E402
from magicinfinite_core.models import WAN_14B, WanConfig, WanModel, tiny_config  # noqa: E402
from magicinfinite_core.models.cast import CastLinear  # noqa: E402
from magicinfinite_core.models.flops import forward_flops  # noqa: E402
from magicinfinite_core.models.streaming import BlockStreamer, GiB, block_bytes, resident_bytes  # noqa: E402

STARTED = time.perf_counter()
DTYPES = ("bf16", "fp8")
STEPS = 4  # distilled setting: 4 passes per window, no CFG


@dataclass(frozen=True)
class Shape:
    name: str
    frames: int  # video frames of a window
    height: int
    width: int

    @property
    def latent(self) -> tuple[int, int, int]:
        return latent_frames(self.frames), self.height // SPACE_STRIDE, self.width // SPACE_STRIDE

    def tokens(self, config: WanConfig) -> int:
        t, h, w = self.latent
        _, ph, pw = config.patch_size
        return t * (h // ph) * (w // pw)


@dataclass(frozen=True)
class Setup:
    config: WanConfig
    shapes: tuple[Shape, ...]
    budgets: tuple[tuple[str, Callable[[WanModel], int]], ...]  # (label, the model -> bytes)
    blocks: int


def log(message: str) -> None:
    print(f"[{time.perf_counter() - STARTED:7.1f}s] {message}", flush=True)


class Table:
    def __init__(self) -> None:
        self.rows: list[dict] = []

    def add(self, section: str, item: str, value: float | str | None, unit: str = "", note: str = "") -> None:
        if isinstance(value, float):
            value = float(f"{value:.4g}")
        self.rows.append({"section": section, "item": item, "value": value, "unit": unit, "note": note})
        log(f"{section} | {item}: {value} {unit} {note}".rstrip())

    def markdown(self) -> str:
        lines = ["| section | item | value | unit | note |", "|---|---|---|---|---|"]
        for r in self.rows:
            value = "n/a" if r["value"] is None else r["value"]
            lines.append(f"| {r['section']} | {r['item']} | {value} | {r['unit']} | {r['note']} |")
        return "\n".join(lines)


def section(table: Table, name: str):
    """Decorator: run a section, print and record its error, free device memory after."""

    def wrap(fn):
        def run(*args, **kwargs):
            log(f"--- {name}")
            try:
                return fn(*args, **kwargs)
            except Exception as error:  # noqa: BLE001 - a crash must not lose the other sections' figures
                traceback.print_exc()
                table.add(name, "error", f"{type(error).__name__}: {error}"[:300])
            finally:
                free_memory()

        return run

    return wrap


def free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build(config: WanConfig, device: torch.device, dtype: str) -> WanModel:
    """Random weights built on the device in bf16; fp8: every block linear quantised (per-tensor scale)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device(device):
            model = WanModel(config)
    finally:
        torch.set_default_dtype(previous)
    model.eval().requires_grad_(False)
    model.compute_dtype = torch.bfloat16
    if dtype == "fp8":
        for layer in model.blocks.modules():
            if isinstance(layer, CastLinear):
                weight, scale = quantize_fp8(layer.weight.data)
                layer.weight = torch.nn.Parameter(weight, requires_grad=False)
                layer.scale_weight = scale
    return model


def inputs(config: WanConfig, shape: Shape, device: torch.device) -> tuple[dict, torch.Tensor]:
    g = torch.Generator(device).manual_seed(0)
    t, h, w = shape.latent
    audio = config.audio
    features = torch.randn(1, 1, shape.frames, audio.window, audio.feature_layers, audio.feature_width,
                           generator=g, device=device)
    kwargs = {
        "x": torch.randn(1, LATENT_CHANNELS, t, h, w, generator=g, device=device),
        "timestep": torch.tensor([500.0], device=device),
        "context": torch.randn(1, config.text_len, config.text_dim, generator=g, device=device),
        "image_latent": torch.randn(1, 20, t, h, w, generator=g, device=device),
        "clip_tokens": torch.randn(1, 257, config.image_dim, generator=g, device=device),
    }
    return kwargs, features


class Clock:
    """Elapsed seconds between marks: CUDA events on a GPU (no sync inside the pass), wall time on a CPU."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def mark(self):
        if self.device.type != "cuda":
            return time.perf_counter()
        event = torch.cuda.Event(enable_timing=True)
        event.record()
        return event

    def seconds(self, start, stop) -> float:
        if self.device.type != "cuda":
            return stop - start
        stop.synchronize()
        return start.elapsed_time(stop) / 1000


def time_pass(model: WanModel, kwargs: dict, tokens: torch.Tensor, device: torch.device,
              repeats: int) -> tuple[float, float]:
    """(forward seconds, seconds inside the blocks): the fastest of `repeats` after one warm-up."""
    clock = Clock(device)
    marks: dict[str, object] = {}
    hooks = [
        model.blocks[0].register_forward_pre_hook(lambda *_: marks.__setitem__("blocks", clock.mark())),
        model.blocks[-1].register_forward_hook(lambda *_: marks.__setitem__("blocks_done", clock.mark())),
    ]
    runs = []
    try:
        with torch.inference_mode():
            for index in range(repeats + 1):
                start = clock.mark()
                model(**kwargs, audio_tokens=tokens)
                stop = clock.mark()
                if index:
                    blocks = clock.seconds(marks["blocks"], marks["blocks_done"])
                    runs.append((clock.seconds(start, stop), blocks))
    finally:
        for hook in hooks:
            hook.remove()
    return min(runs)


def card(table: Table, device: torch.device) -> None:
    table.add("card", "torch", torch.__version__)
    if device.type != "cuda":
        table.add("card", "device", "cpu", note=f"{torch.get_num_threads()} threads")
        return
    props = torch.cuda.get_device_properties(device)
    table.add("card", "name", props.name)
    table.add("card", "memory", props.total_memory / GiB, "GiB")
    table.add("card", "CUDA (torch build)", torch.version.cuda)
    table.add("card", "compute capability", f"{props.major}.{props.minor}")


def passes(table: Table, setup: Setup, device: torch.device, repeats: int) -> dict[tuple[str, str], float]:
    """Scaled 40-block pass seconds per (dtype, shape name)."""
    full = setup.config
    partial = replace(full, num_layers=setup.blocks)
    out: dict[tuple[str, str], float] = {}
    for dtype in DTYPES:
        try:
            model = build(partial, device, dtype)
            for shape in setup.shapes:
                kwargs, features = inputs(partial, shape, device)
                with torch.inference_mode():
                    tokens = model.encode_audio(features)
                forward, blocks = time_pass(model, kwargs, tokens, device, repeats)
                seconds = (forward - blocks) + full.num_layers * blocks / setup.blocks
                out[dtype, shape.name] = seconds
                t, h, w = shape.latent
                flops = forward_flops(full, t, h, w, speakers=1).total
                note = (f"{setup.blocks} of {full.num_layers} blocks timed, scaled: outside "
                        f"{forward - blocks:.3f} s + {full.num_layers} x {blocks / setup.blocks:.4f} s")
                table.add("pass", f"{dtype} {shape.name} ({shape.tokens(full)} tokens)", seconds, "s", note)
                table.add("pass", f"{dtype} {shape.name} achieved", flops / seconds / 1e12, "TFLOP/s",
                          f"{flops / 1e12:.1f} TFLOP per pass (matmuls, models/flops.py)")
                del kwargs, features, tokens
            del model
        except Exception as error:  # noqa: BLE001
            traceback.print_exc()
            table.add("pass", f"{dtype} error", f"{type(error).__name__}: {error}"[:300])
        free_memory()
    return out


def peak(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / GiB if device.type == "cuda" else None


def budgets(table: Table, setup: Setup, device: torch.device, dtypes: tuple[str, ...]) -> None:
    shape = setup.shapes[0]
    for dtype in dtypes:
        try:
            log(f"building the full {setup.config.num_layers}-block model, {dtype}")
            model = build(setup.config, device, dtype)
            kwargs, features = inputs(setup.config, shape, device)
            with torch.inference_mode():
                tokens = model.encode_audio(features)
            table.add("budget", f"{dtype} weights: resident part", resident_bytes(model) / GiB, "GiB")
            table.add("budget", f"{dtype} weights: one block", block_bytes(model) / GiB, "GiB")
            free_memory()
            try:
                seconds = time_pass(model, kwargs, tokens, device, repeats=1)[0]
                table.add("budget", f"{dtype} no budget: peak", peak(device), "GiB",
                          "all weights on the device")
                table.add("budget", f"{dtype} no budget: pass", seconds, "s")
            except torch.OutOfMemoryError as error:
                table.add("budget", f"{dtype} no budget: peak", None, "GiB", f"out of memory: {error}"[:200])
            # No move to the host first: the streamer packs each block from the device into pinned host
            # memory (the resident part stays where it is, on the device, as it would under streaming).
            for label, budget in setup.budgets:
                try:
                    with BlockStreamer(model, device, budget(model)) as streamer:
                        sync(device)
                        free_memory()
                        seconds = time_pass(model, kwargs, tokens, device, repeats=1)[0]
                        table.add("budget", f"{dtype} budget {label}: peak", peak(device), "GiB",
                                  f"{streamer.num_slots} of {len(model.blocks)} blocks in slots, weights "
                                  f"held {streamer.budget_used / GiB:.3g} GiB")
                        table.add("budget", f"{dtype} budget {label}: pass", seconds, "s")
                except Exception as error:  # noqa: BLE001
                    traceback.print_exc()
                    table.add("budget", f"{dtype} budget {label}: peak", None, "GiB",
                              f"{type(error).__name__}: {error}"[:200])
                free_memory()
            del model, kwargs, features, tokens
        except Exception as error:  # noqa: BLE001
            traceback.print_exc()
            table.add("budget", f"{dtype} error", f"{type(error).__name__}: {error}"[:300])
        free_memory()


def window(table: Table, setup: Setup, device: torch.device, pass_seconds: dict[tuple[str, str], float],
           repeats: int) -> None:
    """Everything but the model per window, timed at each shape; model = STEPS x the scaled pass."""
    # The real adapter projection of the 14B shape: a model with no blocks holds just it (and the embeddings).
    config = replace(setup.config, num_layers=0)
    model = build(config, device, "bf16")
    vae = SmallVideoVAE().to(device).eval()
    try:
        from magicinfinite_core.sampling.colour import match_colour
    except ImportError as error:
        match_colour = None
        table.add("window", "colour match", None, "", f"skipped: {error}")
    clock = Clock(device)
    for shape in setup.shapes:
        kwargs, features = inputs(config, shape, device)
        reference = torch.rand(1, shape.height, shape.width, 3, device=device)
        runs = []
        with torch.inference_mode():
            for index in range(repeats + 1):
                start = clock.mark()
                model.encode_audio(features)
                audio = clock.mark()
                vae.encode(reference)
                pixels = vae.decode(kwargs["x"])[0]
                decoded = clock.mark()
                if match_colour is not None:
                    match_colour(pixels, reference)
                stop = clock.mark()
                if index:
                    runs.append((clock.seconds(start, audio), clock.seconds(audio, decoded),
                                 clock.seconds(decoded, stop)))
        audio_s, vae_s, colour_s = min(runs, key=sum)
        rest = audio_s + vae_s + colour_s
        table.add("window", f"{shape.name} everything else", rest, "s",
                  f"audio projection {audio_s:.3g} + VAE stand-in (mini VAE encode+decode) {vae_s:.3g} + "
                  f"colour match {colour_s:.3g}")
        for dtype in DTYPES:
            if (dtype, shape.name) in pass_seconds:
                model_s = STEPS * pass_seconds[dtype, shape.name]
                table.add("window", f"{shape.name} {dtype}: model", model_s, "s",
                          f"{STEPS} steps, no CFG ({STEPS} x scaled pass)")
                table.add("window", f"{shape.name} {dtype}: wall", model_s + rest, "s",
                          "model + everything else")


def sampler(table: Table, device: torch.device, seconds: float) -> None:
    from magicinfinite_core.assets import load_sample_portrait
    from magicinfinite_core.audio import SpeakerTrack, embed_audio
    from magicinfinite_core.mini.bundle import load_bundle
    from magicinfinite_core.mini.world import synthesize_speech
    from magicinfinite_core.sampling import (
        SamplerOptions,
        SamplerSettings,
        build_text_conditioning,
        sample_video,
    )

    bundle = load_bundle()
    info = bundle.info
    track = synthesize_speech(7, seconds, sample_rate=16000)
    features = embed_audio(bundle.audio_encoder, [SpeakerTrack(track.waveform[None], track.sample_rate)],
                           fps=info.fps)
    text = build_text_conditioning(schedule=info.default_prompt, negative_prompt=info.negative_prompt,
                                   encode=lambda words: bundle.text_encoder.encode([words]))
    settings = SamplerSettings(
        info.width, info.height, "distilled", info.steps, seed=3,
        options=SamplerOptions(window_frames=info.window_frames, motion_frames=info.motion_frames,
                               shift=info.shift, colour_match=0.0),
    )
    model, image = bundle.model.module, load_sample_portrait()

    def render(on: torch.device) -> tuple[torch.Tensor, float]:
        sync(on)
        start = time.perf_counter()
        frames = sample_video(model, bundle.vae, image, features, text, settings, device=on).frames
        sync(on)
        return frames, time.perf_counter() - start

    reference, cpu_s = render(torch.device("cpu"))
    note = f"{features.num_frames} frames, {info.width}x{info.height}, {info.steps} steps"
    table.add("sampler", "mini cpu: wall", cpu_s, "s", note)
    runs = {"whole model on the device": None,
            "blocks streamed (resident + 1 block)": resident_bytes(model) + block_bytes(model)}
    for label, budget in runs.items():
        if budget is None:
            model.to(device)
            try:
                frames, run_s = render(device)
            finally:
                model.to("cpu")
        else:
            with BlockStreamer(model, device, budget):
                frames, run_s = render(device)
        table.add("sampler", f"mini {device.type} {label}: wall", run_s, "s", note)
        table.add("sampler", f"mini {device.type} {label}: max |frame - cpu frame|",
                  (frames - reference).abs().max().item(), "", "0..1 pixels")


def vae(table: Table, setup: Setup, device: torch.device, small: bool) -> None:
    from diffusers import AutoencoderKLWan

    from magicinfinite_core.encoders.wan_vae import WanVideoVAE

    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    # 96: Wan2.1's own width
    wan = WanVideoVAE(AutoencoderKLWan(base_dim=8 if small else 96), dtype=dtype, device=device)
    clock = Clock(device)
    for shape in setup.shapes:
        frames = torch.rand(shape.frames, shape.height, shape.width, 3, device=device)
        free_memory()
        start = clock.mark()
        latent = wan.encode(frames)
        encoded = clock.mark()
        encode_peak = peak(device)
        free_memory()
        begin = clock.mark()
        pixels = wan.decode(latent)
        decoded = clock.mark()
        note = f"{shape.frames} frames <-> latent {tuple(latent.shape[2:])}, {dtype}"
        assert pixels.shape == frames.shape, (pixels.shape, frames.shape)
        table.add("vae", f"{shape.name} encode", clock.seconds(start, encoded), "s", note)
        table.add("vae", f"{shape.name} encode: peak", encode_peak, "GiB")
        table.add("vae", f"{shape.name} decode", clock.seconds(begin, decoded), "s", note)
        table.add("vae", f"{shape.name} decode: peak", peak(device), "GiB")


def setup_for(small: bool, blocks: int, budget_gb: tuple[float, ...]) -> Setup:
    if small:
        config = tiny_config(num_layers=4)
        shapes = (Shape("480x832x81 (small: 64x96x9)", 9, 64, 96),
                  Shape("flashtalk 768x448x33 (small: 64x64x5)", 5, 64, 64))
        # Budgets that stream the 4 blocks: room for 1, 2 and 3 of them.
        budgets = tuple((f"resident+{k} blocks", functools.partial(_blocks_budget, k)) for k in (1, 2, 3))
        return Setup(config, shapes, budgets, min(blocks, 2))
    shapes = (Shape("480x832x81", 81, 480, 832), Shape("flashtalk 768x448x33", 33, 448, 768))
    budgets = tuple((f"{gb:g} GB", functools.partial(_fixed_budget, int(gb * GiB))) for gb in budget_gb)
    return Setup(WAN_14B, shapes, budgets, blocks)


def _blocks_budget(blocks: int, model: WanModel) -> int:
    return resident_bytes(model) + blocks * block_bytes(model)


def _fixed_budget(nbytes: int, model: WanModel) -> int:
    return nbytes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--small", action="store_true", help="tiny shapes (CPU CI)")
    parser.add_argument("--blocks", type=int, default=4, help="blocks built and timed for the pass times")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed passes after one warm-up, the fastest kept (default 3; --small 1)")
    parser.add_argument("--budget-dtypes", default="fp8,bf16", help="dtypes of the budget section")
    parser.add_argument("--budgets", default="12,16,24", help="budgets in GB for the budget section")
    parser.add_argument("--sections", default="pass,budget,window,sampler,vae",
                        help="which of pass, budget, window, sampler, vae run")
    parser.add_argument("--seconds", type=float, default=None,
                        help="length of the sampler section's video (default 6; --small 1.5)")
    parser.add_argument("--out", type=Path, default=None, help="also write gpu.md and gpu.json here")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.backends.cuda.matmul.allow_tf32 = True
    setup = setup_for(args.small, args.blocks, tuple(float(gb) for gb in args.budgets.split(",")))
    sections = set(args.sections.split(","))
    repeats = args.repeats or (1 if args.small else 3)
    table = Table()
    log(f"bench/gpu.py on {device}{' (small shapes)' if args.small else ''}")
    section(table, "card")(card)(table, device)
    pass_seconds = {}
    if "pass" in sections:
        pass_seconds = section(table, "pass")(passes)(table, setup, device, repeats) or {}
    if "budget" in sections:
        budget_dtypes = tuple(d for d in args.budget_dtypes.split(",") if d in DTYPES)
        section(table, "budget")(budgets)(table, setup, device, budget_dtypes)
    if "window" in sections:
        section(table, "window")(window)(table, setup, device, pass_seconds, repeats)
    if "sampler" in sections:
        seconds = args.seconds or (1.5 if args.small else 6.0)
        section(table, "sampler")(sampler)(table, device, seconds)
    if "vae" in sections:
        section(table, "vae")(vae)(table, setup, device, args.small)
    table.add("total", "bench wall time", time.perf_counter() - STARTED, "s")
    text = table.markdown()
    print(text, flush=True)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "gpu.md").write_text(text + "\n")
        (args.out / "gpu.json").write_text(json.dumps(table.rows, indent=1, allow_nan=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
