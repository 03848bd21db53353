"""Training windows from the procedural world, encoded once with the bundle's VAE, text and audio encoders.

Each clip (one seed) gives two windows of WINDOW_FRAMES frames: window 0 starts at frame 0 and holds only the
reference frame's latent clean (as the sampler's first window does); window 1 starts MOTION_STRIDE frames
later and holds the latents of its first MOTION_FRAMES frames (the motion frames of a later window). Both
take the clip's frame 0 as the reference in y, as every window of a portrait-driven video does.

Everything goes through the pack's own code: `latents.encode` / `image_conditioning` with the VAE,
`embed_audio` (mono 16 kHz, -23 LUFS, the reference wav2vec2 computation) and the text encoder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from magicinfinite_core.audio import AudioEncoder, SpeakerTrack, embed_audio
from magicinfinite_core.latents import encode, image_conditioning, latent_frames
from magicinfinite_core.masks.regions import Regions
from magicinfinite_core.mini.text_encoder import SmallTextEncoder
from magicinfinite_core.mini.vae import SmallVideoVAE
from magicinfinite_core.mini.world import Clip, ClipSpec, generate_clip
from training.settings import FPS, HEIGHT, MOTION_FRAMES, WIDTH, WINDOW_FRAMES

MOTION_STRIDE = 16  # window 1 starts here; its first MOTION_FRAMES frames are held
CLIP_FRAMES = MOTION_STRIDE + WINDOW_FRAMES
HELD_LATENTS = (1, latent_frames(MOTION_FRAMES))  # clean latents at the start of window 0 and window 1
FACE_WEIGHT = 1.0  # MagicInfinite's region-specific loss: extra weight on the face ...
MOUTH_WEIGHT = 4.0  # ... and more on the mouth
TRAIN_SEEDS_END = 1_000_000  # training uses seeds below this; bench/quality.py uses seeds above


def clip_spec(seed: int) -> ClipSpec:
    """One in four clips has two characters (every other of those taking turns), the rest one."""
    two = seed % 4 == 3
    return ClipSpec(height=HEIGHT, width=WIDTH, num_frames=CLIP_FRAMES, fps=FPS,
                    num_characters=2 if two else 1, speech_mode="turns" if two and seed % 8 == 7 else "para")


def speaker_masks(clip: Clip) -> torch.Tensor:
    """Token-grid region per character [S, H/16, W/16]: the face (union over the clip) for one character,
    left/right halves for two (their faces cover too few tokens of this small grid to reach the mouths)."""
    if clip.spec.num_characters == 1:
        return Regions(clip.face_masks.any(dim=1).float()).token_masks(WIDTH, HEIGHT)
    halves = torch.zeros(2, HEIGHT, WIDTH)
    halves[0, :, : WIDTH // 2] = 1.0
    halves[1, :, WIDTH // 2 :] = 1.0
    return Regions(halves).token_masks(WIDTH, HEIGHT)


def loss_weights(clip: Clip, start: int) -> torch.Tensor:
    """Per latent cell weight [T, H/8, W/8] of a window: 1 + FACE_WEIGHT x face + MOUTH_WEIGHT x mouth
    coverage of the cell (coverage over the latent frame's video frames)."""
    frames = slice(start, start + WINDOW_FRAMES)
    face = clip.face_masks[:, frames].any(dim=0).float()  # [F, H, W]
    mouth = torch.zeros_like(face)
    ys, xs = torch.arange(HEIGHT)[:, None], torch.arange(WIDTH)[None, :]
    for boxes in clip.mouth_boxes[:, frames]:
        for i, (x0, y0, x1, y1) in enumerate(boxes.tolist()):
            mouth[i] = torch.maximum(mouth[i], ((xs >= x0) & (xs < x1) & (ys >= y0) & (ys < y1)).float())
    weight = 1.0 + FACE_WEIGHT * face + MOUTH_WEIGHT * mouth
    first, later = weight[:1], weight[1:].unflatten(0, (-1, 4)).mean(dim=1)
    return F.avg_pool2d(torch.cat([first, later]), 8)


@dataclass
class WindowSet:
    """Encoded windows of clips with the same number of characters (tensors indexed [clip, window])."""

    latents: torch.Tensor  # [N, 2, 16, T, h, w] normalised
    y: torch.Tensor  # [N, 20, T, h, w] i2v conditioning from the clip's frame 0
    context: torch.Tensor  # [N, text_len, text_dim] float16
    features: torch.Tensor  # [N, 2, S, F, 5, layers, width] float16
    weights: torch.Tensor  # [N, 2, T, h, w]
    masks: torch.Tensor  # [S, h/2, w/2], shared by the set
    seeds: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.seeds)


@torch.no_grad()
def encode_clips(seeds: list[int], vae: SmallVideoVAE, text_encoder: SmallTextEncoder,
                 audio_encoder: AudioEncoder) -> dict[int, WindowSet]:
    """Clips of `seeds` -> one WindowSet per character count."""
    rows: dict[int, list[tuple]] = {}
    for seed in seeds:
        clip = generate_clip(seed, clip_spec(seed))
        tracks = [SpeakerTrack(track[None], clip.sample_rate, name=f"character {i + 1}")
                  for i, track in enumerate(clip.audio)]
        audio = embed_audio(audio_encoder, tracks, fps=FPS)
        windows = [(0, 0), (1, MOTION_STRIDE)]
        latents = torch.stack([encode(vae, clip.frames[s : s + WINDOW_FRAMES])[0] for _, s in windows])
        features = torch.stack([audio.window(s, s + WINDOW_FRAMES) for _, s in windows]).half()
        weights = torch.stack([loss_weights(clip, s) for _, s in windows])
        y = image_conditioning(vae, clip.frames[:1], WINDOW_FRAMES)[0]
        context = text_encoder.encode([clip.prompt])[0].half()
        rows.setdefault(clip.spec.num_characters, []).append(
            (latents, y, context, features, weights, speaker_masks(clip), seed))
    sets = {}
    for count, items in rows.items():
        latents, y, context, features, weights, masks, seeds_ = zip(*items, strict=True)
        sets[count] = WindowSet(torch.stack(latents), torch.stack(y), torch.stack(context),
                                torch.stack(features), torch.stack(weights), masks[0], tuple(seeds_))
    return sets


def save_sets(path: Path, sets: dict[int, WindowSet]) -> None:
    """Cache encoded windows (safetensors) so a resumed recipe does not encode them again."""
    tensors = {}
    for count, data in sets.items():
        for name in ("latents", "y", "context", "features", "weights", "masks"):
            tensors[f"{count}.{name}"] = getattr(data, name).contiguous()
        tensors[f"{count}.seeds"] = torch.tensor(data.seeds)
    save_file(tensors, path)


def load_sets(path: Path) -> dict[int, WindowSet]:
    tensors = load_file(str(path))
    counts = sorted({int(key.split(".")[0]) for key in tensors})
    return {c: WindowSet(*(tensors[f"{c}.{n}"] for n in ("latents", "y", "context", "features", "weights",
                                                          "masks")), tuple(tensors[f"{c}.seeds"].tolist()))
            for c in counts}
