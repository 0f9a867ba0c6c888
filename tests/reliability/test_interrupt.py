"""Ctrl-C (a real SIGINT) once answers are stored: one line with the stored count and the exact
command that continues, exit 130, no traceback; that command continues without computing the
stored answers again. For `run`, `demo` and `ablate`."""

from __future__ import annotations

import os
import re
import shlex
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from reliability_helpers import RESUME_TASKS, TINY_ARGS, run_command

CLI = [sys.executable, "-m", "dragonfly_eval.cli"]


def stored(out: Path) -> int:
    """Answers in the resume stores under `out`."""
    count = 0
    for path in out.rglob("resume.sqlite"):
        try:
            with sqlite3.connect(path) as db:
                count += db.execute("SELECT COUNT(*) FROM answers").fetchone()[0]
        except sqlite3.Error:  # not created yet
            pass
    return count


def interrupt(cmd: list[str], out: Path, env: dict[str, str], group: bool = True, **kw) -> str:
    """Start `cmd`, send SIGINT once 3 answers are stored (to the process group, as a
    terminal's Ctrl-C does, or to dragonfly-eval alone); returns its stderr after exit 130."""
    proc = subprocess.Popen(
        cmd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        **kw,
    )
    try:
        deadline = time.monotonic() + 400
        while stored(out) < 3:
            assert proc.poll() is None, "it ended before it could be interrupted"
            assert time.monotonic() < deadline, "no answers stored in time"
            time.sleep(0.1)
        (os.killpg if group else os.kill)(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, err[-3000:]
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err[-3000:]
    assert "\x1b[" not in err  # lmms-eval's log colours stay out of a redirected log
    return err


def continuation(err: str) -> tuple[int, list[str]]:
    """(answers stored, the command) from the last line of an interrupted dragonfly-eval."""
    last = err.strip().splitlines()[-1]
    found = re.fullmatch(
        r"dragonfly-eval: interrupted; (\d+) answers of run \S+ are stored .*; to continue: (.+)",
        last,
    )
    assert found, last
    return int(found[1]), shlex.split(found[2])


@pytest.mark.slow
@pytest.mark.parametrize("group", [True, False], ids=["terminal", "dragonfly-eval-only"])
def test_ctrl_c_on_run_says_how_to_continue_and_that_command_continues(tmp_path, cli_env, group):
    out = tmp_path / "run"
    err = interrupt(run_command(out, tasks=RESUME_TASKS), out, cli_env, group)
    count, command = continuation(err)
    (run_id,) = os.listdir(out / "dragonfly_runs")
    assert count == stored(out) >= 3 and command[-2:] == ["--resume", run_id]
    assert command[: len(CLI)] == CLI and command[len(CLI) :] == [
        *run_command(out, tasks=RESUME_TASKS)[len(CLI) :],
        "--resume",
        run_id,
    ]
    if not group:
        return  # the continuation is checked once
    done = subprocess.run(command, env=cli_env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"resuming run {run_id}" in done.stderr
    found = re.findall(r"dragonfly resume: (\d+) of \d+ \w+ answers found", done.stderr)
    assert sum(map(int, found)) >= count  # the stored answers were not computed again


@pytest.mark.slow
def test_ctrl_c_on_ablate_says_how_to_continue_and_ablate_resume_continues(tmp_path, cli_env):
    out = tmp_path / "ablation"
    argv = ["ablate", "--model_args", f"{TINY_ARGS.replace(',zoom=low', '')},batch_size=1"]
    argv += ["--tasks", "dragonfly_mini_chart", "--zoom", "low,full"]
    argv += ["--output_path", str(out)]
    err = interrupt([*CLI, *argv], out, cli_env)
    count, command = continuation(err)
    assert command == [*CLI, *argv, "--resume"] and count >= 3
    done = subprocess.run(command, env=cli_env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "resuming run" in done.stderr
    assert "| low |" in done.stdout and "| full |" in done.stdout


@pytest.mark.slow
def test_ctrl_c_on_demo_says_how_to_continue_and_the_demo_continues(tmp_path, cli_env):
    out = tmp_path / "demo"
    err = interrupt([*CLI, "demo", "--output_path", str(out)], out, cli_env, cwd=tmp_path)
    count, command = continuation(err)
    assert command == [*CLI, "demo", "--output_path", str(out)] and count >= 3
    done = subprocess.run(
        command, env=cli_env, capture_output=True, text=True, timeout=900, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "resuming run" in done.stderr
    found = re.findall(r"dragonfly resume: (\d+) of \d+ \w+ answers found", done.stderr)
    assert sum(map(int, found)) >= count
    # a second demo into the folder continues the finished one, and replaces its files
    again = subprocess.run(
        command, env=cli_env, capture_output=True, text=True, timeout=900, cwd=tmp_path
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert len(list((out / "results").rglob("[0-9]*_results.json"))) == 1
    assert len(list((out / "zoom_low").rglob("[0-9]*_results.json"))) == 1
