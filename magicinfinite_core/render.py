"""`python -m magicinfinite_core render`: a talking video from checkpoint files, on one process or, under
`torchrun --nproc-per-node N`, with each window's DiT split over N processes (sequence parallel; rank 0
writes the MP4, the others only compute).

What the engine loads itself: the DiT (+ adapter, + LoRAs) through `checkpoints.load_model`, any wav2vec2
audio encoder, and the VAE and text encoder of a MagicInfinite-Mini bundle. It has no loader for the Wan2.1
VAE, umT5 or CLIP: those come from ComfyUI (the nodes), so a real Wan2.1 DiT renders there, and `render`
refuses a Wan VAE file or a DiT the bundle's text encoder does not fit, saying so.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

import torch
from safetensors.torch import load_file

from magicinfinite_core.audio import SpeakerTrack, embed_audio
from magicinfinite_core.audio.encoder import load_audio_encoder
from magicinfinite_core.checkpoints import COMPUTE_DTYPES, LoraSpec, load_model, open_tensor_file
from magicinfinite_core.errors import CheckpointError, InputError, Interrupted, MagicInfiniteError
from magicinfinite_core.masks import Regions
from magicinfinite_core.masks.splits import SPLIT_LAYOUTS, split_masks
from magicinfinite_core.mini.bundle import MiniBundle, load_bundle
from magicinfinite_core.mini.demo import TextProgressBar, read_audio, read_image
from magicinfinite_core.mini.vae import SmallVideoVAE
from magicinfinite_core.parallel import MODES, parallelize
from magicinfinite_core.parallel.launch import DEFAULT_TIMEOUT_S, Process, join, leave
from magicinfinite_core.parallel.sinks import ComputeOnlySink, WriterSink
from magicinfinite_core.sampling import (
    Mp4Sink,
    SamplerOptions,
    SamplerSettings,
    StepProgress,
    build_text_conditioning,
    sample_video,
)

MAX_TRACKS = 4
WAN_VAE_KEYS = ("encoder.conv1.weight", "decoder.conv1.weight", "conv1.weight")  # Wan2.1_VAE's own layout


def _lora(text: str) -> LoraSpec:
    path, _, strength = text.rpartition(":") if ":" in Path(text).name else (text, "", "")
    try:
        return LoraSpec(path, float(strength) if strength else 1.0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected FILE or FILE:STRENGTH, got {text!r}") from None

DESCRIPTION = ("Renders with the DiT/adapter/LoRA files given (default: the embedded small model), the VAE "
               "and text encoder of a MagicInfinite-Mini bundle (the engine has no loader for the Wan2.1 VAE "
               "or umT5). Under torchrun each window's DiT is split over the processes (sequence parallel); "
               "rank 0 writes the MP4.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--image", type=Path, required=True, help="the portrait (PNG, JPEG, WebP ...)")
    parser.add_argument("--audio", type=Path, action="append", required=True, help=(
        "a voice recording; give it 1-4 times, one per speaker (speaker i gets strip i of --layout)"))
    parser.add_argument("--out", type=Path, required=True, help=(
        "the MP4 to write; an interrupted run continues when run again with the same options"))
    parser.add_argument("--prompt", default=None, help="what the video shows, or a schedule "
                        "'0: text / 2: text' (default: the bundle's prompt)")
    parser.add_argument("--negative-prompt", default=None, help="(default: the bundle's)")
    parser.add_argument("--model", type=Path, default=None, help=(
        "DiT safetensors file or first shard (default: the bundle's); MultiTalk/InfiniteTalk adapter "
        "inside it or in --adapter"))
    parser.add_argument("--adapter", type=Path, default=None, help="audio adapter file beside the DiT")
    parser.add_argument("--lora", type=_lora, action="append", default=[], metavar="FILE[:STRENGTH]",
                        help="a LoRA applied at load (repeatable)")
    parser.add_argument("--bundle", type=Path, default=None, help=(
        "a MagicInfinite-Mini bundle folder for the VAE, text encoder and audio encoder (default: the "
        "embedded one)"))
    parser.add_argument("--vae", type=Path, default=None, help=(
        "a small-VAE file of the bundle's width (the engine cannot load the Wan2.1 VAE)"))
    parser.add_argument("--audio-encoder", type=Path, default=None, help=(
        "wav2vec2 folder or safetensors (default: the bundle's)"))
    parser.add_argument("--width", type=int, default=None, help="(default: the bundle's)")
    parser.add_argument("--height", type=int, default=None, help="(default: the bundle's)")
    parser.add_argument("--steps", type=int, default=None, help="(default: the bundle's)")
    parser.add_argument("--shift", type=float, default=None, help="(default: the bundle's)")
    parser.add_argument("--window-frames", type=int, default=None, help="(default: the bundle's)")
    parser.add_argument("--motion-frames", type=int, default=None, help="(default: the bundle's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--layout", choices=SPLIT_LAYOUTS, default="left to right", help=(
        "how several speakers' regions split the portrait"))
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available()
                        else "cpu", help="one GPU per process (cuda), or the CPU")
    parser.add_argument("--dtype", choices=tuple(COMPUTE_DTYPES), default=None, help=(
        "compute dtype (default: bf16 on cuda, fp32 on cpu)"))
    parser.add_argument("--parallel", choices=MODES, default="auto", help=(
        "under torchrun: Ulysses (the heads divide over the processes), ring, or auto"))
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help=(
        "seconds a process waits for the others before the run fails (a process died)"))


def load_vae(path: Path | None, bundle: MiniBundle) -> SmallVideoVAE:
    """The bundle's VAE, or a small-VAE file; a Wan2.1 VAE file is refused with what to do instead."""
    if path is None:
        return bundle.vae
    shapes = open_tensor_file(path).shapes()
    if any(key in shapes for key in WAN_VAE_KEYS):
        raise CheckpointError(
            f"--vae: {path} is a Wan2.1 VAE; the engine cannot load it (it loads only the small VAE of a "
            "MagicInfinite-Mini bundle). Render real Wan2.1 checkpoints in ComfyUI, which provides the VAE."
        )
    vae = SmallVideoVAE(bundle.info.vae_width)
    if {key: tuple(shape) for key, shape in shapes.items()} != {
        key: tuple(t.shape) for key, t in vae.state_dict().items()
    }:
        raise CheckpointError(
            f"--vae: {path} is not a small VAE of width {bundle.info.vae_width} (the bundle's); give the "
            "bundle's vae.safetensors or leave --vae out."
        )
    vae.load_state_dict({key: t.float() for key, t in load_file(str(path)).items()})
    return vae.eval().requires_grad_(False)


def render(args: argparse.Namespace, process: Process, log: TextIO) -> Path:
    if not 1 <= len(args.audio) <= MAX_TRACKS:
        raise InputError(f"--audio: expected 1 to {MAX_TRACKS} recordings, got {len(args.audio)}.")
    if args.out.suffix.lower() != ".mp4":
        raise InputError(f"--out: give a file name ending in .mp4, got {str(args.out)!r}.")
    dtype = COMPUTE_DTYPES[args.dtype or ("bf16" if process.device.type == "cuda" else "fp32")]
    bundle = load_bundle(args.bundle, compute_dtype=dtype)
    info = bundle.info
    model = bundle.model if args.model is None else load_model(
        args.model, adapter_path=args.adapter, loras=args.lora, compute_dtype=dtype)
    module = model.module.to(process.device)
    if model.config.text_dim != bundle.text_encoder.width:
        raise InputError(
            f"--model: the DiT reads {model.config.text_dim}-wide text (umT5 for Wan2.1) but the engine's "
            f"text encoder (the bundle's) gives {bundle.text_encoder.width}; the engine cannot load umT5: "
            "render Wan2.1 checkpoints in ComfyUI."
        )
    vae = load_vae(args.vae, bundle)
    encoder = bundle.audio_encoder if args.audio_encoder is None else load_audio_encoder(args.audio_encoder)
    if process.world > 1:
        parallelize(module, mode=args.parallel)

    image = read_image(args.image)
    tracks = [SpeakerTrack(*read_audio(path), name=str(path)) for path in args.audio]
    features = embed_audio(encoder, tracks, fps=info.fps)
    text = build_text_conditioning(
        schedule=info.default_prompt if args.prompt is None else args.prompt,
        negative_prompt=info.negative_prompt if args.negative_prompt is None else args.negative_prompt,
        encode=lambda words: bundle.text_encoder.encode([words]))
    regions = None
    if len(tracks) > 1:
        regions = Regions(split_masks(len(tracks), args.layout, image.shape[2], image.shape[1]))
    settings = SamplerSettings(
        args.width or info.width, args.height or info.height, "distilled", args.steps or info.steps,
        seed=args.seed, options=SamplerOptions(
            window_frames=args.window_frames or info.window_frames,
            motion_frames=info.motion_frames if args.motion_frames is None else args.motion_frames,
            shift=info.shift if args.shift is None else args.shift))

    if process.writes_output:
        sink = Mp4Sink(args.out, num_frames=features.num_frames, fps=features.fps, waveform=features.waveform,
                       sample_rate=features.sample_rate)
        if process.world > 1:
            sink = WriterSink(sink)
        bar = TextProgressBar("sample ", settings.total_steps(features.num_frames), log)
        log.write(f"{features.num_frames} frames at {settings.width}x{settings.height} on {process.world} "
                  f"process(es) ({process.device.type})\n")
    else:
        sink = ComputeOnlySink(num_frames=features.num_frames, fps=features.fps,
                               sample_rate=features.sample_rate)
        bar = None

    def progress(step: StepProgress) -> None:
        if bar is not None:
            bar.update(step.done, f"window {step.window + 1}/{step.num_windows}")

    sample_video(module, vae, image, features, text, settings, sink=sink, regions=regions,
                 device=process.device, callback=progress)
    if process.writes_output:
        log.write(f"Wrote {args.out.resolve()}\n")
    return args.out


def main(args: argparse.Namespace, *, log: TextIO | None = None) -> int:
    log = sys.stderr if log is None else log
    try:
        process = join(args.device, args.timeout)
        try:
            render(args, process, log)
        finally:
            leave()
    except (KeyboardInterrupt, Interrupted):
        log.write("\nStopped. Run the same command again to continue from the last finished window.\n")
        return 130
    except MagicInfiniteError as err:
        log.write(f"\nerror: {err}\n")
        return 2
    return 0
