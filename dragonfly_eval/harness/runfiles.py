"""The files `dragonfly-eval run` keeps under the output folder for the harness, and the
`--model_args` that point the harness at them.

- `dragonfly_resume.sqlite`: answers of finished requests (see `resume.py`); kept for `--resume`,
  started afresh otherwise.
- `dragonfly_failures.jsonl`: requests that failed, as they happen (see `report.py`); turned
  into `<date>_failures.json` beside each results file at the end.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console

from dragonfly_eval.harness import cmdline
from dragonfly_eval.harness.report import (
    failures_file_for,
    print_failures,
    read_failures,
    write_failures,
)

RESUME_STORE = "dragonfly_resume.sqlite"
FAILURE_LOG = "dragonfly_failures.jsonl"


def option_value(args: list[str], name: str) -> Any:
    """The value lmms-eval reads for the option `name` (e.g. `--include_path`) in a command
    line: the last one given, in any form its parser accepts (`--name=value`, abbreviations);
    None when the option is not given, not one of lmms-eval's, or lmms-eval would refuse the
    command line."""
    action = cmdline.lmms_eval_parser()._option_string_actions.get(name)
    return cmdline.given(args).get(action.dest) if action else None


def with_model_args(args: list[str], defaults: dict[str, str]) -> list[str]:
    """`args` with `defaults` added to the `--model_args` lmms-eval reads, keeping any key the
    user gave. Model args that only a --config file gives are left alone (a command-line
    value would replace them in every entry)."""
    for key, value in defaults.items():
        if "," in value:
            raise ValueError(f"{key}={value}: lmms-eval's --model_args cannot hold a comma")
    chosen = cmdline.given(args)
    if "model_args" not in chosen and "model_args" in cmdline.user_options(args):
        return list(args)
    current = chosen.get("model_args") or ""
    given = {part.split("=", 1)[0].strip() for part in current.split(",") if part}
    extra = ",".join(f"{k}={v}" for k, v in defaults.items() if k not in given)
    if not extra:
        return list(args)
    merged = f"{current},{extra}" if current else extra
    out = []
    skip = False
    for i, arg in enumerate(args):
        if skip:
            skip = False
        elif arg == "--model_args" and i + 1 < len(args):
            out += [arg, merged]
            skip = True
        elif arg.startswith("--model_args="):
            out.append(f"--model_args={merged}")
        else:
            out.append(arg)
    if cmdline.given(out).get("model_args") != merged:
        out += ["--model_args", merged]  # e.g. an abbreviated option: lmms-eval keeps the last
    return out


def harness_model_args(output_path: str | Path) -> dict[str, str]:
    """The model args that make the harness keep its resume store and failure log."""
    out = Path(output_path).resolve()
    return {"resume_store": str(out / RESUME_STORE), "failure_report": str(out / FAILURE_LOG)}


def start_run(output_path: str | Path, resume: bool) -> None:
    """Remove the last run's failure log, and its resume store unless resuming."""
    out = Path(output_path)
    stale = [out / FAILURE_LOG, *out.glob(FAILURE_LOG + ".rank*")]
    if not resume:
        stale += [out / (RESUME_STORE + suffix) for suffix in ("", "-wal", "-shm")]
    for path in stale:
        path.unlink(missing_ok=True)


def finish_run(output_path: str | Path, results_files: list[Path], console: Console) -> list[dict]:
    """Print the failure table and write it as JSON beside each results file."""
    failures = read_failures(Path(output_path) / FAILURE_LOG)
    print_failures(failures, console)
    for results in results_files:
        target = failures_file_for(results)
        write_failures(failures, target)
        console.print(f"dragonfly-eval: failure report written to {target}")
    return failures
