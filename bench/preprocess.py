"""Preprocessing speed: this project's processor vs the reference's per-crop path, same images.

The reference path resizes the three zoom levels with PIL, cuts every 336 px box with
`Image.crop`, and runs the CLIP image processor on each crop separately, as the released
implementation did. This project's drop-in call (`processor([image])`) resizes the levels in
threads (the high level pass by pass, its last pass in two bands of whole crops, one per core),
cuts uint8 crops as array views and normalizes them with one lookup table, the stages
overlapped. Both must give the same pixels. Each stage is also timed alone, one after the
other in one thread (the three level resizes, cutting, normalizing), to show what overlaps what;
the speed-up is summarized as the geometric mean over the sizes.

    python bench/preprocess.py [--repeats 5] [--sizes 640x480,1024x768,1280x720,1920x1080]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
from common import synthetic_image
from PIL import Image
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

from dragonfly_eval.modeling.geometry import level_resolutions, level_sizes, v2_geometry
from dragonfly_eval.modeling.image_processing import (
    CLIP_MEAN,
    CLIP_STD,
    RESIZE_BANDS,
    DragonflyImageProcessor,
)
from dragonfly_eval.modeling.passes import (
    first_pass,
    last_pass_band,
    last_pass_bands,
    resize_passes,
)
from dragonfly_eval.modeling.zoom import cut_level, resize_level, to_rgb

DEFAULT_SIZES = "640x480,1024x768,1280x720,1920x1080"
LEVEL_NAMES = ("low", "medium", "high")


class ReferencePreprocessor:
    """The released implementation's preprocessing: PIL crops, CLIP processor per crop."""

    def __init__(self, crop_size: int = 336) -> None:
        self.geometry = v2_geometry(crop_size)
        self.clip = CLIPImageProcessorPil(
            size={"shortest_edge": crop_size},
            crop_size={"height": crop_size, "width": crop_size},
            image_mean=list(CLIP_MEAN),
            image_std=list(CLIP_STD),
        )

    def __call__(self, image: Image.Image) -> torch.Tensor:
        """[41, 3, se, se] float32 pixels in [low, medium, high] order."""
        se = self.geometry.crop_size
        rgb = to_rgb(image)
        crops: list[torch.Tensor] = []
        for size in level_resolutions(self.geometry, rgb.size).values():
            level = rgb.resize(size, Image.Resampling.BICUBIC)
            for top in range(0, size[1], se):
                for left in range(0, size[0], se):
                    crop = level.crop((left, top, left + se, top + se))
                    pixels = self.clip(images=crop, return_tensors="pt")["pixel_values"]
                    crops.append(pixels[0])
        return torch.stack(crops)


def project_path(processor: DragonflyImageProcessor) -> Callable[[Image.Image], torch.Tensor]:
    """This project's drop-in call on the CPU: level resizes in threads (the high level's last
    pass in bands), each level's or band's crops normalized (table lookup from uint8, read as
    views) as soon as it is ready."""

    def run(image: Image.Image) -> torch.Tensor:
        return processor([image])[0]

    return run


def stage_times(
    processor: DragonflyImageProcessor, image: Image.Image, repeats: int
) -> tuple[dict[str, float], dict[str, float]]:
    """Median seconds of each stage of the drop-in call run alone, in one thread: each level's
    resize, cutting the uint8 crops, normalizing them; then the high level's resize as the
    drop-in call splits it: Pillow's first pass, and its last pass band by band."""
    rgb = to_rgb(image)
    sizes = level_sizes(processor.geometry, rgb.size, processor.levels)
    se = processor.geometry.crop_size
    levels = [resize_level(rgb, size) for size in sizes]
    stages: dict[str, Callable[[], object]] = {
        f"resize {name} {w}x{h}": (lambda size=(w, h): resize_level(rgb, size))
        for name, (w, h) in zip(LEVEL_NAMES, sizes, strict=True)
    }
    stages["cut"] = lambda: np.concatenate([cut_level(level, se) for level in levels])
    crops = torch.from_numpy(np.concatenate([cut_level(level, se) for level in levels]))
    stages["normalize"] = lambda: processor.normalize(crops)
    high = sizes[-1]
    first = first_pass(rgb, high)
    passes = resize_passes(rgb.size, high)
    split: dict[str, Callable[[], object]] = {
        f"{passes[0]} pass" if len(passes) > 1 else "no first pass": lambda: first_pass(rgb, high)
    }
    for k, band in enumerate(last_pass_bands(high, rgb.size, se, RESIZE_BANDS)):
        split[f"{passes[-1]} band {k + 1}"] = lambda band=band: last_pass_band(
            first, rgb.size, high, band
        )
    return _medians(stages, repeats), _medians(split, repeats)


def _medians(stages: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median seconds of each callable, after one warm-up call."""
    times = {}
    for name, run in stages.items():
        run()
        samples = []
        for _ in range(repeats):
            start = time.perf_counter()
            run()
            samples.append(time.perf_counter() - start)
        times[name] = statistics.median(samples)
    return times


def paired_times(
    runs: list[Callable[[Image.Image], torch.Tensor]], image: Image.Image, repeats: int
) -> list[float]:
    """Median seconds of each run on `image`, the runs interleaved so that both see the same
    machine load (after one warm-up call each)."""
    for run in runs:
        run(image)
    samples: list[list[float]] = [[] for _ in runs]
    for _ in range(repeats):
        for k, run in enumerate(runs):
            start = time.perf_counter()
            run(image)
            samples[k].append(time.perf_counter() - start)
    return [statistics.median(times) for times in samples]


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """'640x480,1024x768' -> [(640, 480), (1024, 768)]."""
    sizes = []
    for part in text.split(","):
        width, _, height = part.strip().partition("x")
        if not (width.isdigit() and height.isdigit()) or int(width) < 1 or int(height) < 1:
            raise argparse.ArgumentTypeError(f"size {part!r} is not WIDTHxHEIGHT")
        sizes.append((int(width), int(height)))
    return sizes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=parse_sizes, default=parse_sizes(DEFAULT_SIZES))
    parser.add_argument("--repeats", type=int, default=5, help="timed passes over the images")
    args = parser.parse_args(argv)

    processor = DragonflyImageProcessor(geometry=v2_geometry(), zoom="full")
    ours = project_path(processor)
    reference = ReferencePreprocessor()
    images = [synthetic_image(w, h, seed=i) for i, (w, h) in enumerate(args.sizes)]

    print(f"CPU cores: {os.cpu_count()}, torch threads: {torch.get_num_threads()}")
    print(f"{'image':>11} {'reference ms':>13} {'project ms':>11} {'ratio':>6} {'max |diff|':>11}")
    totals = {"ref": 0.0, "ours": 0.0}
    ratios, stages = [], []
    worst = 0.0
    for image in images:
        ref_s, our_s = paired_times([reference, ours], image, args.repeats)
        diff = float((reference(image) - ours(image)).abs().max())
        worst = max(worst, diff)
        totals["ref"] += ref_s
        totals["ours"] += our_s
        ratios.append(ref_s / our_s)
        stages.append(stage_times(processor, image, args.repeats))
        size = f"{image.width}x{image.height}"
        print(
            f"{size:>11} {ref_s * 1e3:13.1f} {our_s * 1e3:11.1f} {ref_s / our_s:6.2f} {diff:11.2e}"
        )
    print("stages run alone, one thread (ms); then the high level's resize as the call splits it:")
    for image, (times, split) in zip(images, stages, strict=True):
        parts = ", ".join(f"{name} {t * 1e3:.1f}" for name, t in times.items())
        print(f"{image.width:>6}x{image.height:<5} {parts}; sum {sum(times.values()) * 1e3:.1f}")
        halves = ", ".join(f"{name} {t * 1e3:.1f}" for name, t in split.items())
        print(f"{'':>12} high level: {halves}")
    n = len(images)
    geomean = math.exp(statistics.mean(math.log(r) for r in ratios))
    print(
        f"SUMMARY preprocess: reference {totals['ref'] / n * 1e3:.1f} ms/image, project "
        f"{totals['ours'] / n * 1e3:.1f} ms/image, {geomean:.2f}x faster (geometric mean), max "
        f"pixel diff {worst:.1e} ({n} sizes, {os.cpu_count()} CPU cores)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
