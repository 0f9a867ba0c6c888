"""`dragonfly-eval diff` on hostile inputs: numbers Python cannot hold, a results file that is a
FIFO or /dev/zero, media names the file system refuses. One line and exit 2, or the page."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys

import pytest

from tests.leaderboard.test_diff import write_side
from tests.leaderboard.test_regress import run_cli

# Enough for the command itself; reading /dev/zero to the end runs into it within a second.
MEMORY_LIMIT = 2 * 2**30


def _two_sides(tmp_path, write_run):
    a = write_side(write_run, tmp_path / "a", "20240101_000000", ["B", "A"], [1, 0])
    b = write_side(write_run, tmp_path / "b", "20240201_000000", ["A", "A"], [0, 0])
    return a, b


def _only(folder, pattern):
    (path,) = folder.rglob(pattern)
    return path


def _diff_subprocess(argv, env):
    """The command in its own process: under a memory limit, killed if it hangs."""

    def limit_memory():
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))

    return subprocess.run(
        [sys.executable, "-m", "dragonfly_eval.cli", "diff", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        preexec_fn=limit_memory,
    )


@pytest.mark.parametrize("digits", [500, 5000])
def test_an_integer_too_large_for_a_float_in_a_sample_log_is_one_line_and_exit_2(
    tmp_path, write_run, suite_file, capsys, digits
):
    a, b = _two_sides(tmp_path, write_run)
    log = _only(b, "*_samples_*.jsonl")
    lines = log.read_text().splitlines()
    lines[0] = lines[0].replace('"exact_match": 0', '"exact_match": 1' + "0" * digits)
    log.write_text("\n".join(lines) + "\n")
    assert run_cli(["diff", str(a), str(b), "--suite-file", str(suite_file)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"{log}: line 1" in err and f"{digits + 1} digits does not fit a float" in err


def test_a_fifo_as_the_results_file_beside_a_log_does_not_hang_the_diff(
    tmp_path, write_run, suite_file, offline_env
):
    a, b = _two_sides(tmp_path, write_run)
    for side in (a, b):
        results = _only(side, "*_results.json")
        results.unlink()
        os.mkfifo(results)  # nothing ever writes to it: opening it to read would block forever
    done = _diff_subprocess([str(a), str(b), "--suite-file", str(suite_file)], offline_env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "2 documents in both runs: 0 gained, 1 lost, 0 changed answers." in done.stdout


def test_a_results_file_linked_to_dev_zero_is_not_read(
    tmp_path, write_run, suite_file, offline_env
):
    a, b = _two_sides(tmp_path, write_run)
    for side in (a, b):
        results = _only(side, "*_results.json")
        results.unlink()
        results.symlink_to("/dev/zero")
    done = _diff_subprocess([str(a), str(b), "--suite-file", str(suite_file)], offline_env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "1 lost" in done.stdout


@pytest.mark.parametrize(
    "name",
    ["doc\x00.png", "x" * 5000 + ".png", "loop_a.png"],
    ids=["nul-byte", "5000-characters", "symlink-loop"],
)
def test_a_media_name_the_file_system_refuses_shows_as_its_name(
    tmp_path, write_run, suite_file, name
):
    images = tmp_path / "data"
    images.mkdir()
    (images / "loop_a.png").symlink_to(images / "loop_b.png")
    (images / "loop_b.png").symlink_to(images / "loop_a.png")
    a, b = _two_sides(tmp_path, write_run)
    log = _only(a, "*_samples_*.jsonl")
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    lines[0]["input_media"] = [name]
    log.write_text("".join(json.dumps(line) + "\n" for line in lines))
    page = tmp_path / "diff.html"
    argv = ["diff", str(a), str(b), "--html", str(page), "--images", str(images)]
    assert run_cli([*argv, "--suite-file", str(suite_file)]) == 0
    html = page.read_text()
    shown = name.replace("\x00", "\ufffd")
    shown = shown if len(shown) <= 200 else shown[:199] + "…"
    assert f'<span class="missing">{shown}</span>' in html
    assert "\x00" not in html
