"""Stage 3: unified step + CFG distillation into a 4-step, CFG-free student.

Method (simpler than the paper's DMD2, and why): the teacher samples each training window with text + audio
CFG (3 passes a step) through the pack's own solver and guidance; the student, initialised from the teacher,
then learns to reach the teacher's sample in the sampler's distilled schedule (4 steps, shift 5, x0
re-noised with fresh noise between steps) with one pass a step. Each training step rolls the student itself
out from the teacher's starting noise to a random one of the 4 steps (no gradients: the inputs it will
really see, as DMD2's backward simulation does) and regresses its x0 prediction there onto the teacher's
sample, face-weighted as in stage 2. The first step therefore learns the teacher's noise -> video map
itself (knowledge distillation), the later ones learn to correct the student's own earlier steps.
DMD2 trains a fake-score network beside the student and needs the teacher's CFG score at every step:
five model passes (three with gradients) per step instead of one, which does not converge within the
few minutes of one CPU core this recipe has; and in this world the video is nearly determined by the
reference, the audio and the motion frames, so the mode-covering blur DMD2 avoids is small here.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from magicinfinite_core.models.wan import WanModel
from magicinfinite_core.sampling import SOLVERS, Condition, Guidance
from magicinfinite_core.sampling.schedules import default_shift, distilled_sigmas, flow_sigmas
from training.flow_stages import NO_REGION_SHARE, Batch, weighted_error
from training.settings import HEIGHT, STEPS, WIDTH
from training.world_data import HELD_LATENTS, WindowSet

TEACHER_SOLVER = "dpmpp_2m"
TEACHER_STEPS = 16
TEACHER_TEXT_CFG = 2.0
TEACHER_AUDIO_CFG = 3.0
TEACHER_BATCH = 8


def teacher_guidance() -> Guidance:
    return Guidance(TEACHER_TEXT_CFG, TEACHER_AUDIO_CFG)


def teacher_sigmas() -> torch.Tensor:
    return flow_sigmas(TEACHER_STEPS, default_shift(WIDTH, HEIGHT, distilled=False))


def student_sigmas() -> torch.Tensor:
    return distilled_sigmas(STEPS)


@dataclass
class Targets:
    """Teacher samples of chosen windows of one WindowSet: which (index, window), the start noise, x0."""

    index: torch.Tensor  # [N] long
    window: torch.Tensor  # [N] long
    noise: torch.Tensor  # [N, 16, T, h, w]
    x0: torch.Tensor  # [N, 16, T, h, w]; its held latents are the ones the window was sampled on

    def __add__(self, other: Targets) -> Targets:
        return Targets(*(torch.cat([getattr(self, f.name), getattr(other, f.name)]) for f in fields(self)))


def save_targets(path: Path, targets: dict[int, Targets]) -> None:
    """Targets per speaker count, cached in the run folder (safetensors)."""
    save_file({f"{c}.{f.name}": getattr(t, f.name).contiguous()
               for c, t in targets.items() for f in fields(t)}, path)


def load_targets(path: Path) -> dict[int, Targets]:
    tensors = load_file(str(path))
    counts = sorted({int(k.split(".")[0]) for k in tensors})
    return {c: Targets(*(tensors[f"{c}.{f.name}"] for f in fields(Targets))) for c in counts}


def batch_of(data: WindowSet, index: torch.Tensor, window: torch.Tensor, masks: torch.Tensor | None,
             x0: torch.Tensor | None = None) -> Batch:
    """The windows as stored, or with `x0` (whose held latents the batch holds) in place of their latents."""
    frames = data.latents.shape[3]
    held = torch.arange(frames)[None, :] < torch.tensor(HELD_LATENTS)[window][:, None]
    x0 = data.latents[index, window] if x0 is None else x0
    return Batch(x0=x0, y=data.y[index], context=data.context[index].float(),
                 features=data.features[index, window].float(), weights=data.weights[index, window],
                 held=held, masks=masks)


def conditioned_denoiser(model: WanModel, batch: Batch, empty_context: torch.Tensor, guidance: Guidance):
    """The sampler's denoiser for a batch: x0 = x - sigma * guided velocity (`Guidance` over its passes)."""
    tokens = model.encode_audio(batch.features)
    null_tokens = model.encode_audio(torch.zeros_like(batch.features))
    negative = empty_context.expand_as(batch.context)

    def denoise(x: torch.Tensor, sigma: float) -> torch.Tensor:
        timestep = torch.full((x.shape[0],), sigma * 1000.0)

        def run(condition: Condition) -> torch.Tensor:
            return model(x, timestep, batch.context if condition.uses_text else negative,
                         image_latent=batch.y, audio_tokens=tokens if condition.uses_audio else null_tokens,
                         speaker_masks=batch.masks)

        return x - sigma * guidance.velocity(run)

    return denoise


def sample_windows(model: WanModel, data: WindowSet, index: torch.Tensor, window: torch.Tensor,
                   noise: torch.Tensor, empty_context: torch.Tensor, *, teacher: bool,
                   generator: torch.Generator, x0: torch.Tensor | None = None) -> torch.Tensor:
    """Windows sampled as the teacher (dpmpp_2m, 16 steps, CFG) or the student (distilled, 4 steps, no CFG)
    samples them, held on the stored latents or on those of `x0`."""
    if teacher:
        solver, sigmas, guidance = SOLVERS[TEACHER_SOLVER], teacher_sigmas(), teacher_guidance()
    else:
        solver, sigmas, guidance = SOLVERS["distilled"], student_sigmas(), Guidance()
    samples = []
    for start in range(0, len(index), TEACHER_BATCH):
        part = slice(start, start + TEACHER_BATCH)
        batch = batch_of(data, index[part], window[part], data.masks, None if x0 is None else x0[part])
        denoise = conditioned_denoiser(model, batch, empty_context, guidance)
        samples.append(solver(denoise, noise[part], sigmas,
                              noise_sampler=lambda n=noise[part]: torch.randn(n.shape, generator=generator),
                              constrain=lambda x, sigma, b=batch: b.hold(x)))
    return torch.cat(samples)


@torch.no_grad()
def teacher_targets(teacher: WanModel, data: WindowSet, empty_context: torch.Tensor, count: int,
                    generator: torch.Generator) -> Targets:
    """Sample `count` windows (random clips, both window kinds) with the teacher's CFG schedule."""
    index = torch.randint(len(data), (count,), generator=generator)
    window = torch.randint(2, (count,), generator=generator)
    noise = torch.randn((count, *data.latents.shape[2:]), generator=generator)
    x0 = sample_windows(teacher, data, index, window, noise, empty_context, teacher=True, generator=generator)
    return Targets(index, window, noise, x0)


def student_loss(student: WanModel, sets: dict[int, WindowSet], targets: dict[int, Targets],
                 empty_context: torch.Tensor, generator: torch.Generator, *, batch: int) -> torch.Tensor:
    """Roll the student out (no gradients) to a random distilled step, then regress x0 onto the teacher's."""
    speakers = 2 if 2 in targets and float(torch.rand((), generator=generator)) < 0.25 else 1
    data, target = sets[speakers], targets[speakers]
    pick = torch.randint(len(target.x0), (batch,), generator=generator)
    no_region = speakers == 1 and float(torch.rand((), generator=generator)) < NO_REGION_SHARE
    inputs = batch_of(data, target.index[pick], target.window[pick], None if no_region else data.masks,
                      target.x0[pick])
    sigmas = [float(s) for s in student_sigmas()]
    step = int(torch.randint(len(sigmas) - 1, (1,), generator=generator))
    denoise = conditioned_denoiser(student, inputs, empty_context, Guidance())
    x = target.noise[pick]
    with torch.no_grad():
        for sigma, following in zip(sigmas[:step], sigmas[1:step + 1], strict=True):
            x0 = denoise(inputs.hold(x), sigma)
            x = (1 - following) * x0 + following * torch.randn(x.shape, generator=generator)
    x0 = denoise(inputs.hold(x), sigmas[step])
    return weighted_error((x0 - target.x0[pick]).square(), inputs, weighted=True)
