"""The files of one `dragonfly-eval run`, found by its run id, and the `--model_args` that point
the harness at them.

Each run gets an id (`YYYYMMDDTHHMMSSZ-xxxxxx`, UTC, sortable) and a folder
`OUTPUT_PATH/dragonfly_runs/<id>/` holding:

- `resume.sqlite`: answers of finished requests (see `run_store.py`), read by `--resume`;
- `failures.jsonl`: requests that failed, as they happen (see `run_store.py`); turned into
  `<date>_failures.json` beside the run's results file at the end;
- `lock`: held (an OS file lock) while a process works on the run, so two processes never
  write one run's files; it goes away with the process, even after `kill -9`.

The results file of a run is the one whose `config.model_args` names the run's folder, never
"the newest file": two runs into one output folder each keep their own files.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import yaml
from rich.console import Console

from dragonfly_eval.errors import DragonflyEvalError
from dragonfly_eval.lmms_files.results import ResultsError, recorded_model_args
from dragonfly_eval.run_store import (
    ResumeStore,
    ResumeStoreError,
    count_answers,
    failures_file_for,
    read_failures,
    write_failures,
)
from dragonfly_eval.runner import cmdline, lmms_options
from dragonfly_eval.runner.report import print_failures

RUNS_DIR = "dragonfly_runs"
RESUME_STORE = "resume.sqlite"
FAILURE_LOG = "failures.jsonl"
LOCK_FILE = "lock"
CONFIG_COPY = "config.yaml"  # the --config file with the run's files added to its model_args
LATEST = "latest"


class RunError(DragonflyEvalError):
    """A run that cannot start (exit 2); the message names the run or file and the fix."""


@dataclass
class RunFolder:
    """One `dragonfly-eval run` (or a resumption of it): its id, folder and files."""

    output_path: Path
    run_id: str
    resumed: bool = False
    started: float = field(default_factory=time.time)
    lock: IO | None = field(default=None, repr=False)
    # The failure log and resume store the harness was told to keep, when the user's model_args
    # named their own.
    user_failure_log: Path | None = None
    user_resume_store: Path | None = None

    @property
    def folder(self) -> Path:
        return self.output_path / RUNS_DIR / self.run_id

    @property
    def resume_store(self) -> Path:
        return self.folder / RESUME_STORE

    @property
    def answers_store(self) -> Path:
        """The store the harness writes this run's answers to."""
        return self.user_resume_store or self.resume_store

    @property
    def failure_log(self) -> Path:
        return self.user_failure_log or self.folder / FAILURE_LOG


def option_value(args: list[str], name: str) -> Any:
    """The value lmms-eval reads for the option `name` (e.g. `--include_path`) in a command
    line: the last one given, in any form its parser accepts (`--name=value`, abbreviations);
    None when the option is not given, not one of lmms-eval's, or lmms-eval would refuse the
    command line."""
    action = lmms_options.parser()._option_string_actions.get(name)
    return cmdline.given(args).get(action.dest) if action else None


def _merged_model_args(current: str, defaults: dict[str, str]) -> str:
    """A `--model_args` value with `defaults` added, keeping any key it already gives."""
    for key, value in defaults.items():
        if "," in value:
            raise ValueError(f"{key}={value}: lmms-eval's --model_args cannot hold a comma")
    given = {part.split("=", 1)[0].strip() for part in current.split(",") if part}
    extra = ",".join(f"{k}={v}" for k, v in defaults.items() if k not in given)
    return f"{current},{extra}" if current and extra else current or extra


def with_option(args: list[str], name: str, value: str) -> list[str]:
    """`args` with lmms-eval's option `name` (e.g. `--config`) set to `value`, in whichever
    form the user wrote it (or added at the end: lmms-eval keeps the last)."""
    out = []
    skip = False
    for i, arg in enumerate(args):
        if skip:
            skip = False
        elif arg == name and i + 1 < len(args):
            out += [arg, value]
            skip = True
        elif arg.startswith(f"{name}="):
            out.append(f"{name}={value}")
        else:
            out.append(arg)
    action = lmms_options.parser()._option_string_actions[name]
    if cmdline.given(out).get(action.dest) != value:
        out += [name, value]  # e.g. an abbreviated option
    return out


def with_model_args(args: list[str], defaults: dict[str, str]) -> list[str]:
    """`args` with `defaults` added to the `--model_args` lmms-eval reads, keeping any key the
    user gave. Model args that only a --config file gives are left alone (a command-line
    value would replace them in every entry; `with_run_files` adds to those in the file)."""
    chosen = cmdline.given(args)
    if "model_args" not in chosen and "model_args" in cmdline.user_options(args):
        return list(args)
    current = chosen.get("model_args") or ""
    merged = _merged_model_args(current, defaults)
    return list(args) if merged == current else with_option(args, "--model_args", merged)


def with_config_model_args(args: list[str], defaults: dict[str, str], folder: Path) -> list[str]:
    """`args` with its --config file replaced by a copy in `folder` whose entries' model_args
    have `defaults` added (keeping any key an entry gives), for model args that only the
    config file gives."""
    config = cmdline.given(args)["config"]
    entries = cmdline.config_entries(config)
    for entry in entries:
        current = entry.get("model_args") or ""
        if isinstance(current, str):  # anything else lmms-eval refuses itself
            entry["model_args"] = _merged_model_args(current, defaults)
    copy = folder / CONFIG_COPY
    copy.write_text(yaml.safe_dump(entries, sort_keys=False), encoding="utf-8")
    return with_option(args, "--config", str(copy))


def say(console: Console, text: str) -> None:
    """One line as it is: no wrapping inside a path, no rich markup read into `[...]`."""
    console.print(text, markup=False, soft_wrap=True)


def harness_model_args(run: RunFolder) -> dict[str, str]:
    """The model args that make the harness keep the run's resume store and failure log."""
    return {"resume_store": str(run.resume_store), "failure_report": str(run.failure_log)}


def with_run_files(args: list[str], run: RunFolder) -> list[str]:
    """`args` with the run's harness args added to `--model_args` (or, where only the --config
    file gives model args, to those of each of its entries); a file the user named there wins,
    and the run then reads its failures from that file."""
    from lmms_eval.utils import simple_parse_args_string

    defaults = harness_model_args(run)
    chosen = cmdline.given(args)
    if "model_args" not in chosen and "model_args" in cmdline.user_options(args):
        merged = with_config_model_args(args, defaults, run.folder)
    else:
        merged = with_model_args(args, defaults)
    runs = cmdline.evaluations(merged)
    first = runs[0][0].model_args if runs else ""
    given = simple_parse_args_string(first) if isinstance(first, str) else {}
    report = given.get("failure_report", defaults["failure_report"])
    if Path(str(report)) != run.failure_log:
        run.user_failure_log = Path(str(report))
    store = given.get("resume_store", defaults["resume_store"])
    if Path(str(store)) != run.resume_store:
        run.user_resume_store = Path(str(store))
    return merged


def new_run_id() -> str:
    """A fresh run id: the UTC start time, then random hex (two runs in one second differ)."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(3)


def run_ids(output_path: str | Path) -> list[str]:
    """Ids of the runs kept under an output folder, oldest first."""
    runs = Path(output_path) / RUNS_DIR
    return sorted(p.name for p in runs.iterdir() if p.is_dir()) if runs.is_dir() else []


def _take_lock(run: RunFolder) -> bool:
    """Hold the run's lock file; False when another process holds it."""
    run.folder.mkdir(parents=True, exist_ok=True)
    handle = (run.folder / LOCK_FILE).open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return False
    handle.truncate(0)
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    run.lock = handle
    return True


def release(run: RunFolder) -> None:
    """Let go of the run's lock (its files stay)."""
    if run.lock is not None:
        run.lock.close()  # closing the file drops the lock
        run.lock = None


def _run_to_resume(output_path: Path, resume: str) -> RunFolder:
    """The run `--resume` names (an id, or LATEST: the newest run no process is working on)."""
    ids = run_ids(output_path)
    if resume != LATEST:
        if resume not in ids:
            known = ", ".join(ids[-5:]) or "none"
            raise RunError(
                f"--resume {resume}: no such run under {output_path / RUNS_DIR} "
                f"(newest runs there: {known})"
            )
        run = RunFolder(output_path, resume, resumed=True)
        if not _take_lock(run):
            raise RunError(f"run {resume} is in use by another process ({run.folder / LOCK_FILE})")
        return run
    for run_id in reversed(ids):
        run = RunFolder(output_path, run_id, resumed=True)
        if run.resume_store.is_file() and _take_lock(run):
            return run
    return RunFolder(output_path, new_run_id())


def _check_store(run: RunFolder) -> None:
    """Refuse, before any model loads, a resume store SQLite cannot read."""
    if not run.resume_store.is_file():
        return
    try:
        ResumeStore(run.resume_store).close()
    except ResumeStoreError as err:
        release(run)
        raise RunError(str(err)) from err


def start_run(output_path: str | Path, resume: str | None, console: Console) -> RunFolder:
    """A new run, or with `resume` (a run id or LATEST) the run it continues; its folder is
    locked for this process. Raises `RunError` when that run cannot be used."""
    output_path = Path(output_path).resolve()
    run = _run_to_resume(output_path, resume) if resume else RunFolder(output_path, new_run_id())
    if run.lock is None and not _take_lock(run):  # a new id: only a clash of ids gets here
        raise RunError(f"run {run.run_id} is in use by another process")
    _check_store(run)
    if run.resumed:
        say(console, f"dragonfly-eval: resuming run {run.run_id} ({run.folder})")
    else:
        if resume:
            say(console, f"dragonfly-eval: no earlier run under {output_path} to resume")
        say(console, f"dragonfly-eval: run {run.run_id} ({run.folder})")
    return run


def owns(run: RunFolder, results_file: Path) -> bool:
    """Whether a results file was written by `run`: after it started, and (for the dragonfly
    model, whose model_args name the run's folder) with this run's model_args. Anything but a
    readable regular results file (a FIFO, a link to /dev/zero) is not the run's."""
    try:
        if results_file.stat().st_mtime < run.started - 1:
            return False
        model_args = recorded_model_args(results_file)
    except (OSError, ResultsError):
        return False
    if model_args is None:
        return False
    claimed = f"/{RUNS_DIR}/" in model_args
    return str(run.folder) in model_args if claimed else True


def run_results(run: RunFolder) -> list[Path]:
    """The results files `run` wrote under its output folder."""
    if not run.output_path.is_dir():
        return []
    return sorted(p for p in run.output_path.rglob("[0-9]*_results.json") if owns(run, p))


def finish_run(run: RunFolder, results_files: list[Path], console: Console) -> list[dict]:
    """Print the run's failure table and write it as JSON beside each of its results files;
    say "No request failed." only for a run that wrote results (one that never started
    answered nothing)."""
    failures = read_failures(run.failure_log)
    targets = [failures_file_for(results) for results in results_files]
    for target in targets:
        write_failures(failures, target)
    if failures or results_files:
        print_failures(failures, console)
    for target in targets:
        say(console, f"dragonfly-eval: failure report written to {target}")
    return failures


def stored_answers(run: RunFolder) -> int:
    """How many answers the run's resume store holds (what `--resume` would not compute again)."""
    return count_answers(run.answers_store)


def discard_if_empty(run: RunFolder) -> None:
    """Remove the folder of a run that this process started and that kept nothing: no stored
    answer, no failure, no results file (a run that failed at once leaves no trace)."""
    if run.resumed or stored_answers(run) or read_failures(run.failure_log) or run_results(run):
        return
    release(run)
    shutil.rmtree(run.folder, ignore_errors=True)
    runs = run.folder.parent
    if runs.is_dir() and not any(runs.iterdir()):
        runs.rmdir()


def remove_earlier_results(run: RunFolder) -> list[Path]:
    """Remove the results files an earlier part of a resumed run wrote (and their sample logs
    and failure reports), keeping those of this part; returns what was removed."""
    if not run.resumed or not run.output_path.is_dir():
        return []
    removed = []
    for results in run.output_path.rglob("[0-9]*_results.json"):
        if owns(run, results) or not _names_run(run, results):
            continue
        stem = results.name.removesuffix("_results.json")
        for path in [results, *results.parent.glob(f"{stem}_samples_*.jsonl")]:
            path.unlink(missing_ok=True)
            removed.append(path)
        failures = failures_file_for(results)
        if failures.is_file():
            failures.unlink()
            removed.append(failures)
    return removed


def _names_run(run: RunFolder, results_file: Path) -> bool:
    """Whether a results file's model_args name the run's folder (it is the run's, from any
    part of it)."""
    try:
        model_args = recorded_model_args(results_file)
    except ResultsError:
        return False
    return model_args is not None and str(run.folder) in model_args
