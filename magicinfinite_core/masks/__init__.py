"""Region masks -> latent token grid: which tokens each speaker's voice may move.

Data flow: per-speaker mask / box / split (build.py, boxes.py, splits.py) -> grow, shrink, feather
(morphology.py) -> Regions (regions.py) -> fitted like the reference image, coverage per 16x16-pixel token,
one speaker class per token (classes.py) -> token masks for the model's region gate and L-RoPE binding.
"""

from magicinfinite_core.masks.build import RegionSource, build_regions
from magicinfinite_core.masks.classes import COVERAGE_THRESHOLD, TOKEN_STRIDE_PX
from magicinfinite_core.masks.regions import MAX_SPEAKERS, Regions, check_binding

__all__ = [
    "COVERAGE_THRESHOLD",
    "MAX_SPEAKERS",
    "TOKEN_STRIDE_PX",
    "RegionSource",
    "Regions",
    "build_regions",
    "check_binding",
]
