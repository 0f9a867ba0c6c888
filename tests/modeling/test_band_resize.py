"""The largest zoom level's resize split into bands (issue 14's CPU path): Pillow's passes run one
call per axis, the last pass in bands of whole crops on two cores. The bands, put side by side,
must be Pillow's single `Image.resize(size, BICUBIC)` byte for byte, whichever pass Pillow runs
first, and the processor's overlapped `pixels` must equal its plain crops, normalized."""

from __future__ import annotations

import numpy as np
import PIL
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from resize_kit import random_pixels, sizes

from dragonfly_eval.modeling.geometry import v2_geometry
from dragonfly_eval.modeling.image_processing import DragonflyImageProcessor
from dragonfly_eval.modeling.passes import (
    band_crops,
    first_pass,
    last_pass_band,
    last_pass_bands,
    resize_passes,
)
from dragonfly_eval.modeling.zoom import cut_level


def _banded(image: Image.Image, size, se: int, bands: int):
    """The level from its bands, and the pass order; None as the level when nothing resizes."""
    passes = resize_passes(image.size, size)
    ranges = last_pass_bands(size, image.size, se, bands)
    if not ranges:
        return None, passes
    first = first_pass(image, size)
    parts = [last_pass_band(first, image.size, size, band) for band in ranges]
    axis = 1 if passes[-1] == "vertical" else 0  # vertical last: bands of columns
    return np.concatenate(parts, axis=axis), passes


@st.composite
def level_sizes_of(draw: st.DrawFn):
    """A crop side and a level of whole crops, 1 to 6 crops a side."""
    se = draw(st.integers(1, 40))
    return se, (se * draw(st.integers(1, 6)), se * draw(st.integers(1, 6)))


@settings(max_examples=300, deadline=None)
@given(
    source=sizes(max_area=60_000),
    level=level_sizes_of(),
    bands=st.integers(2, 4),
    seed=st.integers(0, 2**32 - 1),
)
def test_bands_put_together_are_pillows_single_resize(source, level, bands, seed):
    se, size = level
    image = Image.fromarray(random_pixels(source, seed))
    banded, _ = _banded(image, size, se, bands)
    expected = np.asarray(image.resize(size, Image.Resampling.BICUBIC))
    assert np.array_equal(expected if banded is None else banded, expected)


@pytest.mark.parametrize(
    ("source", "size", "passes"),
    [
        ((200, 150), (336, 336), ("horizontal", "vertical")),  # both axes grow
        ((300, 900), (336, 168), ("vertical", "horizontal")),  # height shrinks most: Pillow 13
        ((336, 100), (336, 336), ("vertical",)),  # width kept: one pass, bands of columns
        ((100, 336), (336, 336), ("horizontal",)),  # height kept: bands of rows
    ],
)
def test_both_pass_orders_and_single_passes_are_exact(source, size, passes):
    if passes == ("vertical", "horizontal") and int(PIL.__version__.split(".")[0]) < 13:
        passes = ("horizontal", "vertical")  # before 13, Pillow always went horizontal first
    image = Image.fromarray(random_pixels(source, seed=7))
    banded, order = _banded(image, size, 56, 2)
    assert order == passes
    assert np.array_equal(banded, np.asarray(image.resize(size, Image.Resampling.BICUBIC)))


def test_band_crops_name_the_crops_of_the_whole_level():
    image = Image.fromarray(random_pixels((150, 250), seed=3))
    se = 28
    for size in ((168, 112), (112, 56)):  # vertical last pass (columns), horizontal last (rows)
        whole = cut_level(np.asarray(image.resize(size, Image.Resampling.BICUBIC)), se)
        first = first_pass(image, size)
        seen = []
        for band in last_pass_bands(size, image.size, se, 2):
            rows = band_crops(size, image.size, se, band)
            part = last_pass_band(first, image.size, size, band)
            assert np.array_equal(cut_level(part, se), whole[rows])
            seen.extend(rows.tolist())
        assert sorted(seen) == list(range(len(whole)))


@pytest.mark.parametrize(
    "source",
    [(1024, 768), (640, 480), (700, 5000), (20, 20), (336, 336)],
    ids=lambda s: f"{s[0]}x{s[1]}",
)
def test_overlapped_pixels_equal_plain_normalized_crops(source):
    """700x5000 makes the high level (1008x4032) shrink in height: Pillow 13 runs its vertical
    pass first, and the bands are rows."""
    processor = DragonflyImageProcessor(geometry=v2_geometry(), zoom="full", resize_threads=3)
    image = Image.fromarray(random_pixels(source, seed=11))
    plain = processor.normalize(torch.from_numpy(processor.crops(image)))
    assert torch.equal(processor.pixels(image), plain)
