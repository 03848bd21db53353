"""MagicInfiniteRegionMasks: which part of the picture each voice moves (MI_REGIONS) and a preview."""

from magicinfinite_core.masks import MAX_SPEAKERS, RegionSource, build_regions
from magicinfinite_core.masks.preview import tint_preview
from magicinfinite_core.masks.splits import SPLIT_LAYOUTS

from .inputs import refuse_undeclared

_SPEAKERS = range(1, MAX_SPEAKERS + 1)


def _speaker_inputs() -> dict:
    inputs: dict = {}
    for i in _SPEAKERS:
        inputs[f"mask_{i}"] = ("MASK", {"tooltip": (
            f"Region of speaker {i} (driven by audio track {i}): any resolution, soft or hard. "
            "A batch of masks is merged into one region, since regions do not move.")})
    for i in _SPEAKERS:
        inputs[f"box_{i}"] = ("STRING", {"default": "", "multiline": False, "tooltip": (
            f"Region of speaker {i} as 'x,y,w,h' on the reference image: pixels, or fractions of the "
            f"image when all four are between 0 and 1 (0.5,0,0.5,1 is the right half). Used when mask_{i} "
            "is not connected; leave empty for the automatic split.")})
    return inputs


class MagicInfiniteRegionMasks:
    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "image": ("IMAGE", {"tooltip": (
                    "The reference image the regions are drawn on: the canvas for boxes and splits, and the "
                    "preview's background (first frame).")}),
                "num_speakers": ("INT", {"default": 2, "min": 1, "max": MAX_SPEAKERS, "tooltip": (
                    "How many speakers; must equal the number of audio tracks, since region i is driven "
                    "by audio track i.")}),
                "auto_split": (list(SPLIT_LAYOUTS), {"default": SPLIT_LAYOUTS[0], "tooltip": (
                    "For a speaker with neither mask nor box: speaker i gets the i-th of num_speakers equal "
                    "strips of the image, left to right or top to bottom.")}),
                "grow_px": ("INT", {"default": 0, "min": -512, "max": 512, "step": 1, "tooltip": (
                    "Grow every region by this many pixels of the reference image; negative values "
                    "shrink it.")}),
                "feather_px": ("INT", {"default": 0, "min": 0, "max": 512, "step": 1, "tooltip": (
                    "Soften region edges over about this many pixels. This rounds corners rather than moving "
                    "edges: a 16x16-pixel token joins a region when at least half of it is covered.")}),
            },
            "optional": _speaker_inputs(),
        }

    RETURN_TYPES = ("MI_REGIONS", "IMAGE")
    RETURN_NAMES = ("regions", "preview")
    OUTPUT_TOOLTIPS = (
        "One region per speaker, for the MagicInfinite sampler.",
        "The reference image with each speaker's region tinted: 1 red, 2 blue, 3 green, 4 amber.",
    )
    FUNCTION = "build"
    CATEGORY = "MagicInfinite/conditioning"
    DESCRIPTION = ("Gives each speaker a region of the picture (a mask, a box, or an automatic split): "
                   "audio track i moves only speaker i's region.")

    def build(self, image, num_speakers: int, auto_split: str, grow_px: int, feather_px: int, **speakers):
        refuse_undeclared("MagicInfinite Region Masks", speakers, _speaker_inputs(), MAX_SPEAKERS)
        sources = [RegionSource(mask=speakers.get(f"mask_{i}"), box=speakers.get(f"box_{i}") or "")
                   for i in _SPEAKERS]
        canvas_height, canvas_width = image.shape[1:3]
        regions = build_regions(canvas_width, canvas_height, num_speakers, sources, split_layout=auto_split,
                                grow_px=grow_px, feather_px=feather_px)
        return regions, tint_preview(image, regions.masks)


NODE_CLASS_MAPPINGS = {"MagicInfiniteRegionMasks": MagicInfiniteRegionMasks}
NODE_DISPLAY_NAME_MAPPINGS = {"MagicInfiniteRegionMasks": "MagicInfinite Region Masks"}
