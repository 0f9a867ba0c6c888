"""Reuse of the image prefix's KV cache across the questions asked about one image.

Every Dragonfly sample with one image starts with the same image block (2098 positions for v2),
before any text, so the keys and values of that block depend on the image alone. They are
computed once per distinct image (all distinct images of a batch in one pass, no padding since
every block has the same length) and kept in a bounded LRU store keyed by the image's digest.

A batch then runs only its text: the prefix comes first, each question is right-aligned after it
and the padding sits between the two, masked out. Position ids (cumsum(mask) - 1) are then exactly
those of the unpadded sample, so answers equal those of the plain path up to float rounding.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from transformers import DynamicCache

from dragonfly_eval.harness.batching import LRUTensorCache
from dragonfly_eval.modeling import DragonflyForCausalLM, DragonflyProcessor
from dragonfly_eval.modeling.modeling import output_cache

Encode = Callable[[list[str]], torch.Tensor]  # digests -> visual embeddings [n, T, D]


class PrefixKV:
    """KV caches of image prefixes by image digest, bounded by `max_bytes` (LRU eviction).

    One entry is a tensor [layers, 2 (keys, values), kv_heads, prefix_len, head_dim]; the store
    keeps its own copy of each (a prefill returns views of one batch-wide tensor).
    """

    def __init__(
        self, model: DragonflyForCausalLM, processor: DragonflyProcessor, max_bytes: int
    ) -> None:
        self.model = model
        self.processor = processor
        self.store = LRUTensorCache(max_bytes)
        self.prefills = 0  # images whose prefix was computed (a cache miss)

    @staticmethod
    def applies(digests: Sequence[Sequence[str]], num_beams: int = 1) -> bool:
        """Whether a batch can run on prefix caches: one image per request, no beam search."""
        return num_beams == 1 and len(digests) > 0 and all(len(d) == 1 for d in digests)

    def entries(self, digests: Sequence[str], encode: Encode) -> list[torch.Tensor]:
        """The prefix entry of each digest, in order; missing ones prefilled in one pass."""
        found = {d: self.store.get(d) for d in dict.fromkeys(digests)}
        missing = [d for d, entry in found.items() if entry is None]
        if missing:
            for digest, entry in zip(missing, self._prefill(encode(missing)), strict=True):
                found[digest] = entry
                self.store.put(digest, entry)
        return [found[d] for d in digests]

    @torch.no_grad()
    def _prefill(self, visual: torch.Tensor) -> list[torch.Tensor]:
        """Run the image blocks of `visual` ([n, T, D]) alone and keep their keys and values."""
        n = visual.shape[0]
        layout = self.processor.layout_ids([[] for _ in range(n)], [1] * n)
        device = self.model.get_input_embeddings().weight.device
        out = self.model(
            input_ids=layout["input_ids"].to(device),
            attention_mask=layout["attention_mask"].to(device),
            image_patches_indices=layout["image_patches_indices"].to(device),
            visual_embeds=visual,
            images_per_sample=[1] * n,
            use_cache=True,
            logits_to_keep=1,
        )
        layers = output_cache(out).layers
        keys = torch.stack([layer.keys for layer in layers], dim=1)  # [n, L, H, P, d]
        values = torch.stack([layer.values for layer in layers], dim=1)
        self.prefills += n
        return list(torch.stack([keys, values], dim=2).unbind(0))  # n x [L, 2, H, P, d]

    def batch_cache(self, entries: Sequence[torch.Tensor]) -> DynamicCache:
        """A fresh DynamicCache holding one prefix per batch row (the stored entries stay intact:
        the cache grows by concatenation into new tensors)."""
        stacked = torch.stack(list(entries))  # [B, L, 2, H, P, d]
        layers = [(stacked[:, i, 0], stacked[:, i, 1]) for i in range(stacked.shape[1])]
        return DynamicCache(ddp_cache_data=layers, config=self.model.config.text_config)

    def _text_layout(
        self, text_ids: Sequence[Sequence[int]], prefix_len: int, side: str
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Text after the prefix: ids [B, prefix_len + W] (the prefix part is never embedded,
        the cache stands in for it) and the attention mask over prefix and text.

        side="left" right-aligns the text (padding between prefix and text) for generation;
        side="right" pads after the text, for scoring.
        """
        width = max(len(ids) for ids in text_ids)
        pad = self.processor.pad_id
        ids = torch.full((len(text_ids), prefix_len + width), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        mask[:, :prefix_len] = 1
        for row, row_ids in enumerate(text_ids):
            start = prefix_len + (width - len(row_ids) if side == "left" else 0)
            ids[row, start : start + len(row_ids)] = torch.tensor(row_ids, dtype=torch.long)
            mask[row, start : start + len(row_ids)] = 1
        return ids, mask

    @torch.no_grad()
    def generate(
        self,
        digests: Sequence[str],
        text_ids: Sequence[Sequence[int]],
        encode: Encode,
        **generate_kwargs: Any,
    ) -> torch.Tensor:
        """New token ids [B, new] for one-image requests, the image prefixes taken from cache."""
        entries = self.entries(digests, encode)
        prefix_len = entries[0].shape[-2]
        ids, mask = self._text_layout(text_ids, prefix_len, side="left")
        device = self.model.get_input_embeddings().weight.device
        out = self.model.generate(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            cache=self.batch_cache(entries),
            **generate_kwargs,
        )
        return out[:, ids.shape[1] :]

    @torch.no_grad()
    def score(
        self,
        digests: Sequence[str],
        prompt_ids: Sequence[Sequence[int]],
        continuation_ids: Sequence[Sequence[int]],
        encode: Encode,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """`score_continuations` of one-image requests with the image prefixes from cache."""
        entries = self.entries(digests, encode)
        prefix_len = entries[0].shape[-2]
        rows = [list(p) + list(c) for p, c in zip(prompt_ids, continuation_ids, strict=True)]
        ids, mask = self._text_layout(rows, prefix_len, side="right")
        marked = torch.zeros_like(ids)
        for row, (full, cont) in enumerate(zip(rows, continuation_ids, strict=True)):
            end = prefix_len + len(full)
            marked[row, end - len(cont) : end] = 1
        device = self.model.get_input_embeddings().weight.device
        return self.model.score_continuations(
            ids[:, prefix_len:].to(device),
            mask.to(device),
            marked[:, prefix_len:].to(device),
            cache=self.batch_cache(entries),
        )
