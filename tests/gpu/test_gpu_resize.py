"""On a CUDA device: resize_bicubic equals Pillow's bicubic resize byte for byte (issue 14).

The CPU property tests (tests/modeling/test_resize_properties.py) run here on CUDA: random sizes,
every zoom level size, and CUDA equal to the CPU. Skipped without CUDA; run on a GPU machine
with `pytest tests/gpu -q`.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from resize_kit import ZOOM_SOURCE_AREA, assert_matches_pillow, random_pixels, sizes, zoom_targets

from dragonfly_eval.modeling.resize import resize_bicubic

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (GPU resize)"),
]
seeds = st.integers(0, 2**32 - 1)


@settings(max_examples=250, deadline=None)
@given(source=sizes(), target=sizes(), seed=seeds)
def test_random_sizes_match_pillow_on_cuda(source, target, seed):
    assert_matches_pillow(random_pixels(source, seed), target, device="cuda")


@pytest.mark.parametrize("target", zoom_targets(), ids=lambda s: f"{s[0]}x{s[1]}")
@settings(max_examples=5, deadline=None)
@given(source=sizes(max_area=ZOOM_SOURCE_AREA), seed=seeds)
def test_zoom_levels_match_pillow_on_cuda(target, source, seed):
    assert_matches_pillow(random_pixels(source, seed), target, device="cuda")


@pytest.mark.parametrize(
    ("source", "target"), [((1024, 768), (2016, 2016)), ((6000, 2), (1, 1)), ((3, 400), (2, 100))]
)
def test_cuda_and_cpu_give_the_same_bytes(source, target):
    pixels = torch.from_numpy(random_pixels(source, seed=0))
    on_cuda = resize_bicubic(pixels.cuda(), target)
    assert on_cuda.is_cuda
    assert torch.equal(on_cuda.cpu(), resize_bicubic(pixels, target))
