"""Shared pieces of the resize tests (CPU in tests/modeling, CUDA in tests/gpu): the sizes drawn,
the zoom rule's level sizes, and the byte-for-byte comparison with Pillow."""

from __future__ import annotations

import itertools

import numpy as np
import torch
from hypothesis import strategies as st
from PIL import Image

from dragonfly_eval.modeling.geometry import level_sizes, v1_geometry, v2_geometry
from dragonfly_eval.modeling.resize import resize_bicubic

Resolution = tuple[int, int]  # (width, height)

MAX_SIDE = 6000
MAX_AREA = 20_000  # pixels per drawn image, so that a 6000 px side comes with a thin other side
ZOOM_SOURCE_AREA = 200_000  # source pixels for the zoom-level cases (their outputs are large)
# Source sides whose every pairing, through the zoom rule, selects every candidate resolution.
PROBE_SIDES = (1, 100, 336, 1000, 3000, 6000)
GEOMETRIES = (v1_geometry(), v2_geometry())


@st.composite
def sizes(draw: st.DrawFn, max_area: int = MAX_AREA) -> Resolution:
    """A (width, height) with sides in 1..MAX_SIDE and at most `max_area` pixels, either way round."""
    long_side = draw(st.integers(1, MAX_SIDE))
    short_side = draw(st.integers(1, max(1, min(long_side, max_area // long_side))))
    return (long_side, short_side) if draw(st.booleans()) else (short_side, long_side)


def zoom_targets() -> list[Resolution]:
    """Every level size the zoom rule asks for, over both geometries and all their candidates."""
    targets: set[Resolution] = set()
    for geometry in GEOMETRIES:
        for source in itertools.product(PROBE_SIDES, PROBE_SIDES):
            targets.update(level_sizes(geometry, source, geometry.levels))
    return sorted(targets)


def random_pixels(size: Resolution, seed: int) -> np.ndarray:
    """uint8 [H, W, 3] noise: neighbours far apart, so the bicubic overshoot gets clipped often."""
    width, height = size
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def pillow_resize(pixels: np.ndarray, size: Resolution) -> torch.Tensor:
    """What the released preprocessing does: PIL bicubic on an RGB image."""
    resized = Image.fromarray(pixels).resize(size, Image.Resampling.BICUBIC)
    return torch.from_numpy(np.array(resized))


def assert_matches_pillow(pixels: np.ndarray, size: Resolution, device: str = "cpu") -> None:
    """resize_bicubic on `device` gives Pillow's bytes, as uint8 [H, W, 3] on that device."""
    got = resize_bicubic(torch.from_numpy(pixels).to(device), size)
    assert got.device.type == torch.device(device).type
    assert got.dtype == torch.uint8
    expected = pillow_resize(pixels, size)
    assert got.shape == expected.shape
    assert torch.equal(got.cpu(), expected), (
        f"{pixels.shape[1]}x{pixels.shape[0]} -> {size[0]}x{size[1]} on {device}: "
        f"{int((got.cpu() != expected).sum())} of {expected.numel()} bytes differ"
    )
