"""The leaderboard as GitHub-flavoured markdown: what files, pipes and CI logs get."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from dragonfly_eval.errors import one_line
from dragonfly_eval.leaderboard.board.table import PUBLISHED_MARK, Cell, Table, grid


def render_markdown(table: Table) -> str:
    """The headline table, the extra-metrics table, and the notes that explain them."""
    parts = [markdown_table(*grid(table))]
    if any(c.key in r.values for r in table.rows for c in table.extra_columns):
        header, cells = grid(table, extra=True)
        parts.append("Reported beside the headline scores:\n\n" + markdown_table(header, cells))
    sources: dict[str, list[str]] = {}
    for row in table.rows:
        if row.source is not None:
            sources.setdefault(row.source, []).append(row.name)
    if sources:
        cited = "; ".join(f"{', '.join(names)}: {src}" for src, names in sources.items())
        parts.append(
            f"{PUBLISHED_MARK} Published numbers, not run by this project. {escape(cited)}."
        )
    if any(row.partial for row in table.rows):
        parts.append(PARTIAL_NOTE)
    if table.replaced:
        parts.append(f"{replaced_title(table)}\n\n{_bullets(table.replaced)}")
    if table.alternates:
        parts.append(f"{ALTERNATES_TITLE}\n\n{_bullets(table.alternates)}")
    if table.other_tasks:
        rows = [
            [Cell(t.model), Cell(t.task), Cell(t.date), Cell(metrics_text(t.metrics))]
            for t in table.other_tasks
        ]
        parts.append(
            "Other tasks (in the results, not in the suite mapping):\n\n"
            + markdown_table(["Model", "Task", "Run date", "Metrics (raw)"], rows, numeric_from=4)
        )
    if table.problems:
        parts.append(f"Skipped inputs:\n\n{_bullets(table.problems)}")
    return "\n\n".join(parts) + "\n"


PARTIAL_NOTE = (
    "A cell marked (n=...) comes from a partial run (lmms-eval --limit): n documents of the "
    "task, or its limit. It is never marked best, and a full run of the same task replaces it."
)
ALTERNATES_TITLE = "Also in the results (the first task listed in suite.yaml is shown):"


def replaced_title(table: Table) -> str:
    """What the note on replaced runs says about how one run was kept."""
    if table.prefer == "newest":
        return "One run per model and task, the newest (--prefer newest):"
    return (
        "One run per model and task: a full run over a partial one, then the most documents, "
        "then the newest (--prefer largest):"
    )


def escape(text: str) -> str:
    """Text that markdown shows as written: no line breaks, table pipes, markup or raw HTML."""
    # "<" and "&" are all HTML needs to open a tag or an entity; ">" stays readable ("->").
    text = one_line(text).replace("&", "&amp;").replace("<", "&lt;")
    return _MARKUP.sub(r"\\\1", text)


_MARKUP = re.compile(r"([\\`*\[\]|])")


def markdown_table(
    header: Sequence[str], cells: Sequence[Sequence[Cell]], numeric_from: int = 2
) -> str:
    """A markdown table; columns from `numeric_from` on are right-aligned, best cells in bold."""
    align = [":---" if i < numeric_from else "---:" for i in range(len(header))]
    lines = [_line([escape(h) for h in header]), _line(align)]
    for row in cells:
        lines.append(_line([f"**{escape(c.text)}**" if c.bold else escape(c.text) for c in row]))
    return "\n".join(lines)


def metrics_text(metrics: Mapping[str, float]) -> str:
    """A task's raw metrics on one line, e.g. "acc,none 0.5; f1,none 0.25"."""
    if not metrics:
        return "no numeric metrics"
    return "; ".join(f"{key} {value:.4g}" for key, value in metrics.items())


def _line(items: Sequence[str]) -> str:
    return "| " + " | ".join(items) + " |"


def _bullets(items: Sequence[str]) -> str:
    return "\n".join(f"- {escape(item)}" for item in items)
