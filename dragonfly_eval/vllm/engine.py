"""The vLLM engine: the typed requests of `dragonfly_eval.engine` answered through `vllm.LLM`.

Requests are prepared as the HF engine prepares them (`Preparer.prepare`: chat prompt, prompt
ids truncated as the reference did, images flattened), turned into token prompts with the HF
layout (one placeholder per image, expanded by the plugin's processor into the image block,
before `<|begin_of_text|>`), and given to vLLM in chunks, grouped by image (`by_images`):
continuous batching inside a chunk, the resume store's callback after each; with several
data-parallel engines, each takes a contiguous share of a chunk. Generation reads the same stop
tokens, stop strings and token limits as the HF engine; scoring reads `prompt_logprobs` (mean
negative log-likelihood per continuation token, and whether every one was the top token).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import torch
from loguru import logger
from PIL import Image

from dragonfly_eval.engine.engine import FAILED_SCORE, OnBatch, OnFailure
from dragonfly_eval.engine.prepare import Prepared, Preparer
from dragonfly_eval.engine.requests import (
    FailureRecorder,
    GenRequest,
    GenSettings,
    Request,
    ScoreRequest,
    cut_at_stop,
)
from dragonfly_eval.modeling import DragonflyProcessor
from dragonfly_eval.modeling.loading import check_settings, read_config, resolve_checkpoint
from dragonfly_eval.modeling.sequence import sample_layout

DTYPES = ("auto", "float32", "bfloat16", "float16")


@dataclass(frozen=True)
class VllmSettings:
    """Every knob of the vLLM engine, with its default. Most are `vllm.LLM`'s own arguments;
    `data_parallel_size` engines (replicas, each `tensor_parallel_size` ranks) run in this
    process, each answering its share of every chunk; `max_length` truncates prompts as the HF
    engine does (to max_length / 2 - 1 text tokens); `chunk_size` requests go to vLLM at once
    (the resume store saves after each chunk)."""

    dtype: str = "auto"
    tensor_parallel_size: int = 1
    data_parallel_size: int = 1
    max_num_seqs: int | None = None
    gpu_memory_utilization: float = 0.9
    max_model_len: int | None = None
    enforce_eager: bool = False
    enable_prefix_caching: bool = True
    seed: int = 0
    zoom: str | None = None
    max_length: int = 4096
    chunk_size: int = 256
    progress: bool = True

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype={self.dtype!r} is not valid: give one of {', '.join(DTYPES)}")
        for name in ("tensor_parallel_size", "data_parallel_size", "max_length", "chunk_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("max_num_seqs", "max_model_len"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1 (or left out), got {value}")
        if not 0 < self.gpu_memory_utilization <= 1:
            raise ValueError(
                "gpu_memory_utilization is the share of GPU memory vLLM may take: give a number "
                f"in (0, 1], got {self.gpu_memory_utilization}"
            )

    def llm_kwargs(self) -> dict[str, Any]:
        """The `vllm.LLM` arguments of one replica of these settings."""
        own = ("zoom", "max_length", "chunk_size", "progress", "data_parallel_size")
        kwargs = {k: v for k, v in asdict(self).items() if k not in own and v is not None}
        if self.zoom is not None:
            kwargs["hf_overrides"] = {"zoom": self.zoom}
        # vLLM's own generation defaults, not the folder's generation_config.json: the stop
        # tokens are the HF engine's (<|eot_id|> and the tokenizer's end of text), given per
        # request.
        kwargs["generation_config"] = "vllm"
        return kwargs


@dataclass(frozen=True)
class Placement:
    """Where this process's engines sit among the data-parallel engines of its machine: slots
    `first` .. `first + count - 1` of `total`. Slot s takes the s-th run of
    `tensor_parallel_size` GPUs (CUDA_VISIBLE_DEVICES) or CPU lists
    (VLLM_CPU_OMP_THREADS_BIND, "|"-separated, one per rank, as vLLM reads it)."""

    first: int = 0
    count: int = 1
    total: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.first < self.first + self.count <= self.total:
            raise ValueError(f"engine slots {self.first}+{self.count} do not fit in {self.total}")


def replica_environments(
    placement: Placement,
    tensor_parallel_size: int,
    on_cpu: bool,
    environ: Mapping[str, str] = os.environ,
    gpu_count: Callable[[], int] | None = None,
) -> list[dict[str, str]]:
    """The environment each engine of `placement` starts under: its share of the machine's
    GPUs or CPU lists (nothing to change for a machine's only engine). ValueError, naming the
    variable and the fix, when the machine cannot host them all."""
    if placement.total == 1:
        return [{}]
    ranks = placement.total * tensor_parallel_size
    slots = range(placement.first, placement.first + placement.count)
    what = f"{placement.total} data-parallel engines x tensor_parallel_size={tensor_parallel_size}"
    if on_cpu:
        bind = environ.get("VLLM_CPU_OMP_THREADS_BIND", "auto")
        if bind == "nobind":
            return [{} for _ in slots]
        lists = bind.split("|")
        if bind == "auto" or len(lists) != ranks:
            raise ValueError(
                f"VLLM_CPU_OMP_THREADS_BIND={bind!r}: {what} need {ranks} CPU lists, one per "
                f"rank, separated by '|' (e.g. {'|'.join(str(i) for i in range(ranks))!r}), or "
                "nobind; vLLM's auto binding would put every engine on the same cores"
            )
        tp = tensor_parallel_size
        return [
            {"VLLM_CPU_OMP_THREADS_BIND": "|".join(lists[s * tp : (s + 1) * tp])} for s in slots
        ]
    visible = environ.get("CUDA_VISIBLE_DEVICES")
    if visible:
        gpus = [g.strip() for g in visible.split(",") if g.strip()]
    else:
        gpus = [str(i) for i in range(gpu_count() if gpu_count is not None else 0)]
    if len(gpus) < ranks:
        raise ValueError(
            f"{what} need {ranks} GPUs on this machine, {len(gpus)} visible "
            f"(CUDA_VISIBLE_DEVICES={visible!r}): lower data_parallel_size or the number of "
            "processes per machine"
        )
    tp = tensor_parallel_size
    return [{"CUDA_VISIBLE_DEVICES": ",".join(gpus[s * tp : (s + 1) * tp])} for s in slots]


@contextmanager
def environment(overrides: dict[str, str]) -> Iterator[None]:
    """`overrides` in os.environ for the duration (vLLM's engine processes, spawned while a
    `vllm.LLM` is built, inherit them)."""
    saved = {k: os.environ.get(k) for k in overrides}
    os.environ.update(overrides)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def start_replicas(folder: str, settings: VllmSettings, placement: Placement) -> list[Any]:
    """One `vllm.LLM` per engine slot of `placement`, each on its share of the machine. Several
    engines (on this machine, in this process or not) run their workers as processes of their
    own (vLLM's `mp` executor): a worker in this process would join the process group of a
    torchrun launch instead of a world of its own."""
    from vllm import LLM
    from vllm.platforms import current_platform

    envs = replica_environments(
        placement,
        settings.tensor_parallel_size,
        current_platform.is_cpu(),
        gpu_count=torch.cuda.device_count,
    )
    kwargs = settings.llm_kwargs()
    if placement.total > 1:
        kwargs["distributed_executor_backend"] = "mp"
    replicas = []
    for slot, overrides in enumerate(envs, start=placement.first):
        if placement.total > 1:
            logger.info(
                f"dragonfly_vllm: engine {slot + 1} of {placement.total} on this machine "
                f"with {overrides or 'the environment as it is'}"
            )
        with environment(overrides):
            replicas.append(LLM(model=folder, **kwargs))
    return replicas


class VllmEngine:
    """Generation and scoring of Dragonfly on vLLM, answering the HF engine's typed requests.

    With `settings.data_parallel_size` N > 1, N engines answer each chunk, one contiguous share
    each, driven from N threads (the model runs in each engine's worker processes).
    `placement` says which engine slots of the machine this process's engines take (under
    torchrun, the rank's own)."""

    def __init__(
        self,
        pretrained: str,
        settings: VllmSettings = VllmSettings(),
        on_failure: OnFailure | None = None,
        revision: str | None = None,
        placement: Placement | None = None,
    ) -> None:
        folder = resolve_checkpoint(str(pretrained), revision=revision)
        config = read_config(folder)
        if settings.zoom is not None:  # a bad zoom is refused here, before vLLM starts
            config.zoom = settings.zoom
            check_settings(config, folder / "config.json")
        self.folder = folder
        self.settings = settings
        self.processor = DragonflyProcessor.from_pretrained(
            folder, zoom=settings.zoom, config=config
        )
        self.zoom = config.zoom
        self._fail = FailureRecorder(on_failure)
        self._prep = Preparer(self.processor, None, settings.max_length, self._fail)
        self.generated_tokens = 0  # new tokens of every answer so far, the stop token included
        if placement is None:
            placement = Placement(0, settings.data_parallel_size, settings.data_parallel_size)
        if placement.count != settings.data_parallel_size:
            raise ValueError(
                f"a placement of {placement.count} engines does not match data_parallel_size="
                f"{settings.data_parallel_size}: give both the same number"
            )
        self.replicas = start_replicas(str(folder), settings, placement)

    @property
    def llm(self) -> Any:
        """The (first) `vllm.LLM` of this engine."""
        return self.replicas[0]

    @property
    def failures(self) -> list[dict[str, Any]]:
        """The requests that got the empty answer so far: task, doc_id, reason."""
        return self._fail.failures

    def close(self) -> None:
        """Stop vLLM's engine cores and their workers now (tensor-parallel ranks are
        processes), rather than whenever the engine is garbage collected."""
        for llm in self.replicas:
            llm.llm_engine.engine_core.shutdown()

    def stop_token_ids(self) -> list[int]:
        """<|eot_id|> ends an answer; so does the tokenizer's end of text (as the HF engine)."""
        ids = [self.processor.eot_id, self.processor.tokenizer.eos_token_id]
        return [i for i in dict.fromkeys(ids) if i is not None]

    # --- the two request kinds -----------------------------------------------------------
    def generate(
        self,
        requests: Sequence[GenRequest],
        on_batch: OnBatch | None = None,
        desc: str = "dragonfly_vllm generate",
    ) -> list[str]:
        """The answer to each request, in order ("" for a failed one). `desc` is the HF
        engine's progress label; vLLM draws its own bar (`VllmSettings.progress`)."""
        return self._loop(requests, "", self._generation, self._answer, on_batch)

    def score(
        self,
        requests: Sequence[ScoreRequest],
        on_batch: OnBatch | None = None,
        desc: str = "dragonfly_vllm loglikelihood",
    ) -> list[tuple[float, bool]]:
        """(mean negative log-likelihood per continuation token, is greedy) of each request,
        in order ((inf, False) for a failed one)."""
        return self._loop(requests, FAILED_SCORE, self._scoring, self._score, on_batch)

    def _loop(
        self,
        requests: Sequence[Request],
        default: Any,
        params_of: Callable[[Prepared], Any],
        read: Callable[[Prepared, Any], Any],
        on_batch: OnBatch | None,
    ) -> list:
        """Prepare -> one vLLM call per chunk -> read each output, in request order."""
        results: list[Any] = []
        size = self.settings.chunk_size
        for start in range(0, len(requests), size):
            indices = list(range(start, min(start + size, len(requests))))
            prepared = [self._prepare(requests[i]) for i in indices]
            answers = [default] * len(indices)
            live = by_images([item for item, _ in prepared])
            jobs = []
            for k in live:
                item, images = prepared[k]
                try:
                    jobs.append((k, self._prompt(item, images), params_of(item)))
                except ValueError as err:  # a setting this engine cannot honour
                    self._failed(item, str(err))
            for k, output in self._run(jobs, [prepared[k][0] for k, _, _ in jobs]):
                item = prepared[k][0]
                self._check_layout(item, output.prompt_token_ids)
                answers[k] = read(item, output)
            results.extend(answers)
            if on_batch is not None:
                on_batch(indices, answers, [item.error is not None for item, _ in prepared])
        return results

    def _prepare(self, request: Request) -> tuple[Prepared, list[Image.Image]]:
        """A request's prompt ids and its images in order (repeats kept), or its failure."""
        item, by_digest = self._prep.prepare(request, decode=True)
        return item, [by_digest[d] for d in item.digests] if item.error is None else []

    def _run(self, jobs: list[tuple[int, Any, Any]], items: list[Prepared]) -> list[tuple]:
        """(position, output) of each job that vLLM answered, in job order: with several
        engines, each answers one contiguous share (neighbouring requests often share an
        image, which its prefix cache then keeps), all at once."""
        n = len(self.replicas)
        if n == 1:
            return self._run_on(0, jobs, items)
        bounds = [len(jobs) * i // n for i in range(n + 1)]
        shares = [bounds[i + 1] - bounds[i] for i in range(n)]
        logger.info(f"dragonfly_vllm: {len(jobs)} requests over {n} engines: {shares}")
        with ThreadPoolExecutor(n, thread_name_prefix="dragonfly_vllm") as pool:
            shares = pool.map(
                lambda i: self._run_on(
                    i, jobs[bounds[i] : bounds[i + 1]], items[bounds[i] : bounds[i + 1]]
                ),
                range(n),
            )
            return [done for share in shares for done in share]

    def _run_on(
        self, replica: int, jobs: list[tuple[int, Any, Any]], items: list[Prepared]
    ) -> list[tuple]:
        """(position, output) of each job that engine `replica` answered; when a chunk fails
        (e.g. an image the processor cannot cut), its jobs run one by one and only the culprits
        fail."""
        if not jobs:
            return []
        try:
            outputs = self.replicas[replica].generate(
                [p for _, p, _ in jobs],
                [s for _, _, s in jobs],
                use_tqdm=self.settings.progress and replica == 0,
            )
            return [(k, out) for (k, _, _), out in zip(jobs, outputs, strict=True)]
        except Exception as err:  # find the culprit(s) one request at a time
            if len(jobs) == 1:
                self._failed(items[0], f"{type(err).__name__}: {err}")
                return []
            logger.warning(f"dragonfly_vllm: a chunk failed ({err}); running its requests alone")
            done = []
            for job, item in zip(jobs, items, strict=True):
                done.extend(self._run_on(replica, [job], [item]))
            return done

    def _failed(self, item: Prepared, reason: str) -> None:
        item.error = reason
        self._fail(item.request, reason)

    # --- prompts and outputs -------------------------------------------------------------
    def _prompt_ids(self, item: Prepared) -> list[int]:
        """The text ids vLLM gets: the prompt's, then the continuation's when scoring."""
        return item.prompt_ids + item.continuation_ids

    def _prompt(self, item: Prepared, images: list[Image.Image]) -> dict[str, Any]:
        """A token prompt: one placeholder per image (vLLM expands each into its block), then
        the text, which starts with <|begin_of_text|>: the HF layout, image blocks first."""
        prompt: dict[str, Any] = {
            "prompt_token_ids": [self.processor.placeholder_id] * len(images)
            + self._prompt_ids(item)
        }
        if images:
            prompt["multi_modal_data"] = {"image": images}
        return prompt

    def _check_layout(self, item: Prepared, prompt_token_ids: Sequence[int]) -> None:
        """vLLM's expanded prompt must be the HF processor's ids, position for position."""
        expected, _ = sample_layout(
            self._prompt_ids(item),
            len(item.digests),
            self.processor.crop_token_counts(),
            self.processor.placeholder_id,
            self.processor.separator_id,
        )
        if list(prompt_token_ids) != expected:
            raise RuntimeError(
                f"dragonfly_vllm: the prompt of task={item.request.task} "
                f"doc_id={item.request.doc_id} was laid out as {len(prompt_token_ids)} positions, "
                f"the HF processor makes {len(expected)}: the vLLM plugin and the processor "
                "disagree (a bug; please report it)"
            )

    def _generation(self, item: Prepared) -> Any:
        """vLLM sampling parameters of a generation request's settings."""
        return sampling_params(item.request.settings, self.stop_token_ids(), self.settings.seed)

    def _scoring(self, item: Prepared) -> Any:
        from vllm import SamplingParams

        return SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=1, detokenize=False)

    def _answer(self, item: Prepared, output: Any) -> str:
        """The generated text, decoded and cut at the first stop string as the HF engine does."""
        tokens = output.outputs[0].token_ids
        self.generated_tokens += len(tokens)
        return cut_at_stop(self.processor.decode(tokens), item.request.settings.until)

    def _score(self, item: Prepared, output: Any) -> tuple[float, bool]:
        """(mean NLL per continuation token, every continuation token ranked first)."""
        ids = output.prompt_token_ids
        n = len(item.continuation_ids)
        total, greedy = 0.0, True
        for position in range(len(ids) - n, len(ids)):
            entry = output.prompt_logprobs[position][ids[position]]
            total += entry.logprob
            greedy = greedy and entry.rank == 1
        return -total / max(n, 1), greedy


def by_images(items: Sequence[Prepared]) -> list[int]:
    """Positions of the live items, those asking about the same images next to each other (in
    the order the images first appear). vLLM keeps an image's encoding in its encoder cache,
    which holds about one Dragonfly image (max_num_batched_tokens embeddings, 4,096 by default
    on the CPU; an image has 2,057): its questions asked one after the other encode it once,
    interleaved with another image's they encode it each time, since the prefix cache stops at
    the last full KV block inside the image block (2,048 of its 2,098 positions with the CPU's
    128-position blocks) and the rest of the block needs the encoding."""
    first_seen: dict[tuple[str, ...], int] = {}
    live = [k for k, item in enumerate(items) if item.error is None]
    for k in live:
        first_seen.setdefault(tuple(items[k].digests), k)
    return sorted(live, key=lambda k: first_seen[tuple(items[k].digests)])


def sampling_params(settings: GenSettings, stop_token_ids: list[int], seed: int = 0) -> Any:
    """vLLM's SamplingParams for the HF engine's generation settings (greedy unless sampling).

    Beam search is refused (ValueError, the request fails with that reason): vLLM offers it
    through another call whose answers are not the HF engine's beam search.
    """
    from vllm import SamplingParams

    if settings.num_beams > 1:
        raise ValueError(
            f"num_beams={settings.num_beams}: dragonfly_vllm generates greedily or by sampling; "
            "run beam-search tasks with --model dragonfly"
        )
    return SamplingParams(
        max_tokens=settings.max_new_tokens,
        min_tokens=settings.min_new_tokens or 0,
        temperature=settings.temperature if settings.do_sample else 0.0,
        top_p=settings.top_p if settings.do_sample and settings.top_p is not None else 1.0,
        seed=seed if settings.do_sample else None,
        stop=list(settings.until) or None,
        stop_token_ids=stop_token_ids,
        skip_special_tokens=True,
    )
