"""Constants and helpers of the real-schema suite: the built-in task list, lmms-eval's CLI run
from the hub-layout copies' folder, and reading its results file."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

# The built-in tasks of the lmms-eval command in docs/leaderboard-and-gate.md ("Task names");
# captioning metrics need Java.
CAPTION_TASKS = ("coco2017_cap_val",)
BUILTIN_TASKS = (
    "textvqa_val",
    "chartqa",
    "docvqa_val",
    "ai2d",
    "mme",
    "pope",
    "scienceqa_img",
    "seedbench_ppl",
) + CAPTION_TASKS
HAS_JAVA = shutil.which("java") is not None
NO_JAVA = "captioning metrics (pycocoevalcap) run Java, and no `java` is on PATH"


def runnable(tasks: tuple[str, ...]) -> tuple[str, ...]:
    """The tasks this machine can score: captioning tasks only where Java is present."""
    return tuple(t for t in tasks if HAS_JAVA or t not in CAPTION_TASKS)


def run_lmms_eval(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    """`python -m lmms_eval ARGS` from cwd; DEBUG verbosity makes a failed evaluation exit
    non-zero (lmms-eval exits 0 otherwise)."""
    cmd = [sys.executable, "-m", "lmms_eval", *args, "--verbosity", "DEBUG"]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-5000:]
    return out


def read_results(output_path: Path) -> dict:
    """The one timestamped results file under an --output_path (not submissions/*)."""
    (results_file,) = output_path.rglob("[0-9]*_results.json")
    return json.loads(results_file.read_text())


def numbers(metrics: dict) -> dict[str, float]:
    """The finite numeric metrics of one task's results (strings and lists left out)."""
    return {
        key: value
        for key, value in metrics.items()
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    }
