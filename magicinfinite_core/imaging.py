"""Fitting pictures to the video frame: the one resize + centre-crop shared by the reference image and masks.

The reference image and the speaker masks must land on the frame in exactly the same place, otherwise a
region drawn on the portrait would cover a different patch of the generated video. Both therefore go
through `fit_image`.

Pictures cross to and from files as 8-bit RGB: `to_uint8` / `from_uint8` are the one conversion both ways.
"""

import math

import numpy as np
import torch
import torch.nn.functional as F

from magicinfinite_core.errors import InputError


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """Float 0..1 pixels [..., 3] -> uint8 RGB (clamped, rounded), as video encoders take them."""
    return (images.float().clamp(0, 1) * 255.0).round().to(torch.uint8).cpu().numpy()


def from_uint8(pixels: np.ndarray) -> torch.Tensor:
    """uint8 RGB pixels [..., 3], as decoders give them -> float32 0..1."""
    return torch.from_numpy(pixels).float().div(255.0)


# How far an IMAGE may stray outside 0..1 and still be taken (clamped): bicubic resizers such as ComfyUI's
# ImageScale overshoot 0..1 pictures by up to about 0.25 at hard edges. A 0..255 picture is far beyond it.
IMAGE_OVERSHOOT = 0.5


def check_image(image: torch.Tensor, name: str = "image") -> None:
    """InputError unless `image` holds finite values in ComfyUI's IMAGE range 0..1 (give or take resizer
    overshoot); `name` says which input it is. Reduces over the tensor without copying it (a source video to
    dub may be many frames)."""
    if image.numel() == 0:
        return
    low, high = (float(value) for value in torch.aminmax(image.detach()))
    if math.isnan(low) or math.isnan(high):
        raise InputError(f"{name}: the picture contains NaN (not a number) values; expected an IMAGE with "
                         "values from 0 to 1. Check the node that made it (a failed decode or a broken "
                         "upstream node).")
    if math.isinf(low) or math.isinf(high):
        raise InputError(f"{name}: the picture contains infinite values (from {low:.9g} to {high:.9g}); "
                         "expected an IMAGE with values from 0 to 1. Check the node that made it.")
    if low < -IMAGE_OVERSHOOT or high > 1 + IMAGE_OVERSHOOT:
        hint = ""
        if high > 2 and low >= -IMAGE_OVERSHOOT:
            hint = " It looks like a 0..255 picture: divide it by 255."
        elif low >= -1 and high <= 1 + IMAGE_OVERSHOOT:
            hint = " It looks like a -1..1 picture: map it with (x + 1) / 2."
        raise InputError(f"{name}: the picture has values from {low:.9g} to {high:.9g}; expected an IMAGE "
                         f"with values from 0 to 1 (ComfyUI's IMAGE range).{hint}")


def cover_crop_box(src_width: int, src_height: int, width: int, height: int) -> tuple[int, int, int, int]:
    """The centred (left, top, crop_width, crop_height) of the source that has the target's aspect ratio.

    Cropping first and then resizing that crop to exactly (width, height) is "resize to cover, centre-crop"
    without rounding drift: the output size is always exact.
    """
    if src_width * height > width * src_height:  # source is wider than the target: trim left and right
        crop_height = src_height
        crop_width = max(1, min(src_width, round(src_height * width / height)))
    else:  # source is taller (or the same aspect): trim top and bottom
        crop_width = src_width
        crop_height = max(1, min(src_height, round(src_width * height / width)))
    return (src_width - crop_width) // 2, (src_height - crop_height) // 2, crop_width, crop_height


def fit_image(image: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Resize `image` [N, H, W, C] to cover (width, height) and centre-crop it: returns [N, height, width, C].

    The resize is bilinear with antialiasing (a triangle filter whose weights are all positive), so values
    stay within the input's range up to float32 rounding (an all-ones picture may give 1.0000002: clamp
    where the range is checked): 0..1 images stay 0..1 and {0,1} masks become coverage fractions.
    Computed in float32, returned in the input's dtype and device.
    """
    if not isinstance(width, int) or not isinstance(height, int) or width < 1 or height < 1:
        raise InputError(
            f"fit_image: width and height must be positive integers, got {width!r} x {height!r}."
        )
    if image.ndim != 4:
        raise InputError(
            f"fit_image: expected an IMAGE shaped [N, H, W, C], got a tensor of shape {tuple(image.shape)}."
        )
    _, src_height, src_width, _ = image.shape
    if src_height < 1 or src_width < 1:
        raise InputError(f"fit_image: the image is empty (shape {tuple(image.shape)}).")
    left, top, crop_width, crop_height = cover_crop_box(src_width, src_height, width, height)
    cropped = image[:, top : top + crop_height, left : left + crop_width, :]
    if (crop_height, crop_width) == (height, width):
        return cropped.clone()
    channels_first = cropped.permute(0, 3, 1, 2).float()
    resized = F.interpolate(channels_first, size=(height, width), mode="bilinear", align_corners=False,
                            antialias=True)
    return resized.permute(0, 2, 3, 1).to(image.dtype).contiguous()
