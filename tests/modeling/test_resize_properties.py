"""resize_bicubic (issue 14) equals Pillow's `Image.resize(size, BICUBIC)` byte for byte, on the CPU.

Random sizes from 1 to 6000 px on an axis (thin images for the long sides), up- and downscaling
on each axis in any combination, every level size the zoom rule produces, and fixed edge cases.
The same comparisons run on CUDA in tests/gpu/test_gpu_resize.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from resize_kit import (
    GEOMETRIES,
    ZOOM_SOURCE_AREA,
    assert_matches_pillow,
    pillow_resize,
    random_pixels,
    sizes,
    zoom_targets,
)

from dragonfly_eval import DragonflyProcessor
from dragonfly_eval.modeling.geometry import level_sizes
from dragonfly_eval.modeling.passes import vertical_pass_first
from dragonfly_eval.modeling.resize import axis_taps, resize_bicubic
from dragonfly_eval.modeling.zoom import cut_level, to_rgb

seeds = st.integers(0, 2**32 - 1)


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Most cases are tiny tensors: on shared cores, OpenMP wake-ups would cost more than the
    work (the bytes are the same with any thread count)."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


@settings(max_examples=250, deadline=None)
@given(source=sizes(), target=sizes(), seed=seeds)
def test_random_sizes_match_pillow(source, target, seed):
    assert_matches_pillow(random_pixels(source, seed), target)


def test_zoom_targets_cover_every_candidate_resolution():
    targets = set(zoom_targets())
    for geometry in GEOMETRIES:
        se = geometry.crop_size
        assert (se, se) in targets
        assert set(geometry.medium_candidates) <= targets
        high = geometry.high_candidates or tuple(
            (w * geometry.high_scale, h * geometry.high_scale)
            for w, h in geometry.medium_candidates
        )
        assert set(high) <= targets


@pytest.mark.parametrize("target", zoom_targets(), ids=lambda s: f"{s[0]}x{s[1]}")
@settings(max_examples=2, deadline=None)
@given(source=sizes(max_area=ZOOM_SOURCE_AREA), seed=seeds)
def test_zoom_levels_match_pillow(target, source, seed):
    assert_matches_pillow(random_pixels(source, seed), target)


@pytest.mark.parametrize(
    ("source", "target"),
    [
        ((1, 1), (1, 1)),  # identity
        ((37, 23), (37, 23)),  # identity
        ((1, 1), (336, 336)),  # one pixel blown up
        ((2, 3), (4032, 1008)),  # huge upscale factor on both axes
        ((1, 6000), (1, 336)),  # 1 px wide, height only
        ((1, 5), (1, 6000)),  # 1 px wide, 1200x taller
        ((6000, 1), (336, 1)),  # 1 px high, width only
        ((6000, 2), (1, 1)),  # everything into one pixel: windows of 24000 taps
        ((3, 400), (2, 100)),  # over 100x taller than wide, both shrink
        ((60, 60), (40, 10)),  # height shrinks 50 px, width 20: Pillow 13 goes vertical first
        ((60, 60), (40, 30)),  # height 30 px, width 20: horizontal first
        ((60, 60), (35, 10)),  # 50 px against twice 25: the tie goes horizontal first
        ((60, 60), (90, 10)),  # width grows, height shrinks
        ((60, 60), (10, 90)),  # width shrinks, height grows
    ],
)
def test_fixed_cases_match_pillow(source, target):
    assert_matches_pillow(random_pixels(source, seed=sum(source + target)), target)


@settings(max_examples=200, deadline=None)
@given(in_size=st.integers(1, 6000), out_size=st.integers(1, 6000))
def test_windows_read_every_source_row(in_size, out_size):
    """Why no rows are cropped before the first pass: together the windows span the whole axis."""
    index, weight = axis_taps(in_size, out_size)
    assert index.shape[0] == out_size
    assert int(index[0, 0]) == 0 and int(index.max()) == in_size - 1
    assert bool((weight.sum(1) > 0).all())


@pytest.mark.parametrize(
    ("pillow", "source", "target", "expected"),
    [
        ((13, 0), (60, 60), (40, 10), True),
        ((13, 0), (60, 60), (35, 10), False),
        ((12, 3), (3, 400), (2, 100), True),  # 12.2-12.3: only over 100x taller than wide
        ((12, 3), (60, 60), (40, 10), False),
        ((12, 1), (3, 400), (2, 100), False),  # before 12.2: always horizontal first
    ],
)
def test_pass_order_follows_the_pillow_release(pillow, source, target, expected):
    assert vertical_pass_first(source, target, pillow) is expected


def test_channels_first_layout_gives_the_same_bytes():
    pixels = random_pixels((50, 40), seed=1)
    chw = torch.from_numpy(pixels).permute(2, 0, 1).contiguous()  # [3, H, W]
    got = resize_bicubic(chw, (30, 70))
    assert got.shape == (3, 70, 30) and got.is_contiguous()
    assert torch.equal(got.permute(1, 2, 0), pillow_resize(pixels, (30, 70)))


def test_strided_input_gives_the_same_bytes():
    pixels = random_pixels((80, 60), seed=2)
    view = torch.from_numpy(pixels)[5:50, 10:70]  # not contiguous
    assert torch.equal(resize_bicubic(view, (33, 99)), pillow_resize(view.numpy().copy(), (33, 99)))


def test_same_size_returns_a_copy():
    pixels = torch.from_numpy(random_pixels((9, 7), seed=3))
    out = resize_bicubic(pixels, (9, 7))
    assert torch.equal(out, pixels) and out.data_ptr() != pixels.data_ptr()


@pytest.mark.parametrize(
    ("pixels", "size", "error", "message"),
    [
        (torch.zeros(4, 4, 3), (2, 2), TypeError, "uint8"),
        (torch.zeros(4, 4, 4, dtype=torch.uint8), (2, 2), ValueError, r"\[H, W, 3\]"),
        (torch.zeros(4, 4, dtype=torch.uint8), (2, 2), ValueError, r"\[3, H, W\]"),
        (torch.zeros(4, 4, 3, dtype=torch.uint8), (0, 2), ValueError, "at least 1 x 1"),
        (torch.zeros(4, 4, 3, dtype=torch.uint8), (2.5, 2), TypeError, "integer"),
    ],
)
def test_bad_input_is_refused_with_the_fix(pixels, size, error, message):
    with pytest.raises(error, match=message):
        resize_bicubic(pixels, size)


@pytest.fixture(scope="module")
def image_processor_of():
    """The image processor of a golden set's checkpoint, loaded once."""
    cache = {}

    def load(checkpoint):
        if checkpoint not in cache:
            cache[checkpoint] = DragonflyProcessor.from_pretrained(str(checkpoint)).image_processor
        return cache[checkpoint]

    return load


def torch_crops(image: Image.Image, processor) -> torch.Tensor:
    """The crops the way a device path cuts them: one upload, every level by resize_bicubic."""
    rgb = to_rgb(image)
    pixels = torch.from_numpy(np.array(rgb))  # [H, W, 3] uint8
    se = processor.geometry.crop_size
    levels = [
        pixels if size == rgb.size else resize_bicubic(pixels, size)
        for size in level_sizes(processor.geometry, rgb.size, processor.levels)
    ]
    return torch.cat([cut_level(level, se) for level in levels])  # [n_crops, se, se, 3]


def test_golden_images_give_the_processors_crops(golden_case, image_processor_of):
    processor = image_processor_of(golden_case.golden.checkpoint)
    expected = torch.from_numpy(processor.crops(golden_case.image))
    assert torch.equal(torch_crops(golden_case.image, processor), expected)
