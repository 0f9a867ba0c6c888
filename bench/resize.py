"""Zoom-level resize speed: Pillow's bicubic vs the torch version on the CPU (and CUDA when present).

Times each zoom level of one image (for 1024x768 and v2: 336x336, 672x672, 2016x2016) from uint8
pixels already in memory, and checks that every torch result equals Pillow's bytes. The torch
resize exists for the GPU path; on the CPU it is expected to be about 5-10x slower than Pillow.

    python bench/resize.py [--size 1024x768] [--repeats 5] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
from common import synthetic_image
from PIL import Image

from dragonfly_eval.modeling.geometry import level_sizes, v2_geometry
from dragonfly_eval.modeling.resize import resize_bicubic

Resolution = tuple[int, int]


def median_ms(run: Callable[[], object], repeats: int, sync: Callable[[], None]) -> float:
    """Median milliseconds of `run` over `repeats` calls, after one warm-up call."""
    run()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def parse_size(text: str) -> Resolution:
    """'1024x768' -> (1024, 768)."""
    width, _, height = text.partition("x")
    if not (width.isdigit() and height.isdigit()) or int(width) < 1 or int(height) < 1:
        raise argparse.ArgumentTypeError(f"size {text!r} is not WIDTHxHEIGHT")
    return int(width), int(height)


def time_device(
    pixels: np.ndarray, sizes: list[Resolution], device: str, repeats: int
) -> tuple[float, list[float]]:
    """(upload ms, per-level resize ms) of the torch resize on `device`; asserts Pillow's bytes."""
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    host = torch.from_numpy(pixels)
    upload = median_ms(lambda: host.to(device), repeats, sync)
    on_device = host.to(device)
    image = Image.fromarray(pixels)
    levels = []
    for size in sizes:
        got = resize_bicubic(on_device, size).cpu().numpy()
        expected = np.asarray(image.resize(size, Image.Resampling.BICUBIC))
        if not np.array_equal(got, expected):
            raise SystemExit(f"torch resize on {device} differs from Pillow at {size}")
        levels.append(median_ms(lambda size=size: resize_bicubic(on_device, size), repeats, sync))
    return upload, levels


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=parse_size, default=(1024, 768), help="WIDTHxHEIGHT")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per level")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    geometry = v2_geometry()
    image = synthetic_image(*args.size, seed=0)
    pixels = np.array(image)  # writable: torch.from_numpy warns on read-only arrays
    sizes = level_sizes(geometry, image.size, geometry.levels)
    pillow = [
        median_ms(lambda s=s: image.resize(s, Image.Resampling.BICUBIC), args.repeats, lambda: None)
        for s in sizes
    ]
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    results = {device: time_device(pixels, sizes, device, args.repeats) for device in devices}

    print(
        f"image {args.size[0]}x{args.size[1]}, CPU cores: {os.cpu_count()}, "
        f"torch threads: {torch.get_num_threads()}, torch {torch.__version__}"
    )
    if "cuda" in results:
        print(f"CUDA device: {torch.cuda.get_device_name()}")
    header = f"{'level':>10} {'Pillow ms':>10}"
    for device in devices:
        header += f" {'torch ' + device + ' ms':>16} {device + '/Pillow':>12}"
    print(header)
    for k, size in enumerate(sizes):
        line = f"{size[0]:>5}x{size[1]:<4} {pillow[k]:10.2f}"
        for device in devices:
            ms = results[device][1][k]
            line += f" {ms:16.2f} {ms / pillow[k]:12.2f}"
        print(line)
    total = sum(pillow)
    summary = f"SUMMARY resize: Pillow {total:.1f} ms for all levels"
    for device in devices:
        upload, levels = results[device]
        summary += f"; torch {device} {sum(levels):.1f} ms ({sum(levels) / total:.1f}x Pillow)"
        if device != "cpu":
            summary += f" + {upload:.2f} ms upload"
    print(summary + "; all levels byte-identical to Pillow")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
