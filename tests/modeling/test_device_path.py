"""The device preprocessing path (issue 14), forced on the CPU: the same bytes as the Pillow path.

On a GPU the CPU only decodes the image and uploads its pixels; the zoom levels are resized with
`resize_bicubic`, cut and normalized on the device. Here that path runs on the CPU and must give
exactly the Pillow path's crops and pixels, and the golden fixtures' pixels. The same checks on
CUDA are in tests/gpu/test_gpu_device_path.py.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from PIL import Image
from test_golden_parity import CaseRunner
from test_golden_parity import test_pixels_match_reference as check_pixels_match_reference

from dragonfly_eval.modeling import zoom as zoom_module
from dragonfly_eval.modeling.geometry import level_sizes, v1_geometry, v2_geometry
from dragonfly_eval.modeling.image_processing import DragonflyImageProcessor
from dragonfly_eval.modeling.resize import resize_bicubic

# Image sizes: a level equal to the image (336x336 is the low level: no resize), up- and
# downscaling, tall and wide (each medium candidate of the zoom rule).
SIZES = [(336, 336), (500, 300), (200, 900), (1300, 250), (37, 41)]
GEOMETRY_ZOOMS = [
    (v2_geometry(), "full"),
    (v2_geometry(), "low+medium"),
    (v1_geometry(), "select"),
    (v1_geometry(), "low"),
]


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Small tensors on shared cores: OpenMP wake-ups cost more than the work (same bytes)."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


def forced(processor: DragonflyImageProcessor, device_resize: bool = True):
    """A copy of `processor` with the device path switched on or off (own caches and pool)."""
    return DragonflyImageProcessor(
        geometry=processor.geometry,
        zoom=processor.zoom,
        image_mean=processor.image_mean,
        image_std=processor.image_std,
        rescale_factor=processor.rescale_factor,
        resize_threads=processor.resize_threads,
        device_resize=device_resize,
    )


def counting(calls: list, resize):
    """`resize` that records the (width, height) of each call in `calls`."""

    def run(pixels, size):
        calls.append(tuple(size))
        return resize(pixels, size)

    return run


def noise(size: tuple[int, int], seed: int, mode: str = "RGB") -> Image.Image:
    width, height = size
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).convert(mode)


@pytest.mark.parametrize(("geometry", "zoom"), GEOMETRY_ZOOMS, ids=lambda v: str(v)[:12])
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_device_path_crops_are_the_pillow_bytes(geometry, zoom, size, monkeypatch):
    pillow = DragonflyImageProcessor(geometry=geometry, zoom=zoom, resize_threads=1)
    image = noise(size, seed=size[0])
    resized = []
    monkeypatch.setattr(zoom_module, "resize_bicubic", counting(resized, resize_bicubic))
    crops = forced(pillow).crops_on(image, "cpu")  # [n_crops, se, se, 3]
    resizes = [s for s in level_sizes(geometry, size, pillow.levels) if s != size]
    assert resized == resizes  # the torch resize made every level that is not the image itself
    assert crops.dtype == torch.uint8
    assert torch.equal(crops, torch.from_numpy(pillow.crops(image)))


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "I;16"])
def test_device_path_converts_modes_as_the_pillow_path(mode):
    pillow = DragonflyImageProcessor(geometry=v2_geometry(), zoom="full", resize_threads=1)
    image = noise((400, 260), seed=7, mode=mode if mode != "I;16" else "L")
    image = image.convert(mode) if mode == "I;16" else image
    assert torch.equal(forced(pillow).pixels_on(image), pillow.pixels(image))


def test_pixels_on_casts_and_equals_the_cpu_pixels():
    pillow = DragonflyImageProcessor(geometry=v2_geometry(), zoom="full", resize_threads=1)
    image = noise((640, 480), seed=1)
    expected = pillow.pixels(image)  # [41, 3, 336, 336] float32
    device = forced(pillow).pixels_on(image, "cpu", torch.bfloat16)
    assert device.dtype == torch.bfloat16
    assert torch.equal(device, expected.to(torch.bfloat16))
    assert torch.equal(forced(pillow, False).pixels_on(image, "cpu"), expected)


def test_auto_uses_the_device_path_off_the_cpu_only():
    auto = DragonflyImageProcessor(geometry=v2_geometry(), zoom="full")
    assert auto.device_resize == "auto"
    assert not auto.resizes_on_device("cpu")
    assert auto.resizes_on_device("cuda") and auto.resizes_on_device(torch.device("cuda", 1))
    assert forced(auto).resizes_on_device("cpu")
    assert not forced(auto, False).resizes_on_device("cuda")


@pytest.mark.parametrize("bad", ["yes", 1, None, "gpu"])
def test_invalid_device_resize_is_refused(bad):
    with pytest.raises(ValueError, match="device_resize"):
        DragonflyImageProcessor(geometry=v2_geometry(), zoom="full", device_resize=bad)


@pytest.fixture(scope="module")
def forced_runner(load_pair) -> CaseRunner:
    """The golden runner with every processor's device path switched on."""
    cache = {}

    def load(checkpoint):
        if checkpoint not in cache:
            model, processor = load_pair(checkpoint)
            switched = copy.copy(processor)  # same tokenizer; only the image processor differs
            switched.image_processor = forced(processor.image_processor)
            cache[checkpoint] = (model, switched)
        return cache[checkpoint]

    return CaseRunner(load)


def test_golden_pixels_with_the_device_path(golden_case, forced_runner, load_pair):
    check_pixels_match_reference(golden_case, forced_runner)
    pixels = forced_runner.inputs(golden_case)["image_patches"][0]  # [n_crops, 3, se, se]
    _, processor = load_pair(golden_case.golden.checkpoint)
    assert not processor.image_processor.resizes_on_device("cpu")
    assert torch.equal(pixels, processor.image_processor([golden_case.image])[0])
