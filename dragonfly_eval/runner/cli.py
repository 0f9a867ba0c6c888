"""`dragonfly-eval run` (lmms-eval with this project's tasks) and `dragonfly-eval demo`."""

from __future__ import annotations

import argparse
import codecs
import dataclasses
import os
import re
import shlex
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from rich.console import Console

from dragonfly_eval import progress
from dragonfly_eval.paths import task_yaml_dir
from dragonfly_eval.runner import cmdline, runfiles
from dragonfly_eval.runner.preflight import (
    LISTINGS,
    TRUST_FLAG,
    Problem,
    TaskSpec,
    hub_layout_route,
    is_local_dataset,
    resolve_tasks,
    task_listing,
    task_problems,
    unknown_tasks,
)
from dragonfly_eval.runner.taskcheck import TaskCheckError, check_command, plugin_problem

# lmms-eval's command line, with its prompt templates rendered in jinja2's sandbox
LMMS_EVAL = (sys.executable, "-m", "dragonfly_eval.runner.lmms_main")
# the dragonfly model's check of --model_args and of the checkpoint they name, reading no
# tensor (a child process: the runner never imports torch)
MODEL_ARGS_CHECK = (sys.executable, "-m", "dragonfly_eval.harness.argcheck")
# The command that continues an interrupted run, given its id (None: nothing was stored).
Again = Callable[[str | None], str]
INTERRUPTED = 130  # the exit code of a program ended by SIGINT (128 + 2)


# this project's lmms-eval models: one adapter in front of its own engine or of vLLM
DRAGONFLY_MODELS = ("dragonfly", "dragonfly_vllm")
DEMO_TASKS = "dragonfly_mini"
# the demo's model_args on each engine
DEMO_MODELS = {
    "dragonfly": "pretrained=dragonfly-tiny,device=cpu,batch_size=4",
    "dragonfly_vllm": "pretrained=dragonfly-tiny,dtype=float32",
}
# vLLM on the CPU takes its KV cache from this variable (GiB); dragonfly-tiny's 1 KB per
# position needs far less than one
DEMO_VLLM_ENV = {"VLLM_CPU_KVCACHE_SPACE": "1"}
DEMO_ZOOM_TASK, DEMO_ZOOM_BENCHMARK = "dragonfly_mini_fine", "mini_fine"
DEMO_SUMMARY = (
    "What the numbers mean: dragonfly-tiny is a 0.2M-parameter Dragonfly trained for about 19 "
    "minutes on 2 CPU cores (`python -m dragonfly_eval.tiny.train`) on rendered scenes of the mini "
    "suite's kinds, drawn from another seed. Chance is 25% on the four-way questions (multiple "
    "choice, fine detail), about 23% on the charts, about 22% (ANLS) on the documents, 50% "
    "accuracy on yes/no and about 13% on the signs; a score above chance was read from the "
    "image. The scores say nothing about the released checkpoints."
)


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
    run.add_argument(
        TRUST_FLAG,
        action="store_true",
        help=(
            "run tasks whose code hands the dataset's strings to a shell (lmms-eval's HD-EPIC "
            "doc_to_visual runs ffmpeg with each row's video_dir; `dataset_kwargs: "
            "From_YouTube` runs yt-dlp with each row's videoID), refused without it: a "
            "dataset row can then run any command, so give it only for datasets you vetted"
        ),
    )
    run.set_defaults(handler=run_command)

    demo = subparsers.add_parser(
        "demo",
        help="offline demo: the mini suite on the embedded tiny model, then a leaderboard",
        description=(
            "The mini suite on the embedded dragonfly-tiny model (CPU, offline), its "
            "leaderboard, and the fine-detail task again at zoom=low. A demo continues the "
            "newest interrupted demo in its folder: stored answers are not computed again, "
            "and the folder keeps one set of results files per run."
        ),
    )
    demo.add_argument(
        "--output_path",
        "--output",
        dest="output_path",
        default="dragonfly-demo",
        metavar="DIR",
        help="folder for the results, leaderboard.md/.png and zoom.md/.png (default "
        "dragonfly-demo; --output is the old spelling)",
    )
    demo.add_argument(
        "--resume",
        action="store_true",
        help="continue the newest interrupted demo in the folder (what a demo does anyway)",
    )
    demo.add_argument(
        "--model",
        choices=tuple(DEMO_MODELS),
        default="dragonfly",
        help="the lmms-eval model: dragonfly (this project's engine, default) or dragonfly_vllm "
        "(vLLM, float32 on the CPU); both give the same answers",
    )
    demo.set_defaults(handler=demo_command)


def lmms_eval_command(extra: list[str], output_path: str, resume: bool) -> list[str]:
    """The lmms-eval command line for `extra` user arguments (results dated in UTC unless they
    give --timezone)."""
    given = cmdline.user_options(extra)
    cmd = list(LMMS_EVAL)
    if "model" not in given:
        cmd += ["--model", "dragonfly"]
    if "include_path" not in given:
        cmd += ["--include_path", str(task_yaml_dir())]
    cmd += ["--output_path", output_path]
    if "timezone" not in given:  # results files dated in UTC, as run ids are
        cmd += ["--timezone", "UTC"]
    if resume and "use_cache" not in given:
        cmd += ["--use_cache", str(Path(output_path) / "cache" / "responses")]
    return cmd + extra


def uses_dragonfly(extra: list[str]) -> bool:
    """Whether the run evaluates one of this project's model classes: the default, unless the
    command line or its --config file names another."""
    if "model" not in cmdline.user_options(extra):
        return True
    try:
        runs = cmdline.evaluations(extra)
    except TaskCheckError:
        return False  # the task guard refuses the config file
    return bool(runs) and all(args.model in DRAGONFLY_MODELS for args, _ in runs)


def environment_problem() -> str | None:
    """Why this process's environment must not reach lmms-eval (LMMS_EVAL_PLUGINS naming
    another package), or None. Checked before anything imports lmms-eval, which imports those
    plugins itself."""
    return plugin_problem(os.environ.get("LMMS_EVAL_PLUGINS", ""))


def environment_refusal() -> int | None:
    """Exit code 2, with one line saying why, when `environment_problem` finds one; else None."""
    problem = environment_problem()
    if problem is None:
        return None
    print(f"dragonfly-eval: refusing to run: {problem}", file=sys.stderr)
    return 2


def dragonfly_model_args(lmms_args: list[str]) -> list[str]:
    """The --model_args of each evaluation of an lmms-eval command line (its --config entries
    included) that runs the `dragonfly` model."""
    try:
        runs = cmdline.evaluations(lmms_args)
    except TaskCheckError:
        return []  # the task guard refuses the config file
    return [
        args.model_args or ""
        for args, _ in runs
        if args.model == "dragonfly" and isinstance(args.model_args or "", str)
    ]


class ModelCheck:
    """The `dragonfly` model's check of planned runs' --model_args (names, values, checkpoint,
    zoom: `harness/argcheck.py`), in a child process (the runner never imports torch) that is
    started at once, so that its seconds of imports pass while the rest is checked."""

    def __init__(self, model_args: list[str]) -> None:
        self._proc = (
            subprocess.Popen(
                [*MODEL_ARGS_CHECK, *model_args],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            if model_args
            else None
        )

    def problems(self) -> list[str]:
        """One line per problem the check found (waits for it)."""
        if self._proc is None:
            return []
        out, err = self._proc.communicate()
        if self._proc.returncode == 0:
            return []
        last = (err.strip().splitlines() or ["no message"])[-1]
        return out.strip().splitlines() or [f"the model_args check failed: {last}"]

    def __enter__(self) -> ModelCheck:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()


def model_args_problems(model_args: list[str]) -> list[str]:
    """What the `dragonfly` model would refuse in each planned run's --model_args (names,
    values, the checkpoint, a zoom the checkpoint's version lacks), found before any run
    starts."""
    with ModelCheck(model_args) as check:
        return check.problems()


def argument_problems(lmms_args: list[str]) -> tuple[int, list[str]] | None:
    """(exit code, problems) when lmms-eval would refuse `lmms_args`: its parser (which prints
    its own usage message; no problem lines then) or an option value it checks only once
    started; None when it would take them."""
    refused = cmdline.usage_refusal(lmms_args)
    if refused is not None:
        return refused, []
    problems = cmdline.value_problems(lmms_args)
    return (2, problems) if problems else None


def unsafe_task_code(lmms_args: list[str]) -> list[str]:
    """Problems with the code the task YAMLs of an lmms-eval command line would execute."""
    return check_command(lmms_args)


def has_numbers(results_file: Path) -> bool:
    """Whether a results file holds at least one finite numeric metric (read the way the
    leaderboard reads it; a captioning task's submission file is not a results file)."""
    from dragonfly_eval.lmms_files.results import ResultsError, read_run

    try:
        run = read_run(results_file)
    except ResultsError:
        return False
    return any(run.tasks.values())


def run_tasks(extra: list[str]) -> list[TaskSpec]:
    """The tasks a run's --tasks select, resolved as lmms-eval resolves them (with the run's
    --include_path, else this project's task YAMLs)."""
    names = (runfiles.option_value(extra, "--tasks") or "").split(",")
    include_path = runfiles.option_value(extra, "--include_path") or str(task_yaml_dir())
    return resolve_tasks([name.strip() for name in names if name.strip()], include_path)


def preflight_problems(extra: list[str], trust_dataset_commands: bool = False) -> list[Problem]:
    """What the run's tasks need that this machine lacks, and task code that would hand the
    dataset's strings to a shell (unless `trust_dataset_commands`). Not looked for while the
    task folder holds code it must not run: run_lmms_eval refuses that first, with its own
    message."""
    if unsafe_task_code(extra):
        return []
    return task_problems(run_tasks(extra), trust_dataset_commands)


def refuse(problems: list[Problem]) -> int:
    """Print why the run cannot start; returns exit code 2."""
    for problem in problems:
        print(f"dragonfly-eval: cannot start: {problem.message}", file=sys.stderr)
    print("dragonfly-eval: nothing was run; fix the above, then start again", file=sys.stderr)
    return 2


def dataset_hints(log: str, tasks: list[TaskSpec]) -> list[str]:
    """For the run's tasks whose dataset lmms-eval could not reach, the YAML that defines the
    task and how to give it a local copy. lmms-eval's error names the dataset id ("Couldn't
    reach '<id>'"), not the task; only the run's own datasets are looked for in the log, so the
    source lines a traceback quotes never count."""
    reached_for = set(re.findall(r"Couldn't reach '([^']+)'", log))
    offline = re.search(r"(ConnectionError|LocalEntryNotFound|offline mode)", log) is not None
    hints = []
    for task in tasks:
        dataset = task.config.get("dataset_path")
        if not isinstance(dataset, str) or is_local_dataset(task.config):
            continue
        if dataset in reached_for or (offline and dataset in log):
            hints.append(
                f"task {task.name}: dataset {dataset} is not reachable. For a local copy, "
                f"{hub_layout_route(dataset)}; or set `dataset_path` in {task.yaml_path} to a "
                "local copy."
            )
    return hints


def missing_tasks(lmms_args: list[str]) -> list[str]:
    """A line for each --tasks name (of every evaluation, --config entries included) that
    lmms-eval would not find, with the nearest known names; looked up in the cached task index,
    in seconds, where lmms-eval finds it out after half a minute of start-up."""
    try:
        runs = cmdline.evaluations(lmms_args)
    except TaskCheckError:
        return []  # the task guard refuses the config file
    lines = []
    for args, _ in runs:
        if isinstance(args.tasks, str) and isinstance(args.include_path, str | None):
            lines += unknown_tasks(args.tasks, args.include_path)
    return list(dict.fromkeys(lines))


def start_refusal(lmms_args: list[str], model_check: ModelCheck | None) -> int | None:
    """Print why lmms-eval must not start with `lmms_args` (its parser's refusal, a value it
    checks only once started, task code the guard refuses, a task it would not find, what the
    model check found) and return the exit code; None when it may start."""
    refused = argument_problems(lmms_args)
    if refused is not None:
        for problem in refused[1]:
            print(f"dragonfly-eval: cannot start: {problem}", file=sys.stderr)
        return refused[0]
    problems = unsafe_task_code(lmms_args)
    if problems:
        for problem in problems:
            print(f"dragonfly-eval: refusing to run: {problem}", file=sys.stderr)
        return 2
    problems = missing_tasks(lmms_args) + (model_check.problems() if model_check else [])
    for problem in problems:
        print(f"dragonfly-eval: cannot start: {problem}", file=sys.stderr)
    return 2 if problems else None


def run_lmms_eval(
    extra: list[str],
    output_path: str,
    resume: str | None = None,
    model_check: ModelCheck | None = None,
    again: Again | None = None,
    replace_earlier: bool = False,
) -> tuple[int, list[Path]]:
    """Run lmms-eval, streaming its output; returns (exit code, results files the run wrote).
    `resume` is the id of the run to continue (or `runfiles.LATEST`); `model_check` the check
    of the run's --model_args, started by the caller. `again` gives the command that continues
    the run after Ctrl-C (the same command with `--resume <id>` when not given);
    `replace_earlier` removes the files an earlier part of a resumed run wrote once this part
    wrote its own (the demo's and ablate's folders keep one set per run)."""
    # The checks read the command line lmms-eval will get (the run's own files, added below,
    # name no task code).
    lmms_args = lmms_eval_command(extra, output_path, resume is not None)[len(LMMS_EVAL) :]
    refused = start_refusal(lmms_args, model_check)
    if refused is not None:
        return refused, []
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
        try:
            code, log = relay(cmd)
        except KeyboardInterrupt:
            return interrupted(run, again or same_command_resumed), []
        written = [p for p in runfiles.run_results(run) if has_numbers(p)]
        if uses_dragonfly(extra):
            runfiles.finish_run(run, written, console)
        if written and replace_earlier:
            runfiles.remove_earlier_results(run)
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
        for hint in dataset_hints(log, run_tasks(extra)):
            print(f"dragonfly-eval: {hint}", file=sys.stderr)
        stored = runfiles.stored_answers(run) if uses_dragonfly(extra) else 0
        if stored:
            print(
                f"dragonfly-eval: the {stored} answers this run finished are kept; add "
                f"`--resume {run.run_id}` to the same command to continue it",
                file=sys.stderr,
            )
        else:
            runfiles.discard_if_empty(run)
        return 1, []
    return 0, written


def same_command_resumed(run_id: str | None) -> str:
    """How to continue a run whose command is not known here."""
    return "the same command" if run_id is None else f"the same command with `--resume {run_id}`"


def interrupted(run: runfiles.Run, again: Again) -> int:
    """After Ctrl-C: one line with the answers stored and the command that continues the run;
    returns INTERRUPTED. A run that stored nothing leaves no folder behind."""
    stored = runfiles.stored_answers(run)
    if stored:
        line = (
            f"interrupted; {stored} answers of run {run.run_id} are stored (the rest are "
            f"computed when it continues); to continue: {again(run.run_id)}"
        )
    else:
        runfiles.release(run)
        runfiles.discard_if_empty(run)
        line = f"interrupted before any answer was stored; to start again: {again(None)}"
    print(f"dragonfly-eval: {line}", file=sys.stderr)
    return INTERRUPTED


def program() -> str:
    """The command that started this dragonfly-eval, as it can be typed again."""
    if Path(sys.argv[0]).name == "dragonfly-eval":
        return sys.argv[0]
    return shlex.join([sys.executable, "-m", "dragonfly_eval.cli"])


def resumed_argv(argv: list[str], resume: str | None, run_id: str | None) -> list[str]:
    """`dragonfly-eval` arguments with `--resume` (as parsed: `resume`) replaced by
    `--resume RUN_ID`, or left out for None."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            if arg == resume:
                continue
        if arg == "--resume":
            skip = resume not in (None, runfiles.LATEST)
            continue
        if arg.startswith("--resume="):
            continue
        out.append(arg)
    return out + (["--resume", run_id] if run_id else [])


def command_line(argv: list[str]) -> str:
    """A dragonfly-eval command line, quoted for a shell."""
    return f"{program()} {shlex.join(argv)}"


# the escape sequences that colour a terminal's text (lmms-eval's log colours its levels)
ANSI_COLOUR = re.compile(r"\x1b\[[0-9;]*m")


def last_redraw(line: str) -> str:
    """What a line redrawn with carriage returns (a progress bar) finally shows, without the
    colour codes that only a terminal reads."""
    return ANSI_COLOUR.sub("", line.rstrip("\r").rsplit("\r", 1)[-1])


def relay(cmd: list[str]) -> tuple[int, str]:
    """Run `cmd`, copying its output to stderr as it comes; returns (exit code, its output).
    At a terminal, carriage returns and colours pass through, so progress bars redraw in place;
    elsewhere each line is written once in its last state (one line per bar, not one per
    refresh), without colour codes."""
    tty = sys.stderr.isatty()
    env = {**os.environ, progress.MODE_ENV: "tty" if tty else "lines"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    assert proc.stdout is not None
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    log, pending = [], ""
    try:
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
    except KeyboardInterrupt:
        stop(proc)
        raise
    if pending and not tty:
        sys.stderr.write(last_redraw(pending) + "\n")
    return proc.wait(), "".join(log)


def stop(proc: subprocess.Popen, grace: float = 30) -> None:
    """End lmms-eval after Ctrl-C, its output left unread: a terminal's Ctrl-C has reached it
    too, else it gets SIGINT here; killed when it has not ended after `grace` seconds. Another
    Ctrl-C meanwhile is ignored (the answers it stored are safe either way)."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        try:
            proc.communicate(timeout=1)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT)
            try:
                proc.communicate(timeout=grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
    finally:
        signal.signal(signal.SIGINT, previous)


def run_command(args: argparse.Namespace) -> int:
    """`dragonfly-eval run ...`."""
    refused = environment_refusal()
    if refused is not None:
        return refused
    extra = args.lmms_eval_args
    tasks = runfiles.option_value(extra, "--tasks")
    if tasks in LISTINGS:  # lmms-eval lists names and runs nothing
        include_path = runfiles.option_value(extra, "--include_path") or str(task_yaml_dir())
        sys.stdout.write(task_listing(tasks, include_path))
        return 0
    lmms_args = lmms_eval_command(extra, args.output_path, False)[len(LMMS_EVAL) :]
    with ModelCheck(dragonfly_model_args(lmms_args)) as check:
        problems = preflight_problems(extra, args.trust_dataset_commands)
        if problems:
            return refuse(problems)

        def again(run_id: str | None) -> str:
            argv = getattr(args, "argv", None) or ["run", *extra]
            return command_line(resumed_argv(argv, args.resume, run_id))

        code, written = run_lmms_eval(extra, args.output_path, args.resume, check, again)
    for path in written:
        print(f"dragonfly-eval: results written to {path}", file=sys.stderr)
    return code


def demo_selection(tasks: list[TaskSpec], problems: list[Problem]) -> tuple[str, list[Problem]]:
    """The demo's --tasks, and the problems of the tasks it leaves out: a task that lacks only
    Java (the mini captioning task) is dropped, so that the demo runs on any fresh machine."""
    left_out = [p for p in problems if p.need == "java"]
    if not left_out:
        return DEMO_TASKS, []
    dropped = {p.task for p in left_out}
    return ",".join(t.name for t in tasks if t.name not in dropped), left_out


def demo_command(args: argparse.Namespace) -> int:
    """`dragonfly-eval demo`: mini suite on dragonfly-tiny, then the leaderboard."""
    from rich.console import Console

    from dragonfly_eval.leaderboard.board.markdown import render_markdown
    from dragonfly_eval.leaderboard.board.plot import plot
    from dragonfly_eval.leaderboard.board.table import build_table
    from dragonfly_eval.leaderboard.board.terminal import print_leaderboard
    from dragonfly_eval.leaderboard.reference import default_reference_path, load_reference
    from dragonfly_eval.leaderboard.suite import load_suite

    refused = environment_refusal()
    if refused is not None:
        return refused
    demo = resolve_tasks([DEMO_TASKS], str(task_yaml_dir()))
    problems = task_problems(demo)
    blocking = [p for p in problems if p.need != "java"]
    if blocking:
        return refuse(blocking)
    tasks, left_out = demo_selection(demo, problems)
    if args.model == "dragonfly_vllm":
        for name, value in DEMO_VLLM_ENV.items():
            os.environ.setdefault(name, value)
    model = ["--model", args.model, "--model_args", DEMO_MODELS[args.model]]
    out = Path(args.output_path)
    results = out / "results"
    again = demo_again(out, args.model)
    code, written = run_lmms_eval(
        [*model, "--tasks", tasks, "--log_samples"],
        str(results),
        runfiles.LATEST,
        again=again,
        replace_earlier=True,
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
    console.print(DEMO_SUMMARY)
    code = demo_zoom_test(args.model, written, out, console, again)
    if code != 0:
        return code
    console.print(
        f"Wrote {out / 'leaderboard.md'}, {out / 'leaderboard.png'}, {out / 'zoom.md'} and "
        f"{out / 'zoom.png'}"
    )
    for problem in left_out:
        console.print(f"Left out {problem.message}")
    return 0


def demo_again(out: Path, model: str) -> Again:
    """The command that continues an interrupted demo: the demo again, into the same folder."""
    engine = [] if model == "dragonfly" else ["--model", model]
    return lambda run_id: command_line(["demo", "--output_path", str(out), *engine])


def demo_zoom_test(
    model: str, full_results: list[Path], out: Path, console: Console, again: Again
) -> int:
    """The demo's last step: the fine-detail task again at zoom=low (one 336x336 crop instead of
    41), beside its full-zoom score, written to OUT/zoom.md (printed) and drawn in OUT/zoom.png."""
    from dragonfly_eval.leaderboard.ablate import (
        AblateError,
        build_ablation,
        render_ablation_markdown,
        with_zoom,
        zoom_folder,
    )
    from dragonfly_eval.leaderboard.board.plot import plot_ablation
    from dragonfly_eval.leaderboard.suite import load_suite

    console.print(
        "Zoom-in test: the fine-detail task again with zoom=low (the 336x336 view only) ..."
    )
    code, low_results = run_lmms_eval(
        [
            "--model",
            model,
            "--model_args",
            with_zoom(DEMO_MODELS[model], "low"),
            "--tasks",
            DEMO_ZOOM_TASK,
            "--log_samples",
        ],
        str(zoom_folder(out, "low")),
        runfiles.LATEST,
        again=again,
        replace_earlier=True,
    )
    if code != 0:
        return code
    try:
        ablation = build_ablation({"full": full_results, "low": low_results}, load_suite())
    except AblateError as err:
        console.print(f"dragonfly-eval: the zoom-in test has no table: {err}", markup=False)
        return err.code
    # the full-zoom run scored the whole mini suite; the table is about the fine-detail task
    benchmarks = tuple(b for b in ablation.benchmarks if b.key == DEMO_ZOOM_BENCHMARK)
    fine_detail = dataclasses.replace(ablation, benchmarks=benchmarks)
    table = render_ablation_markdown(fine_detail)
    plot_ablation(fine_detail, out / "zoom.png")
    text = (
        f"{table}\nThe fine-detail task asks which pattern (1-pixel stripes, checks, or flat "
        "grey) fills a square panel in a 2016x2016 image. At zoom=low the model sees the image "
        "at 336x336, where the four patterns are the same grey, so it can only guess (chance: "
        "25%); with the 41 zoomed-in crops the lines are in plain sight.\n"
    )
    (out / "zoom.md").write_text(text)
    console.print(text, markup=False, highlight=False)
    return 0
