"""The leaderboard as one self-contained HTML page: sortable tables, the bar chart, tooltips.

The page loads nothing: its style, its script and the chart (a PNG data: URI) are inline, and
its Content-Security-Policy allows no other source (the script only by its hash). Every text
that comes from results, the suite or the reference file goes through html.escape, in element
text and in attributes alike, so a model named `<script>` shows as that text.
"""

from __future__ import annotations

import base64
import hashlib
import html
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from dragonfly_eval.leaderboard.board.markdown import (
    ALTERNATES_TITLE,
    PARTIAL_NOTE,
    metrics_text,
    one_line,
    replaced_title,
)
from dragonfly_eval.leaderboard.board.plot import png_bytes
from dragonfly_eval.leaderboard.board.table import (
    MISSING,
    PUBLISHED_MARK,
    Cell,
    Column,
    Row,
    Table,
    by_suite,
    grid,
)
from dragonfly_eval.lmms_files.results import Documents

AVERAGE_KEY = "average"


def write_html(table: Table, path: Path | str) -> Path:
    """Write the page for `table` to `path` (folders created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(table), encoding="utf-8")
    return path


def render_html(table: Table) -> str:
    """The whole page: per suite, the headline and extra tables and the bar chart; the notes."""
    body = [
        f"<h1>{_text('Leaderboard: ' + ', '.join(table.suites))}</h1>",
        f'<p class="legend">{_text(LEGEND)}</p>',
    ]
    sections = by_suite(table)
    for name, part in sections:
        if len(sections) > 1:
            body.append(f"<h2>{_text(name)}</h2>")
        body.append(_board(part, extra=False, suite=name))
        if any(c.key in r.values for r in part.rows for c in part.extra_columns):
            body += [
                f"<h3>{_text('Reported beside the headline scores')}</h3>",
                _board(part, extra=True, suite=name),
            ]
        body.append(_chart(part, [row.label for row in table.rows], len(sections) > 1))
    body += _notes(table)
    script_hash = base64.b64encode(hashlib.sha256(SCRIPT.encode()).digest()).decode()
    policy = (
        "default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
        f"script-src 'sha256-{script_hash}'"
    )
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{_text(policy)}">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{_text('dragonfly-eval leaderboard: ' + ', '.join(table.suites))}</title>",
            f"<style>{STYLE}</style>",
            "</head>",
            "<body>",
            *body,
            f"<script>{SCRIPT}</script>",
            "</body>",
            "</html>",
            "",
        ]
    )


LEGEND = (
    "One table per suite, its average over its own % columns. "
    "Click a column header to sort (again to reverse). Bold: best of its column. "
    f"{PUBLISHED_MARK}: published numbers, with their source under the name. A shaded cell "
    "marked (n=...) comes from a partial run. Hover a cell for its run's date, model_args and "
    "document count, a run date for every run behind the row."
)


def _board(table: Table, extra: bool, suite: str) -> str:
    """One sortable table: the grid of table.py, each cell with its sort key and tooltip."""
    # The page has no run-cost columns (--cost is for the markdown and terminal tables).
    header, cells = grid(replace(table, show_cost=False), extra=extra)
    columns = table.extra_columns if extra else table.columns
    # The rows grid() shows, in its order: the extra view leaves out rows without extra metrics.
    rows = [r for r in table.rows if not extra or any(c.key in r.values for c in columns)]
    keys = [None, None, *(c.key for c in columns), *([] if extra else [AVERAGE_KEY])]
    by_key = {c.key: c for c in columns}
    head = "".join(
        _header_cell(title, by_key.get(key) if key else None, key == AVERAGE_KEY)
        for title, key in zip(header, keys, strict=True)
    )
    lines = []
    for row, line in zip(rows, cells, strict=True):
        parts = [_label_cell(row, line[0]), _date_cell(row)]
        for key, cell in zip(keys[2:], line[2:], strict=True):
            parts.append(_value_cell(table, row, by_key.get(key), cell))
        kind = ' class="published"' if row.published else ""
        lines.append(f"<tr{kind}>{''.join(parts)}</tr>")
    name = f"{'extra' if extra else 'headline'}-{suite.replace(', ', '-')}"
    return (
        f'<div class="scroll"><table class="board" id="{_text(name)}"><thead><tr>{head}</tr>'
        f"</thead><tbody>\n{chr(10).join(lines)}\n</tbody></table></div>"
    )


def _date_cell(row: Row) -> str:
    """The run-date cell: the day (or first and last day) of the runs behind the row, each
    run's full date and offset in the tooltip; "published" for published rows."""
    if row.published or not row.dates:
        text = "published" if row.published else MISSING
        return _td(Cell(text), text, "")
    days = sorted({date[:10] for date in row.dates})
    text = days[0] if len(days) == 1 else f"{days[0]} – {days[-1]}"
    if len(row.dates) > 1:
        text += f" ({len(row.dates)} runs)"
    return _td(Cell(text), max(row.dates), "runs: " + "; ".join(row.dates))


def _header_cell(title: str, column: Column | None, average: bool) -> str:
    numeric = column is not None or average
    higher = column.higher_is_better if column else True
    direction = ("higher" if higher else "lower") + " is better" if numeric else "sort by text"
    return (
        f'<th scope="col" aria-sort="none" data-kind="{"number" if numeric else "text"}" '
        f'data-higher="{int(higher)}" title="{_text(direction)}">'
        f'<button type="button">{_text(title)}</button></th>'
    )


def _label_cell(row: Row, cell: Cell) -> str:
    source = f'<span class="source">{_text(row.source)}</span>' if row.source else ""
    tip = f"published: {row.source}" if row.source else row.name
    return (
        f'<th scope="row" data-sort="{_text(cell.text.casefold())}" title="{_text(tip)}">'
        f"{_text(cell.text)}{source}</th>"
    )


def _value_cell(table: Table, row: Row, column: Column | None, cell: Cell) -> str:
    classes = []
    if cell.text == MISSING:
        classes.append("missing")
    if cell.bold:
        classes.append("best")
    if column is not None and column.key in row.partial:
        classes.append("partial")
    if column is None:
        tip = _average_tip(table, row)
    else:
        tip = _cell_tip(row, column)
    return _td(cell, _number_key(cell.text), tip, classes)


def _td(cell: Cell, sort: str, tip: str, classes: Sequence[str] = ()) -> str:
    text = f"<strong>{_text(cell.text)}</strong>" if cell.bold else _text(cell.text)
    kind = f' class="{" ".join(classes)}"' if classes else ""
    title = f' title="{_text(tip)}"' if tip else ""
    return f'<td{kind} data-sort="{_text(sort)}"{title}>{text}</td>'


def _cell_tip(row: Row, column: Column) -> str:
    """What a value cell's tooltip says: where the number came from."""
    if column.key not in row.values:
        return f"{row.name}: no {column.title} score"
    if row.published:
        return f"{column.title}: published, {row.source}"
    found = row.found.get(column.key)
    if found is None:
        return column.title
    lines = [f"{column.title}: {row.values[column.key]:.4g}"]
    if column.key in row.partial:
        lines.append(f"partial run ({row.partial[column.key]})")
    for run, task in zip(found.runs, found.tasks, strict=True):
        lines.append(
            f"{task}: run {run.date_label}; model_args: {run.model_args or 'not recorded'}; "
            f"documents: {_documents_text(run.documents(task))}"
        )
    return "\n".join(lines)


def _average_tip(table: Table, row: Row) -> str:
    average = table.average(row)
    if average is None:
        return "no % score to average"
    return f"mean of {average.used} of the {average.total} % columns"


def _documents_text(documents: Documents) -> str:
    if documents.effective is not None and documents.original is not None:
        return f"{documents.effective} of {documents.original}"
    if documents.limit is not None:
        return f"--limit {documents.limit:g}"
    return "not recorded"


def _number_key(text: str) -> str:
    """A numeric cell's sort key: its leading number ("41.1 (n=3)" -> "41.1"), "" when none."""
    head = text.split(" ", 1)[0]
    try:
        return repr(float(head))
    except ValueError:
        return ""


def _chart(table: Table, palette: Sequence[str], name_suite: bool) -> str:
    data = base64.b64encode(png_bytes(table, palette)).decode("ascii")
    alt = "Grouped bar chart of the headline scores"
    if name_suite:
        alt += f" ({', '.join(table.suites)})"
    return (
        f'<figure class="chart"><img alt="{_text(alt)}" '
        f'src="data:image/png;base64,{data}"></figure>'
    )


def _notes(table: Table) -> list[str]:
    """The notes under the tables, as the markdown has them."""
    notes = []
    sources: dict[str, list[str]] = {}
    for row in table.rows:
        if row.source is not None:
            sources.setdefault(row.source, []).append(row.name)
    if sources:
        cited = [f"{', '.join(names)}: {src}" for src, names in sources.items()]
        notes.append(_list(f"{PUBLISHED_MARK} Published numbers, not run by this project:", cited))
    if any(row.partial for row in table.rows):
        notes.append(f'<p class="note">{_text(PARTIAL_NOTE)}</p>')
    if table.replaced:
        notes.append(_list(replaced_title(table), table.replaced))
    if table.alternates:
        notes.append(_list(ALTERNATES_TITLE, table.alternates))
    if table.other_tasks:
        items = [
            f"{t.model} · {t.task} · {t.date} · {metrics_text(t.metrics)}"
            for t in table.other_tasks
        ]
        notes.append(_list("Other tasks (in the results, not in the suite mapping):", items))
    if table.problems:
        notes.append(_list("Skipped inputs:", table.problems))
    return notes


def _list(title: str, items: Sequence[str]) -> str:
    entries = "".join(f"<li>{_text(item)}</li>" for item in items)
    return f'<section class="note"><p>{_text(title)}</p><ul>{entries}</ul></section>'


def _text(text: str) -> str:
    """Text for element content or a double-quoted attribute: control characters blanked."""
    return html.escape(one_line(text), quote=True)


STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px; color: #1d232a; }
h1 { font-size: 20px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 30px 0 8px; }
h3 { font-size: 15px; margin: 20px 0 8px; }
.legend { color: #57606a; margin: 0 0 14px; max-width: 70em; }
table.board { border-collapse: collapse; margin: 0 0 8px; }
table.board th, table.board td { border-bottom: 1px solid #d8dee4; padding: 5px 8px; }
table.board thead th { background: #f3f5f7; vertical-align: bottom; font-size: 13px;
  max-width: 8.5em; }
table.board thead button { all: unset; cursor: pointer; font-weight: 600; }
table.board thead th[aria-sort="ascending"] button::after { content: " \\25B2"; }
table.board thead th[aria-sort="descending"] button::after { content: " \\25BC"; }
table.board tbody th { text-align: left; font-weight: 500; max-width: 17em;
  overflow-wrap: anywhere; }
table.board td { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.board td:nth-child(2) { text-align: left; color: #57606a; }
tr.published { background: #f7f4ff; }
.source { display: block; max-width: 17em; overflow: hidden; text-overflow: ellipsis;
  white-space: nowrap; font-size: 11px; color: #6e40c9; font-weight: 400; }
.scroll { overflow-x: auto; }
td.best strong { color: #116329; }
td.partial { background: #fff4d6; font-style: italic; }
td.missing { color: #8c959f; }
figure.chart { margin: 16px 0 8px; }
figure.chart img { max-width: 100%; }
.note { color: #3b434b; max-width: 70em; }
.note ul { margin: 4px 0 12px; }
"""

SCRIPT = """
"use strict";
function sortBoard(table, index, th) {
  const numeric = th.dataset.kind === "number";
  const current = th.getAttribute("aria-sort");
  // First click: best first for scores, A to Z for text; each further click reverses.
  const ascending = current === "none" ? (numeric ? th.dataset.higher === "0" : true)
                                       : current !== "ascending";
  table.querySelectorAll("thead th").forEach((h) => h.setAttribute("aria-sort", "none"));
  th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
  const body = table.tBodies[0];
  const rows = Array.from(body.rows);
  rows.sort((a, b) => {
    const x = a.cells[index].dataset.sort;
    const y = b.cells[index].dataset.sort;
    if (x === "" || y === "") return (x === "") - (y === "");  // no value: always last
    const order = numeric ? Number(x) - Number(y) : x.localeCompare(y);
    return ascending ? order : -order;
  });
  rows.forEach((row) => body.appendChild(row));
}
document.querySelectorAll("table.board").forEach((table) => {
  table.querySelectorAll("thead th").forEach((th, index) => {
    th.querySelector("button").addEventListener("click", () => sortBoard(table, index, th));
  });
});
"""
