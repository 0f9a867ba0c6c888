"""Zoom-in geometry: which resolutions an image is resized to, and how it is cut into crops.

Everything here works on uint8 pixels; normalization happens later (on the device when there is
one). Crop order is the contract of the released checkpoints: [low, medium..., high...], each level
cut row-major (top row first, left to right).
"""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from dragonfly_eval.modeling import released
from dragonfly_eval.modeling.resize import resize_bicubic, resize_passes

Resolution = tuple[int, int]  # (width, height)
Grid = tuple[int, int]  # (columns, rows) of crops


@dataclass(frozen=True)
class ZoomGeometry:
    """The zoom-in layout of one Dragonfly version, fixed by the vision tower's crop size."""

    version: int
    crop_size: int
    medium_candidates: tuple[Resolution, ...]
    high_candidates: tuple[Resolution, ...] | None  # None: high = 3x the medium resolution
    high_scale: int = 3

    @property
    def levels(self) -> tuple[str, ...]:
        return ("low", "medium", "high")


def make_geometry(
    version: int,
    crop_size: int,
    medium_grids: tuple[Grid, ...] = released.MEDIUM_GRIDS,
    high_grids: tuple[Grid, ...] | None = None,
    high_scale: int = released.HIGH_SCALE,
) -> ZoomGeometry:
    """A zoom geometry from candidate layouts in crops ((columns, rows)); `high_grids` None
    means the high level is `high_scale` times the chosen medium resolution."""
    se = crop_size

    def resolutions(grids):
        return tuple((int(cols) * se, int(rows) * se) for cols, rows in grids)

    return ZoomGeometry(
        version=version,
        crop_size=se,
        medium_candidates=resolutions(medium_grids),
        high_candidates=None if high_grids is None else resolutions(high_grids),
        high_scale=high_scale,
    )


def v2_geometry(crop_size: int = released.CROP_SIZE[2]) -> ZoomGeometry:
    """v2: medium among 2x2 / 1x4 / 4x1 crops, high at three times the medium resolution (36 crops)."""
    return make_geometry(2, crop_size)


def v1_geometry(crop_size: int = released.CROP_SIZE[1]) -> ZoomGeometry:
    """v1: medium as in v2, high among six layouts of 24 crops each."""
    return make_geometry(1, crop_size, high_grids=released.V1_HIGH_GRIDS)


def geometry_for(version: int, crop_size: int | None = None) -> ZoomGeometry:
    """The released zoom geometry of a Dragonfly version (its tower's crop size by default)."""
    if version == 1:
        return v1_geometry(crop_size or released.CROP_SIZE[1])
    return v2_geometry(crop_size or released.CROP_SIZE[2])


def crops_per_image(version: int, zoom: str, geometry: ZoomGeometry | None = None) -> int:
    """Crops cut per image for a version and zoom setting (before v1's selection)."""
    counts = crops_per_level(geometry or geometry_for(version))
    return sum(counts[level] for level in zoom_levels(version, zoom))


def level_sizes(
    geometry: ZoomGeometry, size: Resolution, levels: tuple[str, ...]
) -> list[Resolution]:
    """Target (width, height) of each wanted level, in crop order [low, medium, high]."""
    targets = level_resolutions(geometry, size)
    return [targets[name] for name in ("low", "medium", "high") if name in levels]


def select_resolution(size: Resolution, candidates: tuple[Resolution, ...]) -> Resolution:
    """The LLaVA-NeXT best fit: most effective pixels, then least waste, then list order."""
    w, h = size
    best: Resolution | None = None
    best_key: tuple[int, int] | None = None
    for cand_w, cand_h in candidates:
        scale = min(cand_w / w, cand_h / h)
        effective = min(int(w * scale) * int(h * scale), w * h)
        wasted = cand_w * cand_h - effective
        key = (effective, -wasted)
        if best_key is None or key > best_key:
            best, best_key = (cand_w, cand_h), key
    assert best is not None, "no candidate resolutions"
    return best


def level_resolutions(geometry: ZoomGeometry, size: Resolution) -> dict[str, Resolution]:
    """Target (width, height) of each zoom level for an image of `size`."""
    se = geometry.crop_size
    medium = select_resolution(size, geometry.medium_candidates)
    if geometry.high_candidates is None:
        high = (medium[0] * geometry.high_scale, medium[1] * geometry.high_scale)
    else:
        high = select_resolution(size, geometry.high_candidates)
    return {"low": (se, se), "medium": medium, "high": high}


def crops_per_level(geometry: ZoomGeometry) -> dict[str, int]:
    """Crop counts per level; they do not depend on the image (41 for v2, 29 for v1)."""
    se = geometry.crop_size
    medium_w, medium_h = geometry.medium_candidates[0]
    if geometry.high_candidates is None:
        high = (medium_w * geometry.high_scale // se) * (medium_h * geometry.high_scale // se)
    else:
        counts = {(w // se) * (h // se) for w, h in geometry.high_candidates}
        assert len(counts) == 1, "high candidates must all give the same crop count"
        high = counts.pop()
    return {"low": 1, "medium": (medium_w // se) * (medium_h // se), "high": high}


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


def first_pass(image: Image.Image, size: Resolution) -> Image.Image:
    """Every pass but the last of Pillow's bicubic resize of `image` to `size`, as Pillow runs
    them (one axis per call, so Pillow runs exactly that pass); the image itself when the resize
    has one pass. Each pass rounds to uint8, so finishing with `last_pass_band` over all bands
    gives Pillow's bytes."""
    passes = resize_passes(image.size, size)
    if len(passes) < 2:
        return image
    width, height = image.size
    if passes[0] == "horizontal":
        return image.resize((size[0], height), Image.Resampling.BICUBIC)
    return image.resize((width, size[1]), Image.Resampling.BICUBIC)


def last_pass_bands(size: Resolution, in_size: Resolution, se: int, bands: int) -> list:
    """Up to `bands` (lo, hi) pixel ranges, on crop boundaries, along the axis that the last
    pass of a resize from `in_size` to `size` keeps independent: columns when it is vertical
    (each output column reads one column), rows when it is horizontal."""
    passes = resize_passes(in_size, size)
    if not passes:
        return []
    side = size[0] if passes[-1] == "vertical" else size[1]
    cells = side // se
    edges = [se * (cells * k // bands) for k in range(bands + 1)]
    return [(lo, hi) for lo, hi in itertools.pairwise(edges) if hi > lo]


def last_pass_band(
    first: Image.Image, in_size: Resolution, size: Resolution, band: tuple[int, int]
) -> np.ndarray:
    """Band `band` of the level: the last pass of the resize to `size`, run on the columns (or
    rows) of `first` (`first_pass`'s result) that the band reads, uint8 [h, w, 3]. The level is
    the bands side by side (or stacked), byte for byte Pillow's single call."""
    lo, hi = band
    width, height = first.size
    if resize_passes(in_size, size)[-1] == "vertical":
        part = first.crop((lo, 0, hi, height)).resize((hi - lo, size[1]), Image.Resampling.BICUBIC)
    else:
        part = first.crop((0, lo, width, hi)).resize((size[0], hi - lo), Image.Resampling.BICUBIC)
    return np.asarray(part)


def band_crops(size: Resolution, in_size: Resolution, se: int, band: tuple[int, int]) -> np.ndarray:
    """The level's crop indices (row-major over the whole level) that `band` holds, in the
    band's own row-major order (`cut_level` of the band)."""
    cols, rows = size[0] // se, size[1] // se
    lo, hi = band[0] // se, band[1] // se
    grid = np.arange(rows * cols).reshape(rows, cols)
    if resize_passes(in_size, size)[-1] == "vertical":
        return grid[:, lo:hi].reshape(-1)
    return grid[lo:hi].reshape(-1)


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


def zoom_levels(version: int, zoom: str) -> tuple[str, ...]:
    """The levels a zoom setting cuts. v1's `select` cuts all three and keeps 12 high crops later."""
    valid = released.ZOOMS.get(version, ())
    if zoom not in valid:
        raise ValueError(
            f"zoom={zoom!r} is not valid for Dragonfly v{version}; choose from {valid}"
        )
    return {
        "full": ("low", "medium", "high"),
        "select": ("low", "medium", "high"),
        "low+medium": ("low", "medium"),
        "low": ("low",),
    }[zoom]


def default_zoom(version: int) -> str:
    """What the released checkpoints were trained with: v1 selects, v2 keeps everything."""
    return released.DEFAULT_ZOOM[version]


def crop_token_counts(
    version: int,
    zoom: str,
    grid: int,
    geometry: ZoomGeometry | None = None,
    pool_kernel: int = released.POOL_KERNEL,
    top_k: int = released.V1_TOP_K,
) -> list[int]:
    """Visual tokens of each crop the LLM sees, in sequence order (a grid x grid tower).

    v2: the low crop keeps CLS + grid^2 tokens, every other crop CLS + (grid/pool_kernel)^2.
    v1: every kept crop keeps CLS + grid^2; `select` keeps the low and medium crops and
    `top_k` high crops per medium crop (1 + 4 + 12 as released).
    """
    counts = crops_per_level(geometry or geometry_for(version))
    levels = zoom_levels(version, zoom)
    full = 1 + grid * grid
    if version == 1:
        n_high = counts["medium"] * top_k if zoom == "select" else counts["high"]
        n_crops = sum(counts[name] for name in levels if name != "high")
        n_crops += n_high if "high" in levels else 0
        return [full] * n_crops
    pooled = 1 + (grid // pool_kernel) ** 2
    n_rest = sum(counts[name] for name in levels if name != "low")
    return [full] + [pooled] * n_rest
