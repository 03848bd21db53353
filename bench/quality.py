"""MagicInfinite-Mini quality figures on world seeds never used in training.

    OMP_NUM_THREADS=1 python bench/quality.py [--run-dir training/runs/mini] [--clips 6] [--drift-seconds 120]

Everything runs through the pack's own path: the bundle's encoders, `embed_audio`, `sample_video` with the
sampler's settings (33-frame windows, 9 motion frames), regions as `masks.Regions`. The student is the
shipped bundle (4-step distilled schedule, one pass a step); the teacher is the stage-2 model the recipe
keeps in its run folder (16 dpmpp_2m steps with text + audio CFG, three passes a step).

- Lip sync: Pearson correlation, per clip, between the generated mouth opening (darkness inside the
  clip's known mouth box, the union over the clip's frames) and the clip's audio loudness envelope; mean
  over clips. Shuffled-audio control: the same generated mouths against another clip's envelope. The
  ground-truth video's own correlation is the ceiling of this measurement, and the ground truth passed
  through the bundle's VAE (encode + decode) the ceiling of any model that works in its latent space.
- Speaker binding: two characters talking on independent tracks, regions = left/right halves; each mouth's
  correlation with its own track and with the other character's track.
- Drift: a long video from a still portrait, student, with and without colour matching; per segment, the
  face box's mean colour distance to the reference (RGB, 0-255) and its mean absolute pixel difference to
  the reference outside the mouth box (0-255).
- Distillation: model calls per window, seconds per window, student lip sync as a fraction of the teacher's.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from magicinfinite_core.audio import SpeakerTrack, embed_audio
from magicinfinite_core.checkpoints import load_model
from magicinfinite_core.latents import decode, encode
from magicinfinite_core.masks.regions import Regions
from magicinfinite_core.mini.bundle import MiniBundle, load_bundle
from magicinfinite_core.mini.world import (
    ClipSpec,
    correlation,
    generate_clip,
    measure_mouth_opening,
    render_portrait,
    synthesize_speech,
    union_boxes,
)
from magicinfinite_core.sampling import SamplerOptions, SamplerSettings, TextConditioning, sample_video

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the recipe's teacher settings live in the top-level training/ folder
from training.distill import (  # noqa: E402
    TEACHER_AUDIO_CFG,
    TEACHER_SOLVER,
    TEACHER_STEPS,
    TEACHER_TEXT_CFG,
)
from training.recipe import DEFAULT_RUN_DIR  # noqa: E402

FIRST_SEED = 2_000_000  # training uses seeds below 1,000,000
CLIP_SECONDS = 4.0


@dataclass(frozen=True)
class Sampler:
    name: str
    model: torch.nn.Module
    solver: str
    steps: int
    text_cfg: float
    audio_cfg: float

    @property
    def calls_per_window(self) -> int:
        settings = self.settings(0, 0.0)
        return (len(settings.schedule()) - 1) * settings.guidance.passes

    def settings(self, seed: int, colour_match: float) -> SamplerSettings:
        return SamplerSettings(width=64, height=64, solver=self.solver, steps=self.steps,
                               text_cfg=self.text_cfg, audio_cfg=self.audio_cfg, seed=seed,
                               options=SamplerOptions(window_frames=33, motion_frames=9,
                                                      colour_match=colour_match))


def render(bundle: MiniBundle, sampler: Sampler, reference: torch.Tensor, tracks: list[torch.Tensor],
           prompt: str, regions: Regions | None, seed: int, colour_match: float = 0.0
           ) -> tuple[torch.Tensor, float, int]:
    """Frames [N, H, W, 3], seconds taken and windows sampled."""
    audio = embed_audio(bundle.audio_encoder, [SpeakerTrack(t[None], 16000, name=f"track {i + 1}")
                                               for i, t in enumerate(tracks)], fps=25.0)
    contexts = bundle.text_encoder.encode([prompt, bundle.info.negative_prompt])
    text = TextConditioning.single(contexts[:1], contexts[1:])
    settings = sampler.settings(seed, colour_match)
    windows = settings.total_steps(audio.num_frames) // (len(settings.schedule()) - 1)
    started = time.perf_counter()
    result = sample_video(sampler.model, bundle.vae, reference, audio, text, settings, regions=regions)
    return result.frames, time.perf_counter() - started, windows


def lip_sync(bundle: MiniBundle, samplers: list[Sampler], clips: int) -> dict[str, dict[str, float]]:
    spec = ClipSpec(num_frames=int(CLIP_SECONDS * 25), num_characters=1)
    figures = {s.name: {"sync": [], "control": [], "seconds": 0.0, "windows": 0} for s in samplers}
    truth, codec = [], []
    envelopes, mouths = [], {s.name: [] for s in samplers}
    for k in range(clips):
        clip = generate_clip(FIRST_SEED + k, spec)
        box = union_boxes(clip.mouth_boxes)
        regions = Regions(clip.face_masks.any(dim=1).float())
        envelopes.append(clip.loudness[0])
        truth.append(correlation(measure_mouth_opening(clip.frames, box)[0], clip.loudness[0]))
        round_trip = decode(bundle.vae, encode(bundle.vae, clip.frames))  # drops frames past the last 4k+1
        codec.append(correlation(measure_mouth_opening(round_trip, box)[0],
                                 clip.loudness[0, : round_trip.shape[0]]))
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
    figures["VAE round trip"] = {"sync": sum(codec) / clips}
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", type=Path, default=DEFAULT_RUN_DIR)
    parser.add_argument("--clips", type=int, default=6)
    parser.add_argument("--drift-seconds", type=float, default=120.0)
    parser.add_argument("--segment-seconds", type=float, default=20.0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    bundle = load_bundle()
    teacher_file = args.run_dir / "teacher.safetensors"
    if not teacher_file.is_file():
        raise SystemExit(f"{teacher_file} not found: run `python -m training.recipe` first (it keeps the "
                         "teacher there).")
    teacher = load_model(teacher_file, compute_dtype=torch.float32).module
    student = Sampler("student", bundle.model.module, "distilled", bundle.info.steps, 1.0, 1.0)
    base = Sampler("teacher", teacher, TEACHER_SOLVER, TEACHER_STEPS, TEACHER_TEXT_CFG, TEACHER_AUDIO_CFG)
    print(f"bundle: {bundle.name} (trained: {bundle.info.trained}); seeds from {FIRST_SEED} (unseen)")

    figures = lip_sync(bundle, [base, student], args.clips)
    print(f"\nLip sync over {args.clips} one-speaker clips of {CLIP_SECONDS:g} s "
          "(Pearson r, mouth vs envelope)")
    print(f"  ground-truth video (measurement ceiling): {figures['ground truth']['sync']:.3f}")
    print(f"  ground truth through the VAE (codec ceiling): {figures['VAE round trip']['sync']:.3f}")
    for s in (base, student):
        f = figures[s.name]
        print(f"  {s.name:8s} r = {f['sync']:.3f}   shuffled-audio control r = {f['control']:.3f}")

    print("\nDistillation (per 33-frame window, 64x64, 1 CPU thread)")
    for s in (base, student):
        f = figures[s.name]
        print(f"  {s.name:8s} {s.calls_per_window:3d} model calls, "
              f"{f['seconds_per_window']:.2f} s per window")
    ratio = figures["student"]["seconds_per_window"] / figures["teacher"]["seconds_per_window"]
    print(f"  student time / teacher time = {ratio:.3f}; student lip sync / teacher = "
          f"{figures['student']['sync'] / figures['teacher']['sync']:.2f}")

    own, other = binding(bundle, student, max(2, args.clips // 2))
    print(f"\nSpeaker binding (student, two characters, regions = halves): own track r = {own:.3f}, "
          f"other track r = {other:.3f}")

    rows = drift(bundle, student, args.drift_seconds, args.segment_seconds)
    print(f"\nDrift over {args.drift_seconds:g} s (student; per {args.segment_seconds:g} s segment: face "
          "colour distance / face pixel distance outside the mouth, 0-255)")
    for colour_match, label in ((0.0, "no colour match"), (1.0, "colour match 1.0")):
        cells = "  ".join(f"{c:5.1f}/{p:5.1f}" for c, p in rows[colour_match])
        print(f"  {label:17s} {cells}")


if __name__ == "__main__":
    main()
