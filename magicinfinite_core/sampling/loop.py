"""The window loop: a talking video of any length, one window at a time, in flat memory.

Per window (see window.py for the plan): the window's reference frame (the portrait, or the source video's
frame at the window's position when dubbing) conditions it through y; the motion frames it starts from
are encoded and held in its first latents; it reads the audio features of its own frames and the prompt at
its centre; the solver denoises it with guidance; it is decoded, optionally colour-matched, its new frames
go to the sink, and its last frames become the next window's motion frames.

Motion schemes: "infinitetalk" (default) writes the motion latents clean into the first latents before and
after every step and keeps the reference in y; "multitalk" re-noises them to the current sigma and takes
y's reference from the last motion frame. Window 0 holds the reference's latent in its first latent frame.

Noise is drawn on the CPU from a generator seeded per window from the seed, so the same seed gives the same
video and a resumed render gives the same video as an uninterrupted one.
"""

from __future__ import annotations

import glob
import hashlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from magicinfinite_core.audio.features import AudioFeatures, check_adapter_compatible
from magicinfinite_core.errors import InputError
from magicinfinite_core.imaging import check_image, fit_image
from magicinfinite_core.latents import (
    LATENT_CHANNELS,
    SPACE_STRIDE,
    VideoVAE,
    decode,
    encode,
    image_conditioning,
    latent_frames,
)
from magicinfinite_core.masks.regions import Regions, check_binding
from magicinfinite_core.models.wan import WanModel
from magicinfinite_core.sampling.colour import match_colour
from magicinfinite_core.sampling.denoiser import ModelFacts, VideoDenoiser, WindowConditioning, as_denoiser
from magicinfinite_core.sampling.guidance import Condition
from magicinfinite_core.sampling.live import LiveSink, playlist_path, publish_finished
from magicinfinite_core.sampling.resume import ResumeState, fingerprint, module_fingerprint, warn_outdated
from magicinfinite_core.sampling.seams import blend_seam_
from magicinfinite_core.sampling.settings import SamplerSettings
from magicinfinite_core.sampling.sinks import (
    PARTS_SUFFIX,
    FrameSink,
    MemorySink,
    Mp4Sink,
    VideoResult,
    finished_video,
)
from magicinfinite_core.sampling.solvers import SOLVERS
from magicinfinite_core.sampling.text import TextConditioning
from magicinfinite_core.sampling.window import Window, plan_windows


@dataclass(frozen=True)
class StepProgress:
    """Reported after every step of every window; `latent` is the step's x0 prediction (normalised)."""

    window: int
    num_windows: int
    step: int
    num_steps: int
    done: int  # steps finished over the whole video
    total: int
    latent: torch.Tensor


ProgressCallback = Callable[[StepProgress], None]


def window_seed(seed: int, window_index: int) -> int:
    """An independent 63-bit seed per window, derived from the run's seed."""
    digest = hashlib.sha256(f"magicinfinite:{seed}:{window_index}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


TOKEN_PATCH = (1, 2, 2)


@dataclass(frozen=True, eq=False)
class SampleRequest:
    """What one video is made of: everything but the model, the VAE, the device and where frames go.

    reference: IMAGE [N, H, W, 3] 0..1; one frame is the portrait, several frames a source video to dub
    (each window takes its reference from the source at its own position). clip_tokens [1, 257, image_dim]
    (CLIP vision penultimate hidden states) are optional. regions bind speaker i's audio to region i.
    resume_key names what the model's and VAE's own identities do not show, so a resume never mixes
    renders.
    """

    reference: torch.Tensor
    audio: AudioFeatures
    text: TextConditioning
    settings: SamplerSettings
    clip_tokens: torch.Tensor | None = None
    regions: Regions | None = None
    resume_key: str = ""

    def check(self, facts: ModelFacts) -> None:
        """Refuse a request this model cannot sample, before any work starts."""
        audio, reference, settings = self.audio, self.reference, self.settings
        if audio is None or audio.num_frames < 1:
            raise InputError("audio: no audio frames; connect audio features from MagicInfiniteAudioEmbed.")
        if facts.audio is None:
            raise InputError("model: it has no audio adapter; load a MultiTalk/InfiniteTalk adapter with it.")
        check_adapter_compatible(audio, facts.audio)
        if reference.ndim != 4 or reference.shape[0] < 1 or reference.shape[-1] < 3:
            raise InputError(
                f"image: expected an IMAGE [frames, height, width, 3], got shape {tuple(reference.shape)}."
            )
        check_image(reference, "image")
        if settings.guidance.needs_negative_text and self.text.negative is None:
            raise InputError(
                f"text: text_cfg {settings.text_cfg:g} needs a negative prompt; connect negative "
                "conditioning or set text_cfg to 1."
            )
        check_binding(self.regions, audio.num_speakers)
        if facts.patch_size != TOKEN_PATCH:  # speaker regions are cut on a grid of 2 x 2 latent cells
            raise InputError(f"model: expected Wan2.1's patch size {TOKEN_PATCH} (frames, height, width), "
                             f"found {facts.patch_size}; load a Wan2.1 model.")


def run_hash(model: VideoDenoiser, vae: VideoVAE, request: SampleRequest) -> str:
    """Digest of every input that shapes the video: a resume is only taken up when this matches."""
    audio, text = request.audio, request.text
    probes = sorted({0, audio.num_frames // 2, audio.num_frames - 1})
    return fingerprint({
        "settings": asdict(request.settings),
        "model": model.identity(),
        # A VAE that is not a module (a host's wrapper) is named by the caller in resume_key.
        "vae": module_fingerprint(vae.state_dict().items()) if isinstance(vae, nn.Module) else "",
        "reference": request.reference,
        "audio": (audio.num_frames, audio.fps, audio.sample_rate, audio.waveform,
                  [audio.window(frame, frame + 1) for frame in probes]),
        "text": ([(start, context) for start, context in text.prompts], text.negative),
        "clip": request.clip_tokens,
        "regions": None if request.regions is None else request.regions.masks,
        "key": request.resume_key,
    })


class WindowSampler:
    """Holds what is fixed for the whole video and samples one window at a time, held on the motion frames
    it is given (the loop gives each window the previous one's last frames)."""

    def __init__(self, model: VideoDenoiser, vae: VideoVAE, request: SampleRequest, device: torch.device):
        self.model, self.vae = model, vae
        self.audio, self.text, self.settings = request.audio, request.text, request.settings
        self.source = request.reference
        self.device = device
        self.sigmas = self.settings.schedule()
        self.solver = SOLVERS[self.settings.solver]
        self.guidance = self.settings.guidance
        self.i2v = model.facts.i2v
        clip = request.clip_tokens
        self.clip = clip.to(device) if clip is not None and self.i2v else None
        regions = request.regions
        masks = None if regions is None else regions.token_masks(self.settings.width, self.settings.height)
        self.masks = None if masks is None else masks.to(device)
        self._fitted: tuple[int, torch.Tensor] | None = None
        self._conditioning: tuple[tuple[int, int], torch.Tensor] | None = None

    def source_index(self, window: Window) -> int:
        """The source frame a window takes its reference from: 0 for a portrait, the window's start when
        dubbing (a source shorter than the audio holds its last frame)."""
        return min(window.start, self.source.shape[0] - 1)

    def reference(self, index: int) -> torch.Tensor:
        """Source frame `index` fitted to the video size, [1, H, W, 3] (the last one is kept)."""
        if self._fitted is None or self._fitted[0] != index:
            frame = self.source[index : index + 1, :, :, :3].float()
            self._fitted = (index, fit_image(frame, self.settings.width, self.settings.height))
        return self._fitted[1]

    def conditioning(self, reference: torch.Tensor, window: Window,
                     cache_key: int | None) -> torch.Tensor | None:
        """y for this window. With a cache key (the source frame), the last y is reused while the key and
        the window length stay the same: every window of a portrait-driven video but the last."""
        if not self.i2v:
            return None
        key = (cache_key, window.num_frames)
        if cache_key is None or self._conditioning is None or self._conditioning[0] != key:
            y = image_conditioning(self.vae, reference, window.num_frames).to(self.device)
            if cache_key is None:
                return y
            self._conditioning = (key, y)
        return self._conditioning[1]

    def sample(self, window: Window, motion: torch.Tensor | None, on_step: Callable[[int, torch.Tensor], None]
               ) -> torch.Tensor:
        """Denoise and decode one window: frames [num_frames, H, W, 3] float32 0..1 (on the CPU)."""
        settings, device = self.settings, self.device
        index = self.source_index(window)
        reference = self.reference(index)
        multitalk_motion = settings.options.motion_mode == "multitalk" and motion is not None
        if multitalk_motion:  # MultiTalk conditions on the last motion frame instead of the reference
            y = self.conditioning(motion[-1:], window, cache_key=None)
        else:
            y = self.conditioning(reference, window, cache_key=index)
        held = encode(self.vae, reference if motion is None else motion).to(device)
        features = self.audio.window(window.start, window.stop)[None].to(device)
        audio_tokens = self.model.encode_audio(features)
        # CFG's unconditional audio: the adapter's tokens of all-zero features, as the references do.
        null_tokens = None
        if self.guidance.needs_null_audio:
            null_tokens = self.model.encode_audio(torch.zeros_like(features))
        centre_seconds = (window.start + (window.num_frames - 1) / 2) / self.audio.fps
        context = self.text.context_at(centre_seconds).to(device)
        negative = self.text.negative.to(device) if self.text.negative is not None else None

        generator = torch.Generator("cpu").manual_seed(window_seed(settings.seed, window.index))
        shape = (1, LATENT_CHANNELS, latent_frames(window.num_frames), settings.height // SPACE_STRIDE,
                 settings.width // SPACE_STRIDE)

        def noise() -> torch.Tensor:
            return torch.randn(shape, generator=generator).to(device)

        def noise_held() -> torch.Tensor:
            return torch.randn(held.shape, generator=generator).to(device)

        def constrain(x: torch.Tensor, sigma: float) -> torch.Tensor:
            x = x.clone()
            if multitalk_motion and sigma > 0:
                x[:, :, : held.shape[2]] = (1 - sigma) * held + sigma * noise_held()
            else:
                x[:, :, : held.shape[2]] = held
            return x

        def denoise(x: torch.Tensor, sigma: float) -> torch.Tensor:
            def run(condition: Condition) -> torch.Tensor:
                return self.model.velocity(x, sigma, WindowConditioning(
                    context=context if condition.uses_text else negative,
                    image_latent=y,
                    clip_tokens=self.clip,
                    audio_tokens=audio_tokens if condition.uses_audio else null_tokens,
                    speaker_masks=self.masks,
                ))

            return x - sigma * self.guidance.velocity(run)

        latent = self.solver(denoise, noise(), self.sigmas, noise_sampler=noise, constrain=constrain,
                             callback=lambda step, x, x0: on_step(step, x0))
        frames = decode(self.vae, latent.float()).cpu()
        if settings.options.colour_match > 0:
            frames = match_colour(frames, reference, settings.options.colour_match)
        return frames


@torch.no_grad()
def sample_video(
    model: VideoDenoiser | WanModel,
    vae: VideoVAE,
    reference: torch.Tensor,
    audio: AudioFeatures,
    text: TextConditioning,
    settings: SamplerSettings,
    *,
    sink: FrameSink | None = None,
    clip_tokens: torch.Tensor | None = None,
    regions: Regions | None = None,
    device: torch.device | str = "cpu",
    callback: ProgressCallback | None = None,
    resume_key: str = "",
) -> VideoResult:
    """Sample a video as long as the audio, window by window, into `sink` (default: frames in memory).

    The inputs are those of `SampleRequest`. `callback` runs after every step and may raise (cancel): the
    sink is then aborted and, for a resumable sink, the finished windows are kept for the next run with
    the same inputs.
    """
    model = as_denoiser(model)
    request = SampleRequest(reference, audio, text, settings, clip_tokens, regions, resume_key)
    request.check(model.facts)
    if sink is None:
        sink = MemorySink(audio.num_frames, audio.fps, audio.waveform, audio.sample_rate)
    digest = run_hash(model, vae, request) if sink.resume_store is not None else ""
    return _sample(model, vae, request, sink, torch.device(device), callback, digest)


@torch.no_grad()
def stream_video(
    model: VideoDenoiser | WanModel,
    vae: VideoVAE,
    reference: torch.Tensor,
    audio: AudioFeatures,
    text: TextConditioning,
    settings: SamplerSettings,
    *,
    directory: Path | str,
    filename_prefix: str,
    clip_tokens: torch.Tensor | None = None,
    regions: Regions | None = None,
    device: torch.device | str = "cpu",
    callback: ProgressCallback | None = None,
    resume_key: str = "",
    crf: int = 18,
    live: bool = False,
) -> VideoResult:
    """`sample_video` streamed into `directory/<filename_prefix>_<inputs hash>.mp4` (H.264 + AAC).

    The name comes from the inputs, so running the same inputs again continues an interrupted render, or
    returns the finished file as it is, and different inputs never overwrite each other's video. `live`
    also publishes each finished window to the HLS playlist `directory/<filename_prefix>.m3u8` (live.py).
    """
    model = as_denoiser(model)
    request = SampleRequest(reference, audio, text, settings, clip_tokens, regions, resume_key)
    request.check(model.facts)
    digest = run_hash(model, vae, request)
    path = Path(directory) / f"{filename_prefix}_{digest[:12]}.mp4"
    if not path.resolve().is_relative_to(Path(directory).resolve()):
        raise InputError(f"filename_prefix: {filename_prefix!r} leads outside the output folder {directory}.")
    stem = path.name.removesuffix(f"{digest[:12]}.mp4")  # renders of this prefix with other inputs
    warn_outdated(path.parent.glob(f"{glob.escape(stem)}{'[0-9a-f]' * 12}.mp4{PARTS_SUFFIX}"),
                  f"this render starts over as {path.name}; delete that folder to free its disk space.")
    playlist = playlist_path(Path(directory), filename_prefix) if live else None
    if path.is_file():
        if playlist is not None:
            publish_finished(playlist, path, audio.fps, audio.num_frames)
        return finished_video(path, fps=audio.fps, num_frames=audio.num_frames, waveform=audio.waveform,
                              sample_rate=audio.sample_rate)
    path.parent.mkdir(parents=True, exist_ok=True)
    sink: FrameSink = Mp4Sink(path, num_frames=audio.num_frames, fps=audio.fps, waveform=audio.waveform,
                              sample_rate=audio.sample_rate, crf=crf)
    if playlist is not None:
        sink = LiveSink(sink, playlist,
                        max_segment_frames=min(settings.options.window_frames, audio.num_frames))
    return _sample(model, vae, request, sink, torch.device(device), callback, digest)


def _check_decoded(frames: torch.Tensor, window: Window, num_windows: int) -> None:
    """Stop before NaN pixels reach the video: clamping would turn them into a black picture that looks
    like a success. The image and audio were checked finite up front, so the model is the likely cause."""
    if not torch.isfinite(frames).all():
        raise InputError(
            f"model: window {window.index + 1} of {num_windows} came out as NaN (not a number) pixels, so "
            "the model produces invalid values: a damaged or NaN-filled model or LoRA file, a LoRA strength "
            "far too high, or fp16 overflow (the VAE is the other suspect). Check the model, LoRA and VAE "
            "files and the LoRA strengths; this window was not written."
        )


def _sample(model: VideoDenoiser, vae: VideoVAE, request: SampleRequest, sink: FrameSink,
            device: torch.device, callback: ProgressCallback | None, digest: str) -> VideoResult:
    settings, options = request.settings, request.settings.options
    windows = plan_windows(request.audio.num_frames, options.window_frames, options.motion_frames)
    sampler = WindowSampler(model, vae, request, device)
    num_steps = len(sampler.sigmas) - 1
    store = sink.resume_store
    state = store.load(digest) if store is not None else None
    first = min(state.next_window, len(windows)) if state is not None else 0
    motion = state.motion_frames if state is not None and first > 0 else None
    try:
        sink.start(first)
        for window in windows[first:]:
            def on_step(step: int, x0: torch.Tensor, window: Window = window) -> None:
                if callback is not None:
                    callback(StepProgress(window.index, len(windows), step, num_steps,
                                          window.index * num_steps + step + 1, len(windows) * num_steps, x0))

            frames = sampler.sample(window, motion, on_step)
            _check_decoded(frames, window, len(windows))
            if motion is not None and options.seam_frames > 0:
                blend_seam_(frames, motion, options.seam_frames)
            following = windows[window.index + 1] if window.index + 1 < len(windows) else None
            if following is not None:
                offset = following.start - window.start
                motion = frames[offset : offset + options.motion_frames].clone()
            sink.write(window.index, frames[window.num_dropped : window.num_dropped + window.num_output])
            del frames
            if store is not None:
                remaining = motion if following is not None else torch.zeros(0)
                store.save(ResumeState(digest, settings.seed, window.index + 1, remaining))
        return sink.finish()
    except BaseException:
        sink.abort()
        raise
