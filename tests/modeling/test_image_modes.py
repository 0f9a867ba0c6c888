"""Images of more than 8 bits per value (`I`, `I;16`, `F`) are converted as the reference did.

The reference called `convert("RGB")`; Pillow then clips every value to 0..255 (float values are
truncated toward zero first), so the expected pixels below are what Pillow does, checked per mode.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from dragonfly_eval.modeling.image_processing import wide_mode
from dragonfly_eval.modeling.zoom import to_rgb
from dragonfly_eval.tiny.checkpoint import build_tiny_processor

INTEGERS = [0, 1, 100, 254, 255, 256, 1000, 4095, 65535]
CLIPPED = [0, 1, 100, 254, 255, 255, 255, 255, 255]


def one_row(values, dtype, mode: str) -> Image.Image:
    image = Image.fromarray(np.array([values], dtype=dtype))
    image = image if image.mode == mode else image.convert(mode)
    assert image.mode == mode
    return image


@pytest.mark.parametrize(
    ("mode", "values", "dtype", "expected"),
    [
        ("I;16", INTEGERS, np.uint16, CLIPPED),
        ("I", [*INTEGERS, 70000, -5], np.int32, [*CLIPPED, 255, 0]),
        (
            "F",
            [0.0, 0.6, 1.0, 100.7, 254.9, 255.0, 255.5, 256.0, 1e6, -3.0],
            np.float32,
            [0, 0, 1, 100, 254, 255, 255, 255, 255, 0],
        ),
    ],
)
def test_wide_modes_become_clipped_grey_rgb(mode, values, dtype, expected):
    rgb = np.asarray(to_rgb(one_row(values, dtype, mode)))
    assert rgb.dtype == np.uint8 and rgb.shape == (1, len(values), 3)
    for channel in range(3):
        assert rgb[0, :, channel].tolist() == expected


def test_big_endian_16_bit_is_clipped_the_same_way():
    image = Image.frombytes("I;16B", (len(INTEGERS), 1), np.array(INTEGERS, ">u2").tobytes())
    assert np.asarray(to_rgb(image))[0, :, 0].tolist() == CLIPPED


@pytest.mark.parametrize("mode", ["I", "I;16", "I;16B", "I;16L", "F"])
def test_modes_of_more_than_8_bits_are_wide(mode):
    assert wide_mode(mode)


@pytest.mark.parametrize("mode", ["1", "L", "P", "LA", "RGB", "RGBA", "CMYK", "YCbCr"])
def test_8_bit_modes_are_not_wide(mode):
    assert not wide_mode(mode)


def test_processor_sees_a_16_bit_scan_as_its_clipped_8_bit_image():
    ramp = np.linspace(0, 4000, 48 * 64).reshape(48, 64).astype(np.uint16)  # a dim 12-bit scan
    scan = Image.fromarray(ramp)
    assert scan.mode == "I;16"
    clipped = Image.fromarray(np.minimum(ramp, 255).astype(np.uint8))
    processor = build_tiny_processor(zoom="low").image_processor
    crops = processor.crops(scan)
    assert np.array_equal(crops, processor.crops(clipped))
    assert (crops == 255).mean() > 0.9  # mostly white, as the harness warns
