"""Progress of long loops (the engine's batches, the tiny model's training): a tqdm bar that
redraws in place at a terminal, and a few plain lines (at 0, 25, 50, 75 and 100%) where output
goes to a file or a pipe, as in CI. Torch-free, below the engine and the runner.

`dragonfly-eval run` reads lmms-eval's output through a pipe, so it tells the engine inside the
harness which of the two its own stderr wants through `MODE_ENV` ("tty" or "lines").
"""

from __future__ import annotations

import os
import sys
import time
from typing import IO, Any

from tqdm import tqdm

MODE_ENV = "DRAGONFLY_PROGRESS"
MARKS = (0, 25, 50, 75, 100)


def at_terminal() -> bool:
    """Whether progress should redraw in place (MODE_ENV, else whether stderr is a terminal)."""
    mode = os.environ.get(MODE_ENV)
    return mode == "tty" if mode in ("tty", "lines") else sys.stderr.isatty()


class MarkLines:
    """A progress report of one line per mark (percent) reached; tqdm has no mode that starts a
    new line per update, and its refreshes land in a log as one line each."""

    def __init__(self, total: int, desc: str, file: IO[str] | None = None) -> None:
        self.total, self.desc, self.file = total, desc, file or sys.stderr
        self.n, self.shown, self.start = 0, -1, time.monotonic()
        self._report()

    def update(self, n: int = 1) -> None:
        self.n += n
        self._report()

    def _report(self) -> None:
        percent = 100 * self.n // self.total if self.total else 100
        reached = max(m for m in MARKS if m <= percent)
        if reached > self.shown:
            self.shown = reached
            elapsed = time.monotonic() - self.start
            print(
                f"{self.desc}: {self.n}/{self.total} ({reached}%) {elapsed:.0f}s",
                file=self.file,
                flush=True,
            )

    def close(self) -> None:
        """Nothing to clean up (the 100% line is printed by the last update)."""


def progress_bar(total: int, desc: str, disable: bool = False) -> Any:
    """A progress report with `update(n)` and `close()`; silent when `disable`."""
    if disable or at_terminal():
        return tqdm(total=total, desc=desc, disable=disable)
    return MarkLines(total, desc)
