"""Shared pieces of the benchmarks: deterministic synthetic images."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw


def synthetic_image(width: int, height: int, seed: int) -> Image.Image:
    """A drawn RGB image (gradient, shapes, noise): the same pixels on every run."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1), (x + y) % 256])
    noise = rng.integers(0, 32, size=(3, height, width))
    image = Image.fromarray(((base + noise) % 256).astype(np.uint8).transpose(1, 2, 0))
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        x1, y1 = x0 + int(rng.integers(10, width // 3)), y0 + int(rng.integers(10, height // 3))
        fill = tuple(int(v) for v in rng.integers(0, 256, size=3))
        draw.rectangle((x0, y0, x1, y1), fill=fill)
    return image
