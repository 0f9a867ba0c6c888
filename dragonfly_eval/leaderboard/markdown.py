"""The leaderboard as GitHub-flavoured markdown: what files, pipes and CI logs get."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from dragonfly_eval.leaderboard.table import PUBLISHED_MARK, Cell, Table, grid


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
        parts.append(f"{PUBLISHED_MARK} Published numbers, not run by this project. {cited}.")
    if table.replaced:
        parts.append(
            "Newest run wins per model and task:\n\n" + "\n".join(f"- {n}" for n in table.replaced)
        )
    if table.other_tasks:
        rows = [
            [Cell(t.model), Cell(t.task), Cell(t.date), Cell(_metrics_text(t.metrics))]
            for t in table.other_tasks
        ]
        parts.append(
            "Other tasks (in the results, not in the suite mapping):\n\n"
            + markdown_table(["Model", "Task", "Run date", "Metrics (raw)"], rows, numeric_from=4)
        )
    if table.problems:
        parts.append("Skipped inputs:\n\n" + "\n".join(f"- {p}" for p in table.problems))
    return "\n\n".join(parts) + "\n"


def markdown_table(
    header: Sequence[str], cells: Sequence[Sequence[Cell]], numeric_from: int = 2
) -> str:
    """A markdown table; columns from `numeric_from` on are right-aligned, best cells in bold."""
    align = [":---" if i < numeric_from else "---:" for i in range(len(header))]
    lines = [_line([_escape(h) for h in header]), _line(align)]
    for row in cells:
        lines.append(_line([f"**{_escape(c.text)}**" if c.bold else _escape(c.text) for c in row]))
    return "\n".join(lines)


def _metrics_text(metrics: Mapping[str, float]) -> str:
    if not metrics:
        return "no numeric metrics"
    return "; ".join(f"{key} {value:.4g}" for key, value in metrics.items())


def _line(items: Sequence[str]) -> str:
    return "| " + " | ".join(items) + " |"


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
