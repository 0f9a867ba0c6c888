"""On a CUDA device: the device preprocessing path gives the Pillow path's bytes (issue 14).

With `device_resize="auto"` a CUDA target takes the device path (one upload of the image's uint8
pixels, levels resized, cut and normalized on the GPU); its crops and pixels must equal the CPU
Pillow path's exactly, for the bench image sizes and every golden image. Skipped without CUDA;
run on a GPU machine with `pytest tests/gpu -q`.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from dragonfly_eval.modeling.geometry import v1_geometry, v2_geometry
from dragonfly_eval.modeling.image_processing import DragonflyImageProcessor

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(
        not torch.cuda.is_available(), reason="needs a CUDA device (device preprocessing)"
    ),
]
SIZES = [(336, 336), (640, 480), (1024, 768), (1920, 1080), (800, 1200), (2500, 1700)]


def noise(size: tuple[int, int], seed: int) -> Image.Image:
    width, height = size
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


@pytest.mark.parametrize("geometry", [v2_geometry(), v1_geometry()], ids=["v2", "v1"])
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_cuda_crops_and_pixels_equal_the_pillow_path(geometry, size):
    processor = DragonflyImageProcessor(geometry=geometry, zoom="full")
    assert processor.resizes_on_device("cuda")
    image = noise(size, seed=size[0])
    crops = processor.crops_on(image, "cuda")  # [n_crops, se, se, 3] uint8 on the GPU
    assert crops.is_cuda
    assert torch.equal(crops.cpu(), torch.from_numpy(processor.crops(image)))
    pixels = processor.pixels_on(image, "cuda", torch.float32)
    assert torch.equal(pixels.cpu(), processor.pixels(image))


def test_cuda_golden_pixels_equal_the_cpu_pixels(golden_case, load_pair):
    _, processor = load_pair(golden_case.golden.checkpoint)
    images = processor.image_processor
    expected = images.pixels(golden_case.image)  # the CPU Pillow path, checked by the golden tests
    assert torch.equal(images.pixels_on(golden_case.image, "cuda").cpu(), expected)
