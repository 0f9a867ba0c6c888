"""Memory stays flat over a long run of distinct images: the image-embedding cache and the image
prefix KV cache are LRU stores bounded in MB.

Bound: after a warm-up of 40 images, 160 more distinct images may grow the process's resident
memory by at most 40 MB with both caches set to 4 MB. Without the bounds the prefix caches of
those images alone grow it by ~65 MB (tiny model, one 336-px crop per image), so the test tells the two
apart; the remaining slack absorbs allocator noise (~10 MB seen).
"""

import gc

import numpy as np
import psutil
import pytest
from lmms_eval.api.instance import Instance
from PIL import Image

from dragonfly_eval.harness.model import Dragonfly

CACHE_MB = 4
GROWTH_BOUND_MB = 40
CHUNK = 40


def _image(doc):
    pixels = np.random.RandomState(doc["seed"]).randint(0, 255, (24, 32, 3), dtype=np.uint8)
    return [Image.fromarray(pixels)]


def _run_chunk(model, start):
    docs = {i: {"seed": i} for i in range(start, start + CHUNK)}
    model.task_dict = {"t": {"test": docs}}
    gen = {"until": ["\n\n"], "max_new_tokens": 1, "temperature": 0}
    requests = [
        Instance(
            "generate_until",
            (f"Question {i}?", gen, _image, i, "t", "test"),
            idx=0,
            metadata={"task": "t", "doc_id": i, "repeats": 1},
        )
        for i in docs
    ]
    answers = model.generate_until(requests)
    assert len(answers) == CHUNK
    gc.collect()


def _model(**kwargs):
    return Dragonfly(
        pretrained="dragonfly-tiny",
        device="cpu",
        zoom="low",
        batch_size=8,
        image_cache_mb=CACHE_MB,
        prefix_cache_mb=CACHE_MB,
        **kwargs,
    )


@pytest.mark.slow
def test_resident_memory_stays_flat_over_hundreds_of_distinct_images():
    model = _model()
    process = psutil.Process()
    _run_chunk(model, 0)
    start = process.memory_info().rss
    for k in range(1, 5):
        _run_chunk(model, k * CHUNK)
        assert model.engine.caches.prefixes.bytes <= CACHE_MB * 2**20
        growth_mb = (process.memory_info().rss - start) / 2**20
        assert growth_mb < GROWTH_BOUND_MB, f"grew {growth_mb:.0f} MB after {k * CHUNK} images"
    assert model.engine.caches.prefills == 5 * CHUNK  # every image was distinct: no hidden reuse


def test_image_embedding_cache_stays_within_its_budget():
    model = _model(prefix_cache=False)
    _run_chunk(model, 0)
    one = model.engine.caches.embeddings.bytes / len(model.engine.caches.embeddings)
    _run_chunk(model, CHUNK)
    assert model.engine.caches.embeddings.bytes <= CACHE_MB * 2**20
    assert len(model.engine.caches.embeddings) == int(
        CACHE_MB * 2**20 // one
    )  # full, and no fuller
