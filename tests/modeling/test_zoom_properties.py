"""Property tests of the zoom geometry (issue 7): any size, any PIL mode, never an exception.

Geometry is checked over the whole 1..20000 range; actual crop cutting allocates the resized
levels (up to 4032 x 1008 x 3 bytes for v2 high, plus the source image), so it draws sizes with a
bounded area instead.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from PIL import Image

from dragonfly_eval.modeling.geometry import (
    level_resolutions,
    select_resolution,
    v1_geometry,
    v2_geometry,
)
from dragonfly_eval.modeling.zoom import zoom_crops

V2 = v2_geometry()
V1 = v1_geometry()
sides = st.integers(min_value=1, max_value=20000)
MODES = [
    "1",
    "L",
    "LA",
    "La",
    "P",
    "PA",
    "RGB",
    "RGBA",
    "RGBa",
    "CMYK",
    "YCbCr",
    "LAB",
    "HSV",
    "I",
    "I;16",
    "F",
]
MAX_AREA = 3_000_000


def best_fit(size: tuple[int, int], candidates: list[tuple[int, int]]) -> tuple[int, int]:
    """The spec's rule written out plainly: most effective pixels, then least waste, then order."""
    w, h = size
    scored = []
    for order, (cw, ch) in enumerate(candidates):
        scale = min(cw / w, ch / h)
        effective = min(int(w * scale) * int(h * scale), w * h)
        wasted = cw * ch - effective
        scored.append((-effective, wasted, order))
    return candidates[min(scored)[2]]


@settings(max_examples=400, deadline=None)
@given(w=sides, h=sides)
def test_v2_resolutions_follow_the_spec_rule(w, h):
    se = 336
    medium = best_fit((w, h), [(2 * se, 2 * se), (se, 4 * se), (4 * se, se)])
    assert select_resolution((w, h), V2.medium_candidates) == medium
    levels = level_resolutions(V2, (w, h))
    assert levels == {"low": (se, se), "medium": medium, "high": (3 * medium[0], 3 * medium[1])}
    assert (medium[0] // se) * (medium[1] // se) == 4
    assert (levels["high"][0] // se) * (levels["high"][1] // se) == 36


@settings(max_examples=400, deadline=None)
@given(w=sides, h=sides)
def test_v1_resolutions_follow_the_spec_rule(w, h):
    se = 224
    medium = best_fit((w, h), [(2 * se, 2 * se), (se, 4 * se), (4 * se, se)])
    high = best_fit(
        (w, h),
        [
            (6 * se, 4 * se),
            (4 * se, 6 * se),
            (3 * se, 8 * se),
            (8 * se, 3 * se),
            (2 * se, 12 * se),
            (12 * se, 2 * se),
        ],
    )
    assert level_resolutions(V1, (w, h)) == {"low": (se, se), "medium": medium, "high": high}
    assert (high[0] // se) * (high[1] // se) == 24


@st.composite
def bounded_sizes(draw) -> tuple[int, int]:
    w = draw(sides)
    h = draw(st.integers(min_value=1, max_value=max(1, min(20000, MAX_AREA // w))))
    return (w, h) if draw(st.booleans()) else (h, w)


def mode_image(mode: str, size: tuple[int, int], seed: int) -> Image.Image:
    """A noisy image of `size` in `mode` (noise on a small tile, scaled up to stay fast)."""
    rng = np.random.default_rng(seed)
    tile = Image.fromarray(rng.integers(0, 256, (8, 8, 4), dtype=np.uint8), "RGBA")
    rgba = tile.resize(size, Image.Resampling.NEAREST)
    if mode == "La":
        return rgba.convert("LA").convert("La")
    if mode == "I;16":
        return rgba.convert("I").convert("I;16")
    if mode == "F":
        return rgba.convert("L").convert("F")
    return rgba.convert(mode)


@settings(max_examples=25, deadline=None)
@given(size=bounded_sizes(), mode=st.sampled_from(MODES), seed=st.integers(0, 2**16))
@example(size=(1, 1), mode="1", seed=0)
@example(size=(20000, 1), mode="P", seed=0)
@example(size=(1, 20000), mode="I;16", seed=0)
@example(size=(20000, 150), mode="CMYK", seed=0)
def test_v2_crops_for_any_size_and_mode(size, mode, seed):
    image = mode_image(mode, size, seed)
    crops = zoom_crops(image, V2)
    assert crops.shape == (41, 336, 336, 3) and crops.dtype == np.uint8


@settings(max_examples=25, deadline=None)
@given(size=bounded_sizes(), mode=st.sampled_from(MODES), seed=st.integers(0, 2**16))
def test_v1_crops_for_any_size_and_mode(size, mode, seed):
    image = mode_image(mode, size, seed)
    crops = zoom_crops(image, V1)
    assert crops.shape == (29, 224, 224, 3) and crops.dtype == np.uint8
    if mode != "La":  # the one mode Pillow cannot take to RGB directly
        rgb = zoom_crops(image.convert("RGB"), V1, ("low",))
        np.testing.assert_array_equal(crops[:1], rgb)


@pytest.mark.parametrize("mode", MODES)
def test_every_mode_is_accepted(mode):
    crops = zoom_crops(mode_image(mode, (333, 17), 0), V2, ("low", "medium"))
    assert crops.shape == (5, 336, 336, 3)
