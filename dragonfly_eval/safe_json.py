"""JSON from files nobody vetted (results files, sample logs, checkpoint configs).

A file is read only when it is a regular file under a size cap, opened without blocking, and
never past the cap; text is parsed so that a number, nesting or byte sequence Python cannot hold
becomes an error naming the problem (a `ValueError` subclass of the caller's choice), never an
OverflowError, RecursionError or a hang in the code that uses it.
"""

from __future__ import annotations

import json
import math
import os
import stat
from pathlib import Path
from typing import Any

from dragonfly_eval.paths import check_regular_file

# lmms-eval writes only aggregated scores in a results file (samples go to *.jsonl); real files
# are < 1 MB.
MAX_RESULTS_BYTES = 32 * 2**20


class JsonProblem(ValueError):
    """Text that is not JSON this project can hold; the message says why (no file name)."""


class NumberProblem(JsonProblem):
    """An integer too long to hold as a float (the JSON itself is well formed)."""


def parse(text: str) -> Any:
    """`json.loads(text)`, with integers that do not fit a float, too deep nesting and malformed
    text all raised as `JsonProblem`."""
    try:
        return _DECODER.decode(text)
    except JsonProblem:
        raise
    except json.JSONDecodeError as err:
        raise JsonProblem(f"malformed JSON (line {err.lineno}: {err.msg})") from err
    except RecursionError as err:
        raise JsonProblem("JSON nested too deeply to read") from err
    except ValueError as err:
        raise JsonProblem(f"unreadable JSON ({err})") from err


def read_bytes(path: Path, cap: int, error: type[ValueError]) -> bytes:
    """The bytes of a regular file of at most `cap` bytes; `error` naming `path` otherwise (a
    FIFO, a device, a link to /dev/zero, a file too large or unreadable)."""
    try:
        check_regular_file(path, cap, error)
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as handle:
            # the path may have been swapped for a FIFO between the check and the open
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise error(f"{path}: not a regular file")
            raw = handle.read(cap + 1)
    except OSError as err:
        raise error(f"{path}: cannot read: {err.strerror or err}") from err
    except ValueError as err:
        if isinstance(err, error):
            raise
        raise error(f"{path}: cannot read: {err}") from err  # e.g. a NUL byte in the path
    if len(raw) > cap:
        raise error(f"{path}: larger than {cap // 2**20} MiB")
    return raw


def read_json(path: Path, cap: int, error: type[ValueError]) -> Any:
    """The parsed JSON of a file (`read_bytes`, UTF-8, `parse`); `error` naming the file and the
    problem when it cannot be read or held."""
    raw = read_bytes(path, cap, error)
    try:
        return parse(raw.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise error(f"{path}: not UTF-8 text") from err
    except JsonProblem as err:
        raise error(f"{path}: {err}") from err


def _parse_int(text: str) -> int:
    # float() of a digit string never raises (it saturates to inf), unlike int() past 4300 digits.
    if not math.isfinite(float(text)):
        raise NumberProblem(f"an integer of {len(text.lstrip('-'))} digits does not fit a float")
    return int(text)


# one decoder for every call (json.loads builds a new one each time it is given parse_int)
_DECODER = json.JSONDecoder(parse_int=_parse_int)
