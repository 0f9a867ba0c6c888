"""How long a mistake in a `dragonfly-eval run` command line takes to be refused: a misspelt task,
an unknown model_args name, a checkpoint folder that does not exist, an option lmms-eval does not
have. Each runs as a user runs it (a fresh `python -m dragonfly_eval.cli` process), first with an
empty cache folder (cold: lmms-eval's options described, the task index and the guard's function
index built), then again with the cache it left (warm: what every later command pays).

    python bench/start_mistakes.py

Prints wall seconds and the exit code of each; asserts nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

TINY = "pretrained=dragonfly-tiny,device=cpu"
MISTAKES = {
    "misspelt task": ["--model_args", TINY, "--tasks", "textvqa_vall"],
    "unknown model_args name": ["--model_args", TINY + ",devise=cpu", "--tasks", "textvqa_val"],
    "missing checkpoint": ["--model_args", "pretrained=/nonexist", "--tasks", "textvqa_val"],
    "wrong lmms-eval option": ["--model_args", TINY, "--tasks", "textvqa_val", "--limt", "3"],
}


def timed(argv: list[str], env: dict[str, str], out: str) -> tuple[float, int]:
    """(wall seconds, exit code) of one `dragonfly-eval run` process."""
    cmd = [sys.executable, "-m", "dragonfly_eval.cli", "run", "--output_path", out, *argv]
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    return time.perf_counter() - start, done.returncode


def main() -> None:
    print(f"{'mistake':<26}{'cold s':>8}{'warm s':>8}  exit")
    for name, argv in MISTAKES.items():
        with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as out:
            env = {**os.environ, "XDG_CACHE_HOME": cache, "HF_HUB_OFFLINE": "1"}
            cold, code = timed(argv, env, out)
            warm, again = timed(argv, env, out)
        print(f"{name:<26}{cold:>8.1f}{warm:>8.1f}  {code}/{again}")
    print(f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
