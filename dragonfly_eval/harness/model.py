"""The lmms-eval model `dragonfly`: an adapter from lmms-eval's requests to the engine.

`EngineAdapter` turns each `Instance.args` tuple into a typed request, answers finished by an
earlier run come from the resume store, failures go to the failure report, and the engine's
answers go back in request order. `Dragonfly` puts it in front of this project's engine
(`dragonfly_eval.engine`: batching, caches, memory and numerics policies); `dragonfly_vllm`
(`harness.vllm_model`) puts the same adapter in front of vLLM.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import torch
from lmms_eval.api.instance import Instance
from lmms_eval.api.model import lmms
from loguru import logger

from dragonfly_eval.engine import Engine, EngineSettings, GenRequest, GenSettings, ScoreRequest
from dragonfly_eval.engine.numerics import enable_determinism
from dragonfly_eval.engine.prepare import FirstTime
from dragonfly_eval.engine.requests import as_bool
from dragonfly_eval.harness import compat, model_args
from dragonfly_eval.harness.cost import RunCost
from dragonfly_eval.harness.model_args import DEFAULT_PRETRAINED
from dragonfly_eval.modeling import DragonflyForCausalLM, DragonflyProcessor
from dragonfly_eval.modeling.loading import load_dragonfly
from dragonfly_eval.run_store import (
    FailureLog,
    ResumeStore,
    SaveBatch,
    answer_with_store,
    checkpoint_identity,
    rank_path,
    request_key,
)

compat.apply()


def gen_kwargs_key(gen_kwargs: dict) -> str:
    """The generation settings as a stable string (key order does not matter), the part of a
    generation request's resume key that they decide."""
    return json.dumps(gen_kwargs, sort_keys=True, default=str)


class EngineAdapter(lmms):
    """lmms-eval's requests -> an engine's typed requests, through the resume store.

    A subclass parses its model_args, builds `self.engine` (anything with the `generate`,
    `score` and `failures` of `dragonfly_eval.engine.Engine`), passing it the failure callback
    of `_bookkeeping`, which also opens the resume store.
    """

    is_simple = True
    engine: Any
    model_name = "dragonfly"  # in warnings and progress bars

    def _bookkeeping(
        self,
        resume_store: str | None,
        failure_report: str | None,
        model_id: Sequence[Any],
    ) -> Callable[[dict[str, Any]], None] | None:
        """Open the resume store (keys from `model_id`: everything besides the request that
        decides an answer) and the failure report; returns the engine's failure callback."""
        self._failure_log = (
            FailureLog(rank_path(failure_report, self.rank, self.world_size))
            if failure_report
            else None
        )
        # One resume store for every rank: its keys do not depend on the rank, and SQLite in
        # WAL mode with a busy timeout (run_store.py) takes several writers, so a run resumed with
        # another number of processes still finds every answer. The failure log is per rank
        # (`rank_path`): each FailureLog starts its file empty, which would wipe another rank's.
        self._resume = ResumeStore(resume_store) if resume_store else None
        self._model_id = json.dumps(list(model_id))
        self._ignored_warned = FirstTime()  # (task, gen_kwargs key) pairs already warned about
        self._cost = RunCost()  # the subclass sets `devices` once it knows where the model runs
        return self._failure_log.append if self._failure_log else None

    @classmethod
    def create_from_arg_string(cls, arg_string: str, additional_config: dict | None = None):
        """Build from `--model_args`; a value given there wins over lmms-eval's own flags
        (`--batch_size`, `--device`), which lmms-eval always passes, defaults included."""
        from lmms_eval.utils import simple_parse_args_string

        args = simple_parse_args_string(arg_string or "")
        extra = {k: v for k, v in (additional_config or {}).items() if v is not None}
        return cls(**{**extra, **args})

    @property
    def failures(self) -> list[dict[str, Any]]:
        """The requests that got an empty answer so far: task, doc_id, reason."""
        return self.engine.failures

    def clean(self) -> None:
        """lmms-eval calls this once every request type is answered, before it writes the
        results: log what the run cost into them (`harness.cost`), then lmms-eval's own clean-up
        (which deletes the model's modules)."""
        self._cost.log()
        super().clean()

    # --- Instance.args -> typed requests --------------------------------------------------
    def _doc(self, task: str, split: str, doc_id: Any) -> Any:
        return self.task_dict[task][split][doc_id]

    def _images(self, visuals_fn: Callable | None, task: str, split: str, doc_id: Any):
        """The document's images, read when the request is prepared (in a prefetch thread)."""
        return () if visuals_fn is None else partial(self._visuals, visuals_fn, task, split, doc_id)

    def _visuals(self, visuals_fn: Callable, task: str, split: str, doc_id: Any) -> Any:
        return visuals_fn(self._doc(task, split, doc_id))

    def _settings(self, gen_kwargs: dict, task: str) -> GenSettings:
        settings, ignored = GenSettings.from_gen_kwargs(gen_kwargs)
        for key in ignored:
            if self._ignored_warned.first((task, key)):
                logger.warning(
                    f"{self.model_name}: task={task} gen_kwargs {key}={gen_kwargs[key]!r} is not "
                    f"used by {self.model_name} and is ignored (it reads until, max_new_tokens, "
                    "min_new_tokens, temperature, do_sample, num_beams, top_p)"
                )
        return settings

    def _continuation(self, continuation: Any, task: str, split: str, doc_id: Any):
        """(text, error): lmms-eval passes text for multiple-choice tasks but the task's
        `doc_to_target` for `output_type: loglikelihood`; a target that cannot be read is the
        request's error, reported when the request runs."""
        if not callable(continuation):
            return str(continuation), None
        try:
            target = continuation(self._doc(task, split, doc_id))
            return str(target[0] if isinstance(target, (list, tuple)) else target), None
        except Exception as err:  # a bad document must not end the run
            return str(err), f"{type(err).__name__}: {err}"

    # --- lmms-eval entry points -----------------------------------------------------------
    def generate_until(self, requests: list[Instance]) -> list[str]:
        """Answers for `generate_until` requests, batched, in request order (those an earlier
        run finished come from the resume store)."""
        rounds = [RoundState.of(req.args[:3], *req.args[3:]) for req in requests]
        return self._generate_round("generate_until", rounds, f"{self.model_name} generate")

    def loglikelihood(self, requests: list[Instance]) -> list[tuple[float, bool]]:
        """(loss, is_greedy) per request, where loss is the mean negative log-likelihood per
        continuation token.

        This follows lmms-eval's own convention rather than lm-eval's summed log-probability:
        lmms-eval's multiple-choice scorer takes the argmin of the returned floats, and its
        built-in wrappers return the language-modelling loss of the continuation.
        """
        scored, keys = [], []
        for req in requests:
            context, continuation, visuals_fn, doc_id, task, split = req.args
            text, error = self._continuation(continuation, task, split, doc_id)
            images = self._images(visuals_fn, task, split, doc_id)
            scored.append(ScoreRequest(context, text, images, task, doc_id, error))
            keys.append(self._key("loglikelihood", task, split, doc_id, context, text))
        return self._stored(
            "loglikelihood",
            keys,
            scored,
            lambda todo, save: self.engine.score(todo, save, f"{self.model_name} loglikelihood"),
        )

    def generate_until_multi_round(self, requests: list[Instance]) -> list[Any]:
        """Multi-round tasks: each round's context and images come from the task's doc_to_text
        (called with previous_output, round_idx and previous_round_info) until it signals the
        end; the answer is the round results doc_to_text returns then."""
        states = []
        for req in requests:
            context, gen_kwargs, visuals_fn, doc_to_text, doc_id, task, split = req.args
            states.append(RoundState.of((context, gen_kwargs, visuals_fn), doc_id, task, split))
            states[-1].doc_to_text = doc_to_text
        round_idx = 0
        while True:
            active = [s for s in states if s.result is None]
            if round_idx > 0:
                for s in active:
                    s.next_round(self._doc(s.task, s.split, s.doc_id), round_idx)
                active = [s for s in states if s.result is None]
            if not active:
                break
            request_type = f"generate_until_multi_round:{round_idx}"
            desc = f"{self.model_name} multi-round {round_idx}"
            for s, answer in zip(
                active, self._generate_round(request_type, active, desc), strict=True
            ):
                s.outputs.append(answer)
            round_idx += 1
        return [s.result if s.result is not None else s.outputs for s in states]

    # --- the resume store ------------------------------------------------------------------
    def _generate_round(self, request_type: str, rounds: list[RoundState], desc: str) -> list[str]:
        """One generation round of `rounds` through the resume store."""
        requests, keys = [], []
        for s in rounds:
            images = (
                self._images(s.visuals_fn, s.task, s.split, s.doc_id)
                if s.visuals is None
                else s.visuals
            )
            settings = self._settings(s.gen_kwargs, s.task)
            requests.append(GenRequest(s.context, images, settings, s.task, s.doc_id))
            extra = gen_kwargs_key(s.gen_kwargs)
            keys.append(self._key(request_type, s.task, s.split, s.doc_id, s.context, extra))
        return self._stored(
            request_type, keys, requests, lambda todo, save: self.engine.generate(todo, save, desc)
        )

    def _key(self, request_type: str, task: str, split: str, doc_id: Any, *parts: Any) -> str:
        if self._resume is None:
            return ""
        return request_key(self._model_id, request_type, task, split, doc_id, *parts)

    def _stored(
        self,
        request_type: str,
        keys: list[str],
        requests: Sequence[GenRequest | ScoreRequest],
        compute: Callable[[list, SaveBatch | None], list],
    ) -> list:
        """Answers of `requests`: stored ones from the resume store, the rest computed (and
        their cost counted)."""

        def computed(pending: list[int], save: SaveBatch | None) -> list:
            with self._cost.timing(len(pending), self.engine):
                return compute([requests[i] for i in pending], save)

        return answer_with_store(
            self._resume,
            request_type,
            keys if self._resume is not None else [],
            [(r.task, r.doc_id) for r in requests],
            computed,
        )


class Dragonfly(EngineAdapter):
    """lmms-eval model class for every Dragonfly release (v1 and v2, general and Med).

    model_args: pretrained, device, dtype, batch_size, attn_implementation, device_map, zoom,
    max_length, image_cache, image_cache_mb, prefetch, prefix_cache (reuse the KV cache of an
    image's prefix across its questions), prefix_cache_mb, allow_pickle, revision, deterministic,
    resume_store (SQLite file of finished answers, read at start and written after each batch),
    failure_report (JSON-lines file of requests that failed), device_resize (auto/true/false:
    resize and cut the zoom levels on the device; auto does so unless the device is the CPU).
    max_batch_size is refused: the batch size is fixed (`batch_size`), and out-of-memory batches
    are halved automatically.
    """

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
        max_batch_size: int | str | None = None,
        deterministic: bool | str = True,
        resume_store: str | None = None,
        failure_report: str | None = None,
        device_resize: bool | str = "auto",
        **unknown: Any,
    ) -> None:
        super().__init__()
        if unknown:
            raise ValueError(
                f"unknown model_args for dragonfly: {sorted(unknown)}; valid: {valid_model_args()}"
            )
        if max_batch_size is not None:
            raise ValueError(
                f"max_batch_size={max_batch_size} is not supported by dragonfly: give a fixed "
                "batch_size=N (a batch that runs out of device memory is halved on its own)"
            )
        resize_choice = parse_device_resize(device_resize)
        settings = engine_settings(
            batch_size,
            max_length,
            image_cache,
            image_cache_mb,
            prefix_cache,
            prefix_cache_mb,
            prefetch,
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
        self.pretrained = pretrained
        if as_bool(deterministic):
            enable_determinism(self._device)
        model = load_dragonfly(
            pretrained,
            dtype=self.dtype,
            device=None if device_map else self._device,
            device_map=device_map or None,
            attn_implementation=attn_implementation,
            zoom=zoom,
            allow_pickle=as_bool(allow_pickle),
            revision=revision,
        )
        # Built from the loaded model's config: config.json is not read a second time.
        self.processor = DragonflyProcessor.from_pretrained(
            pretrained, zoom=zoom, revision=revision, config=model.config
        )
        self.processor.image_processor.device_resize = resize_choice
        on_failure = self._bookkeeping(
            resume_store,
            failure_report,
            [
                pretrained,
                checkpoint_identity(pretrained),
                revision,
                self.dtype,
                model.zoom,
                settings.max_length,
                attn_implementation,
            ],
        )
        self.engine = Engine(
            model, self.processor, replace(settings, progress=self.rank == 0), on_failure
        )
        if self._device.type == "cuda":  # device seconds count every GPU the model is on
            self._cost.devices = torch.cuda.device_count() if device_map else 1

    # --- lmms-eval properties -------------------------------------------------------------
    @property
    def model(self) -> DragonflyForCausalLM:
        return self.engine.model

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def batch_size(self) -> int:
        return self.engine.batch_size

    @batch_size.setter
    def batch_size(self, value: int) -> None:
        self.engine.batch_size = int(value)


@dataclass
class RoundState:
    """One generation request across the rounds of a multi-round task (one round otherwise)."""

    context: str
    gen_kwargs: dict
    visuals_fn: Callable | None
    doc_id: Any
    task: str
    split: str
    doc_to_text: Callable | None = None
    visuals: Any = None  # a later round's images, from doc_to_text
    info: Any = None
    outputs: list[str] = field(default_factory=list)
    result: Any = None

    @classmethod
    def of(cls, first: tuple, doc_id: Any, task: str, split: str) -> RoundState:
        """From (context, gen_kwargs, doc_to_visual) and the document's place."""
        return cls(*first, doc_id, task, split)

    def next_round(self, doc: Any, round_idx: int) -> None:
        """Ask doc_to_text for round `round_idx`: its context and images, or the result."""
        visuals, context, terminal, round_res, info = self.doc_to_text(
            doc, previous_output=self.outputs, round_idx=round_idx, previous_round_info=self.info
        )
        if terminal:
            self.result = round_res
        else:
            self.context, self.info = context, info
            self.visuals = visuals if visuals is not None else ()


def parse_device_resize(value: bool | str) -> bool | str:
    """The `device_resize` model_arg: "auto", or a boolean from the command line."""
    if isinstance(value, str) and value.lower() == "auto":
        return "auto"
    try:
        return as_bool(value)
    except ValueError:
        raise ValueError(
            f"device_resize={value!r} is not valid: give auto (the device path unless the device "
            "is the CPU), true (always resize on the device) or false (always Pillow)"
        ) from None


def engine_settings(
    batch_size: int | str = 1,
    max_length: int | str = 4096,
    image_cache: bool | str = True,
    image_cache_mb: int | str = 1024,
    prefix_cache: bool | str = True,
    prefix_cache_mb: int | str = 4096,
    prefetch: bool | str = True,
) -> EngineSettings:
    """The engine settings `--model_args` give (ValueError for a value that is not one)."""
    return EngineSettings(
        batch_size=int(batch_size),
        max_length=int(max_length),
        image_cache=as_bool(image_cache),
        image_cache_mb=int(image_cache_mb),
        prefix_cache=as_bool(prefix_cache),
        prefix_cache_mb=int(prefix_cache_mb),
        prefetch=as_bool(prefetch),
    )


def valid_model_args() -> list[str]:
    """Names accepted in --model_args (declared in `harness.model_args`)."""
    return model_args.valid_model_args("dragonfly")


@dataclass(frozen=True)
class ProcessLayout:
    """This process's place in a data-parallel run (one process: rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1


def process_layout() -> ProcessLayout:
    """Rank and world size from the torch.distributed group that lmms-eval gathers results
    over, else from the launcher's RANK/WORLD_SIZE (what lmms-eval's evaluator reads to split
    the documents); the local rank, which picks the GPU, from LOCAL_RANK (else the rank), and
    the processes on this machine from LOCAL_WORLD_SIZE (else the world size)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        rank, world_size = torch.distributed.get_rank(), torch.distributed.get_world_size()
    else:
        rank, world_size = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    return ProcessLayout(
        rank,
        world_size,
        int(os.environ.get("LOCAL_RANK", rank)),
        int(os.environ.get("LOCAL_WORLD_SIZE", world_size)),
    )


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
