"""The vLLM engine: the typed requests of `dragonfly_eval.engine` answered through `vllm.LLM`.

Requests are prepared as the HF engine prepares them (`Preparer.prepare`: chat prompt, prompt
ids truncated as the reference did, images flattened), turned into token prompts with the HF
layout (one placeholder per image, expanded by the plugin's processor into the image block,
before `<|begin_of_text|>`), and given to vLLM in chunks: continuous batching inside a chunk,
the resume store's callback after each. Generation reads the same stop tokens, stop strings and
token limits as the HF engine; scoring reads `prompt_logprobs` (mean negative log-likelihood
per continuation token, and whether every one was the top token).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

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
    """Every knob of the vLLM engine, with its default. The first nine are `vllm.LLM`'s own
    arguments; `max_length` truncates prompts as the HF engine does (to max_length / 2 - 1
    text tokens); `chunk_size` requests go to vLLM at once (the resume store saves after each
    chunk)."""

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
        if self.data_parallel_size > 1:
            # vLLM's LLM refuses it in one process too ("may hang"), but only once it starts.
            raise ValueError(
                f"data_parallel_size={self.data_parallel_size} is not supported yet: vLLM runs "
                "offline data parallel as one process per replica (torchrun with the "
                "external_launcher backend), which dragonfly_vllm does not do; use "
                "tensor_parallel_size=N, or --model dragonfly under torchrun"
            )
        if not 0 < self.gpu_memory_utilization <= 1:
            raise ValueError(
                "gpu_memory_utilization is the share of GPU memory vLLM may take: give a number "
                f"in (0, 1], got {self.gpu_memory_utilization}"
            )

    def llm_kwargs(self) -> dict[str, Any]:
        """The `vllm.LLM` arguments of these settings."""
        kwargs = {
            k: v
            for k, v in asdict(self).items()
            if k not in ("zoom", "max_length", "chunk_size", "progress") and v is not None
        }
        if self.zoom is not None:
            kwargs["hf_overrides"] = {"zoom": self.zoom}
        # vLLM's own generation defaults, not the folder's generation_config.json: the stop
        # tokens are the HF engine's (<|eot_id|> and the tokenizer's end of text), given per
        # request.
        kwargs["generation_config"] = "vllm"
        return kwargs


class VllmEngine:
    """Generation and scoring of Dragonfly on vLLM, answering the HF engine's typed requests."""

    def __init__(
        self,
        pretrained: str,
        settings: VllmSettings = VllmSettings(),
        on_failure: OnFailure | None = None,
        revision: str | None = None,
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
        from vllm import LLM

        self.llm = LLM(model=str(folder), **settings.llm_kwargs())

    @property
    def failures(self) -> list[dict[str, Any]]:
        """The requests that got the empty answer so far: task, doc_id, reason."""
        return self._fail.failures

    def close(self) -> None:
        """Stop vLLM's engine core and its workers now (tensor-parallel ranks are processes),
        rather than whenever the engine is garbage collected."""
        self.llm.llm_engine.engine_core.shutdown()

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
            live = [k for k, (item, _) in enumerate(prepared) if item.error is None]
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
        """(position, output) of each job that vLLM answered; when a chunk fails (e.g. an
        image the processor cannot cut), its jobs run one by one and only the culprits fail."""
        if not jobs:
            return []
        try:
            outputs = self.llm.generate(
                [p for _, p, _ in jobs], [s for _, _, s in jobs], use_tqdm=self.settings.progress
            )
            return [(k, out) for (k, _, _), out in zip(jobs, outputs, strict=True)]
        except Exception as err:  # find the culprit(s) one request at a time
            if len(jobs) == 1:
                self._failed(items[0], f"{type(err).__name__}: {err}")
                return []
            logger.warning(f"dragonfly_vllm: a chunk failed ({err}); running its requests alone")
            done = []
            for job, item in zip(jobs, items, strict=True):
                done.extend(self._run([job], [item]))
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
