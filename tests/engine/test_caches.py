import numpy as np
import torch
from PIL import Image

from dragonfly_eval.engine.caches import LRUTensorCache, image_digest


def _tensor(n_bytes: int) -> torch.Tensor:
    return torch.zeros(n_bytes // 4, dtype=torch.float32)


def test_lru_cache_evicts_least_recently_used_by_bytes():
    cache = LRUTensorCache(max_bytes=1000)
    cache.put("a", _tensor(400))
    cache.put("b", _tensor(400))
    assert cache.get("a") is not None  # "a" is now the most recently used
    cache.put("c", _tensor(400))
    assert "b" not in cache and "a" in cache and "c" in cache
    assert cache.bytes == 800
    cache.put("d", _tensor(800))  # needs both slots
    assert list(k for k in "abcd" if k in cache) == ["d"]
    assert cache.bytes == 800


def test_lru_cache_replacing_a_key_and_oversized_values():
    cache = LRUTensorCache(max_bytes=1000)
    cache.put("a", _tensor(400))
    cache.put("a", _tensor(200))
    assert cache.bytes == 200 and len(cache) == 1
    cache.put("huge", _tensor(2000))
    assert "huge" not in cache and "a" in cache
    off = LRUTensorCache(max_bytes=0)
    off.put("a", _tensor(4))
    assert len(off) == 0 and off.get("a") is None


def test_lru_cache_counts_hits_and_misses():
    cache = LRUTensorCache(max_bytes=100)
    cache.put("a", _tensor(8))
    cache.get("a")
    cache.get("b")
    assert (cache.hits, cache.misses) == (1, 1)


def test_image_digest_follows_pixels_mode_and_size():
    pixels = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    first, same = Image.fromarray(pixels), Image.fromarray(pixels.copy())
    assert image_digest(first) == image_digest(same)

    changed = pixels.copy()
    changed[1, 2, 0] += 1
    assert image_digest(Image.fromarray(changed)) != image_digest(first)

    flat = np.arange(6, dtype=np.uint8)
    assert image_digest(Image.fromarray(flat.reshape(2, 3))) != image_digest(
        Image.fromarray(flat.reshape(3, 2))
    )
    gray = Image.fromarray(flat.reshape(2, 3))
    assert image_digest(gray) != image_digest(gray.convert("P"))
