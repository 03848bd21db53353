"""What MagicInfinite-Mini is trained for: video size, frame rate, window, schedule and prompts.

These become the bundle's bundle.json defaults, so a caller samples the model the way it was trained.
"""

from __future__ import annotations

from magicinfinite_core.assets import SAMPLE_PORTRAIT_SEED
from magicinfinite_core.mini.bundle import BundleInfo
from magicinfinite_core.mini.world import EXPRESSIONS, render_portrait
from magicinfinite_core.sampling.schedules import DISTILLED_SHIFT
from training.architecture import TEXT_ENCODER, TEXT_LEN, VAE_WIDTH

RECIPE_VERSION = "mini-4"
WIDTH = HEIGHT = 64
FPS = 25.0
WINDOW_FRAMES = 33  # 9 latent frames
MOTION_FRAMES = 9  # 3 latent frames held from the previous window (the sampler's default)
STEPS = 4
NEGATIVE_PROMPT = ""  # text dropout trains the empty prompt as the unconditional text


def bundle_info(*, trained: bool, notes: str) -> BundleInfo:
    return BundleInfo(
        name="MagicInfinite-Mini",
        trained=trained,
        recipe=RECIPE_VERSION,
        text_encoder=dict(TEXT_ENCODER),
        text_len=TEXT_LEN,
        vae_width=VAE_WIDTH,
        width=WIDTH,
        height=HEIGHT,
        fps=FPS,
        window_frames=WINDOW_FRAMES,
        motion_frames=MOTION_FRAMES,
        steps=STEPS,
        shift=DISTILLED_SHIFT,
        prompt_words=tuple(EXPRESSIONS),
        default_prompt=render_portrait(SAMPLE_PORTRAIT_SEED, 16, 16).prompt,
        negative_prompt=NEGATIVE_PROMPT,
        notes=notes,
    )
