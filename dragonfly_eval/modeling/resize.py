"""Pillow's bicubic resize of 8-bit images in torch, byte for byte, on any device.

Pillow (`libImaging/Resample.c`) resamples one axis at a time. For every output pixel of an axis
it takes a window of source pixels and bicubic weights (a = -0.5, support 2 source pixels, widened
by the scale factor when shrinking), computed in double precision, normalized to sum 1 and
rounded to integers with 22 fraction bits. A pass sums pixel x weight in integers, starting from
half a unit, shifts back and clips to uint8; the second pass reads the first one's uint8 output,
so the order of the passes is part of the result. Here the weights come from the same double
operations in the same order (on the CPU, cached per size pair and device) and each pass is a
gather plus an integer multiply-add on the pixels' device: CUDA and CPU give Pillow's bytes.
"""

from __future__ import annotations

import math
import operator
from functools import lru_cache

import torch

from dragonfly_eval.modeling.geometry import Resolution
from dragonfly_eval.modeling.passes import resize_passes

Taps = tuple[torch.Tensor, torch.Tensor]  # (index, weight) of one axis, both [out_size, taps]

PRECISION_BITS = 32 - 8 - 2  # Pillow's fraction bits for 8-bit images
HALF = 1 << (PRECISION_BITS - 1)  # the rounding term each sum starts from
SUPPORT = 2.0  # bicubic support in source pixels, at scale 1


def _bicubic(x: torch.Tensor) -> torch.Tensor:
    """Pillow's bicubic kernel (a = -0.5) in float64, written in its operation order."""
    x = x.abs()
    near = ((1.5 * x - 2.5) * x) * x + 1.0
    far = (((x - 5.0) * x + 8.0) * x - 4.0) * -0.5
    return torch.where(x < 1.0, near, torch.where(x < 2.0, far, torch.zeros_like(x)))


def _fixed_point(weights: torch.Tensor) -> torch.Tensor:
    """Round float64 weights to PRECISION_BITS fraction bits, half away from zero, as Pillow."""
    scaled = weights * float(1 << PRECISION_BITS)
    half = torch.where(weights < 0, -0.5, 0.5).to(torch.float64)
    return torch.trunc(scaled + half).to(torch.int32)


def _cpu_axis_taps(in_size: int, out_size: int) -> Taps:
    """Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc` for bicubic, on the CPU."""
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = SUPPORT * filterscale
    ksize = math.ceil(support) * 2 + 1
    center = (torch.arange(out_size, dtype=torch.float64) + 0.5) * scale  # [out]
    first = torch.trunc(center - support + 0.5).clamp(min=0).to(torch.int64)  # [out]
    end = torch.trunc(center + support + 0.5).clamp(max=in_size).to(torch.int64)
    count = end - first  # [out] window length
    taps = torch.arange(ksize, dtype=torch.int64)  # [ksize]
    inside = taps[None, :] < count[:, None]  # [out, ksize]
    source = first[:, None] + taps[None, :]  # [out, ksize]
    inv_filterscale = 1.0 / filterscale
    raw = _bicubic(((source.to(torch.float64) - center[:, None]) + 0.5) * inv_filterscale)
    raw = torch.where(inside, raw, torch.zeros_like(raw))
    total = torch.zeros(out_size, dtype=torch.float64)
    for tap in range(ksize):  # left to right, as Pillow sums: float addition is not associative
        total = total + raw[:, tap]
    normalized = torch.where(total[:, None] != 0, raw / total[:, None], raw)
    weights = _fixed_point(normalized)
    # int32 sums are exact in any order: each partial sum of pixel * weight lies between HALF plus
    # 255 times the negative weights' total and HALF plus 255 times the positive weights' total.
    positive = int(weights.clamp(min=0).sum(1).max())
    negative = int(weights.clamp(max=0).sum(1).min())
    if HALF + 255 * positive >= 2**31 or HALF + 255 * negative < -(2**31):
        raise OverflowError(f"bicubic weights for {in_size} -> {out_size} overflow int32 sums")
    width = int(count.max())
    index = torch.where(inside, source, first[:, None])[:, :width]  # padded taps reread `first`
    return index.contiguous(), weights[:, :width].contiguous()


@lru_cache(maxsize=256)
def axis_taps(in_size: int, out_size: int, device: str = "cpu") -> Taps:
    """Pillow's bicubic windows of one axis resized from `in_size` to `out_size` pixels.

    (index [out_size, taps] int64 source positions, weight [out_size, taps] int32 with
    PRECISION_BITS fraction bits, 0 past a window's end) on `device`, computed once per sizes
    and device.
    """
    index, weight = _cpu_axis_taps(in_size, out_size)
    return index.to(device), weight.to(device)


def _resample_rows(rows: torch.Tensor, taps: Taps) -> torch.Tensor:
    """One pass along dim 0 of uint8 [L, M]: uint8 [out_size, M].

    One gather + multiply-add per tap over whole rows (M contiguous values each), so the work is
    a few passes over memory whatever the image size; int32 sums are exact (see `_cpu_axis_taps`).
    """
    index, weight = taps
    total = torch.full((index.shape[0], rows.shape[1]), HALF, dtype=torch.int32, device=rows.device)
    for tap in range(index.shape[1]):
        total.addcmul_(rows.index_select(0, index[:, tap]), weight[:, tap, None])  # [out, M]
    return (total >> PRECISION_BITS).clamp_(0, 255).to(torch.uint8)


def _vertical(pixels: torch.Tensor, taps: Taps) -> torch.Tensor:
    """Vertical pass of [H, W, 3] uint8: rows of W * 3 values."""
    height, width, channels = pixels.shape
    rows = pixels.reshape(height, width * channels)
    return _resample_rows(rows, taps).view(-1, width, channels)


def _horizontal(pixels: torch.Tensor, taps: Taps) -> torch.Tensor:
    """Horizontal pass of [H, W, 3] uint8, run as a vertical pass of the transposed image."""
    return _vertical(pixels.transpose(0, 1), taps).transpose(0, 1)


def _as_hwc(pixels: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """[H, W, 3] view of [H, W, 3] or [3, H, W] uint8 pixels, and whether they were [3, H, W]."""
    if pixels.dtype != torch.uint8:
        raise TypeError(f"resize_bicubic needs uint8 pixels, got {pixels.dtype}")
    if pixels.ndim == 3 and pixels.shape[2] == 3:
        return pixels, False
    if pixels.ndim == 3 and pixels.shape[0] == 3:
        return pixels.permute(1, 2, 0), True
    raise ValueError(
        f"resize_bicubic needs RGB pixels shaped [H, W, 3] or [3, H, W], got {list(pixels.shape)}"
    )


def resize_bicubic(pixels: torch.Tensor, size: Resolution) -> torch.Tensor:
    """`Image.fromarray(pixels).resize(size, Image.BICUBIC)` for RGB uint8 pixels on any device.

    `pixels` is [H, W, 3] or [3, H, W] uint8 ([H, W, 3] when both fit); `size` is (width, height)
    as in Pillow. Returns a new contiguous uint8 tensor in the same layout on the same device,
    equal to Pillow's bytes.
    """
    image, channels_first = _as_hwc(pixels)
    out_w, out_h = (operator.index(side) for side in size)
    if out_w < 1 or out_h < 1:
        raise ValueError(f"resize_bicubic needs a size of at least 1 x 1, got {size}")
    in_h, in_w, _ = image.shape
    if (in_w, in_h) == (out_w, out_h):
        return pixels.clone(memory_format=torch.contiguous_format)
    device = str(image.device)
    # Pillow's horizontal pass skips source rows no output row reads; for a whole-image resize
    # the first window starts at row 0 and the last ends at row H, so all rows are read.
    for axis in resize_passes((in_w, in_h), (out_w, out_h)):
        if axis == "horizontal":
            image = _horizontal(image, axis_taps(in_w, out_w, device))
        else:
            image = _vertical(image, axis_taps(in_h, out_h, device))
    return (image.permute(2, 0, 1) if channels_first else image).contiguous()
