"""`python -m magicinfinite_core render`: a talking video from checkpoint files, on one process or, under
`torchrun --nproc-per-node N`, with each window's DiT split over N processes (sequence parallel; rank 0
writes the MP4, the others only compute).

Two ways to say what renders. Without `--model`, a MagicInfinite-Mini bundle (the embedded one, or
`--bundle`) gives every part and the size and schedule it was trained for. With `--model` (a Wan2.1 DiT with
its MultiTalk/InfiniteTalk adapter), the files ComfyUI users have give the rest: `--vae` (wan_2.1_vae),
`--text-encoder` (umT5-XXL), `--audio-encoder` (wav2vec2), optionally `--clip-vision` (clip_vision_h), or
`--bundle` names a bundle whose parts fill in what is not given.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO, TypeVar

import torch
from safetensors.torch import load_file

from magicinfinite_core.audio import SpeakerTrack, embed_audio
from magicinfinite_core.audio.encoder import AudioEncoder, load_audio_encoder
from magicinfinite_core.checkpoints import COMPUTE_DTYPES, LoraSpec, load_model, open_tensor_file
from magicinfinite_core.encoders.clip_vision import load_clip_vision
from magicinfinite_core.encoders.umt5 import load_umt5
from magicinfinite_core.encoders.wan_vae import is_wan_vae, load_wan_vae
from magicinfinite_core.errors import CheckpointError, InputError, Interrupted, MagicInfiniteError
from magicinfinite_core.latents import VideoVAE
from magicinfinite_core.masks import Regions
from magicinfinite_core.masks.splits import SPLIT_LAYOUTS, split_masks
from magicinfinite_core.mini.bundle import MiniBundle, load_bundle
from magicinfinite_core.mini.demo import TextProgressBar, read_audio, read_image
from magicinfinite_core.mini.vae import SmallVideoVAE
from magicinfinite_core.models.config import WanConfig
from magicinfinite_core.parallel import MODES, parallelize
from magicinfinite_core.parallel.launch import DEFAULT_TIMEOUT_S, Process, join, leave
from magicinfinite_core.parallel.sinks import ComputeOnlySink, WriterSink
from magicinfinite_core.sampling import (
    Mp4Sink,
    SamplerOptions,
    SamplerSettings,
    StepProgress,
    TextConditioning,
    build_text_conditioning,
    sample_video,
)
from magicinfinite_core.sampling.presets import NO_PRESET, PRESET_CHOICES, PRESETS, with_preset
from magicinfinite_core.sampling.window import DEFAULT_MOTION_FRAMES, DEFAULT_WINDOW_FRAMES

MAX_TRACKS = 4
T = TypeVar("T")


def _lora(text: str) -> LoraSpec:
    path, _, strength = text.rpartition(":") if ":" in Path(text).name else (text, "", "")
    try:
        return LoraSpec(path, float(strength) if strength else 1.0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected FILE or FILE:STRENGTH, got {text!r}") from None

DESCRIPTION = ("Renders a MagicInfinite-Mini bundle (default: the embedded one), or a Wan2.1 DiT with its "
               "MultiTalk/InfiniteTalk adapter (--model) with the VAE, umT5 text encoder, wav2vec2 and CLIP "
               "vision files ComfyUI users have. Under torchrun each window's DiT is split over the "
               "processes "
               "(sequence parallel); rank 0 writes the MP4.")

# Without a bundle, a Wan2.1 DiT renders at the sampler node's defaults: 480p, 25 fps (what MultiTalk and
# InfiniteTalk were trained at), 4 distilled steps (the lightx2v LoRA), the shift the solver chooses.
WAN_DEFAULTS = {"width": 832, "height": 480, "fps": 25.0, "window_frames": DEFAULT_WINDOW_FRAMES,
                "motion_frames": DEFAULT_MOTION_FRAMES, "steps": 4, "shift": None}
# The files ComfyUI users have for each part a Wan2.1 DiT needs beside it (named in errors).
PART_FILES = {"--vae": "wan_2.1_vae.safetensors (models/vae)",
              "--text-encoder": "umt5_xxl_fp16.safetensors or umt5_xxl_fp8_e4m3fn_scaled.safetensors "
                                "(models/text_encoders)",
              "--audio-encoder": "the chinese-wav2vec2-base folder or its model.safetensors"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--image", type=Path, required=True, help="the portrait (PNG, JPEG, WebP ...)")
    parser.add_argument("--audio", type=Path, action="append", required=True, help=(
        "a voice recording; give it 1-4 times, one per speaker (speaker i gets strip i of --layout)"))
    parser.add_argument("--out", type=Path, required=True, help=(
        "the MP4 to write; an interrupted run continues when run again with the same options"))
    parser.add_argument("--prompt", default=None, help="what the video shows, or a schedule "
                        "'0: text / 2: text' (default: the bundle's; required with --model)")
    parser.add_argument("--negative-prompt", default=None, help="(default: the bundle's, else none)")
    parser.add_argument("--model", type=Path, default=None, help=(
        "DiT safetensors file or first shard (default: the bundle's); MultiTalk/InfiniteTalk adapter "
        "inside it or in --adapter"))
    parser.add_argument("--adapter", type=Path, default=None, help="audio adapter file beside the DiT")
    parser.add_argument("--lora", type=_lora, action="append", default=[], metavar="FILE[:STRENGTH]",
                        help="a LoRA applied at load (repeatable)")
    parser.add_argument("--bundle", type=Path, default=None, help=(
        "a MagicInfinite-Mini bundle folder: its parts fill in what is not given (default: the embedded "
        "one, unless --model is given)"))
    parser.add_argument("--vae", type=Path, default=None, help=(
        "the Wan2.1 VAE (wan_2.1_vae.safetensors), or a bundle's small-VAE file"))
    parser.add_argument("--text-encoder", type=Path, default=None, help=(
        "umT5-XXL safetensors as ComfyUI has it (umt5_xxl_fp16 / umt5_xxl_fp8_e4m3fn_scaled)"))
    parser.add_argument("--clip-vision", type=Path, default=None, help=(
        "clip_vision_h.safetensors: the portrait's CLIP tokens for a Wan2.1 i2v DiT (helps identity)"))
    parser.add_argument("--audio-encoder", type=Path, default=None, help=(
        "wav2vec2 folder or safetensors (default: the bundle's)"))
    parser.add_argument("--preset", choices=PRESET_CHOICES, default=NO_PRESET, help=(
        "a published model's configuration (size, windows, steps, shift, colour): flashtalk for "
        "SoulX-FlashTalk"))
    parser.add_argument("--width", type=int, default=None, help="(default: the bundle's, else 832)")
    parser.add_argument("--height", type=int, default=None, help="(default: the bundle's, else 480)")
    parser.add_argument("--steps", type=int, default=None, help="(default: the bundle's, else 4)")
    parser.add_argument("--shift", type=float, default=None, help=(
        "(default: the bundle's, else the solver's)"))
    parser.add_argument("--window-frames", type=int, default=None, help=(
        f"(default: the bundle's, else {DEFAULT_WINDOW_FRAMES})"))
    parser.add_argument("--motion-frames", type=int, default=None, help=(
        f"(default: the bundle's, else {DEFAULT_MOTION_FRAMES})"))
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


def part(flag: str, load: Callable[[], T]) -> T:
    """A part loaded from the file given with `flag`; a file it cannot load is reported under the flag."""
    try:
        return load()
    except CheckpointError as err:
        raise CheckpointError(f"{flag}: {err}") from err


def choose_bundle(
    args: argparse.Namespace, dtype: torch.dtype
) -> tuple[MiniBundle | None, dict[str, object]]:
    """The bundle that fills in parts (None: every part is named) and the defaults the model was made for:
    WAN_DEFAULTS' keys, plus "prompt" and "negative_prompt"."""
    if args.model is None or args.bundle is not None:
        bundle = load_bundle(args.bundle, compute_dtype=dtype)
        info = bundle.info
        return bundle, {"width": info.width, "height": info.height, "fps": info.fps,
                        "window_frames": info.window_frames, "motion_frames": info.motion_frames,
                        "steps": info.steps, "shift": info.shift, "prompt": info.default_prompt,
                        "negative_prompt": info.negative_prompt}
    missing = [flag for flag, name in (("--vae", args.vae), ("--text-encoder", args.text_encoder),
                                       ("--audio-encoder", args.audio_encoder)) if name is None]
    if missing:
        raise InputError(
            "--model: a Wan2.1 DiT renders with its own VAE and encoders; give " + "; ".join(
                f"{flag} {PART_FILES[flag]}" for flag in missing) + " (or --bundle for a bundle's parts).")
    if args.prompt is None:
        raise InputError("--prompt: required with --model (a bundle's default prompt is for its own cartoon "
                         "world); say what the video shows.")
    return None, {**WAN_DEFAULTS, "prompt": None, "negative_prompt": ""}


def encode_prompts(args: argparse.Namespace, bundle: MiniBundle | None, defaults: dict[str, object],
                   dtype: torch.dtype, device: torch.device) -> TextConditioning:
    """The prompt schedule and negative prompt through --text-encoder or the bundle's. A umT5-XXL is loaded
    for this alone and dropped before the DiT loads, so the two never share the memory."""
    encoder = bundle.text_encoder if args.text_encoder is None else part("--text-encoder", lambda: load_umt5(
        args.text_encoder, text_len=WanConfig.text_len, dtype=dtype, device=device))
    return build_text_conditioning(
        schedule=defaults["prompt"] if args.prompt is None else args.prompt,
        negative_prompt=defaults["negative_prompt"] if args.negative_prompt is None else args.negative_prompt,
        encode=lambda words: encoder.encode([words]))


def check_fit(config: WanConfig, text: TextConditioning, clip_tokens: torch.Tensor | None,
              audio_encoder: AudioEncoder) -> None:
    """Each part's output against what the DiT reads, naming the part that does not fit."""
    context = text.prompts[0][1]
    if tuple(context.shape[1:]) != (config.text_len, config.text_dim):
        raise InputError(
            f"--text-encoder: it gives {context.shape[1]} x {context.shape[2]} text contexts but the DiT "
            f"reads {config.text_len} x {config.text_dim} (umT5-XXL's 512 x 4096 for Wan2.1); give the text "
            "encoder the DiT was trained with.")
    if clip_tokens is not None:
        if config.model_type != "i2v":
            raise InputError(
                "--clip-vision: the DiT is text-to-video and reads no image tokens; leave it out.")
        if clip_tokens.shape[-1] != config.image_dim:
            raise InputError(
                f"--clip-vision: it gives {clip_tokens.shape[-1]}-wide tokens but the DiT reads "
                f"{config.image_dim} (CLIP ViT-H/14's 1280 for Wan2.1 i2v); give clip_vision_h.safetensors.")
    adapter = config.audio
    if adapter is not None and (audio_encoder.feature_layers, audio_encoder.feature_width) != (
            adapter.feature_layers, adapter.feature_width):
        raise InputError(
            f"--audio-encoder: it gives {audio_encoder.feature_layers} x {audio_encoder.feature_width} "
            f"features per frame but the DiT's audio adapter reads {adapter.feature_layers} x "
            f"{adapter.feature_width}; give the wav2vec2 the adapter was trained with.")


def load_video_vae(
    path: Path, bundle: MiniBundle | None, dtype: torch.dtype, device: torch.device
) -> VideoVAE:
    """A Wan2.1 VAE file, or a small-VAE file of the bundle's width."""
    shapes = open_tensor_file(path).shapes()
    if is_wan_vae(shapes):
        return part("--vae", lambda: load_wan_vae(path, dtype=dtype, device=device))
    if bundle is None:
        raise CheckpointError(f"--vae: {path} is not a Wan VAE; give {PART_FILES['--vae']}.")
    vae = SmallVideoVAE(bundle.info.vae_width)
    if {key: tuple(shape) for key, shape in shapes.items()} != {
        key: tuple(t.shape) for key, t in vae.state_dict().items()
    }:
        raise CheckpointError(
            f"--vae: {path} is neither a Wan2.1 VAE nor a small VAE of width {bundle.info.vae_width} (the "
            "bundle's); give wan_2.1_vae.safetensors, the bundle's vae.safetensors, or leave --vae out."
        )
    vae.load_state_dict({key: t.float() for key, t in load_file(str(path)).items()})
    return vae.eval().requires_grad_(False)


def render(args: argparse.Namespace, process: Process, log: TextIO) -> Path:
    if not 1 <= len(args.audio) <= MAX_TRACKS:
        raise InputError(f"--audio: expected 1 to {MAX_TRACKS} recordings, got {len(args.audio)}.")
    if args.out.suffix.lower() != ".mp4":
        raise InputError(f"--out: give a file name ending in .mp4, got {str(args.out)!r}.")
    dtype = COMPUTE_DTYPES[args.dtype or ("bf16" if process.device.type == "cuda" else "fp32")]
    bundle, defaults = choose_bundle(args, dtype)
    image = read_image(args.image)
    tracks = [SpeakerTrack(*read_audio(path), name=str(path)) for path in args.audio]

    text = encode_prompts(args, bundle, defaults, dtype, process.device)
    clip_tokens = None
    if args.clip_vision is not None:
        clip_vision = part("--clip-vision", lambda: load_clip_vision(
            args.clip_vision, dtype=dtype, device=process.device))
        clip_tokens = clip_vision.encode(image)
        del clip_vision
    audio_encoder = (bundle.audio_encoder if args.audio_encoder is None
                     else load_audio_encoder(args.audio_encoder))
    model = bundle.model if args.model is None else load_model(
        args.model, adapter_path=args.adapter, loras=args.lora, compute_dtype=dtype)
    check_fit(model.config, text, clip_tokens, audio_encoder)
    vae = bundle.vae if args.vae is None else load_video_vae(args.vae, bundle, dtype, process.device)
    module = model.module.to(process.device)
    if process.world > 1:
        parallelize(module, mode=args.parallel)

    fps = defaults["fps"] if args.preset == NO_PRESET else PRESETS[args.preset].fps
    features = embed_audio(audio_encoder, tracks, fps=fps)
    regions = None
    if len(tracks) > 1:
        regions = Regions(split_masks(len(tracks), args.layout, image.shape[2], image.shape[1]))

    def given(name: str, flag: object) -> object:
        return defaults[name] if flag is None else flag

    settings = with_preset(SamplerSettings(
        given("width", args.width), given("height", args.height), "distilled", given("steps", args.steps),
        seed=args.seed, options=SamplerOptions(
            window_frames=given("window_frames", args.window_frames),
            motion_frames=given("motion_frames", args.motion_frames),
            shift=given("shift", args.shift), preset=args.preset)), features.fps)

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

    sample_video(module, vae, image, features, text, settings, sink=sink, clip_tokens=clip_tokens,
                 regions=regions, device=process.device, callback=progress)
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
