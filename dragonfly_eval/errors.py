"""Exit codes and the error base class every command shares (pytest's `ExitCode` is the model).

An error a person can fix (a wrong option, an unreadable file, a missing checkpoint) is a
`DragonflyEvalError`; `dragonfly_eval.cli.main` prints it as one line and exits with its code.
"""

from __future__ import annotations

import enum
import re

# line breaks, tabs and terminal escapes (C0, DEL, C1) and the Unicode line separators
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


class ExitCode(enum.IntEnum):
    """What the `dragonfly-eval` process exit status means."""

    OK = 0
    FAILED = 1  # the work ran and found a failure: a regression, a run that failed
    USAGE = 2  # unusable input, found before any expensive work
    INTERRUPTED = 130  # ended by Ctrl-C (128 + SIGINT)


class DragonflyEvalError(Exception):
    """An error that names its cause and fix in one message; carries the exit code."""

    exit_code: ExitCode = ExitCode.USAGE


def one_line(text: str) -> str:
    """Text with every control character (line breaks, terminal escapes) turned into a space:
    how a message naming an untrusted file or value is printed."""
    return _CONTROL.sub(" ", text)
