"""The leaderboard as a grouped bar chart (PNG), one bar per model in each benchmark's group."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from dragonfly_eval.leaderboard.table import Column, Row, Table  # noqa: E402


def plot(table: Table, path: Path | str) -> Path:
    """Draw the headline scores as grouped bars into a PNG file; returns its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(table))
    return path


def png_bytes(table: Table) -> bytes:
    """The chart as PNG bytes (what `plot` writes, and what the HTML page embeds)."""
    fig = figure(table)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()


def figure(table: Table) -> Figure:
    """The chart: one panel per unit and direction, each titled higher/lower is better."""
    panels = _panels(table.columns)
    widths = [max(len(cols), 1) for cols in panels]
    fig, axes = plt.subplots(
        1,
        len(panels),
        figsize=(max(6.0, 1.1 * sum(widths) + 3), 4.8),
        gridspec_kw={"width_ratios": widths},
        squeeze=False,
    )
    colours = {row.label: f"C{i % 10}" for i, row in enumerate(table.rows)}
    for ax, cols in zip(axes[0], panels, strict=True):
        _draw_panel(
            ax, [r for r in table.rows if any(c.key in r.values for c in cols)], cols, colours
        )
    shown = [r for r in table.rows if any(c.key in r.values for c in table.columns)]
    if shown:
        handles = [
            Patch(color=colours[r.label], hatch="//" if r.published else None) for r in shown
        ]
        # "$" would start matplotlib's math text, which raises on names it cannot parse.
        labels = [r.label.replace("$", r"\$") for r in shown]
        fig.legend(handles, labels, loc="upper center", ncol=3, fontsize=8)
    legend_rows = -(-len(shown) // 3)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.06 * legend_rows))
    return fig


def _panels(columns: tuple[Column, ...]) -> list[list[Column]]:
    # One panel per (unit, direction): % first, then the other units, higher-is-better first.
    groups: dict[tuple[bool, str, bool], list[Column]] = {}
    for column in columns:
        key = (column.unit != "%", column.unit, not column.higher_is_better)
        groups.setdefault(key, []).append(column)
    return [groups[key] for key in sorted(groups)] or [[]]


def _draw_panel(
    ax: plt.Axes, rows: list[Row], columns: list[Column], colours: dict[str, str]
) -> None:
    width = 0.8 / max(len(rows), 1)
    for index, row in enumerate(rows):
        offset = (index - (len(rows) - 1) / 2) * width
        present = [(i, row.values[c.key]) for i, c in enumerate(columns) if c.key in row.values]
        bars = ax.bar(
            [i + offset for i, _ in present],
            [v for _, v in present],
            width,
            color=colours[row.label],
            edgecolor=colours[row.label],
            linewidth=1.5,  # a zero-height bar still draws as a line on the axis
            hatch="//" if row.published else None,
        )
        ax.bar_label(bars, labels=["0" if v == 0 else "" for _, v in present], fontsize=7)
    ax.set_xticks(range(len(columns)), [c.title for c in columns], rotation=30, ha="right")
    units = {c.unit for c in columns}
    ax.set_ylabel(units.pop() if len(units) == 1 and "%" not in units else "score (%)")
    if columns:
        lower = not columns[0].higher_is_better
        ax.set_title("lower is better" if lower else "higher is better", fontsize=9)
    if not rows:
        ax.text(0.5, 0.5, "no scores", ha="center", va="center", transform=ax.transAxes)
