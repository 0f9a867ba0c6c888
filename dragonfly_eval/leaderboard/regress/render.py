"""The gate's report as people read it: one table per model pair, notes, the summary line, and
the one-line reason of each failure or possible drop."""

from __future__ import annotations

import math

from dragonfly_eval.leaderboard.board.markdown import escape, markdown_table
from dragonfly_eval.leaderboard.board.table import MISSING, Cell
from dragonfly_eval.leaderboard.regress.verdict import Comparison, PairReport, RegressReport
from dragonfly_eval.leaderboard.stats import Interval


def render_report_markdown(report: RegressReport) -> str:
    """The comparison tables (one per model pair), their notes and the summary line, as
    markdown."""
    parts = []
    for pair in report.pairs:
        title = pair.current_model
        if pair.baseline_model != pair.current_model:
            title = f"{pair.current_model} (baseline: {pair.baseline_model})"
        parts.append(
            f"**{escape(title)}**\n\n" + markdown_table(*report_grid(pair, report), numeric_from=1)
        )
        notes = [] if report.exact else report_notes(pair)
        if notes:
            parts.append("\n".join(f"- {escape(n)}" for n in notes))
    parts.append(escape(summary_line(report)))
    return "\n\n".join(parts) + "\n"


def report_grid(
    pair: PairReport, report: RegressReport | None = None
) -> tuple[list[str], list[list[Cell]]]:
    """Header and cells of one pair's comparison table; failing rows in bold. Compared on
    per-document scores, each row also shows its 95% interval, p-value, the smallest drop its
    documents can detect and the test used."""
    wide = report is not None and not report.exact
    header = ["Benchmark", "Baseline", "Current", "Delta", "Status"]
    if wide:
        header[4:4] = ["95% CI", "p", "Detectable drop", "Test (n)"]
    cells = []
    for cmp in pair.comparisons:
        texts = [
            cmp.benchmark.name,
            _number(cmp.baseline),
            _number(cmp.current),
            MISSING if cmp.delta is None else f"{cmp.delta:+.2f}",
            cmp.status,
        ]
        if wide:
            texts[4:4] = _interval_texts(cmp.interval)
        cells.append([Cell(t, cmp.failed) for t in texts])
    return header, cells


def report_notes(pair: PairReport) -> list[str]:
    """Why some benchmarks of a pair were compared on their aggregates only, and which rule
    decided those whose significance did not."""
    return [f"{c.benchmark.name}: {c.note or c.rule}" for c in pair.comparisons if c.note or c.rule]


def summary_line(report: RegressReport) -> str:
    """One line saying whether the gate passed and, if not, which benchmarks failed."""
    compared = sum(c.delta is not None for p in report.pairs for c in p.comparisons)
    failures = report.failures
    rule = f"by more than {report.tolerance:g} points"
    if not report.exact:
        rule += f" and significantly (alpha {report.alpha:g})"
    if not failures:
        line = f"PASS: {compared} benchmark score(s) compared, none dropped {rule}."
        drops = report.possible_drops
        if drops:
            line += f" {len(drops)} possible drop(s), not significant: " + "; ".join(
                drop_reason(p, c) for p, c in drops
            )
        return line
    return f"FAIL: {len(failures)} of the compared benchmark scores failed: " + "; ".join(
        failure_reason(p, c, report.tolerance) for p, c in failures
    )


def failure_reason(pair: PairReport, cmp: Comparison, tolerance: float) -> str:
    """Why one benchmark failed, naming it and its model."""
    if cmp.status == "MISSING":
        return f"{cmp.benchmark.name} ({pair.current_model}) has no score in the current results"
    reason = (
        f"{cmp.benchmark.name} ({pair.current_model}) {_number(cmp.baseline)} -> "
        f"{_number(cmp.current)} ({cmp.delta:+.2f}, tolerance {tolerance:g}"
    )
    if cmp.interval is not None:
        reason += f", {_interval_text(cmp.interval)}"
    if cmp.rule is not None:
        reason += f"; {cmp.rule}"
    return reason + ")"


def drop_reason(pair: PairReport, cmp: Comparison) -> str:
    """A possible drop: the benchmark, its change and why it is not called a regression."""
    assert cmp.interval is not None
    return (
        f"{cmp.benchmark.name} ({pair.current_model}) {cmp.delta:+.2f}, "
        f"{_interval_text(cmp.interval)}"
    )


def _interval_text(interval: Interval) -> str:
    bounds, p, _, _ = _interval_texts(interval)
    return f"95% CI {bounds}, p={p}, {interval.test}"


def _interval_texts(interval: Interval | None) -> list[str]:
    if interval is None:
        return [MISSING, MISSING, MISSING, "aggregate"]
    detectable = MISSING if interval.detectable is None else f"{interval.detectable:.2f}"
    return [
        f"{interval.low:+.2f} to {interval.high:+.2f}",
        _p_text(interval.p_value),
        detectable,
        f"{interval.test} ({interval.n})",
    ]


def _p_text(p: float) -> str:
    if not math.isfinite(p):
        return MISSING
    return f"{p:.1e}" if p < 0.001 else f"{p:.3f}"


def _number(value: float | None) -> str:
    return MISSING if value is None else f"{value:.2f}"
