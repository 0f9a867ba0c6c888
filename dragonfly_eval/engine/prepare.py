"""Requests made ready on the CPU: prompt ids, image digests and uint8 crops, prepared a few
batches ahead in threads while the device runs the current one. When the image processor resizes
on the input device (`resizes_on_device`), the threads only decode the images to RGB; their crops
are made on the device at encode time."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Hashable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import torch
from loguru import logger
from PIL import Image

from dragonfly_eval.engine.caches import EncodingCaches, image_digest
from dragonfly_eval.engine.requests import Request, ScoreRequest
from dragonfly_eval.modeling import DragonflyProcessor, chat_prompt
from dragonfly_eval.modeling.image_processing import wide_mode
from dragonfly_eval.modeling.zoom import to_rgb

PREFETCH_DEPTH = 2
Fail = Callable[[Request, str], None]  # request, reason: report one failed request


class FirstTime:
    """Keys seen so far, shared by the prefetch threads: `first(key)` is True once per key."""

    def __init__(self) -> None:
        self._seen: set[Hashable] = set()
        self._lock = threading.Lock()

    def first(self, key: Hashable) -> bool:
        with self._lock:
            if key in self._seen:
                return False
            self._seen.add(key)
            return True


@dataclass
class Prepared:
    """One request made ready: prompt ids, its images' digests, or why it failed."""

    request: Request
    prompt_ids: list[int] = field(default_factory=list)
    digests: list[str] = field(default_factory=list)
    continuation_ids: list[int] = field(default_factory=list)
    error: str | None = None


@dataclass
class PreparedBatch:
    """A batch's requests (by index into the call's requests) plus the uint8 crops of images
    not encoded yet, and every image by digest (crops of one evicted meanwhile are cut late).
    `on_device`: the crops are made on the device at encode time from `images`, decoded to RGB
    (`crops` stays empty)."""

    indices: list[int]
    items: list[Prepared]
    crops: dict[str, torch.Tensor]
    images: dict[str, Image.Image]
    on_device: bool = False

    def live(self) -> list[int]:
        """Positions of the requests that were prepared without error."""
        return [i for i, item in enumerate(self.items) if item.error is None]


def flatten_visuals(visuals: Any) -> list[Image.Image]:
    """The images of a document's visuals (an image, or nested lists of them; None skipped)."""
    if visuals is None:
        return []
    if isinstance(visuals, Image.Image):
        return [visuals]
    out = []
    for item in visuals:
        if isinstance(item, Image.Image):
            out.append(item)
        elif isinstance(item, (list, tuple)):
            out.extend(flatten_visuals(item))
        elif item is not None:
            raise TypeError(f"unsupported visual of type {type(item).__name__} (images only)")
    return out


class Preparer:
    """Turns requests into `PreparedBatch`es; failures go to `fail` and never end the run.
    Without `caches` (an engine that encodes images itself, e.g. vLLM) only `prepare` is
    used."""

    def __init__(
        self,
        processor: DragonflyProcessor,
        caches: EncodingCaches | None,
        max_length: int,
        fail: Fail,
        device: torch.device | str = "cpu",
    ) -> None:
        self.processor = processor
        self.caches = caches
        self.max_length = max_length
        self.fail = fail
        self.device = torch.device(device)
        self._pool = ThreadPoolExecutor(max_workers=3, thread_name_prefix="dragonfly-prep")
        # A transformers tokenizer call sets its backend's truncation state, which two prefetch
        # threads must not interleave: one tokenizing thread at a time.
        self._tokenizer_lock = threading.Lock()
        self._modes_warned = FirstTime()  # (task, PIL mode) pairs already warned about

    def batches(
        self, plan: Sequence[list[int]], requests: Sequence[Request], prefetch: bool
    ) -> Iterator[PreparedBatch]:
        """Prepared batches in plan order; with `prefetch`, the next PREFETCH_DEPTH batches
        are prepared in threads while the current one runs (the first two start together)."""
        if not prefetch:
            for indices in plan:
                yield self.batch(indices, requests)
            return
        pending: deque[Future] = deque()
        for indices in plan[:PREFETCH_DEPTH]:
            pending.append(self._pool.submit(self.batch, indices, requests))
        for k in range(len(plan)):
            current = pending.popleft().result()
            if k + PREFETCH_DEPTH < len(plan):
                ahead = plan[k + PREFETCH_DEPTH]
                pending.append(self._pool.submit(self.batch, ahead, requests))
            yield current

    def batch(self, indices: list[int], requests: Sequence[Request]) -> PreparedBatch:
        """The requests `indices` prepared, with the crops of the images not encoded yet (none
        on the device path: its images are only decoded)."""
        on_device = self.processor.image_processor.resizes_on_device(self.device)
        items, todo, kept = [], {}, {}
        owners: dict[str, list[Prepared]] = {}
        for i in indices:
            item, images = self.prepare(requests[i], decode=on_device)
            if item.error is None:
                for digest, image in images.items():
                    kept[digest] = image
                    owners.setdefault(digest, []).append(item)
                    if not self.caches.has(digest):
                        todo[digest] = image
            items.append(item)
        if on_device:
            return PreparedBatch(list(indices), items, {}, kept, on_device=True)
        return PreparedBatch(list(indices), items, self._crops_of(todo, owners), kept)

    def prepare(
        self, request: Request, decode: bool = False
    ) -> tuple[Prepared, dict[str, Image.Image]]:
        """One request's prompt ids and images by digest (with `decode`, converted to RGB);
        a failure is recorded on the item."""
        item = Prepared(request)
        images: dict[str, Image.Image] = {}
        try:
            if request.error is not None:
                raise ValueError(request.error)
            visuals = request.images() if callable(request.images) else request.images
            for image in flatten_visuals(visuals):
                self._warn_wide_mode(request.task, image.mode)
                digest = image_digest(image)
                item.digests.append(digest)
                images[digest] = to_rgb(image) if decode else image
            with self._tokenizer_lock:
                item.prompt_ids = self.processor.text_ids(
                    chat_prompt(request.prompt), self.max_length
                )
                if isinstance(request, ScoreRequest):
                    item.continuation_ids = self.processor.tokenizer(
                        request.continuation, add_special_tokens=False
                    )["input_ids"]
        except Exception as err:  # a bad document must not end the run
            self._failed(item, err)
        return item, images

    def _failed(self, item: Prepared, err: Exception) -> None:
        """Mark `item` failed by `err` (once) and report it."""
        if item.error is None:
            item.error = (
                item.request.error
                if item.request.error is not None
                else f"{type(err).__name__}: {err}"
            )
            self.fail(item.request, item.error)

    def _warn_wide_mode(self, task: str, mode: str) -> None:
        """Say once per task and mode that images of more than 8 bits are clipped to 0..255."""
        if wide_mode(mode) and self._modes_warned.first((task, mode)):
            logger.warning(
                f"dragonfly: task={task} has images in PIL mode {mode}; they are converted with "
                "convert('RGB') as the reference does, which clips values above 255 to white "
                "(a 16-bit scan is then seen as mostly white)"
            )

    def _crops_of(
        self, todo: dict[str, Image.Image], owners: dict[str, list[Prepared]]
    ) -> dict[str, torch.Tensor]:
        """uint8 crops of images by digest, all resized concurrently; an image that cannot be
        cut fails the requests that use it."""
        try:
            arrays = self.processor.image_processor.crops_many(list(todo.values()))
            return {d: torch.from_numpy(a) for d, a in zip(todo, arrays, strict=True)}
        except Exception:  # find the culprit(s) one image at a time
            crops = {}
            for digest, image in todo.items():
                try:
                    crops[digest] = self.crops(image)
                except Exception as err:
                    for item in owners[digest]:
                        self._failed(item, err)
            return crops

    def crops(self, image: Image.Image) -> torch.Tensor:
        """uint8 crops of one image: [n_crops, se, se, 3]."""
        return torch.from_numpy(self.processor.image_processor.crops(image))

    def crops_on_device(self, batch: PreparedBatch, digests: list[str]) -> torch.Tensor:
        """uint8 crops [n, n_crops, se, se, 3] of `batch`'s images `digests` on the device: each
        image's pixels uploaded once, resized and cut there (`on_device` batches)."""
        image_processor = self.processor.image_processor
        return torch.stack(
            [image_processor.crops_on(batch.images[d], self.device) for d in digests]
        )
