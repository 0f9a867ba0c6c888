"""Hostile or broken results files: each is skipped and listed, never a crash or a hang."""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dragonfly_eval.cli import main as run_cli
from dragonfly_eval.leaderboard.board.markdown import render_markdown
from dragonfly_eval.leaderboard.board.table import build_table
from dragonfly_eval.lmms_files import results

GOOD = {"dragonfly_ai2d": {"exact_match,flexible-extract": 0.5}}


@pytest.fixture(autouse=True)
def no_hang() -> Iterator[None]:
    """A FIFO that is opened blocks forever: fail the test instead of hanging the suite."""

    def fail(signum, frame):
        raise TimeoutError("reading the results blocked")

    previous = signal.signal(signal.SIGALRM, fail)
    signal.alarm(60)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def _results_text(metric: str, date: str = '"20240101_000000"') -> str:
    entry = '{"dragonfly_ai2d": {"exact_match,flexible-extract": ' + metric + "}}"
    return '{"results": ' + entry + ', "date": ' + date + "}"


BAD_FILES = {
    "int400_results.json": (_results_text("1" * 400), "does not fit a float"),
    "int5000_results.json": (_results_text("7" * 5000), "does not fit a float"),
    "deep_results.json": (
        '{"results": {"t": {"a,none": ' + "[" * 200_000 + "]" * 200_000 + "}}}",
        "nested too deeply",
    ),
    "date_1e20_results.json": (_results_text("0.5", "1e20"), "is not a date"),
    "date_word_results.json": (_results_text("0.5", '"garbled"'), "is not a date"),
    "date_month13_results.json": (_results_text("0.5", '"20241345_000000"'), "is not a date"),
    "date_list_results.json": (_results_text("0.5", "[2024]"), "is not a date"),
    "date_bool_results.json": (_results_text("0.5", "true"), "is not a date"),
    "date_nan_results.json": (_results_text("0.5", "NaN"), "is not a date"),
    "date_nested_results.json": (_results_text("0.5", "[" * 900 + "]" * 900), "is not a date"),
    "zone_results.json": (
        json.dumps(
            {
                "results": {"t": {"a,none": 1}},
                "config": {"resolved_cli_args": {"timezone": "Mars/Olympus"}},
            }
        ),
        "unknown time zone",
    ),
}


def _bad_folder(tmp_path: Path, write_run) -> tuple[Path, dict[str, str]]:
    """One good run and every bad file beside it; returns the folder and name -> reason."""
    folder = tmp_path / "out"
    write_run("org/good", "20240101_000000", GOOD, root=folder)
    bad = folder / "bad"
    bad.mkdir()
    reasons = {}
    for name, (text, reason) in BAD_FILES.items():
        (bad / name).write_text(text)
        reasons[name] = reason
    os.mkfifo(bad / "fifo_results.json")
    reasons["fifo_results.json"] = "not a regular file"
    (bad / "zero_results.json").symlink_to("/dev/zero")
    reasons["zero_results.json"] = "not a regular file"
    (bad / "huge_results.json").write_text(_results_text("0.5") + " " * 2**20)
    reasons["huge_results.json"] = "larger than"
    return folder, reasons


@pytest.fixture
def small_cap(monkeypatch):
    """A 1 MiB cap, so that the oversized file stays small (the deep one is 400 kB)."""
    monkeypatch.setattr(results, "MAX_RESULTS_BYTES", 2**20, raising=False)


def test_every_bad_file_is_skipped_and_listed_beside_a_good_one(
    tmp_path, write_run, suite, small_cap
):
    folder, reasons = _bad_folder(tmp_path, write_run)
    table = build_table([folder], suite)
    assert [r.name for r in table.rows] == ["org/good"]
    assert len(table.problems) == len(reasons)
    for name, reason in reasons.items():
        (line,) = [p for p in table.problems if f"/{name}:" in p]
        assert reason in line, line
    markdown = render_markdown(table)
    assert "| org/good |" in markdown
    skipped = markdown.split("Skipped inputs:")[1]
    assert all(name in skipped for name in reasons)


def test_the_cli_warns_once_per_bad_file_and_lists_them_at_a_terminal(
    tmp_path, write_run, suite_file, capsys, monkeypatch, small_cap
):
    folder, reasons = _bad_folder(tmp_path, write_run)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    monkeypatch.setenv("COLUMNS", "400")  # long paths are not wrapped mid-name
    assert run_cli(["leaderboard", str(folder), "--suite-file", str(suite_file)]) == 0
    out, err = capsys.readouterr()
    assert len(err.strip().splitlines()) == len(reasons)
    assert "Skipped inputs:" in out and "good" in out
    for name in reasons:
        assert name in out


@pytest.mark.parametrize("name", ["int400_results.json", "fifo_results.json", "deep_results.json"])
def test_regress_with_a_bad_file_on_one_side_exits_2_with_the_reason(
    tmp_path, write_run, suite_file, capsys, name, small_cap
):
    folder, reasons = _bad_folder(tmp_path, write_run)
    good = next(folder.rglob("20240101_000000_results.json"))
    argv = ["regress", "--baseline", str(good), "--current", str(folder / "bad" / name)]
    assert run_cli([*argv, "--suite-file", str(suite_file)]) == 2
    err = capsys.readouterr().err
    assert "current has no usable results" in err and reasons[name] in err


def test_a_fifo_given_as_the_path_is_refused_not_opened(tmp_path, suite):
    fifo = tmp_path / "x_results.json"
    os.mkfifo(fifo)
    loaded = results.load_runs([fifo])
    assert loaded.runs == [] and "not a regular file" in loaded.problems[0]


def test_huge_numbers_inside_a_good_file_never_reach_a_float(tmp_path):
    path = tmp_path / "m" / "r_results.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"results": {"t": {"a,none": 0.5, "b,none": 1e308}}}))
    assert results.read_run(path).tasks == {"t": {"a,none": 0.5, "b,none": 1e308}}


def test_control_characters_in_a_file_name_never_reach_the_terminal(
    tmp_path, write_run, suite_file, capsys
):
    folder, _ = _bad_folder(tmp_path, write_run)
    (folder / "bad" / "x\x1b[2J\rname_results.json").write_text("{nope")
    assert run_cli(["leaderboard", str(folder), "--suite-file", str(suite_file)]) == 0
    out, err = capsys.readouterr()
    assert "x [2J name_results.json" in err
    assert "\x1b" not in err + out and "\r" not in err + out


def test_a_folder_that_cannot_be_listed_is_a_skipped_input(tmp_path, monkeypatch):
    def refuse(self, pattern):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "rglob", refuse)
    loaded = results.load_runs([tmp_path])
    assert loaded.runs == [] and "cannot list: Permission denied" in loaded.problems[0]


def test_a_group_chain_nested_thousands_deep_does_not_recurse(tmp_path, suite):
    chain = {f"g{i}": [f"g{i + 1}"] for i in range(5000)}
    chain["g5000"] = ["dragonfly_ai2d"]
    path = tmp_path / "m" / "r_results.json"
    path.parent.mkdir()
    payload = {
        "results": {"g0": {"exact_match,flexible-extract": 0.5}, **{k: {} for k in chain}},
        "group_subtasks": chain,
        "n-samples": {"dragonfly_ai2d": {"original": 10, "effective": 3}},
    }
    path.write_text(json.dumps(payload))
    run = results.read_run(path)
    assert run.documents("g0").effective is None and run.documents("g4990").effective == 3
    build_table([path], suite)
