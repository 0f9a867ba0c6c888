"""Request bookkeeping for the engine: dense batches, original order restored, bounded caches."""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from typing import TypeVar

import torch
from PIL import Image

T = TypeVar("T")


def plan_batches(
    n: int,
    group_key: Callable[[int], Hashable],
    sort_key: Callable[[int], tuple],
    batch_size: int,
) -> list[list[int]]:
    """Split request indices 0..n-1 into batches: same group within a batch, sorted by `sort_key`.

    Groups keep their first-appearance order; results are put back with `restore_order`.
    """
    groups: dict[Hashable, list[int]] = {}
    for i in range(n):
        groups.setdefault(group_key(i), []).append(i)
    batches = []
    for members in groups.values():
        members.sort(key=sort_key)
        batches.extend(members[i : i + batch_size] for i in range(0, len(members), batch_size))
    return batches


def restore_order(batches: Sequence[Sequence[int]], results: Sequence[Sequence[T]]) -> list[T]:
    """Results of `plan_batches` batches, back in request order."""
    n = sum(len(b) for b in batches)
    out: list = [None] * n
    for indices, values in zip(batches, results, strict=True):
        for i, value in zip(indices, values, strict=True):
            out[i] = value
    return out


def gen_kwargs_key(gen_kwargs: dict) -> str:
    """A stable key for grouping requests that can share one generate() call."""
    return json.dumps(gen_kwargs, sort_keys=True, default=str)


def image_digest(image: Image.Image) -> str:
    """Content hash of an image (mode, size and pixels), to find repeated images."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{image.mode}:{image.size}".encode())
    h.update(image.tobytes())
    return h.hexdigest()


def owned(value: torch.Tensor) -> torch.Tensor:
    """`value` itself if it is the whole of its storage, else a contiguous copy of it.

    A slice of a batch's tensor (one image's row) keeps the whole batch's storage alive, so a
    cache bounded by the bytes of its entries would hold up to batch-size times its bound.
    """
    storage = value.untyped_storage()
    whole = value.is_contiguous() and value.storage_offset() == 0
    if whole and storage.nbytes() == value.numel() * value.element_size():
        return value
    return value.clone(memory_format=torch.contiguous_format)


class LRUTensorCache:
    """Tensors by key, evicting the least recently used past a byte budget.

    The budget bounds the storage really held: each entry owns its bytes (`owned`).
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, torch.Tensor] = OrderedDict()
        self.bytes = 0
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: str) -> bool:
        return key in self._items

    def get(self, key: str) -> torch.Tensor | None:
        value = self._items.get(key)
        if value is None:
            self.misses += 1
            return None
        self._items.move_to_end(key)
        self.hits += 1
        return value

    def put(self, key: str, value: torch.Tensor) -> None:
        """Keep `value` under `key`, as a tensor owning exactly its bytes (see `owned`)."""
        size = self._nbytes(value)
        if size > self.max_bytes:
            return
        if key in self._items:
            self.bytes -= self._nbytes(self._items.pop(key))
        self._items[key] = owned(value)
        self.bytes += size
        while self.bytes > self.max_bytes:
            _, evicted = self._items.popitem(last=False)
            self.bytes -= self._nbytes(evicted)

    def clear(self) -> None:
        self._items.clear()
        self.bytes = 0

    @staticmethod
    def _nbytes(value: torch.Tensor) -> int:
        return value.numel() * value.element_size()


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
