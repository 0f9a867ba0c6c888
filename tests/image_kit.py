"""Reproducible test images, shared by the harness and engine tests."""

from __future__ import annotations

import numpy as np
from PIL import Image


def noise_image(seed: int, size: tuple[int, int] = (64, 48)) -> Image.Image:
    """A reproducible RGB image of random pixels, `size` = (width, height)."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
