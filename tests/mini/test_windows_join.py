"""The shipped MagicInfinite-Mini bundle joins its windows without a trace (issue: coherence you can see).

A video longer than one window is sampled window by window, each later window held on the previous one's
decoded last frames. Two defects a viewer of the demo saw are checked on the demo's own inputs (the sample
portrait and its generated voice, seed 0, the bundle's settings), over five windows:
- the eyes must survive the windows: the eye band's contrast in every later window stays near window 1's
  (recipe mini-1 lost the eyes from the second window on: down to about half of window 1's; mini-2 keeps
  them);
- a seam must not jump: the picture's change across a window seam stays near the median change of the
  steps inside windows that change it. Without seam blending (`seam_frames` 0) mini-1 jumped about 5x and
  mini-2 about 2.6x; the sampler's default blending brings mini-2 to about 1.1x.
"""

import pytest
import torch

from magicinfinite_core.assets import SAMPLE_PORTRAIT_SEED, SAMPLE_SPEECH_SEED, load_sample_portrait
from magicinfinite_core.audio import SpeakerTrack, embed_audio
from magicinfinite_core.imaging import fit_image
from magicinfinite_core.mini.bundle import load_bundle
from magicinfinite_core.mini.world import (
    mean_frame_change,
    measure_eye_contrast,
    render_portrait,
    synthesize_speech,
)
from magicinfinite_core.sampling import SamplerOptions, SamplerSettings, TextConditioning, sample_video
from magicinfinite_core.sampling.window import plan_windows

FRAMES = 129  # 5 windows of 33 frames with 9 motion frames
RECIPE = load_bundle().info.recipe


def known_to_fail(*recipes: str, figure: str):
    """Skip a check for the bundles measured to fail it (bench/quality.py, docs/mini.md): it runs for any
    other, and a bundle that fixes the defect is expected to pass it."""
    return pytest.mark.skipif(RECIPE in recipes, reason=f"the shipped bundle (recipe {RECIPE}) is known to "
                              f"fail this check ({figure}); it runs for bundles of other recipes")


@pytest.fixture(scope="module")
def video():
    bundle = load_bundle()
    info = bundle.info
    portrait = fit_image(load_sample_portrait(), info.width, info.height)
    voice = synthesize_speech(SAMPLE_SPEECH_SEED, FRAMES / info.fps).waveform
    audio = embed_audio(bundle.audio_encoder, [SpeakerTrack(voice[None], 16000, name="voice")], fps=info.fps)
    contexts = bundle.text_encoder.encode([info.default_prompt, info.negative_prompt])
    settings = SamplerSettings(width=info.width, height=info.height, steps=info.steps, seed=0,
                               options=SamplerOptions(window_frames=info.window_frames,
                                                      motion_frames=info.motion_frames, shift=info.shift))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        frames = sample_video(bundle.model.module, bundle.vae, portrait, audio,
                              TextConditioning.single(contexts[:1], contexts[1:]), settings).frames
    finally:
        torch.set_num_threads(threads)
    face = render_portrait(SAMPLE_PORTRAIT_SEED, info.height, info.width).face_boxes[0, 0]
    return face, frames, plan_windows(frames.shape[0], info.window_frames, info.motion_frames)


@known_to_fail("mini-1", figure="eyes 0.53 of window 1's")
def test_later_windows_keep_the_eyes(video) -> None:
    face, frames, windows = video
    assert len(windows) >= 4
    contrast = [float(measure_eye_contrast(frames[w.output_start:w.output_stop], face).mean())
                for w in windows]
    assert min(contrast[1:]) >= 0.8 * contrast[0], contrast


def test_window_seams_do_not_jump(video) -> None:
    _, frames, windows = video
    step = mean_frame_change(frames)
    seams = torch.tensor([w.output_start - 1 for w in windows[1:]])
    inside = torch.ones(len(step), dtype=torch.bool)
    inside[seams] = False
    changing = step[inside][step[inside] >= 0.002]
    assert float(step[seams].mean()) <= 2.0 * float(changing.median()), (step[seams], changing.median())
