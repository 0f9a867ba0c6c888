"""Pillow's bicubic resize as passes: which axis it resamples first, and how the last pass of a
level splits into bands of whole crops that can run in parallel and still give Pillow's bytes.

Pillow (`libImaging/Resample.c`) resamples one axis per pass and rounds each pass to uint8, so the
order of the passes is part of the result; `resize.py` follows it in torch, the image processor
splits the largest level's last pass into bands with it.
"""

from __future__ import annotations

import itertools
import re

import numpy as np
import PIL
from PIL import Image

from dragonfly_eval.modeling.geometry import Resolution


def _release(version: str) -> tuple[int, int]:
    """'13.0.0' -> (13, 0)."""
    major, minor = re.match(r"(\d+)\.(\d+)", version).groups()
    return int(major), int(minor)


PILLOW_RELEASE = _release(PIL.__version__)


def vertical_pass_first(
    in_size: Resolution, out_size: Resolution, pillow: tuple[int, int] = PILLOW_RELEASE
) -> bool:
    """Whether Pillow `pillow` (major, minor) runs the vertical pass before the horizontal one,
    when both axes change size.

    Pillow >= 13 goes vertical first when the height shrinks by more than twice as many pixels
    as the width does (measured against 13.0 by the property tests: its source was not at hand);
    12.2 and 12.3 did so for images over 100 times taller than wide whose height shrinks (their
    `Image.resize`); older releases always go horizontal first.
    """
    (in_w, in_h), (out_w, out_h) = in_size, out_size
    if pillow >= (13, 0):
        return out_h < in_h and in_h - out_h > 2 * (in_w - out_w)
    if pillow >= (12, 2):
        return in_h > 100 * in_w and out_h < in_h
    return False


def resize_passes(in_size: Resolution, size: Resolution) -> tuple[str, ...]:
    """The passes Pillow's bicubic resize from `in_size` to `size` runs, in its order: each
    of "horizontal" and "vertical" that changes a side (the order is this Pillow's,
    `vertical_pass_first`)."""
    (in_w, in_h), (out_w, out_h) = in_size, size
    if out_w != in_w and out_h != in_h:
        if vertical_pass_first(in_size, size):
            return ("vertical", "horizontal")
        return ("horizontal", "vertical")
    return (("horizontal",) if out_w != in_w else ()) + (("vertical",) if out_h != in_h else ())


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
