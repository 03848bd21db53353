"""MagicInfiniteRegionMasks: inputs declared with tooltips; one call from its inputs to regions + preview."""

import pytest
import torch

from magicinfinite_core.errors import InputError
from magicinfinite_core.masks import Regions
from nodes.regions import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS, MagicInfiniteRegionMasks


def test_registered_with_category_and_outputs() -> None:
    assert NODE_CLASS_MAPPINGS["MagicInfiniteRegionMasks"] is MagicInfiniteRegionMasks
    assert "MagicInfiniteRegionMasks" in NODE_DISPLAY_NAME_MAPPINGS
    assert MagicInfiniteRegionMasks.CATEGORY == "MagicInfinite/conditioning"
    assert MagicInfiniteRegionMasks.RETURN_TYPES == ("MI_REGIONS", "IMAGE")
    assert hasattr(MagicInfiniteRegionMasks, MagicInfiniteRegionMasks.FUNCTION)


def test_every_input_has_a_tooltip() -> None:
    spec = MagicInfiniteRegionMasks.INPUT_TYPES()
    inputs = {**spec["required"], **spec["optional"]}
    assert {f"mask_{i}" for i in range(1, 5)} | {f"box_{i}" for i in range(1, 5)} <= set(spec["optional"])
    for name, (_, options) in inputs.items():
        assert options.get("tooltip"), name


def default_inputs() -> dict:
    spec = MagicInfiniteRegionMasks.INPUT_TYPES()["required"]
    return {name: options["default"] for name, (_, options) in spec.items() if "default" in options}


def test_builds_regions_and_preview_from_masks_boxes_and_splits() -> None:
    image = torch.rand(1, 48, 96, 3)
    mask = torch.zeros(1, 48, 96)
    mask[:, :, 64:] = 1.0
    inputs = default_inputs() | {"num_speakers": 3, "mask_3": mask, "box_2": "0.25,0,0.25,1"}
    regions, preview = MagicInfiniteRegionMasks().build(image=image, **inputs)
    assert isinstance(regions, Regions) and regions.num_speakers == 3
    # speaker 1: strip 1 of 3 (0-32 px); speaker 2: box 24-48 px, losing 16-32 to speaker 1's full cover;
    # speaker 3: its mask, 64-96 px; 48-64 px is background
    assert regions.token_classes(96, 48).tolist() == [[1, 1, 2, 0, 3, 3]] * 3
    assert preview.shape == (1, 48, 96, 3)
    assert not torch.equal(preview, image[:1])


def test_a_mask_for_a_speaker_beyond_num_speakers_is_an_error() -> None:
    inputs = default_inputs() | {"num_speakers": 1, "mask_2": torch.ones(1, 8, 8)}
    with pytest.raises(InputError, match="num_speakers is 1"):
        MagicInfiniteRegionMasks().build(image=torch.rand(1, 8, 8, 3), **inputs)


def test_a_fifth_speakers_mask_in_an_api_prompt_is_refused_by_name() -> None:
    inputs = default_inputs() | {"num_speakers": 4, "mask_5": torch.ones(1, 8, 8)}
    with pytest.raises(InputError, match=r"^mask_5: MagicInfinite Region Masks takes at most 4 speakers"):
        MagicInfiniteRegionMasks().build(image=torch.rand(1, 8, 8, 3), **inputs)


def test_optional_box_widgets_left_empty_mean_automatic_split() -> None:
    inputs = default_inputs() | {f"box_{i}": "" for i in range(1, 5)}
    regions, _ = MagicInfiniteRegionMasks().build(image=torch.rand(1, 32, 64, 3), **inputs)
    assert regions.token_classes(64, 32).tolist() == [[1, 1, 2, 2]] * 2
