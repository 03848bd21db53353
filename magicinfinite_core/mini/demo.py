"""`python -m magicinfinite_core demo`: the whole pipeline on the embedded model bundle, into an MP4.

Portrait (the bundled sample, or --image) + voice (the bundled sample, a generated speech-like track of
--seconds, or --audio) + prompt -> audio features with the bundle's wav2vec2 -> text contexts with the
bundle's text encoder -> the window sampler with the bundle's VAE at the size, window and 4-step schedule
the bundle was made for -> an H.264 + AAC file streamed window by window. Nothing is downloaded.

The embedded model is a small stand-in: what it shows depends on bundle.json's `trained` flag, and the demo
says so before it starts. Options and the command line's checks and messages are in demo_command.py, which
imports no torch.

Each seed renders into its own `<out>.parts/seed-<seed>/` folder, so an unfinished render of another seed
stays where it is (the demo says where) and can still be continued.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
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
from magicinfinite_core.errors import InputError, Interrupted
from magicinfinite_core.imaging import from_uint8
from magicinfinite_core.mini.bundle import MiniBundle, load_bundle
from magicinfinite_core.mini.demo_command import DemoOptions
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
from magicinfinite_core.sampling.resume import ResumeStore, warn_outdated
from magicinfinite_core.sampling.sinks import PARTS_SUFFIX

SEED_FOLDER = "seed-"


class TextProgressBar:
    """A one-line progress bar on a text stream: redrawn in place on a terminal, one line per tenth of the
    way in a log file (where carriage returns would pile up).

    The time left is measured from the first update on, so what came before it (loading, the first step's
    one-time costs, units a resumed run did not redo) does not count as the pace."""

    def __init__(self, label: str, total: int, stream: TextIO, width: int = 30,
                 clock: Callable[[], float] = time.monotonic):
        self.label, self.total, self.stream, self.width = label, max(total, 1), stream, width
        self.clock = clock
        self.started = clock()
        self.interactive = stream.isatty()
        self._last_tenth = -1
        self._first: tuple[float, int] | None = None  # (time, units done) at the first update

    def update(self, done: int, detail: str = "") -> None:
        fraction = min(done / self.total, 1.0)
        filled = round(fraction * self.width)
        now = self.clock()
        if self._first is None:
            self._first = (now, done)
        timing = f"{now - self.started:.0f} s"
        first_time, first_done = self._first
        if first_done < done < self.total:
            rate = (now - first_time) / (done - first_done)
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


def parts_folder(out: Path, seed: int) -> Path:
    """Where the windows of `out`'s render with `seed` are kept until the video is finished."""
    return out.with_name(out.name + PARTS_SUFFIX) / f"{SEED_FOLDER}{seed}"


def other_seeds(out: Path, seed: int) -> dict[int, Path]:
    """Unfinished renders of `out` with other seeds: seed (as its resume state says) -> its parts folder."""
    found = {}
    for folder in parts_folder(out, seed).parent.glob(f"{SEED_FOLDER}*"):
        other = ResumeStore(folder).saved_seed()
        if other is not None and other != seed:
            found[other] = folder
    return dict(sorted(found.items()))


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
    """Run the whole pipeline on the embedded bundle and stream the video to `options.out` (checked by
    demo_command.check_output); messages and progress go to `log` (default: stderr). Ctrl-C while sampling
    raises Interrupted, saying what is kept and how to continue."""
    log = sys.stderr if log is None else log
    out = Path(options.out)
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
    parts = parts_folder(out, options.seed)
    with engine_warnings(log):  # an earlier version kept one render directly in <out>.parts/
        warn_outdated([parts.parent], f"this render starts over in {parts}; delete the other files of "
                      f"{parts.parent} to free their disk space.")
    for seed, folder in other_seeds(out, options.seed).items():
        log.write(f"The unfinished render of seed {seed} stays in {folder}: run with --seed {seed} to "
                  "continue it, or delete that folder.\n")
    bar = TextProgressBar("sample ", settings.total_steps(features.num_frames), log)
    sink: FrameSink = Mp4Sink(out, num_frames=features.num_frames, fps=features.fps,
                              waveform=features.waveform, sample_rate=features.sample_rate, parts=parts)
    if options.live:
        sink = LiveSink(sink, out.with_suffix(PLAYLIST_SUFFIX),
                        max_segment_frames=min(info.window_frames, features.num_frames))
        log.write(f"Live: {out.with_suffix(PLAYLIST_SUFFIX)} lists each window as it is finished\n")
    windows_done: int | None = None  # before this window, every window is stored in `parts`

    def sample_progress(step: StepProgress) -> None:
        nonlocal windows_done
        if windows_done is None and step.window > 0:
            log.write(f"Continuing the unfinished render in {parts}: from window {step.window + 1} of "
                      f"{step.num_windows}.\n")
        windows_done = step.window
        bar.update(step.done, f"window {step.window + 1}/{step.num_windows}")

    try:
        with engine_warnings(log):
            result = sample_video(bundle.model.module, bundle.vae, image, features, text, settings,
                                  sink=sink, callback=sample_progress)
    except KeyboardInterrupt as err:
        if windows_done is None:
            raise Interrupted("Stopped before the first step: run the same command again to start (or "
                              "continue) the video.") from err
        if windows_done == 0:
            raise Interrupted("Stopped in window 1, so nothing is kept: the same command starts "
                              "over.") from err
        kept = "Window 1 is" if windows_done == 1 else f"Windows 1-{windows_done} are"
        raise Interrupted(f"Stopped. {kept} kept in {parts}: run the same command again to continue from "
                          f"window {windows_done + 1}.") from err
    with suppress(OSError):  # the parts folder of every seed: gone once no seed has an unfinished render
        parts.parent.rmdir()
    seconds = time.monotonic() - started
    log.write(f"Wrote {result.path.resolve()}: {result.num_frames} frames at {result.fps:g} fps, "
              f"{result.num_frames / result.fps:.2f} s, with audio (in {seconds:.0f} s).\n")
    return result
