"""Encodings kept across batches, by image digest: visual embeddings and image-prefix KV caches.

Every Dragonfly sample with one image starts with the same image block (2098 positions for v2),
before any text, so the keys and values of that block depend on the image alone. They are
computed once per distinct image (all distinct images of a batch in one pass) and kept in a
bounded LRU store; a batch then runs only its text. How the keys and values are laid out is the
model's business (`DragonflyForCausalLM.prefill_image_prefixes` / `image_prefix_cache`): here
they are opaque tensors with a byte size.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

import torch

from dragonfly_eval.engine.batching import LRUTensorCache
from dragonfly_eval.modeling import DragonflyForCausalLM, DragonflyProcessor

Encode = Callable[[list[str]], torch.Tensor]  # digests -> visual embeddings [n, T, D]


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
