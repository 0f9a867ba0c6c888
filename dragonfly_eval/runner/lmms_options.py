"""lmms-eval's command-line options as data: its parser rebuilt without importing lmms-eval.

lmms-eval builds its parser in `lmms_eval.__main__`, whose imports (torch, accelerate, the
evaluator) take ten seconds and more. The parser is described once per installed lmms-eval (its
version and its `__main__.py`), by a child process that imports it (`python -m
dragonfly_eval.runner.lmms_options describe`), and kept in `paths.cache_root()`; `parser()`
rebuilds an `argparse` parser from that description in milliseconds. The cached file is
untrusted: read through `safe_json` and checked field by field (only argparse's own action kinds
and the types str, int and float; the options this project reads must be there), else described
again. An option whose type is lmms-eval's own function (`--seed`) is checked by that function,
in the child process, only when a command line gives it (`check_custom`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
from functools import cache
from typing import Any

from dragonfly_eval.errors import DragonflyEvalError, ExitCode
from dragonfly_eval.lmms_files.task_index import cached, lmms_eval_dir, lmms_eval_version

SPEC_FORMAT = 1  # bump when the description changes shape
PROG = "lmms-eval"
DESCRIBE = (sys.executable, "-m", "dragonfly_eval.runner.lmms_options", "describe")
CHECK = (sys.executable, "-m", "dragonfly_eval.runner.lmms_options", "check")
# argparse's action classes by the name `add_argument(action=...)` takes
KINDS = {
    "_StoreAction": "store",
    "_StoreTrueAction": "store_true",
    "_StoreFalseAction": "store_false",
    "_StoreConstAction": "store_const",
    "_AppendAction": "append",
    "_AppendConstAction": "append_const",
    "_CountAction": "count",
}
TYPES: dict[str, Any] = {"str": str, "int": int, "float": float}
CUSTOM = "custom"  # a type function of lmms-eval's own
# the options this project reads from an lmms-eval command line
NEEDED = (
    "--config",
    "--model",
    "--model_args",
    "--tasks",
    "--include_path",
    "--output_path",
    "--limit",
    "--offset",
    "--use_cache",
    "--timezone",
    "--log_samples",
)
FIELDS = {
    "kind",
    "option_strings",
    "dest",
    "nargs",
    "const",
    "default",
    "type",
    "choices",
    "required",
    "help",
    "metavar",
}


class OptionsError(DragonflyEvalError):
    """lmms-eval's options could not be described (lmms-eval missing or broken)."""

    exit_code = ExitCode.FAILED


def describe(parser: argparse.ArgumentParser) -> dict[str, Any]:
    """A parser's options as JSON data (its defaults as `parse_args([])` gives them, so that a
    type function's conversion of a string default is kept)."""
    defaults = vars(parser.parse_args([]))
    actions = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        kind = KINDS.get(type(action).__name__)
        if kind is None or not action.option_strings:
            raise TypeError(f"option {action.dest}: action {type(action).__name__} not described")
        type_name = next((n for n, t in TYPES.items() if action.type is t), None)
        if action.type is not None and type_name is None:
            type_name = CUSTOM
        actions.append(
            {
                "kind": kind,
                "option_strings": list(action.option_strings),
                "dest": action.dest,
                "nargs": action.nargs,
                "const": action.const,
                "default": defaults.get(action.dest),
                "type": type_name,
                "choices": list(action.choices) if action.choices is not None else None,
                "required": action.required,
                "help": action.help,
                "metavar": action.metavar,
            }
        )
    spec = {"format": SPEC_FORMAT, "actions": actions}
    json.dumps(spec)  # TypeError for a default that JSON cannot hold
    return spec


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _valid_action(action: Any) -> bool:
    if not isinstance(action, dict) or set(action) != FIELDS:
        return False
    options = action["option_strings"]
    nargs = action["nargs"]
    choices = action["choices"]
    return (
        action["kind"] in KINDS.values()
        and isinstance(options, list)
        and bool(options)
        and all(isinstance(o, str) and o.startswith("-") for o in options)
        and isinstance(action["dest"], str)
        and action["dest"].isidentifier()
        and (nargs is None or nargs in ("?", "*", "+") or type(nargs) is int and 0 <= nargs < 10)
        and action["type"] in (None, CUSTOM, *TYPES)
        and (choices is None or isinstance(choices, list) and all(map(_scalar, choices)))
        and isinstance(action["required"], bool)
        and all(action[k] is None or isinstance(action[k], str) for k in ("help", "metavar"))
    )


def _as_text(value: str) -> str:
    return value


def rebuild(spec: Any) -> argparse.ArgumentParser | None:
    """The parser a description gives, or None when it is not a valid description (a wrong
    shape, an action kind or type other than argparse's own, a needed option missing)."""
    if not isinstance(spec, dict) or spec.get("format") != SPEC_FORMAT:
        return None
    actions = spec.get("actions")
    if not isinstance(actions, list) or not all(map(_valid_action, actions)):
        return None
    parser = argparse.ArgumentParser(prog=PROG, formatter_class=argparse.RawTextHelpFormatter)
    try:
        for action in actions:
            kwargs: dict[str, Any] = {"dest": action["dest"], "default": action["default"]}
            kwargs["action"] = action["kind"]
            for key in ("help", "required"):
                kwargs[key] = action[key]
            if action["kind"] in ("store", "append"):
                kwargs["nargs"] = action["nargs"]
                kwargs["metavar"] = action["metavar"]
                kwargs["choices"] = action["choices"]
                kwargs["type"] = _as_text if action["type"] == CUSTOM else TYPES.get(action["type"])
                if action["nargs"] == "?":
                    kwargs["const"] = action["const"]
            elif action["kind"] in ("store_const", "append_const"):
                kwargs["const"] = action["const"]
            parser.add_argument(*action["option_strings"], **kwargs)
    except (TypeError, ValueError, argparse.ArgumentError):
        return None
    if not all(option in parser._option_string_actions for option in NEEDED):
        return None
    return parser


def _spec_name() -> str:
    """The cache file of the installed lmms-eval's description."""
    main = lmms_eval_dir() / "__main__.py"
    stat = os.stat(main)
    key = f"{SPEC_FORMAT}:{lmms_eval_version()}:{main}:{stat.st_size}:{stat.st_mtime_ns}"
    return f"lmms-options-{hashlib.sha256(key.encode()).hexdigest()[:32]}.json"


def _described() -> dict[str, Any]:
    """The description, from a child process that imports lmms-eval's parser."""
    done = subprocess.run(DESCRIBE, capture_output=True, text=True)
    spec = None
    if done.returncode == 0:
        try:
            spec = json.loads(done.stdout)
        except ValueError:
            spec = None
    if rebuild(spec) is None:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise OptionsError(
            f"cannot read lmms-eval's command-line options ({last}); check that lmms-eval "
            "imports: `.venv/bin/python -m lmms_eval --help`"
        )
    return spec


@cache
def parser() -> argparse.ArgumentParser:
    """lmms-eval's parser (as `lmms-eval --model ... --tasks ...` builds it), rebuilt from the
    cached description."""
    spec = cached(_spec_name(), _described, lambda data: data if rebuild(data) else None)
    rebuilt = rebuild(spec)
    assert rebuilt is not None  # `cached` returned a description that passed `rebuild`
    return rebuilt


def custom_options(given: set[str]) -> list[str]:
    """The options among `given` (destination names) whose type is lmms-eval's own function."""
    typed = {a.dest for a in parser()._actions if a.type is _as_text}
    return sorted(given & typed)


def check_custom(argv: list[str]) -> int | None:
    """lmms-eval's own parser on `argv` in a child process (its usage message printed there):
    its exit code when it refuses `argv`, else None."""
    done = subprocess.run([*CHECK, *argv])
    return done.returncode or None


def _lmms_eval_parser() -> argparse.ArgumentParser:
    from lmms_eval.__main__ import parse_eval_args

    # parse_eval_args builds the parser and parses sys.argv in one call; give it no arguments
    argv, sys.argv = sys.argv, [PROG]
    try:
        built, _ = parse_eval_args()
    finally:
        sys.argv = argv
    return built


def main(argv: list[str]) -> int:
    """`describe`: print the description of lmms-eval's parser; `check ARGS...`: parse ARGS
    with it (exit 2 with its usage message when it refuses them)."""
    command, *rest = argv
    lmms_parser = _lmms_eval_parser()
    if command == "describe":
        print(json.dumps(describe(lmms_parser)))
        return ExitCode.OK
    try:
        lmms_parser.parse_args(rest)
    except SystemExit as err:
        return err.code if isinstance(err.code, int) else ExitCode.USAGE
    return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
