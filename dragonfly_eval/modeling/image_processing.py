"""Zoom-in crops to normalized pixels: the CLIP image processing of the released model, vectorized.

The reference ran the CLIP image processor on each crop separately. For these crops its resize and
center crop are the identity (crops are already se x se), so what remains is rescale + normalize,
which here is one table lookup from uint8 for all crops at once, on any device.

Two paths give the same pixels. On the CPU, Pillow resizes the zoom levels (in threads) and the
crops are normalized there. For an accelerator (the device path), the CPU only decodes the image
and uploads its uint8 pixels once; the level resizes (`resize_bicubic`, Pillow's bytes), the
cutting and the normalization run on the device. `device_resize` picks the path.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageMode
from transformers.image_processing_utils import BaseImageProcessor
from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

from dragonfly_eval.modeling import released
from dragonfly_eval.modeling.configuration import DragonflyConfig
from dragonfly_eval.modeling.geometry import (
    ZoomGeometry,
    default_zoom,
    level_sizes,
    make_geometry,
    zoom_levels,
)
from dragonfly_eval.modeling.passes import band_crops, first_pass, last_pass_band, last_pass_bands
from dragonfly_eval.modeling.zoom import (
    cut_level,
    resize_level,
    to_rgb,
    zoom_crops,
    zoom_crops_many,
    zoom_crops_tensor,
)

NORMALIZE_CHUNK = 6  # crops per normalization job on the CPU
RESIZE_BANDS = 2  # bands of the largest level's last resize pass, run in parallel on the CPU
# np.take's "clip" mode gives the same values for uint8 indices (always within the 256-entry
# table) and skips the bounds checks of the default "raise": the lookup runs about 2x faster.
TAKE_MODE = "clip"

CLIP_MEAN = tuple(OPENAI_CLIP_MEAN)
CLIP_STD = tuple(OPENAI_CLIP_STD)
DEVICE_RESIZE_CHOICES = ("auto", True, False)


def wide_mode(mode: str) -> bool:
    """Whether a PIL mode holds more than 8 bits per value (`I`, `I;16*`, `F`).

    `to_rgb` converts such images as the reference did, with `convert("RGB")`, which clips every
    value to 0..255 (float values truncated): a 16-bit scan whose values lie in the thousands is
    then mostly white.
    """
    return int(ImageMode.getmode(mode).typestr[2:]) > 1  # typestr: numpy's, e.g. "<u2", "|u1"


def _default_threads() -> int:
    return max(3, min(8, os.cpu_count() or 1))


class DragonflyImageProcessor(BaseImageProcessor):
    """Cuts images into zoom-in crops (uint8) and normalizes them like CLIP's image processor.

    An HF image processor: `save_pretrained` writes its settings (geometry, zoom, mean/std) to
    preprocessor_config.json and `from_pretrained` reads them back. `resize_threads` (a runtime
    setting, not saved): level resizes run in this many threads (PIL frees the GIL), so an
    image's three levels overlap, and so do several images' (`crops_many`).
    """

    model_input_names = ["image_patches"]

    def __init__(
        self,
        geometry: ZoomGeometry | None = None,
        zoom: str | None = None,
        image_mean: Sequence[float] = CLIP_MEAN,
        image_std: Sequence[float] = CLIP_STD,
        rescale_factor: float = released.RESCALE_FACTOR,
        resize_threads: int | None = None,
        device_resize: str | bool = "auto",
        version: int | None = None,
        crop_size: int | None = None,
        medium_grids: Sequence[Sequence[int]] = released.MEDIUM_GRIDS,
        high_grids: Sequence[Sequence[int]] | None = None,
        high_scale: int = released.HIGH_SCALE,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if geometry is None:  # read back from preprocessor_config.json
            geometry = make_geometry(
                version,
                crop_size,
                tuple(map(tuple, medium_grids)),
                None if high_grids is None else tuple(map(tuple, high_grids)),
                high_scale,
            )
        self.geometry = geometry
        self.zoom = zoom or default_zoom(geometry.version)
        zoom_levels(geometry.version, self.zoom)  # refuses a zoom the version does not have
        self.image_mean = tuple(image_mean)
        self.image_std = tuple(image_std)
        self.rescale_factor = float(rescale_factor)
        self.resize_threads = _default_threads() if resize_threads is None else resize_threads
        # Where the zoom levels are resized for `pixels_on` / `crops_on`: "auto" on the target
        # device unless it is the CPU (Pillow is faster there); True or False force one path.
        if not (isinstance(device_resize, bool) or device_resize == "auto"):
            raise ValueError(
                f"device_resize={device_resize!r} is not valid; choose from {DEVICE_RESIZE_CHOICES}"
            )
        self.device_resize = device_resize
        self._luts: dict[str, torch.Tensor] = {}
        self._pool: ThreadPoolExecutor | None = None

    def __getstate__(self) -> dict[str, Any]:
        """What a copy or pickle holds (`copy.deepcopy`, `save_pretrained`): the settings, not
        the thread pool or the device tables; the copy makes its own on first use."""
        state = self.__dict__.copy()
        state["_pool"] = None
        state["_luts"] = {}
        return state

    @classmethod
    def from_config(
        cls, config: DragonflyConfig, zoom: str | None = None
    ) -> DragonflyImageProcessor:
        """The image processing a resolved DragonflyConfig defines (geometry, zoom, mean/std);
        `zoom` overrides the config's."""
        return cls(
            geometry=config.geometry(),
            zoom=zoom or config.zoom,
            image_mean=config.image_mean,
            image_std=config.image_std,
            rescale_factor=config.rescale_factor,
        )

    def to_dict(self) -> dict[str, Any]:
        """The saved settings: geometry as layouts in crops, zoom, normalization."""
        se = self.geometry.crop_size
        high = self.geometry.high_candidates

        def grids(resolutions):
            return [[w // se, h // se] for w, h in resolutions]

        return {
            "image_processor_type": type(self).__name__,
            "version": self.geometry.version,
            "crop_size": se,
            "medium_grids": grids(self.geometry.medium_candidates),
            "high_grids": None if high is None else grids(high),
            "high_scale": self.geometry.high_scale,
            "zoom": self.zoom,
            "image_mean": list(self.image_mean),
            "image_std": list(self.image_std),
            "rescale_factor": self.rescale_factor,
        }

    @property
    def levels(self) -> tuple[str, ...]:
        return zoom_levels(self.geometry.version, self.zoom)

    def crops(self, image: Image.Image, pool: ThreadPoolExecutor | None = None) -> np.ndarray:
        """uint8 crops of one image: [n_crops, se, se, 3].

        The level resizes run in `pool`, by default the processor's own (`resize_threads`
        workers; 1 or less resizes in the calling thread). Pixels are the same either way.
        """
        return zoom_crops(image, self.geometry, self.levels, pool=pool or self.resize_pool())

    def crops_many(self, images: Sequence[Image.Image]) -> list[np.ndarray]:
        """`crops` of several images, all their level resizes overlapped in the pool."""
        return zoom_crops_many(list(images), self.geometry, self.levels, pool=self.resize_pool())

    def resize_pool(self) -> ThreadPoolExecutor | None:
        """The processor's thread pool for level resizes, created on first use."""
        if self._pool is None and self.resize_threads > 1:
            self._pool = ThreadPoolExecutor(
                max_workers=self.resize_threads, thread_name_prefix="dragonfly-resize"
            )
        return self._pool

    def lookup_table(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """[3, 256] float32: the normalized value of each uint8 level per channel.

        Computed in the same float steps as the CLIP image processor (rescale in float64, cast to
        float32, then (x - mean) / std in float32), so pixels match it bit for bit. Kept rather
        than transformers' `normalize`: one gather per value gives those exact bits on any device,
        where recomputing the arithmetic on an accelerator can round differently.
        """
        key = str(device)
        if key not in self._luts:
            levels = (np.arange(256, dtype=np.float64) * self.rescale_factor).astype(np.float32)
            mean = np.asarray(self.image_mean, dtype=np.float32)[:, None]
            std = np.asarray(self.image_std, dtype=np.float32)[:, None]
            table = (levels[None, :] - mean) / std  # [3, 256]
            self._luts[key] = torch.from_numpy(table.astype(np.float32)).to(device)
        return self._luts[key]

    def normalize(self, crops: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """uint8 [N, se, se, 3] (any device) -> normalized [N, 3, se, se] in `dtype`.

        On the CPU a numpy table lookup, one crop plane at a time so that numpy's index
        conversion stays in cache; on an accelerator the same table indexed there, after a
        uint8 transfer.
        """
        if crops.dtype != torch.uint8:
            raise TypeError(f"expected uint8 crops, got {crops.dtype}")
        n, height, width, _ = crops.shape
        if crops.device.type == "cpu":
            table = self.lookup_table().numpy()
            source = crops.numpy()
            out = np.empty((n, 3, height, width), dtype=np.float32)
            for crop in range(n):
                for channel in range(3):
                    np.take(
                        table[channel],
                        source[crop, ..., channel],
                        out=out[crop, channel],
                        mode=TAKE_MODE,
                    )
            return torch.from_numpy(out).to(dtype)
        table = self.lookup_table(crops.device)
        out = torch.empty((n, 3, height, width), dtype=torch.float32, device=crops.device)
        for channel in range(3):
            out[:, channel] = table[channel][crops[..., channel].int()]
        return out.to(dtype)

    def pixels(self, image: Image.Image) -> torch.Tensor:
        """Normalized pixels of one image on the CPU: [n_crops, 3, se, se] float32.

        The same values as `normalize(crops(image))`, computed with the work overlapped in the
        pool: the largest level's resize runs as Pillow runs it, pass by pass, its last pass in
        bands of whole crops (`passes.last_pass_band`; byte for byte Pillow's single call), so
        both cores share the one long resize; each level's or band's crops are normalized as
        soon as they exist, read as views of the resized pixels.
        """
        rgb = to_rgb(image)
        se = self.geometry.crop_size
        sizes = level_sizes(self.geometry, rgb.size, self.levels)
        counts = [(w // se) * (h // se) for w, h in sizes]
        starts = np.cumsum([0, *counts[:-1]])
        out = np.empty((sum(counts), 3, se, se), dtype=np.float32)
        table = self.lookup_table().numpy()

        def fill(crops: np.ndarray, rows: np.ndarray) -> None:
            for crop, row in zip(crops, rows, strict=True):
                for channel in range(3):
                    np.take(
                        table[channel], crop[..., channel], out=out[row, channel], mode=TAKE_MODE
                    )

        pool = self.resize_pool()
        if pool is None:
            for size, start, count in zip(sizes, starts, counts, strict=True):
                fill(cut_level(resize_level(rgb, size), se), start + np.arange(count))
            return torch.from_numpy(out)
        pending: dict[Future, Callable[[Any], None] | None] = {}

        def submit(then: Callable[[Any], None] | None, fn: Callable, *args: Any) -> None:
            pending[pool.submit(fn, *args)] = then

        def normalize_in_jobs(pixels: np.ndarray, rows: np.ndarray) -> None:
            crops = cut_level(pixels, se)
            for lo in range(0, len(rows), NORMALIZE_CHUNK):
                submit(
                    None, fill, crops[lo : lo + NORMALIZE_CHUNK], rows[lo : lo + NORMALIZE_CHUNK]
                )

        def split_last_pass(k: int, first: Image.Image) -> None:
            for band in last_pass_bands(sizes[k], rgb.size, se, RESIZE_BANDS):
                rows = starts[k] + band_crops(sizes[k], rgb.size, se, band)
                then = functools.partial(normalize_in_jobs, rows=rows)
                submit(then, last_pass_band, first, rgb.size, sizes[k], band)

        largest = max(range(len(sizes)), key=lambda k: counts[k])
        for k in sorted(range(len(sizes)), key=lambda k: -counts[k]):  # the long resize first
            if k == largest and last_pass_bands(sizes[k], rgb.size, se, RESIZE_BANDS):
                submit(functools.partial(split_last_pass, k), first_pass, rgb, sizes[k])
            else:
                rows = starts[k] + np.arange(counts[k])
                submit(functools.partial(normalize_in_jobs, rows=rows), resize_level, rgb, sizes[k])
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for job in done:
                then = pending.pop(job)
                result = job.result()
                if then is not None:
                    then(result)
        return torch.from_numpy(out)

    def resizes_on_device(self, device: torch.device | str) -> bool:
        """Whether images bound for `device` take the device path (see `device_resize`)."""
        if self.device_resize == "auto":
            return torch.device(device).type != "cpu"
        return bool(self.device_resize)

    def crops_on(self, image: Image.Image, device: torch.device | str = "cpu") -> torch.Tensor:
        """uint8 crops of one image on `device`: [n_crops, se, se, 3], the bytes of `crops`.

        Device path: the RGB pixels are uploaded once and resized and cut there. Otherwise
        Pillow cuts them on the CPU and the crops are uploaded.
        """
        device = torch.device(device)
        if self.resizes_on_device(device):
            return zoom_crops_tensor(upload_rgb(to_rgb(image), device), self.geometry, self.levels)
        return to_device(torch.from_numpy(self.crops(image)), device)

    def pixels_on(
        self,
        image: Image.Image,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> torch.Tensor:
        """Normalized pixels of one image on `device` in `dtype`: [n_crops, 3, se, se].

        The same values whichever path `resizes_on_device` picks; on the CPU without the
        device path this is `pixels` (levels and normalization overlapped).
        """
        device = torch.device(device)
        if device.type == "cpu" and not self.resizes_on_device(device):
            return self.pixels(image).to(dtype)
        return self.normalize(self.crops_on(image, device), dtype)

    def __call__(self, images: Sequence[Image.Image]) -> list[torch.Tensor]:
        """Normalized pixels per image, the reference's `image_patches` entries: [n_crops, 3, se, se]
        (on the CPU, by the path `device_resize` picks for it)."""
        return [self.pixels_on(im) for im in images]


def upload_rgb(rgb: Image.Image, device: torch.device) -> torch.Tensor:
    """An RGB image's uint8 pixels [H, W, 3] on `device`, copied from the PIL buffer once (through
    pinned memory, without waiting, on CUDA)."""
    array = np.asarray(rgb)  # [H, W, 3] uint8, read-only view of the PIL buffer
    if device.type != "cuda":
        return torch.from_numpy(array.copy()).to(device)
    host = torch.empty(array.shape, dtype=torch.uint8, pin_memory=True)
    host.numpy()[...] = array
    return host.to(device, non_blocking=True)


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """`tensor` on `device`; a CUDA copy goes through pinned memory without waiting."""
    if device.type == "cpu":
        return tensor
    if device.type == "cuda":
        tensor = tensor.pin_memory()
    return tensor.to(device, non_blocking=True)
