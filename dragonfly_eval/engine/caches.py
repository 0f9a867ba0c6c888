"""Encodings kept across batches, by image digest: visual embeddings and image-prefix KV caches.

Every Dragonfly sample with one image starts with the same image block (2098 positions for v2),
before any text, so the keys and values of that block depend on the image alone. They are
computed once per distinct image (all distinct images of a batch in one pass) and kept in a
bounded LRU store; a batch then runs only its text. How the keys and values are laid out is the
model's business (`DragonflyForCausalLM.prefill_image_prefixes` / `image_prefix_cache`): here
they are opaque tensors with a byte size.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import torch
from PIL import Image

from dragonfly_eval.modeling import DragonflyForCausalLM, DragonflyProcessor

Encode = Callable[[list[str]], torch.Tensor]  # digests -> visual embeddings [n, T, D]


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


class EncodingCaches:
    """The image-embedding LRU and the image-prefix KV LRU of one engine.

    `embedding_bytes=None` turns embedding reuse off; `prefix_bytes=None` turns the prefix path
    off (0 keeps the path but stores nothing across batches). `bypass()` gives a view that
    neither reads nor stores, for a rerun whose values must not mix with these.
    """

    def __init__(
        self,
        model: DragonflyForCausalLM,
        processor: DragonflyProcessor,
        embedding_bytes: int | None,
        prefix_bytes: int | None,
    ) -> None:
        self.model = model
        self.processor = processor
        self.embeddings = LRUTensorCache(embedding_bytes) if embedding_bytes is not None else None
        self.prefixes = LRUTensorCache(prefix_bytes) if prefix_bytes is not None else None
        self.prefills = 0  # images whose prefix was computed (a prefix-cache miss)
        # Prefetch threads ask `has` while the device thread stores: one lock for both.
        self._lock = threading.Lock()

    def bypass(self) -> EncodingCaches:
        """Caches of the same model that hold nothing: every image is encoded afresh and the
        full sequence runs (the plain path)."""
        return EncodingCaches(self.model, self.processor, None, None)

    def has(self, digest: str) -> bool:
        """Whether an image's embeddings or prefix are at hand (its crops are not needed)."""
        with self._lock:
            return any(store is not None and digest in store for store in self._stores())

    def _stores(self) -> tuple[LRUTensorCache | None, ...]:
        return (self.embeddings, self.prefixes)

    def prefix_applies(self, digests: Sequence[Sequence[str]], num_beams: int = 1) -> bool:
        """Whether a batch runs on prefix caches: prefix path on, one image per request, no
        beam search."""
        return (
            self.prefixes is not None
            and num_beams == 1
            and len(digests) > 0
            and all(len(d) == 1 for d in digests)
        )

    def visual_embeds(self, order: Sequence[str], encode: Encode) -> torch.Tensor | None:
        """[n_images, T, D] for the digests in `order`; each distinct image encoded once, and
        kept for later batches while it stays in the embedding LRU."""
        if not order:
            return None
        if self.embeddings is None:
            return encode(list(order))
        with self._lock:
            known = {d: self.embeddings.get(d) for d in dict.fromkeys(order)}
        todo = [d for d, value in known.items() if value is None]
        if todo:
            encoded = encode(todo)
            with self._lock:
                for digest, value in zip(todo, encoded, strict=True):
                    known[digest] = value
                    self.embeddings.put(digest, value)
        return torch.stack([known[d] for d in order])

    def prefix_cache(self, digests: Sequence[str], encode: Encode) -> tuple[Any, int]:
        """A fresh KV cache whose row i holds the image prefix of `digests[i]`, and the
        prefix's length; missing prefixes are prefilled in one pass (the stored ones stay
        intact)."""
        with self._lock:
            found = {d: self.prefixes.get(d) for d in dict.fromkeys(digests)}
        missing = [d for d, entry in found.items() if entry is None]
        if missing:
            entries = self._prefill(encode(missing))
            with self._lock:
                for digest, entry in zip(missing, entries, strict=True):
                    found[digest] = entry
                    self.prefixes.put(digest, entry)
        entries = [found[d] for d in digests]
        return self.model.image_prefix_cache(entries), self.model.image_prefix_length(entries[0])

    @torch.no_grad()
    def _prefill(self, visual: torch.Tensor) -> list[torch.Tensor]:
        """Run the image blocks of `visual` ([n, T, D]) alone; one stored entry per image."""
        n = visual.shape[0]
        layout = self.processor.layout_ids([[] for _ in range(n)], [1] * n)
        device = self.model.get_input_embeddings().weight.device
        self.prefills += n
        return self.model.prefill_image_prefixes(
            input_ids=layout["input_ids"].to(device),
            attention_mask=layout["attention_mask"].to(device),
            image_patches_indices=layout["image_patches_indices"].to(device),
            visual_embeds=visual,
        )
