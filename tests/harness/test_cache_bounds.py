"""The image-embedding and prefix KV caches hold no more storage than their MB bound.

The bound counts each entry's own bytes; these tests measure what the entries really keep alive
(every distinct storage behind the cached tensors), after every insertion, over many batches of
distinct images with evictions, through the harness's own request path.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from harness_kit import Requests, noise_image

from dragonfly_eval.engine.caches import LRUTensorCache, owned
from dragonfly_eval.harness.model import Dragonfly

CACHE_MB = 1
BATCH_SIZE = 4
BATCHES = 6


def held_bytes(cache: LRUTensorCache) -> int:
    """Bytes of the distinct storages (by data pointer) behind every tensor in `cache`."""
    storages = {}
    for tensor in cache._items.values():
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
    return sum(storages.values())


def record_held(monkeypatch, cache: LRUTensorCache) -> list[tuple[int, int]]:
    """(held, accounted) bytes of `cache` after each of its insertions."""
    seen: list[tuple[int, int]] = []
    put = cache.put

    def measured_put(key: str, value: torch.Tensor) -> None:
        put(key, value)
        seen.append((held_bytes(cache), cache.bytes))

    monkeypatch.setattr(cache, "put", measured_put)
    return seen


def run_distinct_images(harness: Dragonfly, kit: Requests) -> None:
    """BATCHES full batches of one-image questions, every image distinct."""
    kit.attach(harness)
    requests = [
        kit.gen(f"Question {i}?", kit.doc([noise_image(1000 + i)]), max_new_tokens=1)
        for i in range(BATCHES * BATCH_SIZE)
    ]
    assert len(harness.generate_until(requests)) == len(requests)


@pytest.fixture(scope="module")
def tiny_harness() -> Callable[..., Dragonfly]:
    """The embedded model at its one-crop zoom, both caches bounded to CACHE_MB."""

    def make(**settings) -> Dragonfly:
        return Dragonfly(
            pretrained="dragonfly-tiny",
            device="cpu",
            zoom="low",
            batch_size=BATCH_SIZE,
            image_cache_mb=CACHE_MB,
            prefix_cache_mb=CACHE_MB,
            **settings,
        )

    return make


def assert_within_bound(cache: LRUTensorCache, seen: list[tuple[int, int]]) -> None:
    bound = CACHE_MB * 2**20
    assert len(seen) == BATCHES * BATCH_SIZE  # every image was encoded and offered to the cache
    assert cache.misses >= len(seen) and len(cache) < len(seen)  # evictions happened
    for step, (held, accounted) in enumerate(seen):
        assert held == accounted, f"insertion {step}: holds {held} bytes, accounts {accounted}"
        assert held <= 1.1 * bound, f"insertion {step}: holds {held} bytes, bound {bound}"


def test_prefix_cache_holds_no_more_than_its_bound(tiny_harness, kit, monkeypatch):
    harness = tiny_harness()
    seen = record_held(monkeypatch, harness.engine.caches.prefixes)
    run_distinct_images(harness, kit)
    assert harness.engine.caches.prefills == BATCHES * BATCH_SIZE
    assert_within_bound(harness.engine.caches.prefixes, seen)


def test_image_embedding_cache_holds_no_more_than_its_bound(tiny_harness, kit, monkeypatch):
    harness = tiny_harness(prefix_cache=False)
    seen = record_held(monkeypatch, harness.engine.caches.embeddings)
    run_distinct_images(harness, kit)
    assert_within_bound(harness.engine.caches.embeddings, seen)


def test_owned_copies_slices_and_keeps_whole_tensors():
    batch = torch.arange(24.0).view(4, 6)
    row = owned(batch[1])
    assert row.untyped_storage().nbytes() == 6 * 4 and torch.equal(row, batch[1])
    column = owned(batch[:, 2])
    assert column.is_contiguous() and torch.equal(column, batch[:, 2])
    whole = torch.zeros(3, 5)
    assert owned(whole) is whole
