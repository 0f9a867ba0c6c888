"""What a run cost, recorded in its results file: samples answered, samples/s, generated
tokens/s, wall seconds, and device seconds where CUDA devices were used.

The adapter times the engine's work of each lmms-eval call (generate_until, loglikelihood, each
multi-round round; answers from the resume store cost nothing and are not counted). When
lmms-eval cleans the model up after the last request type (`lmms.clean()`, before it writes the
results), one entry goes to lmms-eval's own throughput log
(`lmms_eval.models.model_utils.gen_metrics.log_metrics`), which lmms-eval writes into
`<date>_results.json` as `throughput`, so the record lives wherever lmms-eval puts the results:

    "throughput": {"total_gen_tokens": 52, "total_elapsed_time": 2.4, "avg_speed": 21.7,
                   "avg_latency": 0.6, "avg_samples": 4.0, "avg_samples_per_s": 1.67}

lmms-eval sums tokens and seconds over the entries of a run and gives every other number as
`avg_<name>`, its mean over the entries: one entry per run, so each is the run's own value.
`avg_device_seconds` (wall seconds x the CUDA devices the run held, what a GPU-hour bill counts)
is there only when the model ran on CUDA. Tokens are the work done: a batch the HF engine runs
again in float32 after non-finite logits counts twice. The engine is the results' `config.model`
(`dragonfly`: the HF engine; `dragonfly_vllm`: vLLM). Under torchrun every rank logs the
totals of all ranks (samples and tokens summed, wall seconds the slowest rank's, device seconds
summed); lmms-eval writes rank 0's. The leaderboard reads it (`lmms_files.results.Cost`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

# The names of the record's own numbers (lmms-eval writes them as avg_<name>).
SAMPLES = "samples"
SAMPLES_PER_S = "samples_per_s"
DEVICE_SECONDS = "device_seconds"


@dataclass
class RunCost:
    """The engine work of one evaluation, summed over lmms-eval's calls."""

    devices: int = 0  # CUDA devices the model runs on; 0 on the CPU
    samples: int = 0
    wall_s: float = 0.0
    tokens: int = 0

    @contextmanager
    def timing(self, samples: int, engine: Any) -> Iterator[None]:
        """Count `samples` requests and the wall time and new tokens of the block that answers
        them (`engine.generated_tokens`, when the engine counts them)."""
        before = getattr(engine, "generated_tokens", 0)
        start = time.perf_counter()
        try:
            yield
        finally:
            self.wall_s += time.perf_counter() - start
            self.samples += samples
            self.tokens += getattr(engine, "generated_tokens", 0) - before

    def totals(self) -> tuple[int, float, int, float]:
        """(samples, wall seconds, tokens, device seconds) of this process, or of every process
        of a torchrun group."""
        mine = (self.samples, self.wall_s, self.tokens, self.wall_s * self.devices)
        import torch

        dist = torch.distributed
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
            return mine
        gathered: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(gathered, mine)
        return (
            sum(g[0] for g in gathered),
            max(g[1] for g in gathered),
            sum(g[2] for g in gathered),
            sum(g[3] for g in gathered),
        )

    def log(self) -> dict[str, Any] | None:
        """Log the record through lmms-eval's throughput log and start counting afresh; the
        entry logged, or None when nothing was computed."""
        samples, wall_s, tokens, device_s = self.totals()
        self.samples, self.wall_s, self.tokens = 0, 0.0, 0
        if samples == 0 or wall_s <= 0:
            return None
        from lmms_eval.models.model_utils.gen_metrics import log_metrics

        extra: dict[str, Any] = {
            "total_requests": samples,
            SAMPLES: samples,
            SAMPLES_PER_S: samples / wall_s,
        }
        if self.devices:
            extra[DEVICE_SECONDS] = device_s
        log_metrics(
            total_elapsed_time=wall_s,
            total_gen_tokens=tokens,
            avg_speed=tokens / wall_s,
            additional_metrics=extra,
        )
        return {"total_elapsed_time": wall_s, "total_gen_tokens": tokens, **extra}
