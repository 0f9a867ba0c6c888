"""The lmms-eval model `dragonfly`: batched, image-reusing evaluation of Dragonfly checkpoints.

Thin by design: it turns lmms-eval `Instance`s into prompts and images, plans dense batches
(grouped by generation settings, sorted by length), runs them through the model's public methods
and puts the answers back in request order.
"""

from __future__ import annotations

import inspect
import json
import os
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import torch
from lmms_eval.api.instance import Instance
from lmms_eval.api.model import lmms
from loguru import logger
from PIL import Image
from transformers import LogitsProcessorList

from dragonfly_eval.harness import compat
from dragonfly_eval.harness.batching import (
    FirstTime,
    LRUTensorCache,
    gen_kwargs_key,
    image_digest,
    plan_batches,
    restore_order,
)
from dragonfly_eval.harness.numerics import NonFiniteWatch, enable_determinism, float32_model
from dragonfly_eval.harness.prefix import PrefixKV
from dragonfly_eval.harness.progress import progress_bar
from dragonfly_eval.harness.report import FailureLog, rank_path
from dragonfly_eval.harness.resume import (
    ResumeStore,
    SaveBatch,
    answer_with_store,
    checkpoint_identity,
    request_key,
)
from dragonfly_eval.modeling import DragonflyForCausalLM, DragonflyProcessor, chat_prompt
from dragonfly_eval.modeling.image_processing import wide_mode
from dragonfly_eval.modeling.loading import load_dragonfly

compat.apply()

DEFAULT_PRETRAINED = "togethercomputer/Llama-3.1-8B-Dragonfly-v2"
DEFAULT_MAX_NEW_TOKENS = 128
PREFETCH_DEPTH = 2


@dataclass
class Prepared:
    """One request made ready on the CPU: prompt ids, its images' digests, or why it failed."""

    prompt_ids: list[int] = field(default_factory=list)
    digests: list[str] = field(default_factory=list)
    continuation_ids: list[int] = field(default_factory=list)
    error: str | None = None
    task: str = ""
    doc_id: Any = None


@dataclass
class PreparedBatch:
    """A batch's requests plus the uint8 crops of images not encoded yet."""

    indices: list[int]
    items: list[Prepared]
    crops: dict[str, torch.Tensor]
    images: dict[str, Image.Image]


def _flatten_visuals(visuals: Any) -> list[Image.Image]:
    if visuals is None:
        return []
    if isinstance(visuals, Image.Image):
        return [visuals]
    out = []
    for item in visuals:
        if isinstance(item, Image.Image):
            out.append(item)
        elif isinstance(item, (list, tuple)):
            out.extend(_flatten_visuals(item))
        elif item is not None:
            raise TypeError(f"unsupported visual of type {type(item).__name__} (images only)")
    return out


class Dragonfly(lmms):
    """lmms-eval model class for every Dragonfly release (v1 and v2, general and Med).

    model_args: pretrained, device, dtype, batch_size, attn_implementation, device_map, zoom,
    max_length, image_cache, image_cache_mb, prefetch, prefix_cache (reuse the KV cache of an
    image's prefix across its questions), prefix_cache_mb, allow_pickle, revision, deterministic,
    resume_store (SQLite file of finished answers, read at start and written after each batch),
    failure_report (JSON-lines file of requests that failed).
    """

    is_simple = True

    def __init__(
        self,
        pretrained: str = DEFAULT_PRETRAINED,
        device: str | None = "auto",
        dtype: str | None = None,
        batch_size: int | str = 1,
        attn_implementation: str = "sdpa",
        device_map: str | None = None,
        zoom: str | None = None,
        max_length: int | str = 4096,
        image_cache: bool | str = True,
        image_cache_mb: int | str = 1024,
        prefetch: bool | str = True,
        prefix_cache: bool | str = True,
        prefix_cache_mb: int | str = 4096,
        allow_pickle: bool | str = False,
        revision: str | None = None,
        max_batch_size: int | None = None,
        deterministic: bool | str = True,
        resume_store: str | None = None,
        failure_report: str | None = None,
        **unknown: Any,
    ) -> None:
        super().__init__()
        if unknown:
            raise ValueError(
                f"unknown model_args for dragonfly: {sorted(unknown)}; valid: {valid_model_args()}"
            )
        from accelerate import Accelerator

        # Shares the state of the Accelerator lmms-eval's CLI builds first (which starts the
        # torch.distributed group under torchrun and accelerate launch); lmms-eval's evaluator
        # and `clean()` use it. Rank and device come from that group, since on CPU the
        # Accelerator reports one process while two are running.
        self.accelerator = Accelerator()
        layout = process_layout()
        self._rank, self._world_size = layout.rank, layout.world_size
        self._device = resolve_device(device, layout)
        if layout.world_size > 1:
            if device_map:
                raise ValueError(
                    f"device_map={device_map} shards one model over the GPUs, but this is "
                    f"process {layout.rank} of {layout.world_size} of a data-parallel run, "
                    "where each process holds its own copy on its own GPU: drop device_map, "
                    "or launch one process"
                )
            logger.info(
                f"dragonfly: data parallel, rank {layout.rank} of {layout.world_size} "
                f"on {self._device}"
            )
        self.dtype = dtype or ("bfloat16" if self._device.type == "cuda" else "float32")
        self.batch_size = int(batch_size)
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.max_length = int(max_length)
        self.pretrained = pretrained
        if as_bool(deterministic):
            enable_determinism(self._device)
        built = getattr(self, "_built", None)  # set by `from_built`
        if built is not None:
            self._model, self.processor = built
        else:
            self._model = load_dragonfly(
                pretrained,
                dtype=self.dtype,
                device=None if device_map else self._device,
                device_map=device_map or None,
                attn_implementation=attn_implementation,
                zoom=zoom,
                allow_pickle=as_bool(allow_pickle),
                revision=revision,
            )
            self.processor = DragonflyProcessor.from_pretrained(
                pretrained, zoom=zoom, revision=revision
            )
        if self.processor.zoom != self._model.zoom:
            raise ValueError(
                f"processor zoom {self.processor.zoom} != model zoom {self._model.zoom}"
            )
        self.reuse = as_bool(image_cache)
        self.image_cache = LRUTensorCache(int(image_cache_mb) * 2**20 if self.reuse else 0)
        self.prefetch = as_bool(prefetch)
        self.prefix = (
            PrefixKV(self._model, self.processor, int(prefix_cache_mb) * 2**20)
            if as_bool(prefix_cache)
            else None
        )
        self._pool = ThreadPoolExecutor(max_workers=3, thread_name_prefix="dragonfly-prep")
        self._tokenizer_lock = threading.Lock()
        self.failures: list[dict[str, Any]] = []
        self._failure_log = (
            FailureLog(rank_path(failure_report, self.rank, self.world_size))
            if failure_report
            else None
        )
        # One resume store for every rank: its keys do not depend on the rank, and SQLite in
        # WAL mode with a busy timeout (resume.py) takes several writers, so a run resumed with
        # another number of processes still finds every answer. The failure log is per rank
        # (`rank_path`): each FailureLog starts its file empty, which would wipe another rank's.
        self._resume = ResumeStore(resume_store) if resume_store else None
        # Everything besides the request that decides an answer, for the resume store's keys.
        self._model_id = json.dumps(
            [
                pretrained,
                checkpoint_identity(pretrained),
                revision,
                self.dtype,
                self._model.zoom,
                self.max_length,
                attn_implementation,
            ]
        )
        self.nonfinite_retries = 0
        self._modes_warned = FirstTime()  # (task, PIL mode) pairs already warned about

    @classmethod
    def from_built(
        cls,
        model: DragonflyForCausalLM,
        processor: DragonflyProcessor,
        name: str = "built",
        **model_args: Any,
    ) -> Dragonfly:
        """Wrap a model already built in memory, with its processor (benchmarks, tests): nothing
        is loaded; `name` stands for `pretrained` in logs and resume keys, and `model_args`
        (device, dtype, batch_size, ...) must describe the model as it is."""
        instance = cls.__new__(cls)
        instance._built = (model, processor)
        instance.__init__(pretrained=name, **model_args)
        return instance

    @classmethod
    def create_from_arg_string(cls, arg_string: str, additional_config: dict | None = None):
        """Build from `--model_args`; a value given there wins over lmms-eval's own flags
        (`--batch_size`, `--device`), which lmms-eval always passes, defaults included."""
        from lmms_eval.utils import simple_parse_args_string

        args = simple_parse_args_string(arg_string or "")
        extra = {k: v for k, v in (additional_config or {}).items() if v is not None}
        return cls(**{**extra, **args})

    # --- lmms-eval properties -------------------------------------------------------------
    @property
    def model(self) -> DragonflyForCausalLM:
        return self._model

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def input_device(self) -> torch.device:
        return self._model.get_input_embeddings().weight.device

    # --- request preparation (CPU, overlapped with the device) -----------------------------
    def _doc(self, task: str, split: str, doc_id: int) -> Any:
        return self.task_dict[task][split][doc_id]

    def _prepare(
        self,
        context: str,
        visuals_fn: Callable | None,
        doc_id,
        task,
        split,
        continuation: str | None = None,
        visuals: Any = None,
    ) -> tuple[Prepared, dict]:
        item = Prepared(task=task, doc_id=doc_id)
        images: dict[str, Image.Image] = {}
        try:
            if isinstance(continuation, Exception):
                raise continuation
            if visuals is None and visuals_fn is not None:
                visuals = visuals_fn(self._doc(task, split, doc_id))
            for image in _flatten_visuals(visuals):
                self._warn_wide_mode(task, image.mode)
                digest = image_digest(image)
                item.digests.append(digest)
                images[digest] = image
            # One tokenizing thread at a time: a transformers tokenizer call sets its backend's
            # truncation state, which two prefetch threads must not interleave.
            with self._tokenizer_lock:
                item.prompt_ids = self.processor.text_ids(chat_prompt(context), self.max_length)
                if continuation is not None:
                    item.continuation_ids = self.processor.tokenizer(
                        continuation, add_special_tokens=False
                    )["input_ids"]
        except Exception as err:  # a bad document must not end the run
            item.error = f"{type(err).__name__}: {err}"
            self._record_failure(task, doc_id, item.error)
        return item, images

    def _warn_wide_mode(self, task: str, mode: str) -> None:
        """Say once per task and mode that images of more than 8 bits are clipped to 0..255."""
        if wide_mode(mode) and self._modes_warned.first((task, mode)):
            logger.warning(
                f"dragonfly: task={task} has images in PIL mode {mode}; they are converted with "
                "convert('RGB') as the reference does, which clips values above 255 to white "
                "(a 16-bit scan is then seen as mostly white)"
            )

    def _prepare_batch(self, indices: list[int], make: Callable[[int], tuple[Prepared, dict]]):
        items, todo, kept = [], {}, {}
        owners: dict[str, list[Prepared]] = {}
        for i in indices:
            item, images = make(i)
            if item.error is None:
                for digest, image in images.items():
                    kept[digest] = image
                    owners.setdefault(digest, []).append(item)
                    if not self._encoded(digest):
                        todo[digest] = image
            items.append(item)
        return PreparedBatch(indices, items, self._crops_of(todo, owners), kept)

    def _encoded(self, digest: str) -> bool:
        """Whether an image's embeddings or prefix cache are at hand (no crops needed)."""
        return digest in self.image_cache or (
            self.prefix is not None and digest in self.prefix.store
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
                    crops[digest] = self._crops(image)
                except Exception as err:
                    for item in owners[digest]:
                        if item.error is None:
                            item.error = f"{type(err).__name__}: {err}"
                            self._record_failure(item.task, item.doc_id, item.error)
            return crops

    def _crops(self, image: Image.Image) -> torch.Tensor:
        return torch.from_numpy(self.processor.image_processor.crops(image))

    def _iter_prepared(self, batches: list[list[int]], make):
        """Prepared batches in order; the next PREFETCH_DEPTH batches are prepared in threads
        while the current one runs (the first two start together)."""
        if not self.prefetch:
            for indices in batches:
                yield self._prepare_batch(indices, make)
            return
        pending: deque[Future] = deque()
        submitted = 0
        while submitted < min(PREFETCH_DEPTH, len(batches)):
            pending.append(self._pool.submit(self._prepare_batch, batches[submitted], make))
            submitted += 1
        for _ in batches:
            current = pending.popleft().result()
            if submitted < len(batches):
                pending.append(self._pool.submit(self._prepare_batch, batches[submitted], make))
                submitted += 1
            yield current

    def _record_failure(self, task: str, doc_id: Any, reason: str) -> None:
        logger.warning(f"dragonfly: empty answer for task={task} doc_id={doc_id}: {reason}")
        failure = {"task": task, "doc_id": doc_id, "reason": reason}
        self.failures.append(failure)
        if self._failure_log is not None:
            self._failure_log.append(failure)

    # --- visual embeddings with reuse ---------------------------------------------------
    def _visual_embeds(self, batch: PreparedBatch, live: list[int]) -> torch.Tensor | None:
        """[n_images, T, D] for the live requests' images in order; each distinct image is
        encoded once (and reused across batches while it stays in the LRU cache)."""
        order = [d for i in live for d in batch.items[i].digests]
        if not order:
            return None
        if not self.reuse:
            return self._encode(batch, order)
        known = {d: self.image_cache.get(d) for d in dict.fromkeys(order)}
        todo = [d for d, v in known.items() if v is None]
        if todo:
            for d, emb in zip(todo, self._encode(batch, todo), strict=True):
                known[d] = emb
                self.image_cache.put(d, emb)
        return torch.stack([known[d] for d in order])

    def _encode(self, batch: PreparedBatch, digests: list[str]) -> torch.Tensor:
        """Encode images (by digest) in one vision call: uint8 to the device, normalized there."""
        for d in digests:  # evicted from the cache after this batch was prepared
            if d not in batch.crops:
                batch.crops[d] = self._crops(batch.images[d])
        crops = torch.stack([batch.crops[d] for d in digests])  # [n, n_crops, se, se, 3] uint8
        crops = crops.to(self.input_device, non_blocking=True)
        n, c = crops.shape[:2]
        pixels = self.processor.image_processor.normalize(crops.flatten(0, 1))
        return self._model.encode_images(pixels.view(n, c, *pixels.shape[1:]))

    # --- generation ----------------------------------------------------------------------
    def generate_until(self, requests: list[Instance]) -> list[str]:
        """Answers for `generate_until` requests, batched, in request order (those an earlier
        run finished come from the resume store)."""
        reqs = [(a[0], a[1], a[2], a[3], a[4], a[5], None) for a in (r.args for r in requests)]
        return self._generate_stored("generate_until", reqs, "dragonfly generate")

    def _generate_stored(self, request_type: str, reqs: list[tuple], desc: str) -> list[str]:
        """`_generate(reqs)`, with the answers an earlier run finished taken from the resume
        store; `request_type` names the request type (and the round) in the store's keys."""
        return answer_with_store(
            self._resume,
            request_type,
            self._resume_keys(request_type, reqs, lambda r: gen_kwargs_key(r[1])),
            [(r[4], r[3]) for r in reqs],
            lambda pending, save: self._generate(
                [reqs[i] for i in pending], desc=desc, on_batch=save
            ),
        )

    def _resume_keys(self, request_type: str, reqs: list[tuple], extra: Callable) -> list[str]:
        """Resume-store keys of requests laid out as (context, _, _, doc_id, task, split, ...)."""
        if self._resume is None:
            return []
        return [
            request_key(self._model_id, request_type, r[4], r[5], r[3], r[0], extra(r))
            for r in reqs
        ]

    def _generate(
        self, reqs: list[tuple], desc: str, on_batch: SaveBatch | None = None
    ) -> list[str]:
        """reqs: (context, gen_kwargs, doc_to_visual, doc_id, task, split, visuals-or-None).
        `on_batch(indices, answers, failed)` runs after each batch."""

        def make(i: int):
            context, _, visuals_fn, doc_id, task, split, visuals = reqs[i]
            return self._prepare(context, visuals_fn, doc_id, task, split, visuals=visuals)

        def answer(batch: PreparedBatch) -> list[str]:
            gen_kwargs = reqs[batch.indices[0]][1]  # one group: the same for the whole batch
            return self._answer_live(
                batch, "", lambda sub, watch: self._generate_live(batch, sub, gen_kwargs, watch)
            )

        return self._run_batches(
            len(reqs),
            make,
            group_key=lambda i: gen_kwargs_key(reqs[i][1]),
            lengths=[len(r[0]) for r in reqs],
            run=answer,
            desc=desc,
            on_batch=on_batch,
        )

    def _run_batches(
        self,
        n: int,
        make: Callable[[int], tuple[Prepared, dict]],
        group_key: Callable[[int], Any],
        lengths: list[int],
        run: Callable[[PreparedBatch], list],
        desc: str,
        on_batch: SaveBatch | None,
    ) -> list:
        """Requests 0..n-1 in dense batches (same group, longest first), prepared ahead by
        `make`, answered by `run`, reported to `on_batch`, returned in request order."""
        batches = plan_batches(n, group_key, lambda i: (-lengths[i], i), self.batch_size)
        results = []
        bar = progress_bar(n, desc, disable=self.rank != 0)
        for batch in self._iter_prepared(batches, make):
            results.append(run(batch))
            if on_batch is not None:
                on_batch(batch.indices, results[-1], [it.error is not None for it in batch.items])
            bar.update(len(batch.indices))
        bar.close()
        return restore_order(batches, results)

    def _answer_live(self, batch: PreparedBatch, default: Any, attempt: Callable) -> list:
        """One answer per request of `batch`: `default` for those that failed preparation, the
        rest from `attempt(sub, watch)`, guarded against non-finite logits and split on
        out-of-memory."""
        answers = [default] * len(batch.items)
        live = [i for i, item in enumerate(batch.items) if item.error is None]
        if not live:
            return answers
        for part in self._split_on_oom(
            live, lambda sub: self._guarded(batch, sub, lambda watch: attempt(sub, watch))
        ):
            for i, answer in part:
                answers[i] = answer
        return answers

    def _split_on_oom(self, live: list[int], run: Callable[[list[int]], list[str]]):
        """Run `live` requests; on device out-of-memory, halve the batch down to one request."""
        try:
            return [list(zip(live, run(live), strict=True))]
        except torch.OutOfMemoryError:
            if len(live) == 1:
                raise
            torch.cuda.empty_cache()
            half = len(live) // 2
            logger.warning(f"dragonfly: out of memory with {len(live)} requests; trying {half}")
            parts = self._split_on_oom(live[:half], run) + self._split_on_oom(live[half:], run)
            worked = max(len(part) for part in parts)  # halves may themselves have been split
            logger.info(f"dragonfly: after out of memory, batches of {worked} requests worked")
            return parts

    def _guarded(self, batch: PreparedBatch, sub: list[int], attempt: Callable) -> list:
        """`attempt(watch)` for the requests `sub`; when `watch` saw NaN/inf logits, the batch
        runs again with the model in float32 on the same device, and the float32 answers are
        returned. Image embeddings and prefix caches are neither read nor stored meanwhile:
        they hold the low-precision values."""
        watch = NonFiniteWatch()
        out = attempt(watch)
        bad = watch.bad_rows()
        if not bad:
            return out
        items = [batch.items[i] for i in sub]
        rows_per_item = max(1, len(watch.flags) // len(items))  # beams: rows of one request
        docs = sorted(
            {(items[r // rows_per_item].task, items[r // rows_per_item].doc_id) for r in bad},
            key=str,
        )
        named = ", ".join(f"{task} doc_id={doc_id}" for task, doc_id in docs)
        logger.warning(
            f"dragonfly: non-finite logits in {self._model.dtype} for {named}; "
            f"running the batch of {len(items)} again in float32"
        )
        self.nonfinite_retries += 1
        reuse, prefix = self.reuse, self.prefix
        self.reuse, self.prefix = False, None
        retry = NonFiniteWatch()
        try:
            with float32_model(self._model):
                out = attempt(retry)
        finally:
            self.reuse, self.prefix = reuse, prefix
        if retry.bad_rows():
            logger.error(f"dragonfly: logits still non-finite in float32 for {named}")
        return out

    def _generate_live(
        self,
        batch: PreparedBatch,
        live: list[int],
        gen_kwargs: dict,
        watch: NonFiniteWatch | None = None,
    ) -> list[str]:
        items = [batch.items[i] for i in live]
        hf_kwargs, until = generation_settings(gen_kwargs)
        hf_kwargs["eos_token_id"] = self.stop_token_ids()
        hf_kwargs["logits_processor"] = LogitsProcessorList([watch] if watch is not None else [])
        if self.prefix is not None and self.prefix.applies(
            [it.digests for it in items], hf_kwargs["num_beams"]
        ):
            new_tokens = self.prefix.generate(
                [it.digests[0] for it in items],
                [it.prompt_ids for it in items],
                lambda digests: self._encode(batch, digests),
                **hf_kwargs,
            )
        else:
            layout = self.processor.layout_ids(
                [it.prompt_ids for it in items], [len(it.digests) for it in items]
            )
            device = self.input_device
            out = self._model.generate(
                input_ids=layout["input_ids"].to(device),
                attention_mask=layout["attention_mask"].to(device),
                image_patches_indices=layout["image_patches_indices"].to(device),
                visual_embeds=self._visual_embeds(batch, live),
                images_per_sample=[len(it.digests) for it in items],
                **hf_kwargs,
            )
            new_tokens = out[:, layout["input_ids"].shape[1] :]
        return [cut_at_stop(self.processor.decode(row), until) for row in new_tokens.tolist()]

    def stop_token_ids(self) -> list[int]:
        """<|eot_id|> ends an answer; so does the tokenizer's end of text."""
        ids = [self.processor.eot_id, self.processor.tokenizer.eos_token_id]
        return [i for i in dict.fromkeys(ids) if i is not None]

    # --- scoring -------------------------------------------------------------------------
    def loglikelihood(self, requests: list[Instance]) -> list[tuple[float, bool]]:
        """(loss, is_greedy) per request, where loss is the mean negative log-likelihood per
        continuation token.

        This follows lmms-eval's own convention rather than lm-eval's summed log-probability:
        lmms-eval's multiple-choice scorer takes the argmin of the returned floats, and its
        built-in wrappers return the language-modelling loss of the continuation.
        """
        everything = [self._with_continuation_text(req.args) for req in requests]
        return answer_with_store(
            self._resume,
            "loglikelihood",
            self._resume_keys("loglikelihood", everything, lambda a: str(a[1])),
            [(a[4], a[3]) for a in everything],
            lambda pending, save: self._loglikelihood([everything[i] for i in pending], save),
        )

    def _with_continuation_text(self, args: tuple) -> tuple:
        """Request args with the continuation as text. lmms-eval passes text for
        multiple-choice tasks but the task's `doc_to_target` for `output_type: loglikelihood`;
        a target that cannot be read becomes the error, reported when the request runs."""
        context, continuation, visuals_fn, doc_id, task, split = args
        if callable(continuation):
            try:
                continuation = continuation(self._doc(task, split, doc_id))
                if isinstance(continuation, (list, tuple)):
                    continuation = continuation[0]
                continuation = str(continuation)
            except Exception as err:  # a bad document must not end the run
                continuation = err
        return (context, continuation, visuals_fn, doc_id, task, split)

    def _loglikelihood(
        self, args: list[tuple], on_batch: SaveBatch | None
    ) -> list[tuple[float, bool]]:
        """(loss, is_greedy) of `args` (loglikelihood request args), batched, in order."""

        def make(i: int):
            context, continuation, visuals_fn, doc_id, task, split = args[i]
            return self._prepare(
                context, visuals_fn, doc_id, task, split, continuation=continuation
            )

        return self._run_batches(
            len(args),
            make,
            group_key=lambda i: 0,
            lengths=[len(a[0]) + len(str(a[1])) for a in args],
            run=self._score_batch,
            desc="dragonfly loglikelihood",
            on_batch=on_batch,
        )

    def _score_batch(self, batch: PreparedBatch) -> list[tuple[float, bool]]:
        """(loss, is_greedy) per request of `batch`; (inf, False) for those that failed."""

        def run(sub: list[int], watch: NonFiniteWatch) -> list[tuple[float, bool]]:
            items = [batch.items[i] for i in sub]
            if self.prefix is not None and self.prefix.applies([it.digests for it in items]):
                total, greedy, count = self.prefix.score(
                    [it.digests[0] for it in items],
                    [it.prompt_ids for it in items],
                    [it.continuation_ids for it in items],
                    lambda digests: self._encode(batch, digests),
                )
            else:
                total, greedy, count = self._score_plain(batch, sub, items)
            watch.mark(total)
            loss = (-total / count.clamp(min=1)).tolist()
            return [(float(x), bool(g)) for x, g in zip(loss, greedy.tolist(), strict=True)]

        return self._answer_live(batch, (float("inf"), False), run)

    def _score_plain(
        self, batch: PreparedBatch, sub: list[int], items: list[Prepared]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """`score_continuations` of the requests `sub` on the full sequence (right-padded)."""
        layout = self.processor.layout_ids(
            [it.prompt_ids + it.continuation_ids for it in items],
            [len(it.digests) for it in items],
            padding_side="right",
        )
        mask = torch.zeros_like(layout["input_ids"])
        for row, it in enumerate(items):
            end = int(layout["attention_mask"][row].sum())
            mask[row, end - len(it.continuation_ids) : end] = 1
        device = self.input_device
        return self._model.score_continuations(
            layout["input_ids"].to(device),
            layout["attention_mask"].to(device),
            mask.to(device),
            image_patches_indices=layout["image_patches_indices"].to(device),
            visual_embeds=self._visual_embeds(batch, sub),
            images_per_sample=[len(it.digests) for it in items],
        )

    # --- multi-round ---------------------------------------------------------------------
    def generate_until_multi_round(self, requests: list[Instance]) -> list[Any]:
        """Multi-round tasks: each round's context and images come from the task's doc_to_text
        (called with previous_output, round_idx and previous_round_info) until it signals the
        end; the answer is the round results doc_to_text returns then."""
        states = []
        for req in requests:
            context, gen_kwargs, visuals_fn, doc_to_text, doc_id, task, split = req.args
            states.append(
                {
                    "context": context,
                    "gen_kwargs": gen_kwargs,
                    "visuals_fn": visuals_fn,
                    "doc_to_text": doc_to_text,
                    "doc_id": doc_id,
                    "task": task,
                    "split": split,
                    "outputs": [],
                    "info": None,
                    "visuals": None,
                    "done": False,
                    "result": None,
                }
            )
        round_idx = 0
        while not all(s["done"] for s in states):
            active = [s for s in states if not s["done"]]
            if round_idx > 0:
                for s in active:
                    doc = self._doc(s["task"], s["split"], s["doc_id"])
                    visuals, context, terminal, round_res, info = s["doc_to_text"](
                        doc,
                        previous_output=s["outputs"],
                        round_idx=round_idx,
                        previous_round_info=s["info"],
                    )
                    if terminal:
                        s["done"], s["result"] = True, round_res
                    else:
                        s["context"], s["visuals"], s["info"] = context, visuals, info
                active = [s for s in states if not s["done"]]
            if not active:
                break
            answers = self._generate_stored(
                f"generate_until_multi_round:{round_idx}",
                [
                    (
                        s["context"],
                        s["gen_kwargs"],
                        s["visuals_fn"] if round_idx == 0 else None,
                        s["doc_id"],
                        s["task"],
                        s["split"],
                        s["visuals"],
                    )
                    for s in active
                ],
                f"dragonfly multi-round {round_idx}",
            )
            for s, answer in zip(active, answers, strict=True):
                s["outputs"].append(answer)
            round_idx += 1
        return [s["result"] if s["result"] is not None else s["outputs"] for s in states]


def valid_model_args() -> list[str]:
    """Names accepted in --model_args."""
    params = inspect.signature(Dragonfly.__init__).parameters
    return sorted(p for p in params if p not in ("self", "unknown"))


@dataclass(frozen=True)
class ProcessLayout:
    """This process's place in a data-parallel run (one process: rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0


def process_layout() -> ProcessLayout:
    """Rank and world size from the torch.distributed group that lmms-eval gathers results
    over, else from the launcher's RANK/WORLD_SIZE (what lmms-eval's evaluator reads to split
    the documents); the local rank, which picks the GPU, from LOCAL_RANK (else the rank)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        rank, world_size = torch.distributed.get_rank(), torch.distributed.get_world_size()
    else:
        rank, world_size = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    return ProcessLayout(rank, world_size, int(os.environ.get("LOCAL_RANK", rank)))


def resolve_device(device: str | None, layout: ProcessLayout = ProcessLayout()) -> torch.device:
    """'auto' (or None) picks CUDA when present, else the CPU. With several processes, each
    takes the GPU of its local rank ('auto' and 'cuda' become cuda:<local rank>); 'cpu' stays
    the CPU; 'cuda:N' is refused there, since it would put every process on one GPU."""
    if device in (None, "", "auto"):
        device = "cuda" if torch.cuda.is_available() else "cpu"
    chosen = torch.device(device)
    if layout.world_size == 1 or chosen.type == "cpu":
        return chosen
    if chosen.index is not None:
        raise ValueError(
            f"device={device} with {layout.world_size} processes would put them all on one GPU: "
            "give device=cuda (each process takes cuda:<local rank>), and choose the GPUs with "
            "CUDA_VISIBLE_DEVICES"
        )
    if chosen.type == "cuda" and layout.local_rank >= torch.cuda.device_count():
        raise ValueError(
            f"process of local rank {layout.local_rank} has no GPU (cuda:{layout.local_rank}; "
            f"{torch.cuda.device_count()} visible): launch at most that many processes per machine"
        )
    return torch.device(chosen.type, layout.local_rank)


def as_bool(value: bool | str | int) -> bool:
    """Model args arrive as strings from the command line."""
    if isinstance(value, str):
        if value.lower() in ("1", "true", "yes", "on"):
            return True
        if value.lower() in ("0", "false", "no", "off", ""):
            return False
        raise ValueError(f"expected a boolean, got {value!r}")
    return bool(value)


def generation_settings(gen_kwargs: dict) -> tuple[dict[str, Any], list[str]]:
    """lmms-eval's gen_kwargs -> transformers generate() kwargs, and the stop strings."""
    kwargs = dict(gen_kwargs)
    until = kwargs.pop("until", None) or []
    if isinstance(until, str):
        until = [until]
    temperature = float(kwargs.pop("temperature", 0) or 0)
    do_sample = as_bool(kwargs.pop("do_sample", temperature > 0))
    settings: dict[str, Any] = {
        "max_new_tokens": int(kwargs.pop("max_new_tokens", DEFAULT_MAX_NEW_TOKENS)),
        "num_beams": int(kwargs.pop("num_beams", 1) or 1),
        "do_sample": do_sample and temperature > 0,
    }
    if kwargs.get("min_new_tokens") is not None:
        settings["min_new_tokens"] = int(kwargs.pop("min_new_tokens"))
    top_p = kwargs.pop("top_p", None)
    if settings["do_sample"]:
        settings["temperature"] = temperature
        if top_p is not None:
            settings["top_p"] = float(top_p)
    return settings, [s for s in until if s]


def cut_at_stop(text: str, until: Sequence[str]) -> str:
    """The answer up to the first stop string, stripped."""
    for stop in until:
        pos = text.find(stop)
        if pos >= 0:
            text = text[:pos]
    return text.strip()
