"""The analytic FLOP count equals what torch's FLOP counter measures on a real forward."""

from __future__ import annotations

import pytest
import torch
from conftest import make_inputs, make_tiny_model
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from magicinfinite_core.models.config import WAN_14B
from magicinfinite_core.models.flops import forward_flops


@pytest.mark.parametrize(
    ("model_type", "audio_blocks", "speakers", "masks"),
    [("t2v", None, 0, False), ("i2v", None, 1, False), ("i2v", (1,), 2, True), ("t2v", (0, 2), 3, True)],
)
def test_analytic_count_matches_the_flop_counter(model_type, audio_blocks, speakers, masks):
    model = make_tiny_model(model_type=model_type, num_layers=3, audio_blocks=audio_blocks)
    frames, height, width = 3, 4, 6
    inputs = make_inputs(model.config, frames=frames, height=height, width=width, speakers=speakers)
    kwargs = {k: v for k, v in inputs.items() if k != "features"}
    if speakers:
        kwargs["audio_tokens"] = model.encode_audio(inputs["features"])
    if masks:
        kwargs["speaker_masks"] = torch.ones(speakers, height // 2, width // 2)
    # The math backend runs attention as matmuls, which the counter sees (fused CPU kernels it does not).
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model(**kwargs)
    expected = forward_flops(model.config, frames, height, width, speakers=speakers, speaker_masks=masks)
    assert counter.get_total_flops() == expected.total


def test_14b_forward_at_480p_81_frames_is_about_1_7e15():
    flops = forward_flops(WAN_14B.with_audio(None), 21, 60, 104, speakers=0)
    assert flops.total == pytest.approx(1.7e15, rel=0.02)
