"""`python -m magicinfinite_core demo`: the whole pipeline on the embedded model bundle, into an MP4.

Portrait (the bundled sample, or --image) + voice (the bundled sample, a generated speech-like track of
--seconds, or --audio) + prompt -> audio features with the bundle's wav2vec2 -> text contexts with the
bundle's text encoder -> the window sampler with the bundle's VAE at the size, window and 4-step schedule
the bundle was made for -> an H.264 + AAC file streamed window by window. Nothing is downloaded.

The embedded model is a small stand-in: what it shows depends on bundle.json's `trained` flag, and the demo
says so before it starts.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import av
import numpy as np
import torch

from magicinfinite_core.assets import (
    SAMPLE_PORTRAIT_PNG,
    SAMPLE_SPEECH_SEED,
    SAMPLE_SPEECH_WAV,
    load_sample_portrait,
    load_sample_speech,
)
from magicinfinite_core.audio import SpeakerTrack, embed_audio
from magicinfinite_core.audio.preprocess import ENCODER_SAMPLE_RATE
from magicinfinite_core.errors import InputError, Interrupted, MagicInfiniteError
from magicinfinite_core.imaging import from_uint8
from magicinfinite_core.mini.bundle import MiniBundle, load_bundle
from magicinfinite_core.mini.world import synthesize_speech
from magicinfinite_core.sampling import (
    FrameSink,
    Mp4Sink,
    SamplerOptions,
    SamplerSettings,
    StepProgress,
    VideoResult,
    build_text_conditioning,
    sample_video,
)
from magicinfinite_core.sampling.live import PLAYLIST_SUFFIX, LiveSink

DEFAULT_OUT = "magicinfinite_demo.mp4"
MAX_SEED = 2**64 - 1


@dataclass(frozen=True)
class DemoOptions:
    """What the user chose. seconds: length of the generated voice, or the cut of --audio (None: the
    bundled 4 s sample, or the whole --audio file)."""

    out: Path = Path(DEFAULT_OUT)
    seconds: float | None = None
    seed: int = 0
    image: Path | None = None
    audio: Path | None = None
    prompt: str | None = None
    live: bool = False  # also publish each finished window to the HLS playlist <out>.m3u8


class TextProgressBar:
    """A one-line progress bar on a text stream: redrawn in place on a terminal, one line per tenth of the
    way in a log file (where carriage returns would pile up)."""

    def __init__(self, label: str, total: int, stream: TextIO, width: int = 30):
        self.label, self.total, self.stream, self.width = label, max(total, 1), stream, width
        self.started = time.monotonic()
        self.interactive = stream.isatty()
        self._last_tenth = -1
        self._done_before: int | None = None  # units a resumed run did not have to do again

    def update(self, done: int, detail: str = "") -> None:
        fraction = min(done / self.total, 1.0)
        filled = round(fraction * self.width)
        elapsed = time.monotonic() - self.started
        if self._done_before is None:
            self._done_before = max(done - 1, 0)
        timing = f"{elapsed:.0f} s"
        if 0 < done < self.total:
            rate = elapsed / max(done - self._done_before, 1)
            timing += f", about {rate * (self.total - done):.0f} s left"
        line = (f"{self.label} [{'#' * filled}{'.' * (self.width - filled)}] {done}/{self.total} "
                f"{detail}{' ' if detail else ''}({timing})")
        if self.interactive:
            self.stream.write(f"\r{line}\033[K")
            if done >= self.total:
                self.stream.write("\n")
        elif math.floor(fraction * 10) > self._last_tenth:
            self._last_tenth = math.floor(fraction * 10)
            self.stream.write(line + "\n")
        self.stream.flush()


@contextmanager
def engine_warnings(log: TextIO) -> Iterator[None]:
    """The engine's logged warnings (e.g. why an unfinished render cannot continue) on the demo's stream."""
    handler = logging.StreamHandler(log)
    handler.setLevel(logging.WARNING)
    handler.setFormatter(logging.Formatter("warning: %(message)s"))
    engine = logging.getLogger("magicinfinite_core")
    engine.addHandler(handler)
    try:
        yield
    finally:
        engine.removeHandler(handler)


def read_image(path: Path) -> torch.Tensor:
    """The first picture of an image (or video) file as an IMAGE [1, H, W, 3] float 0..1."""
    if not path.is_file():
        raise InputError(f"--image: {str(path)!r} is not a file; give the path of a PNG, JPEG or WebP "
                         "picture.")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise InputError(f"--image: {str(path)!r} holds no picture (no video stream); give a PNG, "
                                 "JPEG or WebP picture.")
            frame = next(container.decode(video=0), None)
    except av.FFmpegError as err:
        raise InputError(f"--image: {str(path)!r} cannot be read as a picture ({err}); give a PNG, JPEG or "
                         "WebP picture.") from err
    if frame is None:
        raise InputError(f"--image: {str(path)!r} holds no decodable picture.")
    return from_uint8(frame.to_ndarray(format="rgb24"))[None]


def read_audio(path: Path) -> tuple[torch.Tensor, int]:
    """Every sample of the first audio stream of a file: (waveform [channels, samples] float32, rate)."""
    if not path.is_file():
        raise InputError(f"--audio: {str(path)!r} is not a file; give the path of a WAV, MP3, FLAC or M4A "
                         "recording.")
    chunks: list[np.ndarray] = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise InputError(f"--audio: {str(path)!r} holds no audio stream; give a recording.")
            stream = container.streams.audio[0]
            rate = stream.rate
            # Planar float keeps every channel apart whatever the file's own sample format.
            resampler = av.AudioResampler(format="fltp", layout=stream.layout.name, rate=rate)
            for frame in container.decode(stream):
                chunks.extend(out.to_ndarray() for out in resampler.resample(frame))
            chunks.extend(out.to_ndarray() for out in resampler.resample(None))
    except av.FFmpegError as err:
        raise InputError(f"--audio: {str(path)!r} cannot be decoded as audio ({err}).") from err
    if not chunks or sum(c.shape[1] for c in chunks) == 0:
        raise InputError(f"--audio: {str(path)!r} holds no audio samples.")
    return torch.from_numpy(np.concatenate(chunks, axis=1).astype(np.float32)), int(rate)


def _voice(options: DemoOptions, log: TextIO) -> tuple[torch.Tensor, int, str]:
    """(waveform [channels, samples], sample_rate, a description) of the voice the demo will use."""
    if options.audio is not None:
        waveform, rate = read_audio(options.audio)
        duration = waveform.shape[1] / rate
        if options.seconds is not None and options.seconds < duration:
            waveform = waveform[:, : round(options.seconds * rate)]
            return waveform, rate, f"{options.audio} (first {options.seconds:g} of {duration:.2f} s)"
        if options.seconds is not None:
            log.write(f"--seconds {options.seconds:g}: {options.audio} is only {duration:.2f} s long; the "
                      "video is as long as the recording.\n")
        return waveform, rate, f"{options.audio} ({duration:.2f} s)"
    if options.seconds is None:
        waveform, rate = load_sample_speech()
        return waveform, rate, f"the bundled sample {SAMPLE_SPEECH_WAV.name} ({waveform.shape[1] / rate:g} s)"
    track = synthesize_speech(SAMPLE_SPEECH_SEED, options.seconds, sample_rate=ENCODER_SAMPLE_RATE)
    return track.waveform[None], track.sample_rate, f"generated speech-like voice ({options.seconds:g} s)"


def _check_output(path: Path) -> None:
    if path.suffix.lower() != ".mp4":
        raise InputError(f"--out: the demo writes an MP4 video; give a name ending in .mp4, got "
                         f"{str(path)!r}.")
    if not path.parent.is_dir():
        raise InputError(f"--out: the folder {str(path.parent)!r} does not exist; create it first or "
                         "choose another path.")
    if path.is_dir():
        raise InputError(f"--out: {str(path)!r} is a folder; give a file name ending in .mp4.")


def describe_model(bundle: MiniBundle) -> str:
    """The plain statement of what the embedded model is, from its bundle.json."""
    info = bundle.info
    parameters = sum(p.numel() for p in bundle.model.module.parameters()) / 1e6
    size = f"{parameters:.1f}M-parameter DiT, {info.width}x{info.height} pixels at {info.fps:g} fps"
    if info.trained:
        what = ("trained only on a procedural world of cartoon faces (docs/mini.md): it animates that "
                "cartoon world only. Expect a cartoon face whose mouth follows the voice; a photo given with "
                "--image comes back in frame 0 only as well as its 64x64 codec keeps it, and is then drawn "
                "as a cartoon face")
    else:
        what = ("with UNTRAINED, randomly initialised weights: the video shows the pipeline working end to "
                "end (audio, text, windows, streaming to MP4), not a talking face")
    return (f"Model: {bundle.name}, a small stand-in model ({size}) {what}. Talking videos of a real "
            "portrait, at 480p or 720p and any length, need the Wan2.1-I2V-14B + InfiniteTalk/MultiTalk "
            "checkpoints in ComfyUI (see README.md).")


def run_demo(options: DemoOptions, *, log: TextIO | None = None) -> VideoResult:
    """Run the whole pipeline on the embedded bundle and stream the video to `options.out`; messages and
    progress go to `log` (default: stderr)."""
    log = sys.stderr if log is None else log
    if options.seconds is not None and not (math.isfinite(options.seconds) and options.seconds > 0):
        raise InputError(f"--seconds: expected a positive number of seconds, got {options.seconds}.")
    if not 0 <= options.seed <= MAX_SEED:
        raise InputError(f"--seed: expected a whole number from 0 to {MAX_SEED}, got {options.seed}.")
    out = Path(options.out)
    _check_output(out)
    started = time.monotonic()
    image = read_image(options.image) if options.image is not None else load_sample_portrait()
    waveform, sample_rate, voice = _voice(options, log)

    bundle = load_bundle()
    info = bundle.info
    log.write(describe_model(bundle) + "\n")
    prompt = info.default_prompt if options.prompt is None else options.prompt
    log.write(f"Portrait: {options.image or SAMPLE_PORTRAIT_PNG.name}\nVoice: {voice}\nPrompt: {prompt!r} "
              f"(words the model knows: {', '.join(info.prompt_words)})\n")

    bar = TextProgressBar("audio  ", 1, log)

    def audio_progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done)

    name = str(options.audio) if options.audio is not None else "voice"
    features = embed_audio(bundle.audio_encoder, [SpeakerTrack(waveform, sample_rate, name=name)],
                           fps=info.fps, progress=audio_progress)
    text = build_text_conditioning(schedule=prompt, negative_prompt=info.negative_prompt,
                                   encode=lambda words: bundle.text_encoder.encode([words]))
    settings = SamplerSettings(
        info.width, info.height, "distilled", info.steps, seed=options.seed,
        options=SamplerOptions(window_frames=info.window_frames, motion_frames=info.motion_frames,
                               shift=info.shift),
    )
    log.write(f"Video: {features.num_frames} frames ({features.num_frames / features.fps:.2f} s) at "
              f"{info.width}x{info.height}, {info.steps} steps per window of {info.window_frames} frames\n")
    bar = TextProgressBar("sample ", settings.total_steps(features.num_frames), log)
    sink: FrameSink = Mp4Sink(out, num_frames=features.num_frames, fps=features.fps,
                              waveform=features.waveform, sample_rate=features.sample_rate)
    if options.live:
        sink = LiveSink(sink, out.with_suffix(PLAYLIST_SUFFIX),
                        max_segment_frames=min(info.window_frames, features.num_frames))
        log.write(f"Live: {out.with_suffix(PLAYLIST_SUFFIX)} lists each window as it is finished\n")

    def sample_progress(step: StepProgress) -> None:
        bar.update(step.done, f"window {step.window + 1}/{step.num_windows}")

    with engine_warnings(log):
        result = sample_video(bundle.model.module, bundle.vae, image, features, text, settings, sink=sink,
                              callback=sample_progress)
    seconds = time.monotonic() - started
    log.write(f"Wrote {result.path.resolve()}: {result.num_frames} frames at {result.fps:g} fps, "
              f"{result.num_frames / result.fps:.2f} s, with audio (in {seconds:.0f} s).\n")
    return result


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"expected a whole number from 0 to {MAX_SEED}, got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=_positive_seconds, default=None, help=(
        "length of the video: a generated speech-like voice this long, or the first SECONDS of --audio "
        "(default: the bundled 4 s sample voice)"))
    parser.add_argument("--out", type=Path, default=Path(DEFAULT_OUT), help=(
        f"the MP4 to write (default: {DEFAULT_OUT} in the current folder); an interrupted run continues "
        "where it stopped when run again with the same options"))
    parser.add_argument("--seed", type=_seed, default=0, help="same seed, same video (default: 0)")
    parser.add_argument("--image", type=Path, default=None, help=(
        "your portrait (PNG, JPEG, WebP ...; default: the bundled sample portrait)"))
    parser.add_argument("--audio", type=Path, default=None, help=(
        "your voice recording (WAV, MP3, FLAC, M4A ...); the video is as long as it"))
    parser.add_argument("--prompt", default=None, help=(
        "what the video shows; or a schedule, e.g. '0: a neutral person / 2: a smiling person' "
        "(default: the model's own prompt)"))
    parser.add_argument("--live", action="store_true", help=(
        "also publish each finished window to an HLS playlist beside --out (<name>.m3u8), playable while "
        "the video is made, e.g. with ffplay or VLC"))


def main(args: argparse.Namespace, *, log: TextIO | None = None) -> int:
    log = sys.stderr if log is None else log
    options = DemoOptions(out=args.out, seconds=args.seconds, seed=args.seed, image=args.image,
                          audio=args.audio, prompt=args.prompt, live=args.live)
    try:
        run_demo(options, log=log)
    except (KeyboardInterrupt, Interrupted):
        log.write("\nStopped. Run the same command again to continue from the last finished window.\n")
        return 130
    except MagicInfiniteError as err:
        log.write(f"\nerror: {err}\n")
        return 2
    return 0
