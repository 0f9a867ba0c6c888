"""Rich tables for people at a terminal; files and pipes get markdown instead.

A terminal view must stay readable at 100 columns: model names are shortened to their last
path part, run dates go under the table, numbers never wrap, headers wrap at spaces, and a
table too wide for the console is split into several.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich import box
from rich.console import Console
from rich.table import Table as RichTable
from rich.text import Text

from dragonfly_eval.errors import one_line
from dragonfly_eval.leaderboard.board.markdown import ALTERNATES_TITLE, PARTIAL_NOTE, replaced_title
from dragonfly_eval.leaderboard.board.table import Cell, Table, grid, short_labels


def rich_table(
    header: Sequence[str], cells: Sequence[Sequence[Cell]], numeric_from: int = 2
) -> RichTable:
    """A rich table with the same cells as the markdown view; best cells in bold.

    Every text is a rich Text, never markup, so names such as `[/]x` print as written, and
    control characters in them are blanked.
    """
    out = RichTable(box=box.SIMPLE_HEAD, padding=(0, 0), pad_edge=False)
    for index, title in enumerate(header):
        if index < numeric_from:
            out.add_column(Text(one_line(title)), justify="left", overflow="fold")
            continue
        width = _numeric_width(header, cells, index)
        out.add_column(
            Text(one_line(title)),
            justify="right",
            overflow="fold",
            min_width=width,
            max_width=width,
        )
    for row in cells:
        out.add_row(
            *(
                Text(
                    one_line(c.text),
                    style="bold green" if c.bold else "",
                    no_wrap=i >= numeric_from,
                )
                for i, c in enumerate(row)
            )
        )
    return out


def print_grid(
    console: Console, header: Sequence[str], cells: Sequence[Sequence[Cell]], numeric_from: int
) -> None:
    """Print a grid as rich tables, splitting its numeric columns over several tables (each
    repeating the leading columns) when one table would be wider than the console."""
    for chunk in _column_chunks(header, cells, numeric_from, console.width):
        keep = [*range(numeric_from), *chunk]
        sub_cells = [[row[i] for i in keep] for row in cells]
        console.print(rich_table([header[i] for i in keep], sub_cells, numeric_from))


def _column_chunks(
    header: Sequence[str], cells: Sequence[Sequence[Cell]], numeric_from: int, width: int
) -> list[list[int]]:
    chunks: list[list[int]] = [[]]
    used = _LEADING_WIDTH
    for index in range(numeric_from, len(header)):
        needed = _numeric_width(header, cells, index) + 1  # the column and its separator
        if chunks[-1] and used + needed > width:
            chunks.append([])
            used = _LEADING_WIDTH
        chunks[-1].append(index)
        used += needed
    return chunks


# Room kept for the leading (model or benchmark) column, which wraps to fit.
_LEADING_WIDTH = 16


def _numeric_width(header: Sequence[str], cells: Sequence[Sequence[Cell]], index: int) -> int:
    # As wide as its longest value, so numbers never wrap; the header wraps to fit.
    words = [len(word) for word in header[index].split()] or [0]
    return max([len(row[index].text) for row in cells] + [min(max(words), 8)])


def print_leaderboard(table: Table, console: Console) -> None:
    """Show the headline table, any extra metrics, the notes and the summary on a console."""
    labels = short_labels(table.rows)
    print_grid(console, *grid(table, with_dates=False, labels=labels), numeric_from=1)
    if any(c.key in r.values for r in table.rows for c in table.extra_columns):
        print_grid(console, *grid(table, extra=True, with_dates=False, labels=labels), 1)
    for row in table.rows:
        if not row.published:
            dates = ", ".join(row.dates) or "undated"
            console.print(Text(one_line(f"run date: {labels[row.label]}: {dates}")))
    if any(row.partial for row in table.rows):
        console.print(Text(PARTIAL_NOTE, style="yellow"))
    _notes(console, replaced_title(table), table.replaced)
    _notes(console, ALTERNATES_TITLE, table.alternates)
    for task in table.other_tasks:
        line = f"other task: {task.model} / {task.task} ({task.date})"
        console.print(Text(one_line(line), style="yellow"))
    _notes(console, "Skipped inputs:", table.problems)
    console.print(Text(one_line(leaderboard_summary(table))))


def _notes(console: Console, title: str, notes: Sequence[str]) -> None:
    if notes:
        console.print(Text(title))
        for note in notes:
            console.print(Text(one_line(f"- {note}")))


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
        text += f"; {len(table.replaced)} run(s) set aside for another run of the same task"
    if table.problems:
        text += f"; {len(table.problems)} input(s) skipped"
    return text + "."
