"""The failure report: requests that got an empty answer because of an error.

The harness appends one JSON line per failure as it happens (nothing is lost if the run dies);
`dragonfly-eval run` reads the lines at the end, prints a table and writes them as JSON beside
each results file (`<date>_failures.json` beside `<date>_results.json`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text


def rank_path(path: str | Path, rank: int, world_size: int) -> Path:
    """Each process of a multi-GPU run writes its own file: `PATH` or `PATH.rank<r>`."""
    path = Path(path)
    return path if world_size <= 1 else path.with_name(f"{path.name}.rank{rank}")


class FailureLog:
    """Append-only JSON lines of failures, started empty."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("")

    def append(self, failure: dict[str, Any]) -> None:
        with self.path.open("a") as handle:
            handle.write(json.dumps(failure, default=str) + "\n")


def read_failures(path: str | Path) -> list[dict[str, Any]]:
    """Failures logged at `path` and by the other ranks (`path.rank*`), in order."""
    path = Path(path)
    files = [path] if path.is_file() else []
    files += sorted(path.parent.glob(f"{path.name}.rank*"))
    failures = []
    for file in files:
        for line in file.read_text().splitlines():
            if line.strip():
                try:
                    failures.append(json.loads(line))
                except json.JSONDecodeError:  # a line cut short by a killed process
                    continue
    return failures


def failures_file_for(results_file: Path) -> Path:
    """`<date>_failures.json` beside `<date>_results.json`."""
    stem = results_file.name.removesuffix("_results.json")
    return results_file.with_name(f"{stem}_failures.json")


def write_failures(failures: list[dict[str, Any]], target: Path) -> None:
    """The failures as one JSON document."""
    target.write_text(json.dumps({"failures": failures, "count": len(failures)}, indent=2) + "\n")


def failure_table(failures: list[dict[str, Any]]) -> Table:
    """A rich table: task, doc_id and reason of each failed request."""
    table = Table(title=f"Requests that got an empty answer because of an error: {len(failures)}")
    table.add_column("task")
    table.add_column("doc_id", justify="right")
    table.add_column("reason", overflow="fold")
    for failure in failures:
        # Text cells, not markup: a reason quoting a path like "[/data/x.png]" is plain text.
        table.add_row(
            *(Text(str(failure.get(key))) for key in ("task", "doc_id", "reason")),
        )
    return table


def print_failures(failures: list[dict[str, Any]], console: Console) -> None:
    """The table, or one line saying that nothing failed."""
    if failures:
        console.print(failure_table(failures))
    else:
        console.print("No request failed.")
