"""The end-of-run failure report: a table of the requests that got an empty answer because of an
error (the failure log's lines, `dragonfly_eval.run_store`), printed by `dragonfly-eval run`."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text


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
