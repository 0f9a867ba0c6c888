"""`dragonfly-eval run` (lmms-eval with this project's tasks) and `dragonfly-eval demo`."""

from __future__ import annotations

import argparse
import codecs
import os
import re
import subprocess
import sys
from pathlib import Path

from rich.console import Console

from dragonfly_eval.harness import progress, runfiles
from dragonfly_eval.harness.taskcheck import check_task_folder
from dragonfly_eval.paths import task_yaml_dir

DEMO_TASKS = "dragonfly_mini"
DEMO_MODEL_ARGS = "pretrained=dragonfly-tiny,device=cpu,batch_size=4"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `run` and `demo` subcommands."""
    run = subparsers.add_parser(
        "run",
        help="run lmms-eval with the dragonfly_* tasks available",
        description=(
            "Run lmms-eval with --include_path set to this project's task YAMLs and --model "
            "dragonfly by default. Every other argument goes to lmms-eval unchanged. Exits "
            "non-zero when lmms-eval wrote no results file with numbers (it exits 0 even when "
            "an evaluation failed)."
        ),
    )
    run.add_argument("--output_path", default="results", help="lmms-eval output folder")
    run.add_argument(
        "--resume",
        nargs="?",
        const=runfiles.LATEST,
        metavar="RUN_ID",
        help=(
            "continue an interrupted run of the same command: answers the harness stored after "
            "each batch (OUTPUT_PATH/dragonfly_runs/RUN_ID/resume.sqlite) are not computed "
            "again. RUN_ID is printed when a run starts; without it, the newest run that no "
            "other process is working on. Also turns on lmms-eval's --use_cache, which only "
            "stores a request type once all its requests are done. Without --resume each run "
            "gets a new id and a new store."
        ),
    )
    run.set_defaults(handler=run_command)

    demo = subparsers.add_parser(
        "demo",
        help="offline demo: the mini suite on the embedded tiny model, then a leaderboard",
    )
    demo.add_argument("--output", default="dragonfly-demo", help="folder for results and tables")
    demo.set_defaults(handler=demo_command)


def lmms_eval_command(extra: list[str], output_path: str, resume: bool) -> list[str]:
    """The lmms-eval command line for `extra` user arguments."""
    given = {
        name
        for name in ("--model", "--include_path", "--use_cache")
        if runfiles.option_value(extra, name) is not None
    }
    cmd = [sys.executable, "-m", "lmms_eval"]
    if "--model" not in given:
        cmd += ["--model", "dragonfly"]
    if "--include_path" not in given:
        cmd += ["--include_path", str(task_yaml_dir())]
    cmd += ["--output_path", output_path]
    if resume and "--use_cache" not in given:
        cmd += ["--use_cache", str(Path(output_path) / "cache" / "responses")]
    return cmd + extra


def uses_dragonfly(extra: list[str]) -> bool:
    """Whether the run evaluates this project's model class (the default)."""
    return (runfiles.option_value(extra, "--model") or "dragonfly") == "dragonfly"


def unsafe_task_code(extra: list[str]) -> list[str]:
    """Problems with the code the task YAMLs of the run's --include_path would execute."""
    folder = runfiles.option_value(extra, "--include_path") or str(task_yaml_dir())
    return check_task_folder(Path(folder))


def has_numbers(results_file: Path) -> bool:
    """Whether a results file holds at least one finite numeric metric (read the way the
    leaderboard reads it; a captioning task's submission file is not a results file)."""
    from dragonfly_eval.leaderboard.results import ResultsError, read_run

    try:
        run = read_run(results_file)
    except ResultsError:
        return False
    return any(run.tasks.values())


def dataset_hints(log: str) -> list[str]:
    """For datasets lmms-eval could not reach, which task uses them and how to point it at a
    local copy. lmms-eval's error names the dataset id ("Couldn't reach '<id>'"), not the task."""
    from dragonfly_eval.tasks.catalog import task_configs, tasks_using_dataset

    unreachable = set(re.findall(r"Couldn't reach '([^']+)'", log))
    if re.search(r"(ConnectionError|LocalEntryNotFound|offline mode)", log):
        unreachable |= {
            c["dataset_path"]
            for c in task_configs().values()
            if isinstance(c.get("dataset_path"), str) and c["dataset_path"] in log
        }
    hints = []
    for dataset in sorted(unreachable):
        for name in tasks_using_dataset(dataset) or ["(a task outside task_yaml/)"]:
            hints.append(
                f"task {name}: dataset {dataset} is not reachable. Download it where you have "
                f"network (`huggingface-cli download --repo-type dataset {dataset} --local-dir "
                "DIR`) and set `dataset_path: DIR` in that task's YAML under "
                f"{task_yaml_dir()}, or point HF_DATASETS_CACHE at a cache that holds it."
            )
    return hints


def run_lmms_eval(
    extra: list[str], output_path: str, resume: str | None = None
) -> tuple[int, list[Path]]:
    """Run lmms-eval, streaming its output; returns (exit code, results files the run wrote).
    `resume` is the id of the run to continue (or `runfiles.LATEST`)."""
    problems = unsafe_task_code(extra)
    if problems:
        for problem in problems:
            print(f"dragonfly-eval: refusing to run: {problem}", file=sys.stderr)
        return 2, []
    console = Console(stderr=True)
    try:
        run = runfiles.start_run(output_path, resume, console)
    except runfiles.RunError as err:
        print(f"dragonfly-eval: {err}", file=sys.stderr)
        return 2, []
    if uses_dragonfly(extra):
        extra = runfiles.with_run_files(extra, run)
    cmd = lmms_eval_command(extra, output_path, resume is not None)
    print("+ " + " ".join(cmd), file=sys.stderr)
    try:
        code, log = relay(cmd)
        written = [p for p in runfiles.run_results(run) if has_numbers(p)]
        if uses_dragonfly(extra):
            runfiles.finish_run(run, written, console)
    finally:
        runfiles.release(run)
    if code != 0:
        return code, written
    if not written:
        print(
            f"dragonfly-eval: lmms-eval wrote no results file with numbers under {output_path} "
            "(the evaluation failed; see the log above)",
            file=sys.stderr,
        )
        for hint in dataset_hints(log):
            print(f"dragonfly-eval: {hint}", file=sys.stderr)
        if uses_dragonfly(extra):
            print(
                "dragonfly-eval: the answers this run finished are kept; add "
                f"`--resume {run.run_id}` to the same command to continue it",
                file=sys.stderr,
            )
        return 1, []
    return 0, written


def last_redraw(line: str) -> str:
    """What a line redrawn with carriage returns (a progress bar) finally shows."""
    return line.rstrip("\r").rsplit("\r", 1)[-1]


def relay(cmd: list[str]) -> tuple[int, str]:
    """Run `cmd`, copying its output to stderr as it comes; returns (exit code, its output).
    At a terminal, carriage returns pass through, so progress bars redraw in place; elsewhere
    each line is written once in its last state (one line per bar, not one per refresh)."""
    tty = sys.stderr.isatty()
    env = {**os.environ, progress.MODE_ENV: "tty" if tty else "lines"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    assert proc.stdout is not None
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    log, pending = [], ""
    while chunk := proc.stdout.read1(1 << 16):
        text = decoder.decode(chunk)
        log.append(text)
        if tty:
            sys.stderr.write(text)
            sys.stderr.flush()
            continue
        *lines, pending = (pending + text).split("\n")
        for line in lines:
            sys.stderr.write(last_redraw(line) + "\n")
    if pending and not tty:
        sys.stderr.write(last_redraw(pending) + "\n")
    return proc.wait(), "".join(log)


def run_command(args: argparse.Namespace) -> int:
    """`dragonfly-eval run ...`."""
    code, written = run_lmms_eval(args.lmms_eval_args, args.output_path, args.resume)
    for path in written:
        print(f"dragonfly-eval: results written to {path}", file=sys.stderr)
    return code


def demo_command(args: argparse.Namespace) -> int:
    """`dragonfly-eval demo`: mini suite on dragonfly-tiny, then the leaderboard."""
    from rich.console import Console

    from dragonfly_eval.leaderboard.markdown import render_markdown
    from dragonfly_eval.leaderboard.plot import plot
    from dragonfly_eval.leaderboard.reference import default_reference_path, load_reference
    from dragonfly_eval.leaderboard.suite import load_suite
    from dragonfly_eval.leaderboard.table import build_table
    from dragonfly_eval.leaderboard.terminal import print_leaderboard

    out = Path(args.output)
    results = out / "results"
    code, written = run_lmms_eval(
        ["--model_args", DEMO_MODEL_ARGS, "--tasks", DEMO_TASKS, "--log_samples"], str(results)
    )
    if code != 0:
        return code
    reference = default_reference_path()
    table = build_table(
        written, load_suite(), ["mini"], load_reference(reference) if reference else []
    )
    markdown = render_markdown(table)
    (out / "leaderboard.md").write_text(markdown)
    plot(table, out / "leaderboard.png")
    console = Console()
    if console.is_terminal:
        print_leaderboard(table, console)
    else:
        print(markdown)
    console.print(f"Wrote {out / 'leaderboard.md'} and {out / 'leaderboard.png'}")
    return 0
