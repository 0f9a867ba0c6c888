"""What the checks before a run cost: the task guard's function index (built from lmms-eval's
installed task YAMLs, then read back from its cache), the guard on the default `run` command
line, and `ablate`'s model_args check (a child process that imports the model code).

    python bench/task_guard.py

Each step runs in a fresh interpreter sharing one empty cache folder, so the figures are what a
first and a later command pay (the guard step also prints the check alone; reading the command
line reads the cached description of lmms-eval's options). Prints seconds; asserts nothing.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time

STEPS = {
    "index, built (empty cache)": "from dragonfly_eval.lmms_files.task_guard import allowed_functions;"
    "allowed_functions()",
    "index, read back from the cache": "from dragonfly_eval.lmms_files.task_guard import "
    "allowed_functions; allowed_functions()",
    "guard on `run --tasks dragonfly_mini`": "import time; from dragonfly_eval.runner.start import "
    "LMMS_EVAL, lmms_eval_command; from dragonfly_eval.runner.taskcheck import check_command; "
    "cmd = lmms_eval_command(['--tasks', 'dragonfly_mini'], 'out', False)[len(LMMS_EVAL):]; "
    "t = time.perf_counter(); assert check_command(cmd) == []; "
    "print(f'{time.perf_counter() - t:.2f}')",
}
ARGCHECK = ["-m", "dragonfly_eval.harness.argcheck", "pretrained=dragonfly-tiny,zoom=full"]


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds, what it printed) of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, *argv], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall, cpu, done.stdout.strip()


def main() -> None:
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "XDG_CACHE_HOME": cache}
        steps = [(name, ["-c", code]) for name, code in STEPS.items()]
        steps.append(("ablate's model_args check (one setting)", ARGCHECK))
        for name, argv in steps:
            wall, cpu, out = timed(argv, env)
            line = f"{name:45s} {wall:6.1f} s wall {cpu:6.1f} s CPU (process)"
            if out.replace(".", "").isdigit():
                line += f", {out} s in the check itself"
            print(line)
    print(f"load average (1 min): {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
