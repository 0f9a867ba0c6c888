"""Runs own their files: two `dragonfly-eval run`s into one output folder at the same time each
keep their own failure report and results file; progress goes to a log as a few lines."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from io import StringIO
from pathlib import Path

import pytest
from reliability_helpers import run_command

from dragonfly_eval.paths import task_yaml_dir
from dragonfly_eval.progress import MARKS, MarkLines
from dragonfly_eval.run_store import failures_file_for
from dragonfly_eval.runner import start
from dragonfly_eval.runner.runfiles import RUNS_DIR

# (documents, indices whose image is missing) per task: the failures each run must report.
TASKS = {"dragonfly_own_long": (10, {1, 4, 7}), "dragonfly_own_short": (4, {2})}


def _task_folder(root):
    """Copies of the mini chart task whose listed documents point at a missing image."""
    images = task_yaml_dir() / "mini" / "data" / "images"
    chart = (task_yaml_dir() / "mini" / "chart.yaml").read_text()
    folder = root / "tasks"
    folder.mkdir()
    for task, (n, broken) in TASKS.items():
        records = [
            {
                "question": "Value?",
                "answer": "1",
                "type": "t",
                "image_path": str(
                    images / ("missing.png" if i in broken else f"chart_0{i % 5}.png")
                ),
            }
            for i in range(n)
        ]
        (folder / f"{task}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
        text = chart.replace("dragonfly_mini_chart", task)
        (folder / f"{task}.yaml").write_text(
            text.replace("data/chart.jsonl", str(folder / f"{task}.jsonl"))
        )
    return folder


def _written(stderr):
    return re.findall(r"results written to (\S+)", stderr)


def _failures_logged(out):
    return [p for p in out.glob(f"{RUNS_DIR}/*/failures.jsonl") if p.read_text().strip()]


@pytest.mark.slow
def test_two_concurrent_runs_into_one_folder_keep_their_own_files(tmp_path, cli_env):
    """The long run is paused (SIGSTOP) right after its first failure, the short run goes from
    start to end meanwhile, then the long run carries on: a deterministic overlap."""
    tasks = _task_folder(tmp_path)
    out = tmp_path / "out"

    def start(task):
        cmd = run_command(out, "--include_path", str(tasks), tasks=task)
        return subprocess.Popen(
            cmd,
            env=cli_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # lmms-eval runs as a child: pause the whole group
        )

    long_run = start("dragonfly_own_long")
    deadline = time.monotonic() + 240
    while not _failures_logged(out):
        assert long_run.poll() is None, long_run.communicate()[1].decode()[-3000:]
        assert time.monotonic() < deadline, "the first run never logged a failure"
        time.sleep(0.05)
    os.killpg(long_run.pid, signal.SIGSTOP)
    try:
        short_run = start("dragonfly_own_short")
        logs = {"dragonfly_own_short": _finish(short_run)}
    finally:
        os.killpg(long_run.pid, signal.SIGCONT)
    logs["dragonfly_own_long"] = _finish(long_run)

    claimed = {}
    for task, (_, broken) in TASKS.items():
        (results,) = _written(logs[task])
        claimed[task] = results
        assert list(json.loads(Path(results).read_text())["results"]) == [task]
        report = json.loads(failures_file_for(Path(results)).read_text())
        assert report["count"] == len(broken)
        assert {(f["task"], f["doc_id"]) for f in report["failures"]} == {(task, i) for i in broken}
        assert f"empty answer because of an error: {len(broken)}" in logs[task]
    assert len(set(claimed.values())) == 2
    assert len(list(out.glob(f"{RUNS_DIR}/*/"))) == 2
    _check_progress_lines(logs["dragonfly_own_long"], total=TASKS["dragonfly_own_long"][0])


def _finish(proc):
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stdout.decode()[-2000:] + stderr.decode()[-4000:]
    return stderr.decode()


def _check_progress_lines(log, total):
    """A run whose output is not a terminal logs a few lines per progress bar."""
    lines = log.splitlines()
    progress = [line for line in lines if "dragonfly generate" in line]
    assert 2 <= len(progress) <= len(MARKS), progress
    assert progress[-1].startswith(f"dragonfly generate: {total}/{total} (100%)")
    assert "\r" not in log
    # lmms-eval's own bars (contexts, postprocessing): their last state only, one line each
    assert all(line.count("it/s") <= 1 for line in lines)
    assert sum("Postprocessing" in line for line in lines) == 1


def test_mark_lines_reports_each_quarter_once():
    text = StringIO()
    bar = MarkLines(40, "work", file=text)
    for _ in range(40):
        bar.update(1)
    lines = text.getvalue().splitlines()
    assert [re.search(r"\((\d+)%\)", line).group(1) for line in lines] == [str(m) for m in MARKS]


def test_relay_keeps_the_last_state_of_a_redrawn_line():
    assert start.last_redraw(" 10%|#  | 1/10\r 50%|##  | 5/10\r100%|###| 10/10\r") == (
        "100%|###| 10/10"
    )
    assert start.last_redraw("plain line") == "plain line"


class _Terminal(StringIO):
    def isatty(self):
        return True


REDRAWING = (
    "import os, sys\n"
    "sys.stderr.write(os.environ['DRAGONFLY_PROGRESS'] + '\\n')\n"
    "for i in range(5):\n"
    "    sys.stderr.write(f'\\r{i}/4')\n"
    "sys.stderr.write('\\ndone\\n')\n"
)


@pytest.mark.parametrize("terminal", [True, False])
def test_relay_redraws_in_place_only_at_a_terminal(monkeypatch, terminal):
    shown = _Terminal() if terminal else StringIO()
    monkeypatch.setattr(sys, "stderr", shown)
    code, log = start.relay([sys.executable, "-c", REDRAWING])
    assert code == 0 and "\r4/4" in log
    if terminal:
        assert shown.getvalue() == "tty\n\r0/4\r1/4\r2/4\r3/4\r4/4\ndone\n"
    else:
        assert shown.getvalue() == "lines\n4/4\ndone\n"


COLOURED = (
    "import sys\n"
    "sys.stderr.write('\\x1b[32m2026-12-01\\x1b[0m | \\x1b[1mINFO    \\x1b[0m | evaluating\\n')\n"
)


@pytest.mark.parametrize("terminal", [True, False])
def test_relay_keeps_lmms_eval_s_colours_only_at_a_terminal(monkeypatch, terminal):
    shown = _Terminal() if terminal else StringIO()
    monkeypatch.setattr(sys, "stderr", shown)
    assert start.relay([sys.executable, "-c", COLOURED])[0] == 0
    if terminal:
        assert "\x1b[32m2026-12-01\x1b[0m" in shown.getvalue()
    else:
        assert shown.getvalue() == "2026-12-01 | INFO     | evaluating\n"
