"""Rich tables for people at a terminal; files and pipes get markdown instead."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.table import Table as RichTable
from rich.text import Text

from dragonfly_eval.leaderboard.table import Cell, Table, grid


def rich_table(
    header: Sequence[str], cells: Sequence[Sequence[Cell]], numeric_from: int = 2
) -> RichTable:
    """A rich table with the same cells as the markdown view; best cells in bold."""
    out = RichTable(show_lines=False)
    for index, title in enumerate(header):
        if index < numeric_from:
            out.add_column(title, justify="left", overflow="fold", ratio=2)
        else:
            out.add_column(title, justify="right", overflow="fold", ratio=1)
    for row in cells:
        out.add_row(*(Text(c.text, style="bold green" if c.bold else "") for c in row))
    return out


def print_leaderboard(table: Table, console: Console) -> None:
    """Show the headline table, any extra metrics and the summary line on a console."""
    console.print(rich_table(*grid(table)))
    if any(c.key in r.values for r in table.rows for c in table.extra_columns):
        console.print(rich_table(*grid(table, extra=True)))
    for task in table.other_tasks:
        console.print(Text(f"other task: {task.model} / {task.task} ({task.date})", style="yellow"))
    console.print(Text(leaderboard_summary(table)))


def leaderboard_summary(table: Table) -> str:
    """One line: how many rows, which suites, and what was set aside."""
    run_rows = sum(not r.published for r in table.rows)
    published = len(table.rows) - run_rows
    text = (
        f"{run_rows} model(s) run, {published} published row(s); {len(table.columns)} "
        f"benchmark(s) (suite: {', '.join(table.suites)})"
    )
    if table.other_tasks:
        text += f"; {len(table.other_tasks)} other task(s) outside the suite mapping"
    if table.replaced:
        text += f"; {len(table.replaced)} older run(s) replaced by newer ones"
    if table.problems:
        text += f"; {len(table.problems)} input(s) skipped"
    return text + "."
