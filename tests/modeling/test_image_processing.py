"""Normalized pixels: CLIP's rescale + normalize, tower preprocessing configs, any PIL mode."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import CLIPImageProcessor, CLIPVisionConfig

from dragonfly_eval.modeling.configuration import DragonflyConfig
from dragonfly_eval.modeling.geometry import v1_geometry, v2_geometry
from dragonfly_eval.modeling.image_processing import CLIP_MEAN, CLIP_STD, DragonflyImageProcessor


@pytest.fixture(scope="module")
def v2_images() -> DragonflyImageProcessor:
    return DragonflyImageProcessor(geometry=v2_geometry(), zoom="full")


def test_every_uint8_level_is_normalized_with_clip_mean_and_std(v2_images):
    levels = torch.arange(256, dtype=torch.uint8)
    crops = levels.view(1, 16, 16, 1).expand(1, 16, 16, 3).contiguous()  # [1, 16, 16, 3]
    pixels = v2_images.normalize(crops)  # [1, 3, 16, 16]
    assert pixels.shape == (1, 3, 16, 16) and pixels.dtype == torch.float32
    for c in range(3):
        expected = (np.arange(256) / 255 - CLIP_MEAN[c]) / CLIP_STD[c]
        np.testing.assert_allclose(pixels[0, c].flatten().numpy(), expected, atol=1e-6)


def test_channels_move_first_without_mixing(v2_images):
    crops = torch.zeros(2, 4, 4, 3, dtype=torch.uint8)
    crops[..., 0], crops[..., 1], crops[..., 2] = 10, 100, 200
    crops[1, 0, 3] = torch.tensor([1, 2, 3], dtype=torch.uint8)  # row 0, column 3 of crop 1
    pixels = v2_images.normalize(crops)
    table = v2_images.lookup_table()
    assert torch.equal(pixels[0, 1], torch.full((4, 4), table[1, 100].item()))
    assert [pixels[1, c, 0, 3].item() for c in range(3)] == [
        table[c, c + 1].item() for c in range(3)
    ]


def test_normalize_refuses_float_crops(v2_images):
    with pytest.raises(TypeError, match="uint8"):
        v2_images.normalize(torch.zeros(1, 336, 336, 3))


def test_normalize_casts_to_the_requested_dtype(v2_images):
    crops = torch.full((1, 8, 8, 3), 128, dtype=torch.uint8)
    assert v2_images.normalize(crops, dtype=torch.bfloat16).dtype == torch.bfloat16


def test_pixels_equal_clip_image_processor_per_crop(v2_images):
    # The reference ran CLIP's own processor on each crop; for se x se crops it must agree.
    rng = np.random.default_rng(3)
    image = Image.fromarray(rng.integers(0, 256, (300, 500, 3), dtype=np.uint8))
    clip = CLIPImageProcessor(size={"shortest_edge": 336}, crop_size={"height": 336, "width": 336})
    crops = v2_images.crops(image)  # [41, 336, 336, 3]
    pixels = v2_images([image])[0]  # [41, 3, 336, 336]
    assert pixels.shape == (41, 3, 336, 336)
    for i in (0, 1, 4, 5, 40):
        expected = clip(images=Image.fromarray(crops[i]), return_tensors="pt")["pixel_values"][0]
        torch.testing.assert_close(pixels[i], expected, atol=1e-5, rtol=0)


def tower_config(folder) -> DragonflyConfig:
    """A v2 config whose tower folder is `folder`, read as transformers reads a config.json."""
    CLIPVisionConfig(image_size=336, patch_size=14).save_pretrained(folder)
    return DragonflyConfig.from_dict({"image_encoder": str(folder)})


def test_mean_and_std_come_from_the_tower_preprocessor_config(tmp_path):
    (tmp_path / "preprocessor_config.json").write_text(
        json.dumps({"image_mean": [0.5, 0.5, 0.5], "image_std": [0.25, 0.5, 1.0]})
    )
    images = DragonflyImageProcessor.from_config(tower_config(tmp_path))
    pixels = images.normalize(torch.full((1, 2, 2, 3), 255, dtype=torch.uint8))
    torch.testing.assert_close(pixels[0, :, 0, 0], torch.tensor([2.0, 1.0, 0.5]))


def test_clip_defaults_without_a_preprocessor_config(tmp_path):
    images = DragonflyImageProcessor.from_config(tower_config(tmp_path))
    assert (images.image_mean, images.image_std) == (CLIP_MEAN, CLIP_STD)
    assert CLIP_STD == (0.26862954, 0.26130258, 0.27577711)


@pytest.mark.parametrize(
    ("version", "zoom", "n_crops", "se"),
    [
        (2, "full", 41, 336),
        (2, "low+medium", 5, 336),
        (2, "low", 1, 336),
        (1, "select", 29, 224),
        (1, "full", 29, 224),
        (1, "low+medium", 5, 224),
        (1, "low", 1, 224),
    ],
)
def test_pixel_shape_per_zoom(version, zoom, n_crops, se):
    geometry = v1_geometry() if version == 1 else v2_geometry()
    images = DragonflyImageProcessor(geometry=geometry, zoom=zoom)
    pixels = images([Image.new("RGB", (640, 480), (10, 20, 30))])
    assert len(pixels) == 1 and pixels[0].shape == (n_crops, 3, se, se)


def _mode_image(mode: str, size: tuple[int, int] = (97, 61)) -> Image.Image:
    rng = np.random.default_rng(7)
    rgba = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 4), dtype=np.uint8), "RGBA")
    if mode == "P+transparency":
        image = rgba.convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
        image.info["transparency"] = 3
        return image
    if mode == "I;16":
        values = rng.integers(0, 65536, (size[1], size[0]), dtype=np.uint16)
        return Image.frombytes("I;16", size, values.astype("<u2").tobytes())
    return rgba.convert(mode)


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P+transparency", "CMYK", "I;16", "1", "L", "I"])
def test_any_mode_gives_the_pixels_of_convert_rgb(mode, v2_images):
    image = _mode_image(mode)
    pixels = v2_images([image])[0]
    assert pixels.shape == (41, 3, 336, 336)
    torch.testing.assert_close(pixels, v2_images([image.convert("RGB")])[0], atol=0, rtol=0)


def test_premultiplied_la_mode_is_converted_too(v2_images):
    # Pillow has no direct La -> RGB conversion; the image must still be accepted.
    image = _mode_image("LA").convert("La")
    pixels = v2_images([image])[0]
    assert pixels.shape == (41, 3, 336, 336)


@pytest.mark.parametrize("size", [(1, 1), (10000, 20), (20, 10000), (1, 5000)])
def test_degenerate_sizes_give_41_crops(size, v2_images):
    image = Image.new("RGB", size, (200, 30, 90))
    pixels = v2_images([image])[0]
    assert pixels.shape == (41, 3, 336, 336)
    expected = v2_images.lookup_table()[:, [200, 30, 90]].diagonal()  # a solid image stays solid
    torch.testing.assert_close(pixels.amin(dim=(0, 2, 3)), expected)
    torch.testing.assert_close(pixels.amax(dim=(0, 2, 3)), expected)
