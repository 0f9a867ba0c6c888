"""The evaluation engine: typed requests in, answers out, in request order.

One flat loop per request kind: plan dense batches (same settings, longest first), prepare them
ahead in threads (prompt ids, image crops), encode each distinct image once (embeddings and
image-prefix KV caches reused across batches), run the batch (halved on out-of-memory, rerun in
float32 when its logits were not finite), report it. Nothing here knows lmms-eval.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from transformers import LogitsProcessorList

from dragonfly_eval.engine.batching import plan_batches, restore_order
from dragonfly_eval.engine.caches import EncodingCaches
from dragonfly_eval.engine.numerics import NonFiniteWatch
from dragonfly_eval.engine.policy import Float32Rerun, OomPolicy
from dragonfly_eval.engine.prepare import Prepared, PreparedBatch, Preparer
from dragonfly_eval.engine.requests import (
    FailureRecorder,
    GenRequest,
    Request,
    ScoreRequest,
    cut_at_stop,
)
from dragonfly_eval.modeling import DragonflyForCausalLM, DragonflyProcessor
from dragonfly_eval.progress import progress_bar

FAILED_SCORE = (float("inf"), False)  # a failed choice never wins lmms-eval's argmin
# after each batch: (request indices, answers, which failed)
OnBatch = Callable[[Sequence[int], Sequence[Any], Sequence[bool]], None]
OnFailure = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class EngineSettings:
    """Every knob of the engine, with its default.

    image_cache_mb / prefix_cache_mb bound the two LRU stores; `image_cache=False` encodes every
    request's images afresh, `prefix_cache=False` runs every batch on its full sequence.
    """

    batch_size: int = 1
    max_length: int = 4096
    image_cache: bool = True
    image_cache_mb: int = 1024
    prefix_cache: bool = True
    prefix_cache_mb: int = 4096
    prefetch: bool = True
    progress: bool = True

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")


class Engine:
    """Batched, image-reusing generation and scoring with one Dragonfly model and processor."""

    def __init__(
        self,
        model: DragonflyForCausalLM,
        processor: DragonflyProcessor,
        settings: EngineSettings = EngineSettings(),
        on_failure: OnFailure | None = None,
    ) -> None:
        if processor.zoom != model.zoom:
            raise ValueError(f"processor zoom {processor.zoom} != model zoom {model.zoom}")
        self.model = model
        self.processor = processor
        self.settings = settings
        self.batch_size = settings.batch_size
        self.caches = EncodingCaches(
            model,
            processor,
            settings.image_cache_mb * 2**20 if settings.image_cache else None,
            settings.prefix_cache_mb * 2**20 if settings.prefix_cache else None,
        )
        self._fail = FailureRecorder(on_failure)
        self._prep = Preparer(
            processor, self.caches, settings.max_length, self._fail, self.input_device
        )
        self._rerun = Float32Rerun(model, self.caches)
        self.generated_tokens = 0  # new tokens of every answer so far, the stop token included

    @property
    def failures(self) -> list[dict[str, Any]]:
        """The requests that got the empty answer so far: task, doc_id, reason."""
        return self._fail.failures

    @property
    def nonfinite_retries(self) -> int:
        """Batches run again in float32 so far."""
        return self._rerun.retries

    @property
    def input_device(self) -> torch.device:
        return self.model.get_input_embeddings().weight.device

    # --- the two request kinds -----------------------------------------------------------
    def generate(
        self,
        requests: Sequence[GenRequest],
        on_batch: OnBatch | None = None,
        desc: str = "dragonfly generate",
    ) -> list[str]:
        """The answer to each request, in order ("" for a failed one)."""
        plan = plan_batches(
            len(requests),
            lambda i: requests[i].settings,
            lambda i: (-len(requests[i].prompt), i),
            self.batch_size,
        )
        return self._loop(requests, plan, "", self._generate_part, on_batch, desc)

    def score(
        self,
        requests: Sequence[ScoreRequest],
        on_batch: OnBatch | None = None,
        desc: str = "dragonfly loglikelihood",
    ) -> list[tuple[float, bool]]:
        """(mean negative log-likelihood per continuation token, is greedy) of each request,
        in order ((inf, False) for a failed one)."""
        plan = plan_batches(
            len(requests),
            lambda i: 0,
            lambda i: (-len(requests[i].prompt) - len(requests[i].continuation), i),
            self.batch_size,
        )
        return self._loop(requests, plan, FAILED_SCORE, self._score_part, on_batch, desc)

    def _loop(
        self,
        requests: Sequence[Request],
        plan: list[list[int]],
        default: Any,
        run_part: Callable[[PreparedBatch, list[Prepared], NonFiniteWatch, EncodingCaches], list],
        on_batch: OnBatch | None,
        desc: str,
    ) -> list:
        """Plan -> prefetch -> run (memory and numerics policies) -> report, in one loop."""
        oom = OomPolicy(self.batch_size)
        results = []
        bar = progress_bar(len(requests), desc, disable=not self.settings.progress)
        for batch in self._prep.batches(plan, requests, self.settings.prefetch):
            answers = [default] * len(batch.items)
            for i, answer in oom.run(batch.live(), partial(self._run, batch, run_part)):
                answers[i] = answer
            results.append(answers)
            if on_batch is not None:
                on_batch(batch.indices, answers, [it.error is not None for it in batch.items])
            bar.update(len(batch.indices))
        bar.close()
        return restore_order(plan, results)

    def _run(self, batch: PreparedBatch, run_part: Callable, sub: list[int]) -> list:
        """Answers of the requests `sub` of `batch`, rerun in float32 if the logits broke."""
        items = [batch.items[i] for i in sub]
        names = [(it.request.task, it.request.doc_id) for it in items]
        return self._rerun.run(lambda watch, caches: run_part(batch, items, watch, caches), names)

    # --- one part of a batch on the device -----------------------------------------------
    def _generate_part(
        self,
        batch: PreparedBatch,
        items: list[Prepared],
        watch: NonFiniteWatch,
        caches: EncodingCaches,
    ) -> list[str]:
        settings = items[0].request.settings  # a batch shares its settings (planned so)
        kwargs = settings.generate_kwargs()
        kwargs["eos_token_id"] = self.stop_token_ids()
        kwargs["logits_processor"] = LogitsProcessorList([watch])
        if settings.until:
            kwargs["stop_strings"] = list(settings.until)
            kwargs["tokenizer"] = self.processor.tokenizer
        encode = self._encoder(batch)
        if caches.prefix_applies([it.digests for it in items], settings.num_beams):
            cache, prefix_len = caches.prefix_cache([it.digests[0] for it in items], encode)
            ids, mask = self._text_after_prefix([it.prompt_ids for it in items], prefix_len, "left")
            inputs = {"input_ids": ids, "attention_mask": mask, "cache": cache}
        else:
            layout = self.processor.layout_ids(
                [it.prompt_ids for it in items], [len(it.digests) for it in items]
            )
            inputs = {
                **self._plain_inputs(layout, items, caches, encode),
                "input_ids": layout["input_ids"],
                "attention_mask": layout["attention_mask"],
            }
        inputs = self._on_device(inputs)
        out = self.model.generate(**inputs, **kwargs)
        rows = out[:, inputs["input_ids"].shape[1] :].tolist()
        pad_id = self.model.language_model.generation_config.pad_token_id
        stops = kwargs["eos_token_id"]
        self.generated_tokens += sum(
            len(generated_part(row, stops, pad_id, self.processor.decode, settings.until))
            for row in rows
        )
        return [cut_at_stop(self.processor.decode(row), settings.until) for row in rows]

    def _score_part(
        self,
        batch: PreparedBatch,
        items: list[Prepared],
        watch: NonFiniteWatch,
        caches: EncodingCaches,
    ) -> list[tuple[float, bool]]:
        encode = self._encoder(batch)
        rows = [it.prompt_ids + it.continuation_ids for it in items]
        if caches.prefix_applies([it.digests for it in items]):
            cache, prefix_len = caches.prefix_cache([it.digests[0] for it in items], encode)
            ids, mask = self._text_after_prefix(rows, prefix_len, "right")
            inputs = {
                "input_ids": ids[:, prefix_len:],
                "attention_mask": mask,
                "continuation_mask": self._continuation_mask(mask, items)[:, prefix_len:],
                "cache": cache,
            }
        else:
            layout = self.processor.layout_ids(
                rows, [len(it.digests) for it in items], padding_side="right"
            )
            inputs = {
                **self._plain_inputs(layout, items, caches, encode),
                "input_ids": layout["input_ids"],
                "attention_mask": layout["attention_mask"],
                "continuation_mask": self._continuation_mask(layout["attention_mask"], items),
            }
        total, greedy, count = self.model.score_continuations(**self._on_device(inputs))
        watch.mark(total)
        loss = (-total / count.clamp(min=1)).tolist()
        return [(float(x), bool(g)) for x, g in zip(loss, greedy.tolist(), strict=True)]

    # --- inputs --------------------------------------------------------------------------
    def _on_device(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """`inputs` with every tensor moved to the device of the input embeddings."""
        device = self.input_device
        return {k: v.to(device) if torch.is_tensor(v) else v for k, v in inputs.items()}

    def _plain_inputs(
        self, layout: dict, items: list[Prepared], caches: EncodingCaches, encode: Callable
    ) -> dict[str, Any]:
        """The image arguments of a full-sequence call: placeholder indices, the requests'
        visual embeddings in order (each distinct image encoded once), images per request."""
        order = [d for it in items for d in it.digests]
        return {
            "image_patches_indices": layout["image_patches_indices"],
            "visual_embeds": caches.visual_embeds(order, encode),
            "images_per_sample": [len(it.digests) for it in items],
        }

    @staticmethod
    def _continuation_mask(attention_mask: torch.Tensor, items: list[Prepared]) -> torch.Tensor:
        """1 at each request's continuation tokens, the last ones of its right-padded row."""
        mask = torch.zeros_like(attention_mask)
        for row, it in enumerate(items):
            end = int(attention_mask[row].sum())
            mask[row, end - len(it.continuation_ids) : end] = 1
        return mask

    def _text_after_prefix(
        self, text_ids: Sequence[Sequence[int]], prefix_len: int, side: str
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Ids [B, prefix_len + W] (the prefix part is never embedded: the cache stands in for
        it) and the attention mask over prefix and text. side="left" right-aligns the text
        (padding between prefix and text, so position ids equal the unpadded sample's) for
        generation; side="right" pads after the text, for scoring."""
        width = max(len(ids) for ids in text_ids)
        ids = torch.full((len(text_ids), prefix_len + width), self.processor.pad_id)
        mask = torch.zeros_like(ids)
        mask[:, :prefix_len] = 1
        for row, row_ids in enumerate(text_ids):
            start = prefix_len + (width - len(row_ids) if side == "left" else 0)
            ids[row, start : start + len(row_ids)] = torch.tensor(row_ids, dtype=torch.long)
            mask[row, start : start + len(row_ids)] = 1
        return ids, mask

    def _encoder(self, batch: PreparedBatch) -> Callable[[list[str]], torch.Tensor]:
        """digests -> visual embeddings [n, T, D] of `batch`'s images, in one vision call
        (uint8 crops to the device, or made there on the device path; normalized there)."""

        def encode(digests: list[str]) -> torch.Tensor:
            crops = self._device_crops(batch, digests)
            n, c = crops.shape[:2]
            pixels = self.processor.image_processor.normalize(crops.flatten(0, 1))
            return self.model.encode_images(pixels.view(n, c, *pixels.shape[1:]))

        return encode

    def _device_crops(self, batch: PreparedBatch, digests: list[str]) -> torch.Tensor:
        """uint8 crops [n, n_crops, se, se, 3] of `batch`'s images `digests` on the device:
        made there on the device path, else the prepared Pillow crops uploaded."""
        if batch.on_device:
            return self._prep.crops_on_device(batch, digests)
        for d in digests:  # evicted from the caches after this batch was prepared
            if d not in batch.crops:
                batch.crops[d] = self._prep.crops(batch.images[d])
        crops = torch.stack([batch.crops[d] for d in digests])
        return crops.to(self.input_device, non_blocking=True)

    def stop_token_ids(self) -> list[int]:
        """<|eot_id|> ends an answer; so does the tokenizer's end of text."""
        ids = [self.processor.eot_id, self.processor.tokenizer.eos_token_id]
        return [i for i in dict.fromkeys(ids) if i is not None]


def generated_part(
    row: list[int],
    stop_ids: Sequence[int],
    pad_id: int | None,
    decode: Callable[[list[int]], str] | None = None,
    until: Sequence[str] = (),
) -> list[int]:
    """The tokens a row of `generate` output actually generated: up to its first stop token
    (kept), else up to the padding that fills a row finished early. A row a stop string ended
    is padded too, with the end-of-text token when the model has no pad token: a "stop token"
    after text that already holds a stop string (`until`, read with `decode`) is that padding."""
    for i, token in enumerate(row):
        if token in stop_ids:
            if until and decode is not None and any(u in decode(row[:i]) for u in until):
                return row[:i]
            return row[: i + 1]
        if token == pad_id:
            return row[:i]
    return row
