"""lmms-eval's command line, read with lmms-eval's own argument parser (rebuilt from its cached
description, `lmms_options`, so that reading a command line imports neither lmms-eval nor torch).

So that `--name=value`, repeated options (the last one counts) and abbreviations (`--include`
for `--include_path`) mean here what they mean to lmms-eval. `--config FILE` is merged the way
lmms-eval's `cli_evaluate` merges it: each entry of the file is one evaluation, and a command-line
value that differs from the parser's default overrides the file's.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
from pathlib import Path
from typing import Any

from dragonfly_eval.errors import ExitCode
from dragonfly_eval.lmms_files.task_yaml import TaskYamlError, read_yaml
from dragonfly_eval.runner import lmms_options

_UNSET = object()


def _parse(argv: list[str], namespace: argparse.Namespace | None = None):
    """`argv` parsed by lmms-eval's parser, or None where lmms-eval would exit (bad arguments,
    `--help`); lmms-eval then says so itself, so nothing is printed here."""
    quiet = io.StringIO()
    try:
        with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
            return lmms_options.parser().parse_args(argv, namespace)
    except SystemExit:
        return None


def usage_refusal(argv: list[str]) -> int | None:
    """The exit code lmms-eval's parser ends `argv` with (2 for a bad option, 0 for --help),
    after printing its own usage message; None when it accepts `argv`."""
    try:
        lmms_options.parser().parse_args(argv)
    except SystemExit as err:
        return err.code if isinstance(err.code, int) else ExitCode.USAGE
    if lmms_options.custom_options(set(given(argv))):
        return lmms_options.check_custom(argv)
    return None


def value_problems(argv: list[str]) -> list[str]:
    """The option values lmms-eval refuses only once it has started (it checks --limit and
    --offset in `cli_evaluate`, after its parser), for every evaluation of `argv`."""
    try:
        runs = evaluations(argv)
    except TaskYamlError:
        return []  # the task guard reports a config file it cannot read
    problems = []
    for args, _ in runs:
        limit, offset = args.limit, args.offset
        number = isinstance(limit, int | float) and not isinstance(limit, bool)
        if limit is not None and not (
            number and math.isfinite(limit) and (limit == -1 or limit >= 0)
        ):
            problems.append(f"--limit {limit}: give -1 (all), a fraction 0..1, or a count >= 1")
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            problems.append(f"--offset {offset}: give a whole number >= 0")
    return list(dict.fromkeys(problems))


def parse(argv: list[str]) -> argparse.Namespace | None:
    """Every option's value as lmms-eval reads `argv`, or None where it would refuse `argv`."""
    return _parse(argv)


def given(argv: list[str]) -> dict[str, Any]:
    """The options `argv` sets, by destination name (`include_path`), with their values."""
    unset = argparse.Namespace(**{a.dest: _UNSET for a in lmms_options.parser()._actions})
    parsed = _parse(argv, unset)
    if parsed is None:
        return {}
    return {k: v for k, v in vars(parsed).items() if v is not _UNSET}


def user_options(argv: list[str]) -> set[str]:
    """The options the user chose, on the command line or in its `--config` file (a config
    file that cannot be read adds nothing; the task guard reports it)."""
    options = given(argv)
    config = options.get("config")
    if config and Path(config).is_file():
        with contextlib.suppress(TaskYamlError):
            for entry in config_entries(config):
                options.update(entry)
    return set(options)


def config_entries(path: str) -> list[dict[str, Any]]:
    """The entries of a `--config` file, read the way lmms-eval reads it (one dict per
    evaluation; its `env` key sets environment variables). Raises TaskYamlError when the
    file is not such a list."""
    data = read_yaml(Path(path), "plain")
    entries = data if isinstance(data, list) else [data]
    if not all(isinstance(entry, dict) for entry in entries):
        raise TaskYamlError(f"{path}: a --config file holds a mapping or a list of mappings")
    return entries


def evaluations(argv: list[str]) -> list[tuple[argparse.Namespace, dict[str, Any]]]:
    """Each evaluation lmms-eval runs for `argv`: its arguments, with any `--config` entry
    merged in, and the environment variables that entry sets. Empty when lmms-eval would
    refuse `argv` or when the config file does not exist (lmms-eval stops on both)."""
    args = parse(argv)
    if args is None:
        return []
    if not args.config:
        return [(args, {})]
    if not Path(args.config).exists():
        return []
    defaults = lmms_options.parser().parse_args([])
    explicit = {k: v for k, v in vars(args).items() if v != getattr(defaults, k, None)}
    runs = []
    for entry in config_entries(args.config):
        env = entry.get("env")
        merged = {**vars(defaults), **entry, **explicit}
        merged.pop("env", None)
        runs.append((argparse.Namespace(**merged), env if isinstance(env, dict) else {}))
    return runs
