# ruff: noqa: E402  (imports follow the sys.path line that makes them this checkout's)
"""MagicInfinite-Mini quality figures: what a viewer sees, against the world's ground truth, on unseen seeds.

    OMP_NUM_THREADS=1 python bench/quality.py [--bundle FOLDER] [--run-dir training/runs/mini] [--clips 6]
                                              [--fidelity-clips 3] [--drift-seconds 120] [--only SECTIONS]
    OMP_NUM_THREADS=1 python bench/quality.py --only codec --vae training/runs/mini/vae/checkpoint.safetensors

The world renders the true video for the same seed, audio and prompt, so every figure compares the
model's video with it. Everything runs through the pack's own path: the bundle's encoders, `embed_audio`,
`sample_video` with the bundle's settings (33-frame windows, 9 motion frames, 4 distilled steps), regions
as `masks.Regions`. The student is the bundle's DiT; the teacher (stage 2, 16 dpmpp_2m steps with text +
audio CFG) is compared when the recipe's run folder keeps it (teacher.safetensors).

- Codec (the VAE alone): PSNR of the photos of people and things scikit-image ships (never seen in
  training; centre-cropped to the model's 64x64 as the demo fits an --image; its texture photos apart) and
  of world portraits; frame-to-frame change inside latent
  groups / across group boundaries, through the VAE and in the ground truth (whose ratio is ~1: a VAE that
  crushes in-group motion and dumps it at the boundary scores far below).
- Fidelity per window index (8 s clips): PSNR and SSIM of the face box (union over the clip) against the
  ground truth, the same for the ground truth through the VAE (the ceiling), and the eye band's contrast
  relative to the reference frame's (`measure_eye_contrast`: where the world draws the eyes) and the face
  box's edge energy relative to the reference frame's (mean Sobel magnitude: the outline, hair, eyes and
  mouth; a blurred face scores below 1, the ground truth about 1.05 as its head turns). Windows
  2..N must not fall below window 1. Beside it, the PSNR with every window held on the ground truth's own
  frames instead of the previous window's output: the loss that remains is the relay's and the model's,
  not the divergence of the model's own (plausible) head motion from the world's random one. And the PSNR
  of a perfect model: the world itself redrawn with other random head motion from the same first pose
  (`retake`), which falls as the two heads part.
- The 8 s demo (`python -m magicinfinite_core demo --seconds 8`: sample portrait, generated voice, seed 0):
  the mean frame change across window seams / the median change of the steps that change the picture
  (>= 0.002 mean |d| on 0..1 RGB) inside windows, with its standard error (the 8 s demo has 7 seams;
  `--demo-seconds 30` gives 30) and what a step across a latent-group boundary inside windows scores; the
  share of consecutive frames differing by < 0.002; in-group / cross-group change; eye-band contrast and
  face edge energy per window relative to the portrait's.
- Lip sync: Pearson r, per clip, between the generated mouth opening (darkness inside the clip's known mouth
  box, every frame) and the audio loudness envelope; mean over clips; shuffled-audio control (another
  clip's envelope). Ceilings: the ground truth itself, and the ground truth through the VAE; where the VAE
  loses the mouth's motion: r of its change from frame to frame with the true change, by frame of a group.
- Speaker binding: two characters on independent tracks, regions = left/right halves; each mouth's r with
  its own track and with the other's.
- Drift: a long video from a still portrait, with and without colour matching; per segment, the face
  box's mean colour distance to the reference (RGB, 0-255) and mean absolute difference outside the mouth.
- Last window: the sampler's full-length last window (past the audio, trimmed) against one cut to the frames
  left (the smallest 4k+1 ending on the last frame, as the sampler had it before), on clips whose last window
  outputs 2-9 frames: face PSNR and mouth-opening error in the last window, the last seam's change / the
  median changing step, lip sync r over the clip.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# This checkout's engine (not another installed copy) and the recipe's teacher settings (top-level training/)
sys.path.insert(0, str(ROOT))

import kornia
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from magicinfinite_core.assets import SAMPLE_PORTRAIT_SEED, SAMPLE_SPEECH_SEED, load_sample_portrait
from magicinfinite_core.audio import AudioFeatures, SpeakerTrack, embed_audio
from magicinfinite_core.checkpoints import load_model
from magicinfinite_core.imaging import fit_image
from magicinfinite_core.latents import TIME_STRIDE, decode, encode
from magicinfinite_core.masks.regions import Regions
from magicinfinite_core.mini.bundle import MiniBundle, load_bundle
from magicinfinite_core.mini.vae import SmallVideoVAE
from magicinfinite_core.mini.world import (
    Clip,
    ClipSpec,
    correlation,
    generate_clip,
    mean_frame_change,
    measure_eye_contrast,
    measure_mouth_opening,
    render_portrait,
    retake,
    synthesize_speech,
    union_boxes,
)
from magicinfinite_core.sampling import SamplerOptions, SamplerSettings, TextConditioning, loop, sample_video
from magicinfinite_core.sampling.denoiser import as_denoiser
from magicinfinite_core.sampling.loop import SampleRequest, WindowSampler
from magicinfinite_core.sampling.seams import DEFAULT_SEAM_FRAMES
from magicinfinite_core.sampling.window import Window, plan_windows
from training.distill import (
    TEACHER_AUDIO_CFG,
    TEACHER_SOLVER,
    TEACHER_STEPS,
    TEACHER_TEXT_CFG,
)
from training.recipe import DEFAULT_RUN_DIR

FIRST_SEED = 2_000_000  # training uses seeds below 1,000,000
CLIP_SECONDS = 4.0
FIDELITY_SECONDS = 8.0
DEMO_SECONDS = 8.0
TAKES = 3  # the world redrawn with other head motion, per fidelity clip
STILL = 0.002  # mean |d| on 0..1 RGB below which two frames look the same
# scikit-image's photos of people and things (what a user passes as --image), and its texture photos
# (brick, grass, gravel: a blur of their mean colour already scores high on them)
PHOTOS = ("astronaut", "camera", "cat", "coffee", "coins", "rocket")
TEXTURES = ("brick", "grass", "gravel")


@dataclass(frozen=True)
class Sampler:
    name: str
    model: torch.nn.Module
    solver: str
    steps: int
    text_cfg: float
    audio_cfg: float
    shift: float | None = None
    seam_frames: int = DEFAULT_SEAM_FRAMES

    @property
    def calls_per_window(self) -> int:
        settings = self.settings(0, 0.0)
        return (len(settings.schedule()) - 1) * settings.guidance.passes

    def settings(self, seed: int, colour_match: float) -> SamplerSettings:
        return SamplerSettings(width=64, height=64, solver=self.solver, steps=self.steps,
                               text_cfg=self.text_cfg, audio_cfg=self.audio_cfg, seed=seed,
                               options=SamplerOptions(window_frames=33, motion_frames=9,
                                                      colour_match=colour_match, shift=self.shift,
                                                      seam_frames=self.seam_frames))


def inputs(bundle: MiniBundle, tracks: list[torch.Tensor], prompt: str
           ) -> tuple[AudioFeatures, TextConditioning]:
    """The audio features and text conditioning of one render, through the bundle's encoders."""
    audio = embed_audio(bundle.audio_encoder, [SpeakerTrack(t[None], 16000, name=f"track {i + 1}")
                                               for i, t in enumerate(tracks)], fps=25.0)
    contexts = bundle.text_encoder.encode([prompt, bundle.info.negative_prompt])
    return audio, TextConditioning.single(contexts[:1], contexts[1:])


def render(bundle: MiniBundle, sampler: Sampler, reference: torch.Tensor, tracks: list[torch.Tensor],
           prompt: str, regions: Regions | None, seed: int, colour_match: float = 0.0
           ) -> tuple[torch.Tensor, float, int]:
    """Frames [N, H, W, 3], seconds taken and windows sampled."""
    audio, text = inputs(bundle, tracks, prompt)
    settings = sampler.settings(seed, colour_match)
    windows = settings.total_steps(audio.num_frames) // (len(settings.schedule()) - 1)
    started = time.perf_counter()
    result = sample_video(sampler.model, bundle.vae, reference, audio, text, settings, regions=regions)
    return result.frames, time.perf_counter() - started, windows


def held_on_truth(bundle: MiniBundle, sampler: Sampler, clip: Clip, regions: Regions, seed: int
                  ) -> torch.Tensor:
    """The clip's video with every window held on the ground truth's own frames instead of the previous
    window's output: what is left of the later windows' loss once the model's own trajectory is taken away."""
    audio, text = inputs(bundle, [clip.audio[0]], clip.prompt)
    settings = sampler.settings(seed, 0.0)
    request = SampleRequest(clip.frames[:1], audio, text, settings, None, regions, "")
    windows = plan_windows(audio.num_frames, settings.options.window_frames, settings.options.motion_frames)
    one = WindowSampler(as_denoiser(sampler.model), bundle.vae, request, torch.device("cpu"))
    out = []
    for w in windows:
        motion = None if w.index == 0 else clip.frames[w.start : w.start + settings.options.motion_frames]
        out.append(one.sample(w, motion, lambda step, x0: None)[w.num_dropped : w.num_dropped + w.num_output])
    return torch.cat(out)


def round_trip(bundle: MiniBundle, frames: torch.Tensor) -> torch.Tensor:
    """Frames through the VAE (encode + decode); frames past the last 4k+1 are dropped."""
    return decode(bundle.vae, encode(bundle.vae, frames))


def edge_energy(frames: torch.Tensor, box: list[int]) -> torch.Tensor:
    """Mean Sobel gradient magnitude inside the box (x0, y0, x1, y1) per frame [N]: the detail drawn there."""
    x0, y0, x1, y1 = box
    return kornia.filters.sobel(frames.permute(0, 3, 1, 2))[:, :, y0:y1, x0:x1].mean(dim=(1, 2, 3))


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1.0 / F.mse_loss(a, b).clamp_min(1e-10)))


def ssim(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean SSIM of frames [N, H, W, 3] (7x7 Gaussian window)."""
    return float(kornia.metrics.ssim(a.permute(0, 3, 1, 2), b.permute(0, 3, 1, 2), 7).mean())


def group_change_ratio(step_changes: torch.Tensor, first_frame: int = 0) -> tuple[float, float]:
    """Mean change of steps inside a latent group and across group boundaries, for frames counted from a
    window's first frame (`first_frame` = the first step's frame index in the window): frame 0 is a latent
    of its own, then groups of 4, so step j -> j+1 crosses a boundary when j % 4 == 0."""
    index = torch.arange(len(step_changes)) + first_frame
    cross = index % TIME_STRIDE == 0
    return float(step_changes[~cross].mean()), float(step_changes[cross].mean())


# --- codec -------------------------------------------------------------------------------------------------

def photos(size: int, names: tuple[str, ...] = PHOTOS) -> dict[str, torch.Tensor]:
    """scikit-image's sample photos, as [1, size, size, 3] 0..1 (greys repeated on RGB)."""
    import skimage.data  # bench-only dependency: `pip install scikit-image`

    out = {}
    for name in names:
        image = torch.from_numpy(getattr(skimage.data, name)()).float() / 255.0
        if image.ndim == 2:
            image = image[..., None].expand(-1, -1, 3)
        out[name] = fit_image(image[None, ..., :3].contiguous(), size, size)
    return out


def codec(bundle: MiniBundle, clips: int) -> dict[str, float]:
    figures: dict[str, float] = {}
    photo_psnr = {name: psnr(round_trip(bundle, image), image) for name, image in photos(64).items()}
    figures["photo PSNR"] = sum(photo_psnr.values()) / len(photo_psnr)
    figures.update({f"photo {name}": value for name, value in photo_psnr.items()})
    textures = {name: psnr(round_trip(bundle, image), image) for name, image in photos(64, TEXTURES).items()}
    figures["texture PSNR"] = sum(textures.values()) / len(textures)
    portraits = [render_portrait(FIRST_SEED + 300 + k, 64, 64).frames for k in range(clips)]
    figures["portrait PSNR"] = sum(psnr(round_trip(bundle, p), p) for p in portraits) / clips
    inside, across, true_inside, true_across = [], [], [], []
    for k in range(clips):
        clip = generate_clip(FIRST_SEED + k, ClipSpec(num_frames=int(CLIP_SECONDS * 25)))
        decoded = round_trip(bundle, clip.frames)
        a, b = group_change_ratio(mean_frame_change(decoded))
        inside.append(a)
        across.append(b)
        a, b = group_change_ratio(mean_frame_change(clip.frames[: decoded.shape[0]]))
        true_inside.append(a)
        true_across.append(b)
    figures["VAE in-group change"] = sum(inside) / clips
    figures["VAE cross-group change"] = sum(across) / clips
    figures["truth in-group change"] = sum(true_inside) / clips
    figures["truth cross-group change"] = sum(true_across) / clips
    figures["VAE group ratio"] = figures["VAE in-group change"] / figures["VAE cross-group change"]
    figures["truth group ratio"] = figures["truth in-group change"] / figures["truth cross-group change"]
    return figures


# --- fidelity per window -----------------------------------------------------------------------------------

def fidelity(bundle: MiniBundle, sampler: Sampler, clips: int, seconds: float) -> dict[str, list[float]]:
    """Per window index, means over clips: student PSNR / SSIM, VAE-ceiling PSNR / SSIM, eye-band contrast
    and face edge energy of the student and of the ceiling relative to the reference frame's, the student's
    PSNR with every window held on the ground truth's frames, and the PSNR of the world itself redrawn with
    other random head motion (`retake`, TAKES per clip): what a perfect model scores."""
    num_frames = int(seconds * 25)
    windows = plan_windows(num_frames, 33, 9)
    rows: dict[str, list[list[float]]] = {k: [[] for _ in windows] for k in (
        "psnr", "ssim", "ceiling psnr", "ceiling ssim", "contrast", "ceiling contrast", "edges",
        "ceiling edges", "held psnr", "take psnr")}
    for k in range(clips):
        clip = generate_clip(FIRST_SEED + 400 + k, ClipSpec(num_frames=num_frames))
        regions = Regions(clip.face_masks.any(dim=1).float())
        frames, *_ = render(bundle, sampler, clip.frames[:1], [clip.audio[0]], clip.prompt, regions, seed=k)
        ceiling = round_trip(bundle, clip.frames)
        held = held_on_truth(bundle, sampler, clip, regions, seed=k)
        takes = [retake(clip, seed=TAKES * k + j) for j in range(TAKES)]
        box = union_boxes(clip.face_boxes)[0].tolist()
        x0, y0, x1, y1 = box
        faces = clip.face_boxes[0]
        reference_contrast = float(measure_eye_contrast(clip.frames[:1], faces[0])[0])
        reference_edges = float(edge_energy(clip.frames[:1], box)[0])
        for w in windows:
            stop = min(w.output_stop, ceiling.shape[0])
            span = slice(w.output_start, stop)
            truth = clip.frames[span, y0:y1, x0:x1]
            for prefix, video in (("", frames), ("ceiling ", ceiling)):
                crop = video[span, y0:y1, x0:x1]
                rows[f"{prefix}psnr"][w.index].append(psnr(crop, truth))
                rows[f"{prefix}ssim"][w.index].append(ssim(crop, truth))
                contrast = measure_eye_contrast(video[span], faces[span]).mean() / reference_contrast
                rows[f"{prefix}contrast"][w.index].append(float(contrast))
                edges = edge_energy(video[span], box).mean() / reference_edges
                rows[f"{prefix}edges"][w.index].append(float(edges))
            rows["held psnr"][w.index].append(psnr(held[span, y0:y1, x0:x1], truth))
            rows["take psnr"][w.index].append(statistics.fmean(
                psnr(take[span, y0:y1, x0:x1], truth) for take in takes))
    return {key: [sum(v) / len(v) for v in values] for key, values in rows.items()}


# --- the 8 s demo ------------------------------------------------------------------------------------------

def demo_video(bundle: MiniBundle, seconds: float, seam_frames: int = DEFAULT_SEAM_FRAMES
               ) -> tuple[torch.Tensor, tuple[Window, ...], torch.Tensor]:
    """The demo's video (sample portrait, generated voice, default prompt, seed 0), its windows and the
    portrait fitted to the video."""
    info = bundle.info
    portrait = fit_image(load_sample_portrait(), info.width, info.height)
    voice = synthesize_speech(SAMPLE_SPEECH_SEED, seconds).waveform
    sampler = Sampler("student", bundle.model.module, "distilled", info.steps, 1.0, 1.0, shift=info.shift,
                      seam_frames=seam_frames)
    frames, *_ = render(bundle, sampler, portrait, [voice], info.default_prompt, None, seed=0)
    return frames, plan_windows(frames.shape[0], info.window_frames, info.motion_frames), portrait


def temporal(frames: torch.Tensor, windows: tuple[Window, ...]) -> dict[str, float]:
    step = mean_frame_change(frames)
    seams = torch.tensor([w.output_start - 1 for w in windows[1:]], dtype=torch.long)
    inside = torch.ones(len(step), dtype=torch.bool)
    inside[seams] = False
    changing = step[inside][step[inside] >= STILL]
    median = float(changing.median()) if len(changing) else float("nan")
    in_group, cross_group = [], []
    for w in windows:  # steps between this window's own output frames, counted from the window's start
        own = step[w.output_start : w.output_stop - 1]
        if len(own):
            a, b = group_change_ratio(own, w.output_start - w.start)
            in_group.append(a)
            cross_group.append(b)
    return {
        "seam change": float(step[seams].mean()) if len(seams) else float("nan"),
        "median changing step": median,
        "seam ratio": float(step[seams].mean()) / median if len(seams) else float("nan"),
        # the seam figure is a mean of few steps: its standard error, and what a step across a latent-group
        # boundary inside a window scores (a seam is one too)
        "seam ratio error": float(step[seams].std() / len(seams) ** 0.5) / median if len(seams) > 1
        else float("nan"),
        "cross-group ratio": statistics.fmean(cross_group) / median,
        "still share": float((step < STILL).float().mean()),
        "group ratio": statistics.fmean(in_group) / statistics.fmean(cross_group),
    }


def demo_detail(frames: torch.Tensor, windows: tuple[Window, ...], portrait: torch.Tensor
                ) -> tuple[list[float], list[float]]:
    """Eye-band contrast and face edge energy per window relative to the portrait's (the sample portrait's
    face box, rendered at the video size; the head sways a little around it)."""
    face = render_portrait(SAMPLE_PORTRAIT_SEED, frames.shape[1], frames.shape[2]).face_boxes[0, 0]
    box = face.tolist()
    contrast, edges = measure_eye_contrast(portrait, face)[0], edge_energy(portrait, box)[0]
    spans = [slice(w.output_start, w.output_stop) for w in windows]
    return ([float(measure_eye_contrast(frames[span], face).mean() / contrast) for span in spans],
            [float(edge_energy(frames[span], box).mean() / edges) for span in spans])


# --- lip sync, binding, drift ------------------------------------------------------------------------------

def lip_sync(bundle: MiniBundle, samplers: list[Sampler], clips: int) -> dict[str, dict[str, float]]:
    spec = ClipSpec(num_frames=int(CLIP_SECONDS * 25), num_characters=1)
    figures = {s.name: {"sync": [], "control": [], "seconds": 0.0, "windows": 0} for s in samplers}
    truth, codec_sync = [], []
    envelopes, mouths = [], {s.name: [] for s in samplers}
    true_mouths, codec_mouths = [], []
    for k in range(clips):
        clip = generate_clip(FIRST_SEED + k, spec)
        box = union_boxes(clip.mouth_boxes)
        regions = Regions(clip.face_masks.any(dim=1).float())
        envelopes.append(clip.loudness[0])
        true_mouth = measure_mouth_opening(clip.frames, box)[0]
        truth.append(correlation(true_mouth, clip.loudness[0]))
        decoded = round_trip(bundle, clip.frames)
        codec_mouths.append(measure_mouth_opening(decoded, box)[0])
        true_mouths.append(true_mouth[: decoded.shape[0]])
        codec_sync.append(correlation(codec_mouths[-1], clip.loudness[0, : decoded.shape[0]]))
        for sampler in samplers:
            frames, seconds, windows = render(bundle, sampler, clip.frames[:1], [clip.audio[0]], clip.prompt,
                                              regions, seed=k)
            mouths[sampler.name].append(measure_mouth_opening(frames, box)[0])
            figures[sampler.name]["seconds"] += seconds
            figures[sampler.name]["windows"] += windows
    for sampler in samplers:
        f = figures[sampler.name]
        for k, mouth in enumerate(mouths[sampler.name]):
            f["sync"].append(correlation(mouth, envelopes[k]))
            f["control"].append(correlation(mouth, envelopes[(k + 1) % clips]))
        f["sync"] = sum(f["sync"]) / clips
        f["control"] = sum(f["control"]) / clips
        f["seconds_per_window"] = f["seconds"] / f["windows"]
    figures["ground truth"] = {"sync": sum(truth) / clips}
    figures["VAE round trip"] = {"sync": sum(codec_sync) / clips}
    # Where in a latent group the codec loses the mouth's motion: r of the decoded mouth's change from the
    # frame before with the true change, by the frame's place in its group (frame 0 is a latent alone)
    codec = torch.cat([m.diff() for m in codec_mouths])
    true = torch.cat([m.diff() for m in true_mouths])
    position = torch.cat([torch.arange(m.shape[0] - 1) % TIME_STRIDE for m in codec_mouths])
    figures["VAE mouth change r per group position"] = {
        f"{p + 1}": correlation(codec[position == p], true[position == p]) for p in range(TIME_STRIDE)}
    return figures


def binding(bundle: MiniBundle, sampler: Sampler, clips: int) -> tuple[float, float]:
    spec = ClipSpec(num_frames=int(CLIP_SECONDS * 25), num_characters=2, speech_mode="para")
    halves = torch.zeros(2, 64, 64)
    halves[0, :, :32], halves[1, :, 32:] = 1.0, 1.0
    own, other = [], []
    for k in range(clips):
        clip = generate_clip(FIRST_SEED + 100 + k, spec)
        frames, *_ = render(bundle, sampler, clip.frames[:1], list(clip.audio), clip.prompt, Regions(halves),
                            seed=k)
        mouths = measure_mouth_opening(frames, union_boxes(clip.mouth_boxes))
        for c in range(2):
            own.append(correlation(mouths[c], clip.loudness[c]))
            other.append(correlation(mouths[c], clip.loudness[1 - c]))
    return sum(own) / len(own), sum(other) / len(other)


def drift(bundle: MiniBundle, sampler: Sampler, seconds: float, segment_s: float
          ) -> dict[float, list[tuple[float, float]]]:
    portrait = render_portrait(FIRST_SEED + 200, 64, 64)
    reference = portrait.frames
    x0, y0, x1, y1 = portrait.face_boxes[0, 0].tolist()
    mx0, my0, mx1, my1 = portrait.mouth_boxes[0, 0].tolist()
    outside_mouth = torch.ones(y1 - y0, x1 - x0, dtype=torch.bool)
    outside_mouth[max(my0 - y0, 0):my1 - y0, max(mx0 - x0, 0):mx1 - x0] = False
    face_ref = reference[0, y0:y1, x0:x1]
    speech = synthesize_speech(FIRST_SEED + 201, seconds).waveform
    out = {}
    for colour_match in (0.0, 1.0):
        frames, *_ = render(bundle, sampler, reference, [speech], portrait.prompt, None, seed=0,
                            colour_match=colour_match)
        rows = []
        per_segment = int(segment_s * 25)
        for start in range(0, frames.shape[0], per_segment):
            face = frames[start:start + per_segment, y0:y1, x0:x1]
            colour = float((face.mean(dim=(0, 1, 2)) - face_ref.mean(dim=(0, 1))).norm() * 255)
            pixels = float((face - face_ref).abs().mean(dim=-1)[:, outside_mouth].mean() * 255)
            rows.append((colour, pixels))
        out[colour_match] = rows
    return out


def worst_ratio(per_window: list[float]) -> float:
    """The worst later window's figure / window 1's."""
    return min(per_window[1:]) / per_window[0]


def _cells(values: list[float], fmt: str = "{:6.2f}") -> str:
    return " ".join(fmt.format(v) for v in values)


SECTIONS = ("codec", "fidelity", "demo", "lipsync", "binding", "drift", "lastwindow")
# Clip lengths (frames) whose last 33/9 window outputs 2-9 frames.
LAST_WINDOW_CLIPS = (59, 60, 61, 63, 64, 66, 83, 85, 87, 89)


def cut_last_window(num_frames: int, window_frames: int, motion_frames: int) -> tuple[Window, ...]:
    """The plan with its last window cut to the smallest 4k+1 that covers what is left and ends on the last
    frame (what the sampler did before its last window became full length), for comparison."""
    windows = list(plan_windows(num_frames, window_frames, motion_frames))
    if len(windows) > 1:
        last = windows[-1]
        length = 1 + TIME_STRIDE * -(-(num_frames - last.output_start + motion_frames - 1) // TIME_STRIDE)
        windows[-1] = Window(last.index, num_frames - length, length, last.output_start, num_frames)
    return tuple(windows)


def last_window(bundle: MiniBundle, sampler: Sampler) -> dict[str, list[float]]:
    """Per plan: [face PSNR, seam ratio, mouth error, clip lip r] of each clip's last window."""
    figures: dict[str, list[list[float]]] = {"full": [], "cut": []}
    for k, frames_wanted in enumerate(LAST_WINDOW_CLIPS):
        clip = generate_clip(3 * FIRST_SEED // 2 + k, ClipSpec(num_frames=frames_wanted, num_characters=1))
        box = union_boxes(clip.mouth_boxes)
        face = clip.face_masks.any(dim=1)[0]
        rows, cols = torch.nonzero(face, as_tuple=True)
        top, bottom, left, right = int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1
        regions = Regions(clip.face_masks.any(dim=1).float())
        for name, planner in (("full", plan_windows), ("cut", cut_last_window)):
            loop.plan_windows = planner  # the sampler's planner, swapped for this run only
            try:
                frames, _, _ = render(bundle, sampler, clip.frames[:1], [clip.audio[0]], clip.prompt, regions,
                                      seed=k)
            finally:
                loop.plan_windows = plan_windows
            count = frames.shape[0]
            last = planner(count, 33, 9)[-1]
            a, b = last.output_start, last.output_stop
            truth = clip.frames[:count]
            error = (frames[a:b, top:bottom, left:right] - truth[a:b, top:bottom, left:right]).square().mean()
            step = mean_frame_change(frames)
            inside = torch.cat([step[: a - 1], step[a:]])
            mouth = measure_mouth_opening(frames, box)[0]
            true_mouth = measure_mouth_opening(truth, box)[0]
            figures[name].append([float(-10 * torch.log10(error)),
                                  float(step[a - 1] / inside[inside >= STILL].median()),
                                  float((mouth[a:b] - true_mouth[a:b]).abs().mean()),
                                  correlation(mouth, clip.loudness[0, :count])])
    return {name: [statistics.fmean(column) for column in zip(*rows, strict=True)]
            for name, rows in figures.items()}


def load_vae_weights(bundle: MiniBundle, path: Path) -> MiniBundle:
    """The bundle with its VAE's weights from `path`: a bundle's vae.safetensors or a recipe checkpoint
    (its `module.vae.` tensors), to measure a VAE in training. Only the codec figures mean something then:
    the DiT reads the latent space of the VAE it was trained with."""
    tensors = load_file(str(path))
    prefix = "module.vae."
    if any(k.startswith(prefix) for k in tensors):
        tensors = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    vae = SmallVideoVAE(bundle.info.vae_width)
    vae.load_state_dict({k: v.float() for k, v in tensors.items()})
    return replace(bundle, vae=vae.eval().requires_grad_(False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, default=None, help="bundle folder (default: the embedded one)")
    parser.add_argument("--vae", type=Path, default=None,
                        help="VAE weights to measure instead of the bundle's (use with --only codec)")
    parser.add_argument("--run-dir", type=Path, default=DEFAULT_RUN_DIR,
                        help="recipe run folder whose teacher.safetensors is compared, when present")
    parser.add_argument("--only", default=",".join(SECTIONS),
                        help=f"comma-separated sections to run (default: all of {','.join(SECTIONS)})")
    parser.add_argument("--clips", type=int, default=6)
    parser.add_argument("--fidelity-clips", type=int, default=3)
    parser.add_argument("--drift-seconds", type=float, default=120.0)
    parser.add_argument("--segment-seconds", type=float, default=20.0)
    parser.add_argument("--audio-cfg", type=float, default=1.0,
                        help="the student's audio guidance (1: one pass a step, as it was distilled; 2: two)")
    parser.add_argument("--demo-seconds", type=float, default=DEMO_SECONDS,
                        help="length of the demo video the seams and still frames are measured on")
    parser.add_argument("--seam-frames", type=int, default=DEFAULT_SEAM_FRAMES,
                        help="frames each window is eased onto the last written one over (0: off)")
    args = parser.parse_args()
    sections = set(args.only.split(","))
    if sections - set(SECTIONS):
        parser.error(f"--only: unknown sections {sorted(sections - set(SECTIONS))}; choose from {SECTIONS}")
    torch.set_num_threads(1)
    bundle = load_bundle(args.bundle)
    if args.vae is not None:
        bundle = load_vae_weights(bundle, args.vae)
    info = bundle.info
    student = Sampler("student", bundle.model.module, "distilled", info.steps, 1.0, args.audio_cfg,
                      seam_frames=args.seam_frames)
    samplers = [student]
    teacher_file = args.run_dir / "teacher.safetensors"
    if teacher_file.is_file() and "lipsync" in sections:
        teacher = load_model(teacher_file, compute_dtype=torch.float32).module
        samplers.insert(0, Sampler("teacher", teacher, TEACHER_SOLVER, TEACHER_STEPS, TEACHER_TEXT_CFG,
                                   TEACHER_AUDIO_CFG, seam_frames=args.seam_frames))
    print(f"bundle: {bundle.name} {info.recipe} (trained: {info.trained}) from "
          f"{args.bundle or 'the package'}{f', VAE from {args.vae}' if args.vae else ''}; seeds from "
          f"{FIRST_SEED} (unseen); teacher: {teacher_file if len(samplers) > 1 else 'none'}")
    goals = []

    if "codec" in sections:
        c = codec(bundle, args.clips)
        print("\nCodec (the VAE alone)")
        print(f"  photo PSNR (scikit-image photos at 64x64, never trained on): {c['photo PSNR']:.2f} dB  ("
              + ", ".join(f"{n} {c[f'photo {n}']:.1f}" for n in PHOTOS) + ")")
        print(f"  texture photo PSNR ({', '.join(TEXTURES)}): {c['texture PSNR']:.2f} dB")
        print(f"  world portrait PSNR: {c['portrait PSNR']:.2f} dB")
        print(f"  frame change in-group / cross-group: VAE {c['VAE in-group change']:.4f} / "
              f"{c['VAE cross-group change']:.4f} = {c['VAE group ratio']:.2f}; ground truth "
              f"{c['truth in-group change']:.4f} / {c['truth cross-group change']:.4f} = "
              f"{c['truth group ratio']:.2f}")
        goals += [("in-group / cross-group change through the VAE", c["VAE group ratio"], ">=", 0.7),
                  ("photo PSNR through the VAE (held out), dB", c["photo PSNR"], ">=", 22.0)]

    if "fidelity" in sections:
        fid = fidelity(bundle, student, args.fidelity_clips, FIDELITY_SECONDS)
        worst = worst_ratio(fid["psnr"])
        print(f"\nFidelity per window ({args.fidelity_clips} clips of {FIDELITY_SECONDS:g} s, face box, "
              "student)")
        print(f"  window               {_cells(list(range(1, len(fid['psnr']) + 1)), '{:6d}')}")
        print(f"  PSNR dB              {_cells(fid['psnr'])}")
        print(f"  PSNR dB, VAE ceiling {_cells(fid['ceiling psnr'])}")
        print(f"  PSNR dB, held on GT  {_cells(fid['held psnr'])}  (each window held on the ground truth's "
              f"frames: worst later / window 1 = {worst_ratio(fid['held psnr']):.3f})")
        print(f"  PSNR dB, another take{_cells(fid['take psnr'])}  (the world redrawn with other random head "
              f"motion, a perfect model: worst later / window 1 = {worst_ratio(fid['take psnr']):.3f})")
        print(f"  SSIM                 {_cells(fid['ssim'], '{:6.3f}')}")
        print(f"  SSIM, VAE ceiling    {_cells(fid['ceiling ssim'], '{:6.3f}')}")
        print(f"  eye contrast / reference's {_cells(fid['contrast'])}")
        print(f"  ... VAE ceiling            {_cells(fid['ceiling contrast'])}")
        print(f"  face edges / reference's   {_cells(fid['edges'])}")
        print(f"  ... VAE ceiling            {_cells(fid['ceiling edges'])}")
        above_perfect = min(a / b for a, b in zip(fid["psnr"], fid["take psnr"], strict=True))
        print(f"  worst later window's PSNR / window 1's = {worst:.3f}; the student's PSNR / the perfect "
              f"model's, worst window: {above_perfect:.3f}")
        goals.append(("worst window's face PSNR / window 1's", worst, ">=", 0.95))

    if "demo" in sections:
        frames, windows, portrait = demo_video(bundle, args.demo_seconds, args.seam_frames)
        t = temporal(frames, windows)
        contrast, edges = demo_detail(frames, windows, portrait)
        print(f"\nThe {args.demo_seconds:g} s demo (sample portrait, generated voice, seed 0; "
              f"{len(windows)} windows)")
        print(f"  seam change {t['seam change']:.4f} / median changing step "
              f"{t['median changing step']:.4f} = {t['seam ratio']:.2f} +- {t['seam ratio error']:.2f} "
              f"(standard error over {len(windows) - 1} seams); a step across a latent-group boundary "
              f"inside windows: {t['cross-group ratio']:.2f}")
        print(f"  consecutive frames differing by < {STILL}: {100 * t['still share']:.0f} %")
        print(f"  in-group / cross-group change: {t['group ratio']:.2f}")
        print(f"  eye contrast per window / portrait's: {_cells(contrast)}")
        print(f"  face edges per window / portrait's:   {_cells(edges)}")
        seam_goal = f"seam change / median changing step ({args.demo_seconds:g} s demo)"
        goals += [(seam_goal, t["seam ratio"], "<=", 1.15),
                  (f"consecutive demo frames differing by < {STILL}", t["still share"], "<", 0.05)]

    if "lipsync" in sections:
        figures = lip_sync(bundle, samplers, args.clips)
        print(f"\nLip sync over {args.clips} one-speaker clips of {CLIP_SECONDS:g} s "
              "(Pearson r per frame, mouth vs envelope)")
        print(f"  ground-truth video (measurement ceiling): {figures['ground truth']['sync']:.3f}")
        print(f"  ground truth through the VAE (codec ceiling): {figures['VAE round trip']['sync']:.3f}")
        per_position = figures["VAE mouth change r per group position"]
        print("  the VAE's mouth change from the frame before vs the true change, r by frame of a latent "
              "group (1 crosses the group boundary): "
              + ", ".join(f"{p}: {r:.2f}" for p, r in per_position.items()))
        for s in samplers:
            f = figures[s.name]
            print(f"  {s.name:8s} r = {f['sync']:.3f}   shuffled-audio control r = {f['control']:.3f}   "
                  f"{s.calls_per_window} model calls, {f['seconds_per_window']:.2f} s per window")
        goals.append(("lip sync r, student", figures["student"]["sync"], ">=", 0.80))

    if "binding" in sections:
        own, other = binding(bundle, student, max(2, args.clips // 2))
        print(f"\nSpeaker binding (student, two characters, regions = halves): own track r = {own:.3f}, "
              f"other track r = {other:.3f}")

    if "drift" in sections and args.drift_seconds > 0:
        rows = drift(bundle, student, args.drift_seconds, args.segment_seconds)
        print(f"\nDrift over {args.drift_seconds:g} s (student; per {args.segment_seconds:g} s segment: face "
              "colour distance / face pixel distance outside the mouth, 0-255)")
        for colour_match, label in ((0.0, "no colour match"), (1.0, "colour match 1.0")):
            cells = "  ".join(f"{c:5.1f}/{p:5.1f}" for c, p in rows[colour_match])
            print(f"  {label:17s} {cells}")

    if "lastwindow" in sections:
        plans = last_window(bundle, student)
        print(f"\nLast window ({len(LAST_WINDOW_CLIPS)} clips whose last window outputs 2-9 frames; student)")
        for name, (face, seam, mouth, sync) in plans.items():
            print(f"  {name:4s} last-window face PSNR {face:.2f} dB, last seam / median step {seam:.2f}, "
                  f"last-window mouth error {mouth:.4f}, clip lip r {sync:.3f}")

    print("\nGoals")
    for name, value, op, goal in goals:
        met = value >= goal if op == ">=" else value <= goal if op == "<=" else value < goal
        print(f"  {name:48s} {value:7.3f}  goal {op} {goal:g}  {'met' if met else 'not met'}")


if __name__ == "__main__":
    main()
