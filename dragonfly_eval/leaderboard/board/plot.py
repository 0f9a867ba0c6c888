"""The leaderboard as a grouped bar chart (PNG), and the zoom ablation as one.

Each chart is sized to be read at its own size on a 1280-1440 px screen (at most `MAX_WIDTH_IN`
inches at `DPI`): a title, one panel per value axis and direction, the value on every bar, and
what guessing scores (`chance`) as a dashed mark where the suite gives it.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from dragonfly_eval.leaderboard.ablate import Ablation, half_width, tokens_text  # noqa: E402
from dragonfly_eval.leaderboard.board.table import (  # noqa: E402
    Column,
    Row,
    Table,
    benchmark_source,
    by_suite,
)

DPI = 110
MAX_WIDTH_IN = 10.9  # 1199 px at DPI: shown unscaled in a 1280 px window
PERCENT_AXIS = "score (%)"
CHANCE_STYLE = {"color": "#57606a", "linestyle": (0, (4, 2)), "linewidth": 1.4}


def plot(table: Table, path: Path | str) -> Path:
    """Draw the headline scores as grouped bars into a PNG file; returns its path."""
    return _write(figure(table), path)


def png_bytes(table: Table, palette: Sequence[str] = ()) -> bytes:
    """The chart as PNG bytes (what `plot` writes, and what the HTML page embeds)."""
    return _png(figure(table, palette))


def figure(table: Table, palette: Sequence[str] = ()) -> Figure:
    """The chart: one row of panels per suite, one panel per value axis and direction, each
    titled higher/lower is better; the legend under them. A row's colour follows its place
    in `palette` (row labels; default: the table's own rows), so that the charts of several
    parts of one table colour a row alike."""
    sections = by_suite(table)
    fig = plt.figure(figsize=(MAX_WIDTH_IN, 4.4 * len(sections) + 0.9), layout="constrained")
    order = list(palette) or [row.label for row in table.rows]
    order += [row.label for row in table.rows if row.label not in order]
    colours = {label: f"C{i % 10}" for i, label in enumerate(order)}
    rows_of_figure = fig.subfigures(len(sections), 1, squeeze=False)[:, 0]
    for subfig, (name, part) in zip(rows_of_figure, sections, strict=True):
        panels = _panels(part.columns, part.rows)
        axes = subfig.subplots(
            1,
            len(panels),
            squeeze=False,
            gridspec_kw={"width_ratios": [max(len(cols), 1) for cols in panels]},
        )[0]
        for ax, cols in zip(axes, panels, strict=True):
            _draw_panel(ax, list(part.rows), cols, colours)
        if len(sections) > 1:
            subfig.suptitle(name, fontsize=10, fontweight="bold")
    shown = [r for r in table.rows if any(c.key in r.values for c in table.columns)]
    handles: list = [
        Patch(color=colours[r.label], hatch="//" if r.published else None) for r in shown
    ]
    # "$" would start matplotlib's math text, which raises on names it cannot parse.
    labels = [r.label.replace("$", r"\$") for r in shown]
    if any(c.chance is not None for c in table.columns):
        handles.append(Line2D([], [], **CHANCE_STYLE))
        labels.append("chance (guessing)")
    fig.suptitle(f"Leaderboard: {', '.join(table.suites)} (headline scores)", fontsize=12)
    if labels:
        fig.legend(handles, labels, loc="outside lower center", ncol=3, fontsize=8)
    return fig


def plot_ablation(ablation: Ablation, path: Path | str) -> Path:
    """Draw the zoom ablation (one panel per benchmark, one bar per setting) into a PNG."""
    return _write(ablation_figure(ablation), path)


def ablation_figure(ablation: Ablation) -> Figure:
    """Each benchmark's score per zoom setting, with its 95% interval and the chance mark."""
    n = max(len(ablation.benchmarks), 1)
    fig, axes = plt.subplots(
        1, n, figsize=(min(MAX_WIDTH_IN, 4.0 + 3.2 * n), 4.8), squeeze=False, layout="constrained"
    )
    for ax, bench in zip(axes[0], ablation.benchmarks, strict=False):
        values, errors = [], []
        for zoom in ablation.zooms:
            found = benchmark_source(ablation.models[zoom], bench)
            values.append(found[1].value if found else 0.0)
            half = half_width(found[0].headline, found[1]) if found else None
            errors.append(half or 0.0)
        x = list(range(len(ablation.zooms)))
        bars = ax.bar(x, values, 0.6, color=[f"C{i % 10}" for i in x], yerr=errors, capsize=5)
        ax.bar_label(
            bars,
            labels=[f"{v:.1f}" for v in values],
            label_type="center",
            color="white",
            fontsize=11,
            fontweight="bold",
        )
        ax.set_xticks(x, [f"zoom={z}\n{tokens_text(z)} tokens" for z in ablation.zooms])
        ax.set_title(bench.name, fontsize=10)
        ax.set_ylabel(bench.axis or PERCENT_AXIS)
        ax.set_ylim(0, max([100.0, *(v + e for v, e in zip(values, errors, strict=True))]) * 1.1)
        if bench.chance is not None:
            ax.axhline(bench.chance, **CHANCE_STYLE)
            ax.text(
                1.0,
                bench.chance,
                f" chance\n {bench.chance:g}",
                transform=ax.get_yaxis_transform(),
                va="center",
                fontsize=8,
                color=CHANCE_STYLE["color"],
            )
    fig.suptitle(
        "Zoom-in test: one model, the same questions, without and with the zoomed-in crops\n"
        "(score with its 95% interval; positions per image, v1 / v2)",
        fontsize=10,
    )
    return fig


def _write(fig: Figure, path: Path | str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_png(fig))
    return path


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    plt.close(fig)
    return buffer.getvalue()


def _axis(column: Column) -> str:
    return column.axis or (PERCENT_AXIS if column.unit == "%" else column.unit)


def _panels(columns: tuple[Column, ...], rows: tuple[Row, ...] = ()) -> list[list[Column]]:
    # One panel per (axis, direction): % first, then the other axes, higher-is-better first.
    # A panel no row has a value in is left out, unless it is the only one.
    groups: dict[tuple[bool, str, bool], list[Column]] = {}
    for column in columns:
        key = (_axis(column) != PERCENT_AXIS, _axis(column), not column.higher_is_better)
        groups.setdefault(key, []).append(column)
    panels = [groups[key] for key in sorted(groups)]
    scored = [p for p in panels if any(c.key in r.values for c in p for r in rows)]
    return scored or panels[:1] or [[]]


def _draw_panel(ax: Axes, rows: list[Row], columns: list[Column], colours: dict[str, str]) -> None:
    """Per column, one bar for each row that has a value there, labelled with it."""
    top = 0.0
    for i, column in enumerate(columns):
        here = [r for r in rows if column.key in r.values]
        width = 0.8 / max(len(here), 1)
        for index, row in enumerate(here):
            value = row.values[column.key]
            bars = ax.bar(
                i + (index - (len(here) - 1) / 2) * width,
                value,
                width,
                color=colours[row.label],
                edgecolor=colours[row.label],
                linewidth=1.5,  # a zero-height bar still draws as a line on the axis
                hatch="//" if row.published else None,
            )
            ax.bar_label(
                bars,
                labels=[f"{value:.1f}"],
                fontsize=7,
                padding=2,
                rotation=90 if len(here) > 2 else 0,
            )
            top = max(top, value)
        if column.chance is not None:
            ax.hlines(column.chance, i - 0.45, i + 0.45, **CHANCE_STYLE)
            top = max(top, column.chance)
    ax.set_xticks(range(len(columns)), [c.title for c in columns], rotation=30, ha="right")
    axis = _axis(columns[0]) if columns else PERCENT_AXIS
    ax.set_ylabel(axis)
    if axis == PERCENT_AXIS:
        top = max(top, 100.0)  # every % panel on the same 0-100 scale
    ax.set_ylim(0, (top or 1.0) * 1.18)  # head room for the value labels
    if columns:
        lower = not columns[0].higher_is_better
        ax.set_title("lower is better" if lower else "higher is better", fontsize=9)
    if not any(c.key in r.values for c in columns for r in rows):
        ax.text(0.5, 0.5, "no scores", ha="center", va="center", transform=ax.transAxes)
