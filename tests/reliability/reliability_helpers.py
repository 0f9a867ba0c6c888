"""`dragonfly-eval run` as a subprocess, offline, on the embedded tiny model with one
low-resolution crop per image (fast on a CPU), and readers of what such a run wrote."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

TINY_ARGS = "pretrained=dragonfly-tiny,device=cpu,zoom=low"
# A generation task and a multiple-choice-by-likelihood task: the request types a resume covers.
RESUME_TASKS = "dragonfly_mini_chart,dragonfly_mini_mc_ppl"


def run_command(out: Path, *extra: str, tasks: str = "dragonfly_mini_chart") -> list[str]:
    """The `dragonfly-eval run` command line for the tiny model on `tasks`."""
    return [
        sys.executable,
        "-m",
        "dragonfly_eval.cli",
        "run",
        "--output_path",
        str(out),
        "--model_args",
        TINY_ARGS,
        "--tasks",
        tasks,
        "--batch_size",
        "1",
        "--log_samples",
        *extra,
    ]


def run_cli(out: Path, env: dict[str, str], *extra: str, **kwargs) -> subprocess.CompletedProcess:
    """Run `dragonfly-eval run` to the end; fails the test when it exits non-zero."""
    done = subprocess.run(
        run_command(out, *extra, **kwargs), env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    return done


def results_file(out: Path) -> Path:
    """The one `<date>_results.json` of a run."""
    (found,) = out.rglob("[0-9]*_results.json")
    return found


def metrics(out: Path) -> dict:
    """The numeric metrics of every task of a run."""
    results = json.loads(results_file(out).read_text())["results"]
    return {
        task: {k: v for k, v in values.items() if isinstance(v, (int, float))}
        for task, values in results.items()
    }


def samples(out: Path, task: str) -> list[dict]:
    """A run's `--log_samples` records of one task."""
    (found,) = out.rglob(f"*_samples_{task}.jsonl")
    return [json.loads(line) for line in found.read_text().splitlines() if line.strip()]
