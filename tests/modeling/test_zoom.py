"""Zoom-in geometry: resolution choice, crop counts and crop order for v1 and v2."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from dragonfly_eval.modeling.geometry import (
    crop_token_counts,
    crops_per_level,
    default_zoom,
    level_resolutions,
    select_resolution,
    v1_geometry,
    v2_geometry,
    zoom_levels,
)
from dragonfly_eval.modeling.zoom import zoom_crops

V2 = v2_geometry()
V1 = v1_geometry()


# Expected choices worked out by hand with the spec's rule (effective pixels, then waste, then
# list order) over v2's medium candidates (672, 672), (336, 1344), (1344, 336).
@pytest.mark.parametrize(
    ("size", "medium"),
    [
        ((640, 480), (672, 672)),  # 672x504 effective vs 336x252 and 448x336
        ((480, 640), (672, 672)),
        ((600, 400), (672, 672)),  # 3:2 still fits the square best: 240000 vs 169344
        ((2500, 1700), (672, 672)),
        ((1200, 200), (1344, 336)),  # 1344x224 capped at the image's 240000 pixels
        ((200, 1200), (336, 1344)),
        ((700, 300), (1344, 336)),  # 7:3: 784x336 (capped 210000) beats 672x288 = 193536
        ((300, 700), (336, 1344)),
        ((4032, 1008), (1344, 336)),
        ((1008, 4032), (336, 1344)),
        ((1000, 100), (1344, 336)),
        ((20000, 30), (1344, 336)),  # 1344x2 pixels vs 672x1
        ((30, 20000), (336, 1344)),
        # Ties: every candidate reaches the image's own pixel count and wastes the same, so the
        # first in the list wins, whatever the aspect ratio.
        ((336, 336), (672, 672)),
        ((37, 23), (672, 672)),
        ((10, 100), (672, 672)),
        ((100, 10), (672, 672)),
        ((1, 1), (672, 672)),
        # A 1-pixel side scales to int(...) = 0 rows at every candidate: all keep 0 pixels.
        ((20000, 1), (672, 672)),
        ((1, 20000), (672, 672)),
    ],
)
def test_v2_medium_resolution_follows_best_fit(size, medium):
    assert select_resolution(size, V2.medium_candidates) == medium
    assert level_resolutions(V2, size) == {
        "low": (336, 336),
        "medium": medium,
        "high": (3 * medium[0], 3 * medium[1]),
    }


@pytest.mark.parametrize(
    ("size", "medium", "high"),
    [
        ((640, 480), (448, 448), (1344, 896)),  # all high candidates capped at 307200: first
        ((1200, 200), (896, 224), (1344, 896)),
        ((6000, 1000), (896, 224), (2688, 448)),  # 2688x448 fills every candidate pixel
        ((1000, 6000), (224, 896), (448, 2688)),
        ((1344, 896), (448, 448), (1344, 896)),
        ((896, 1344), (448, 448), (896, 1344)),
        ((3584, 1344), (896, 224), (1792, 672)),  # 8:3 exactly
        ((1344, 3584), (224, 896), (672, 1792)),
    ],
)
def test_v1_resolutions_follow_best_fit(size, medium, high):
    assert level_resolutions(V1, size) == {"low": (224, 224), "medium": medium, "high": high}


def test_waste_breaks_ties_before_list_order():
    # Both candidates hold the whole 50x50 image; the smaller one wastes less and wins even
    # though it comes second.
    assert select_resolution((50, 50), ((200, 200), (100, 100))) == (100, 100)
    assert select_resolution((50, 50), ((100, 100), (200, 200))) == (100, 100)


def test_effective_pixels_beat_waste():
    # (100, 10) keeps 100x10 pixels of a 1000x100 image and wastes none; (1000, 1000) keeps
    # all 100000 and wastes most of its area: more kept pixels win.
    assert select_resolution((1000, 100), ((100, 10), (1000, 1000))) == (1000, 1000)


def test_crop_counts_per_level():
    assert crops_per_level(V2) == {"low": 1, "medium": 4, "high": 36}
    assert crops_per_level(V1) == {"low": 1, "medium": 4, "high": 24}


@pytest.mark.parametrize(
    ("version", "zoom", "levels"),
    [
        (2, "full", ("low", "medium", "high")),
        (2, "low+medium", ("low", "medium")),
        (2, "low", ("low",)),
        (1, "select", ("low", "medium", "high")),
        (1, "full", ("low", "medium", "high")),
        (1, "low+medium", ("low", "medium")),
        (1, "low", ("low",)),
    ],
)
def test_zoom_levels(version, zoom, levels):
    assert zoom_levels(version, zoom) == levels


@pytest.mark.parametrize(("version", "zoom"), [(2, "select"), (2, "high"), (1, "medium"), (1, "")])
def test_unknown_zoom_is_refused_with_the_choices(version, zoom):
    with pytest.raises(ValueError, match="choose from"):
        zoom_levels(version, zoom)


def test_default_zoom_is_what_the_releases_use():
    assert default_zoom(2) == "full"
    assert default_zoom(1) == "select"


@pytest.mark.parametrize(
    ("version", "zoom", "grid", "counts"),
    [
        (2, "full", 24, [577] + [37] * 40),
        (2, "low+medium", 24, [577] + [37] * 4),
        (2, "low", 24, [577]),
        (1, "select", 7, [50] * 17),
        (1, "full", 7, [50] * 29),
        (1, "low+medium", 7, [50] * 5),
        (1, "low", 7, [50]),
    ],
)
def test_visual_tokens_per_crop(version, zoom, grid, counts):
    assert crop_token_counts(version, zoom, grid) == counts


def block_image(cols: int, rows: int, block: int) -> tuple[Image.Image, list[tuple[int, int, int]]]:
    """An RGB image of rows x cols solid blocks, each a distinct colour (row-major list)."""
    colours = [(4 * i, 255 - 4 * i, (37 * i) % 256) for i in range(rows * cols)]
    pixels = np.zeros((rows * block, cols * block, 3), dtype=np.uint8)
    for i, colour in enumerate(colours):
        r, c = divmod(i, cols)
        pixels[r * block : (r + 1) * block, c * block : (c + 1) * block] = colour
    return Image.fromarray(pixels), colours


def assert_solid(crop: np.ndarray, colour: tuple[int, int, int]) -> None:
    assert (crop == np.array(colour, dtype=np.uint8)).all()


@pytest.mark.parametrize(("cols", "rows"), [(6, 6), (12, 3), (3, 12)])
def test_v2_high_crops_are_row_major(cols, rows):
    # An image exactly at its high resolution (3x the medium one) is not resampled there, so
    # high crop i must be block i of the image.
    image, colours = block_image(cols, rows, 336)
    crops = zoom_crops(image, V2)
    assert crops.shape == (41, 336, 336, 3) and crops.dtype == np.uint8
    for i, colour in enumerate(colours):
        assert_solid(crops[5 + i], colour)


@pytest.mark.parametrize(("cols", "rows"), [(2, 2), (4, 1), (1, 4)])
def test_v2_medium_crops_are_row_major(cols, rows):
    image, colours = block_image(cols, rows, 336)
    crops = zoom_crops(image, V2)
    for k, colour in enumerate(colours):
        assert_solid(crops[1 + k], colour)
    # The high level upsamples 3x: the middle of high crop (r, c) lies inside block
    # (r // 3, c // 3), far from any edge.
    high_cols = 3 * cols
    for i in range(36):
        r, c = divmod(i, high_cols)
        assert (crops[5 + i][168, 168] == colours[(r // 3) * cols + c // 3]).all()


def test_low_crop_is_the_whole_image_squashed_with_bicubic():
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (480, 640, 3), np.uint8))
    crops = zoom_crops(image, V2)
    expected = np.asarray(image.resize((336, 336), Image.Resampling.BICUBIC))
    np.testing.assert_array_equal(crops[0], expected)


def test_medium_and_high_resize_the_whole_image_without_padding():
    image = Image.fromarray(np.random.default_rng(1).integers(0, 256, (200, 1200, 3), np.uint8))
    crops = zoom_crops(image, V2)
    medium = np.asarray(image.resize((1344, 336), Image.Resampling.BICUBIC))
    high = np.asarray(image.resize((4032, 1008), Image.Resampling.BICUBIC))
    for k in range(4):
        np.testing.assert_array_equal(crops[1 + k], medium[:, 336 * k : 336 * (k + 1)])
    for i in range(36):
        r, c = divmod(i, 12)
        np.testing.assert_array_equal(
            crops[5 + i], high[336 * r : 336 * (r + 1), 336 * c : 336 * (c + 1)]
        )


@pytest.mark.parametrize(("cols", "rows"), [(6, 4), (4, 6), (8, 3), (12, 2), (2, 12)])
def test_v1_high_crops_are_row_major(cols, rows):
    image, colours = block_image(cols, rows, 224)
    crops = zoom_crops(image, V1)
    assert crops.shape == (29, 224, 224, 3)
    for i, colour in enumerate(colours):
        assert_solid(crops[5 + i], colour)


@pytest.mark.parametrize(
    ("zoom", "version", "n_crops"),
    [("full", 2, 41), ("low+medium", 2, 5), ("low", 2, 1), ("select", 1, 29), ("low", 1, 1)],
)
def test_zoom_setting_cuts_only_its_levels(zoom, version, n_crops):
    geometry = V1 if version == 1 else V2
    image, _ = block_image(2, 2, geometry.crop_size)
    full = zoom_crops(image, geometry)
    crops = zoom_crops(image, geometry, zoom_levels(version, zoom))
    assert len(crops) == n_crops
    np.testing.assert_array_equal(crops, full[:n_crops])


def test_resizing_in_a_thread_pool_gives_the_same_crops():
    image = Image.fromarray(np.random.default_rng(2).integers(0, 256, (300, 700, 3), np.uint8))
    with ThreadPoolExecutor(max_workers=3) as pool:
        pooled = zoom_crops(image, V2, pool=pool)
    np.testing.assert_array_equal(pooled, zoom_crops(image, V2))
