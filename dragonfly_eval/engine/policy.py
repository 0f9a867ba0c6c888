"""How a batch is run when the device objects: out-of-memory halving, and the float32 rerun of
a batch that saw non-finite logits."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import torch
from loguru import logger

from dragonfly_eval.engine.caches import EncodingCaches
from dragonfly_eval.engine.numerics import NonFiniteWatch, float32_model

T = TypeVar("T")


class OomPolicy:
    """Runs parts of a batch no larger than `size`; on device out-of-memory the part is halved
    and `size` lowered to the half, so every later part, of this batch and of the later batches
    it is used for (the engine keeps one policy per generate/score call), starts at the size
    that worked. One request that does not fit is re-raised."""

    def __init__(self, size: int) -> None:
        self.size = max(1, size)

    def run(self, items: Sequence[T], run: Callable[[list[T]], list[Any]]) -> list[tuple[T, Any]]:
        """(item, answer) pairs of `run` over `items`, in order, split as memory allows."""
        done: list[tuple[T, Any]] = []
        halved = False
        while len(done) < len(items):
            part = list(items[len(done) : len(done) + self.size])
            try:
                done.extend(zip(part, run(part), strict=True))
            except torch.OutOfMemoryError:
                if len(part) == 1:
                    raise
                torch.cuda.empty_cache()
                self.size, halved = len(part) // 2, True
                logger.warning(
                    f"dragonfly: out of memory with {len(part)} requests; trying {self.size}"
                )
        if halved:
            logger.info(f"dragonfly: after out of memory, batches of {self.size} requests worked")
        return done


class Float32Rerun:
    """Runs an attempt with a NaN/inf watch; when it saw broken logits, runs it again with the
    model in float32 and caches that hold nothing (the shared ones keep their low-precision
    values and are neither read nor written by the rerun)."""

    def __init__(self, model: torch.nn.Module, caches: EncodingCaches) -> None:
        self.model = model
        self.caches = caches
        self.retries = 0

    def run(
        self,
        attempt: Callable[[NonFiniteWatch, EncodingCaches], list[Any]],
        names: Sequence[tuple[str, Any]],
    ) -> list[Any]:
        """`attempt(watch, caches)`'s answers; `names` are the (task, doc_id) of its rows."""
        watch = NonFiniteWatch()
        out = attempt(watch, self.caches)
        bad = watch.bad_rows()
        if not bad:
            return out
        rows_per_item = max(1, len(watch.flags) // len(names))  # beams: rows of one request
        docs = sorted({names[r // rows_per_item] for r in bad}, key=str)
        named = ", ".join(f"{task} doc_id={doc_id}" for task, doc_id in docs)
        logger.warning(
            f"dragonfly: non-finite logits in {self.model.dtype} for {named}; "
            f"running the batch of {len(names)} again in float32"
        )
        self.retries += 1
        retry = NonFiniteWatch()
        with float32_model(self.model):
            out = attempt(retry, self.caches.bypass())
        if retry.bad_rows():
            logger.error(f"dragonfly: logits still non-finite in float32 for {named}")
        return out
