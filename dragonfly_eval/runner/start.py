"""The one way lmms-eval is started (`run`, `demo`, `ablate`): guard, check, then run.

`check` looks at every planned run before the first one starts, cheapest first, so that a
mistake ends in seconds with one line naming the fix: the environment (LMMS_EVAL_PLUGINS),
lmms-eval's options (its parser, rebuilt from a cached description), the code the task YAMLs
would run (the task guard), the task names (the cached task index), the model_args names and
checkpoint paths (torch-free). Only when those pass does it look at what needs lmms-eval's
TaskManager or the model: what the tasks need from this machine (pre-flight: Java, a token, a
judge, shell commands), while the model's own check of its model_args runs in a child process.
`run` then starts lmms-eval as a child process and relays its output.
"""

from __future__ import annotations

import codecs
import os
import re
import shlex
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from dragonfly_eval import progress
from dragonfly_eval.errors import DragonflyEvalError, ExitCode
from dragonfly_eval.harness.model_args import MODEL_ARGS, quick_problems
from dragonfly_eval.lmms_files.task_index import unknown_task_lines
from dragonfly_eval.lmms_files.task_yaml import TaskYamlError
from dragonfly_eval.paths import task_yaml_dir
from dragonfly_eval.runner import cmdline, runfiles
from dragonfly_eval.runner.preflight import (
    LISTINGS,
    Problem,
    TaskSpec,
    hub_layout_route,
    is_local_dataset,
    resolve_tasks,
    task_problems,
)
from dragonfly_eval.runner.taskcheck import check_command, plugin_problem

# lmms-eval's command line, with its prompt templates rendered in jinja2's sandbox
LMMS_EVAL = (sys.executable, "-m", "dragonfly_eval.runner.lmms_main")
# the dragonfly model's check of --model_args and of the checkpoint they name, reading no
# tensor (a child process: the runner never imports torch)
MODEL_ARGS_CHECK = (sys.executable, "-m", "dragonfly_eval.harness.argcheck")
# The command that continues an interrupted run, given its id (None: nothing was stored).
Again = Callable[[str | None], str]
# the escape sequences that colour a terminal's text (lmms-eval's log colours its levels)
ANSI_COLOUR = re.compile(r"\x1b\[[0-9;]*m")


class Stopped(DragonflyEvalError):
    """A command that ended having said why on stderr: a refusal before any run (exit 2), a run
    that failed (its exit code) or was interrupted (130)."""

    def __init__(self, exit_code: int) -> None:
        super().__init__("")
        self.exit_code = exit_code  # type: ignore[assignment]  # lmms-eval's own code, too


@dataclass(frozen=True)
class Plan:
    """One lmms-eval run to make: the user's lmms-eval arguments, the output folder, and the run
    it continues (a run id or `runfiles.LATEST`; None for a new run). `replace_earlier` removes
    the files an earlier part of a resumed run wrote once this part wrote its own (the demo's
    and ablate's folders keep one set per run)."""

    extra: list[str]
    output_path: str
    resume: str | None = None
    replace_earlier: bool = False

    @property
    def lmms_args(self) -> list[str]:
        """What lmms-eval gets, less the run's own files (added as it starts; they name no
        code)."""
        command = lmms_eval_command(self.extra, self.output_path, self.resume is not None)
        return command[len(LMMS_EVAL) :]


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


def say_problems(problems: Sequence[str], prefix: str = "cannot start") -> None:
    """Print one line per problem."""
    for problem in dict.fromkeys(problems):
        print(f"dragonfly-eval: {prefix}: {problem}", file=sys.stderr)


def uses_dragonfly(extra: list[str]) -> bool:
    """Whether the run evaluates one of this project's models (`dragonfly`, `dragonfly_vllm`):
    the default, unless the command line or its --config file names another."""
    if "model" not in cmdline.user_options(extra):
        return True
    try:
        runs = cmdline.evaluations(extra)
    except TaskYamlError:
        return False  # the task guard refuses the config file
    return bool(runs) and all(args.model in MODEL_ARGS for args, _ in runs)


def environment_problem() -> str | None:
    """Why this process's environment must not reach lmms-eval (LMMS_EVAL_PLUGINS naming
    another package), or None. Checked before anything imports lmms-eval, which imports those
    plugins itself."""
    return plugin_problem(os.environ.get("LMMS_EVAL_PLUGINS", ""))


def refuse_environment() -> None:
    """Stopped (exit 2), with one line saying why, when `environment_problem` finds one."""
    problem = environment_problem()
    if problem is not None:
        say_problems([problem], "refusing to run")
        raise Stopped(ExitCode.USAGE)


def model_args_of(lmms_args: list[str]) -> list[tuple[str, str]]:
    """(model, --model_args) of each evaluation of an lmms-eval command line (its --config
    entries included) that runs one of this project's models."""
    try:
        runs = cmdline.evaluations(lmms_args)
    except TaskYamlError:
        return []  # the task guard refuses the config file
    return [
        (args.model, args.model_args or "")
        for args, _ in runs
        if args.model in MODEL_ARGS and isinstance(args.model_args or "", str)
    ]


class ModelCheck:
    """The `dragonfly` model's check of planned runs' --model_args (values, checkpoint files,
    zoom: `harness/argcheck.py`), in a child process (the runner never imports torch) that is
    started at once, so that its seconds of imports pass while the pre-flight runs."""

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


def argument_problems(lmms_args: list[str]) -> tuple[int, list[str]] | None:
    """(exit code, problems) when lmms-eval would refuse `lmms_args`: its parser (which prints
    its own usage message; no problem lines then) or an option value it checks only once
    started; None when it would take them."""
    refused = cmdline.usage_refusal(lmms_args)
    if refused is not None:
        return refused, []
    problems = cmdline.value_problems(lmms_args)
    return (ExitCode.USAGE, problems) if problems else None


def missing_tasks(lmms_args: list[str]) -> list[str]:
    """A line for each --tasks name (of every evaluation, --config entries included) that
    lmms-eval would not find, with the nearest known names, from the cached task index."""
    try:
        runs = cmdline.evaluations(lmms_args)
    except TaskYamlError:
        return []  # the task guard refuses the config file
    lines = []
    for args, _ in runs:
        tasks, include_path = args.tasks, args.include_path
        if (
            isinstance(tasks, str)
            and tasks not in LISTINGS
            and isinstance(include_path, str | None)
        ):
            lines += unknown_task_lines(tasks, include_path)
    return lines


def run_tasks(extra: list[str]) -> list[TaskSpec]:
    """The tasks a run's --tasks select, resolved as lmms-eval resolves them (with the run's
    --include_path, else this project's task YAMLs)."""
    names = (runfiles.option_value(extra, "--tasks") or "").split(",")
    include_path = runfiles.option_value(extra, "--include_path") or str(task_yaml_dir())
    return resolve_tasks([name.strip() for name in names if name.strip()], include_path)


def quick_check(plans: Sequence[Plan]) -> None:
    """The checks that need neither lmms-eval's TaskManager nor torch; Stopped after printing
    what they found."""
    refuse_environment()
    for plan in plans:
        refused = argument_problems(plan.lmms_args)
        if refused is not None:
            say_problems(refused[1])
            raise Stopped(refused[0])
    unsafe = [p for plan in plans for p in check_command(plan.lmms_args)]
    if unsafe:
        say_problems(unsafe, "refusing to run")
        raise Stopped(ExitCode.USAGE)
    problems = [p for plan in plans for p in missing_tasks(plan.lmms_args)]
    for plan in plans:
        for model, model_args in model_args_of(plan.lmms_args):
            problems += quick_problems(model, model_args) or []
    if problems:
        say_problems(problems)
        raise Stopped(ExitCode.USAGE)


def refuse(problems: list[Problem]) -> None:
    """Print why the run cannot start; Stopped (exit 2)."""
    say_problems([problem.message for problem in problems])
    print("dragonfly-eval: nothing was run; fix the above, then start again", file=sys.stderr)
    raise Stopped(ExitCode.USAGE)


def check(plans: Sequence[Plan], trust_dataset_commands: bool = False) -> None:
    """Guard and check every planned run before the first one starts (see the module
    docstring); Stopped, after one line per problem, when one must not start.
    `trust_dataset_commands` is `run`'s --trust-dataset-commands."""
    quick_check(plans)
    dragonfly_args = [
        args
        for plan in plans
        for model, args in model_args_of(plan.lmms_args)
        if model == "dragonfly"
    ]
    with ModelCheck(list(dict.fromkeys(dragonfly_args))) as model_check:
        found: dict[str, Problem] = {}
        for plan in plans:
            for problem in task_problems(run_tasks(plan.extra), trust_dataset_commands):
                found.setdefault(problem.message, problem)
        if found:
            refuse(list(found.values()))
        problems = model_check.problems()
    if problems:
        say_problems(problems)
        raise Stopped(ExitCode.USAGE)


def has_numbers(results_file: Path) -> bool:
    """Whether a results file holds at least one finite numeric metric (read the way the
    leaderboard reads it; a captioning task's submission file is not a results file)."""
    from dragonfly_eval.lmms_files.results import ResultsError, read_run

    try:
        run = read_run(results_file)
    except ResultsError:
        return False
    return any(run.tasks.values())


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


def run(plan: Plan, again: Again | None = None) -> list[Path]:
    """Run lmms-eval for a checked plan, streaming its output; returns the results files the
    run wrote. `again` gives the command that continues the run after Ctrl-C (the same command
    with `--resume <id>` when not given). Stopped with lmms-eval's exit code when it fails
    (1 when it wrote no results file with numbers), 130 when interrupted; RunError when the run
    to continue cannot be used."""
    console = Console(stderr=True)
    started = runfiles.start_run(plan.output_path, plan.resume, console)
    extra = plan.extra
    dragonfly = uses_dragonfly(extra)
    if dragonfly:
        extra = runfiles.with_run_files(extra, started)
    cmd = lmms_eval_command(extra, plan.output_path, plan.resume is not None)
    print("+ " + " ".join(cmd), file=sys.stderr)
    try:
        try:
            code, log = relay(cmd)
        except KeyboardInterrupt:
            raise Stopped(interrupted(started, again or same_command_resumed)) from None
        written = [p for p in runfiles.run_results(started) if has_numbers(p)]
        if dragonfly:
            runfiles.finish_run(started, written, console)
        if written and plan.replace_earlier:
            runfiles.remove_earlier_results(started)
    finally:
        runfiles.release(started)
    if code != 0:
        raise Stopped(code)
    if not written:
        print(
            f"dragonfly-eval: lmms-eval wrote no results file with numbers under "
            f"{plan.output_path} (the evaluation failed; see the log above)",
            file=sys.stderr,
        )
        for hint in dataset_hints(log, run_tasks(extra)):
            print(f"dragonfly-eval: {hint}", file=sys.stderr)
        stored = runfiles.stored_answers(started) if dragonfly else 0
        if stored:
            print(
                f"dragonfly-eval: the {stored} answers this run finished are kept; add "
                f"`--resume {started.run_id}` to the same command to continue it",
                file=sys.stderr,
            )
        else:
            runfiles.discard_if_empty(started)
        raise Stopped(ExitCode.FAILED)
    return written


def same_command_resumed(run_id: str | None) -> str:
    """How to continue a run whose command is not known here."""
    return "the same command" if run_id is None else f"the same command with `--resume {run_id}`"


def interrupted(run: runfiles.RunFolder, again: Again) -> int:
    """After Ctrl-C: one line with the answers stored and the command that continues the run;
    returns ExitCode.INTERRUPTED. A run that stored nothing leaves no folder behind."""
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
    return ExitCode.INTERRUPTED


def program() -> str:
    """The command that started this dragonfly-eval, as it can be typed again."""
    if Path(sys.argv[0]).name == "dragonfly-eval":
        return sys.argv[0]
    return shlex.join([sys.executable, "-m", "dragonfly_eval.cli"])


def command_line(argv: list[str]) -> str:
    """A dragonfly-eval command line, quoted for a shell."""
    return f"{program()} {shlex.join(argv)}"


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
