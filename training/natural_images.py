"""Procedural natural-image clips, so the small VAE learns image statistics beyond the cartoon world.

Photos share a few statistics that procedural pictures reproduce cheaply: occlusion of objects of every
size (the dead-leaves model: discs and boxes with a power-law size distribution, painted over each other),
smooth shading (random linear gradients inside objects and behind them), fine texture (band-limited noise)
and soft focus. The VAE never sees a photo in training; the held-out photos scikit-image ships measure how
far these statistics carry (bench/quality.py).

A clip is a slow random pan and zoom over one such picture, with a little brightness change, so the VAE's
temporal path sees motion of real-image texture too.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

CANVAS = 96  # the picture is drawn larger than the frame so a pan never leaves it


def _uniform(generator: torch.Generator, low: float, high: float, *shape: int) -> torch.Tensor:
    return low + (high - low) * torch.rand(shape, generator=generator)


def _gradient(generator: torch.Generator, size: int) -> torch.Tensor:
    """A random linear colour gradient [size, size, 3]."""
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    angle = float(_uniform(generator, 0.0, 2 * math.pi, 1))
    ramp = (math.cos(angle) * xs + math.sin(angle) * ys)[..., None] / 2  # -0.5..0.5 roughly
    base = torch.rand(3, generator=generator)
    slope = _uniform(generator, -0.6, 0.6, 3)
    return base + slope * ramp


def _texture(generator: torch.Generator, size: int) -> torch.Tensor:
    """Band-limited noise [size, size, 1]: white noise blurred at a random scale."""
    noise = torch.randn(1, 1, size, size, generator=generator)
    scale = int(torch.randint(1, 6, (1,), generator=generator))
    kernel = torch.ones(1, 1, 2 * scale + 1, 2 * scale + 1) / (2 * scale + 1) ** 2
    smooth = F.conv2d(F.pad(noise, (scale,) * 4, mode="reflect"), kernel)
    return (smooth / smooth.std().clamp_min(1e-6))[0].permute(1, 2, 0)


def dead_leaves(generator: torch.Generator, size: int = CANVAS, shapes: int = 120) -> torch.Tensor:
    """One picture [size, size, 3] 0..1: shaded, textured discs and boxes of power-law sizes over a
    gradient, optionally softened."""
    picture = _gradient(generator, size)
    ys, xs = torch.meshgrid(torch.arange(size).float(), torch.arange(size).float(), indexing="ij")
    for _ in range(shapes):
        # radius density ~ r^-3 between 1.5 and size/2: many small leaves, a few large ones
        u = float(torch.rand((), generator=generator))
        low, high = 1.5, size / 2
        radius = (low ** -2 - u * (low ** -2 - high ** -2)) ** -0.5
        cx, cy = (float(v) for v in _uniform(generator, -0.1 * size, 1.1 * size, 2))
        if float(torch.rand((), generator=generator)) < 0.6:
            inside = (xs - cx) ** 2 + (ys - cy) ** 2 < radius ** 2
        else:
            aspect = float(_uniform(generator, 0.4, 2.5, 1))
            inside = ((xs - cx).abs() < radius * aspect) & ((ys - cy).abs() < radius / aspect)
        colour = _gradient(generator, size)
        if float(torch.rand((), generator=generator)) < 0.4:
            colour = colour + float(_uniform(generator, 0.02, 0.15, 1)) * _texture(generator, size)
        picture = torch.where(inside[..., None], colour, picture)
    picture = picture + float(_uniform(generator, 0.0, 0.06, 1)) * _texture(generator, size)
    if float(torch.rand((), generator=generator)) < 0.3:  # soft focus
        blurred = F.avg_pool2d(picture.permute(2, 0, 1)[None], 3, stride=1, padding=1,
                               count_include_pad=False)
        picture = blurred[0].permute(1, 2, 0)
    return picture.clamp(0.0, 1.0)


def natural_clip(generator: torch.Generator, num_frames: int, height: int, width: int) -> torch.Tensor:
    """Frames [num_frames, height, width, 3] 0..1: a slow pan and zoom over one dead-leaves picture."""
    picture = dead_leaves(generator).permute(2, 0, 1)[None]  # [1, 3, S, S]
    start = _uniform(generator, -0.25, 0.25, 2)
    velocity = _uniform(generator, -0.02, 0.02, 2)  # of the canvas' half-width per frame (~1 pixel)
    zoom0 = float(_uniform(generator, 0.6, 0.75, 1))
    zoom_rate = float(_uniform(generator, -0.004, 0.004, 1))
    gain = float(_uniform(generator, -0.01, 0.01, 1))
    frames = []
    for t in range(num_frames):
        zoom = zoom0 + zoom_rate * t
        centre = start + velocity * t
        theta = torch.tensor([[zoom, 0.0, float(centre[0])], [0.0, zoom, float(centre[1])]])[None]
        grid = F.affine_grid(theta, [1, 3, height, width], align_corners=False)
        frame = F.grid_sample(picture, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
        frames.append((frame[0].permute(1, 2, 0) * (1.0 + gain * t)).clamp(0.0, 1.0))
    return torch.stack(frames)
