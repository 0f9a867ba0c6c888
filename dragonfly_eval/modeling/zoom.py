"""Cutting images into zoom-in crops: each wanted level resized (Pillow's bicubic, or its torch
twin on a device) to the resolution `geometry.py` chooses, then cut into se x se crops.

Everything here works on uint8 pixels; normalization happens later (on the device when there is
one). Crop order: [low, medium..., high...], each level cut row-major.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from PIL import Image

from dragonfly_eval.modeling.geometry import Resolution, ZoomGeometry, level_sizes
from dragonfly_eval.modeling.resize import resize_bicubic


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode to RGB exactly as the reference did (`convert("RGB")`).

    The few modes Pillow cannot take straight to RGB (premultiplied "La") go through the
    nearest mode it can.
    """
    image.load()  # decode lazily opened files now: the level resizes may run in threads
    if image.mode == "RGB":
        return image
    try:
        return image.convert("RGB")
    except ValueError:
        for via in ("RGBA", "LA", "I"):
            try:
                return image.convert(via).convert("RGB")
            except ValueError:
                continue
        raise


def resize_level(image: Image.Image, size: Resolution) -> np.ndarray:
    """One zoom level: the RGB image resized to exactly `size` with PIL bicubic, as uint8."""
    resized = image if image.size == size else image.resize(size, Image.Resampling.BICUBIC)
    return np.asarray(resized)  # [H, W, 3] uint8, read-only view of the PIL buffer


def cut_level(level: np.ndarray | torch.Tensor, se: int) -> np.ndarray | torch.Tensor:
    """A level's se x se crops, row-major: [rows * cols, se, se, 3] (a numpy view; a torch
    level gives a tensor on its device)."""
    rows, cols = level.shape[0] // se, level.shape[1] // se
    # [rows, se, cols, se, 3] -> [rows, cols, se, se, 3]: row-major crops, no copy until stacked
    grid = level.reshape(rows, se, cols, se, 3).swapaxes(1, 2)
    return grid.reshape(rows * cols, se, se, 3)


def zoom_crops(
    image: Image.Image,
    geometry: ZoomGeometry,
    levels: tuple[str, ...] = ("low", "medium", "high"),
    pool: ThreadPoolExecutor | None = None,
) -> np.ndarray:
    """Cut one image into its zoom-in crops: uint8 [n_crops, se, se, 3] in [low, medium, high] order.

    The resizes of different levels run in `pool` when given (PIL releases the GIL while it
    resamples), so the three resizes of one image overlap.
    """
    return zoom_crops_many([image], geometry, levels, pool)[0]


def zoom_crops_many(
    images: list[Image.Image],
    geometry: ZoomGeometry,
    levels: tuple[str, ...] = ("low", "medium", "high"),
    pool: ThreadPoolExecutor | None = None,
) -> list[np.ndarray]:
    """`zoom_crops` of several images; with a pool, every level of every image is resized
    concurrently (largest first, so the long resizes start early)."""
    jobs = []  # (image index, rgb image, target size)
    for i, image in enumerate(images):
        rgb = to_rgb(image)
        jobs.extend((i, rgb, size) for size in level_sizes(geometry, rgb.size, levels))
    if pool is None:
        resized = [resize_level(rgb, size) for _, rgb, size in jobs]
    else:
        order = sorted(range(len(jobs)), key=lambda j: -jobs[j][2][0] * jobs[j][2][1])
        futures = {j: pool.submit(resize_level, jobs[j][1], jobs[j][2]) for j in order}
        resized = [futures[j].result() for j in range(len(jobs))]
    per_image: list[list[np.ndarray]] = [[] for _ in images]
    for (i, _, _), level in zip(jobs, resized, strict=True):
        per_image[i].append(level)
    return [_stack_levels(arrays, geometry.crop_size) for arrays in per_image]


def zoom_crops_tensor(
    pixels: torch.Tensor,
    geometry: ZoomGeometry,
    levels: tuple[str, ...] = ("low", "medium", "high"),
) -> torch.Tensor:
    """`zoom_crops` of RGB uint8 pixels [H, W, 3] on any device, with the same bytes: each level
    resized by `resize_bicubic` (Pillow's bicubic in torch) where Pillow resizes, then cut.

    Returns uint8 [n_crops, se, se, 3] on the pixels' device.
    """
    height, width, _ = pixels.shape
    se = geometry.crop_size
    resized = [
        pixels if size == (width, height) else resize_bicubic(pixels, size)
        for size in level_sizes(geometry, (width, height), levels)
    ]  # each [h, w, 3] uint8
    return torch.cat([cut_level(level, se) for level in resized])


def _stack_levels(arrays: list[np.ndarray], se: int) -> np.ndarray:
    out = np.empty((sum(_count(a, se) for a in arrays), se, se, 3), dtype=np.uint8)
    start = 0
    for level in arrays:
        crops = cut_level(level, se)
        out[start : start + len(crops)] = crops
        start += len(crops)
    return out


def _count(level: np.ndarray, se: int) -> int:
    return (level.shape[0] // se) * (level.shape[1] // se)
