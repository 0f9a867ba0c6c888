"""The regression gate: headline scores of a current run against a baseline, benchmark by benchmark."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from dragonfly_eval.leaderboard.markdown import escape, markdown_table
from dragonfly_eval.leaderboard.results import ModelResults, load_runs, merge_runs
from dragonfly_eval.leaderboard.suite import Benchmark, Suite
from dragonfly_eval.leaderboard.table import (
    MISSING,
    Cell,
    Found,
    benchmark_source,
    score_value,
)

DEFAULT_TOLERANCE = 0.5
# Float noise must not turn a drop of exactly the tolerance into a failure.
_EPSILON = 1e-9


class RegressError(ValueError):
    """An input with no usable results, or nothing to compare: the gate cannot decide (exit 2)."""


@dataclass(frozen=True)
class Comparison:
    """One benchmark of one model pair. Status: ok, improved, REGRESSION, MISSING or new."""

    benchmark: Benchmark
    baseline: float | None
    current: float | None
    status: str

    @property
    def delta(self) -> float | None:
        """Current minus baseline, in leaderboard units; None when either side is missing."""
        if self.baseline is None or self.current is None:
            return None
        return self.current - self.baseline

    @property
    def failed(self) -> bool:
        """Whether this benchmark fails the gate: a drop beyond tolerance, or a lost score."""
        return self.status in ("REGRESSION", "MISSING")


@dataclass(frozen=True)
class PairReport:
    """The comparisons of one baseline model against one current model."""

    baseline_model: str
    current_model: str
    comparisons: tuple[Comparison, ...]


@dataclass(frozen=True)
class RegressReport:
    """Everything the gate decided, plus warnings about inputs it skipped."""

    pairs: tuple[PairReport, ...]
    tolerance: float
    warnings: tuple[str, ...] = ()

    @property
    def failures(self) -> list[tuple[PairReport, Comparison]]:
        """The failing benchmarks with the model pair each belongs to."""
        return [(p, c) for p in self.pairs for c in p.comparisons if c.failed]


def compare(
    baseline: Iterable[Path | str],
    current: Iterable[Path | str],
    suite: Suite,
    suite_names: Sequence[str] = ("all",),
    tolerance: float = DEFAULT_TOLERANCE,
    allow_partial: bool = False,
) -> RegressReport:
    """Compare the headline scores of `current` against `baseline` (results files or folders).

    One model on each side: those two are compared, whatever their names. Several: models are
    matched by name, and models on one side only are reported as warnings. Raises RegressError
    when a side has no usable results, no benchmark has a score on both sides, the two sides
    scored a benchmark with different tasks, or (unless `allow_partial`) ran a benchmark on
    different documents (a different --limit or dataset size).
    """
    if not math.isfinite(tolerance) or tolerance < 0:
        raise RegressError(f"the tolerance must be a finite number >= 0, not {tolerance}")
    benchmarks = suite.select(list(suite_names))
    warnings: list[str] = []
    base_models = _side("baseline", baseline, benchmarks, warnings)
    cur_models = _side("current", current, benchmarks, warnings)
    pairs = _pair_models(base_models, cur_models, warnings)
    mismatches: list[str] = []
    reports = tuple(
        PairReport(b.model, c.model, _compare_pair(b, c, benchmarks, tolerance, mismatches))
        for b, c in pairs
    )
    if mismatches and not allow_partial:
        raise RegressError(
            "the two sides ran on different documents, so their scores are not comparable "
            "(--allow-partial compares them anyway): " + "; ".join(mismatches)
        )
    warnings.extend(f"compared on different documents: {m}" for m in mismatches)
    if not any(cmp.delta is not None for r in reports for cmp in r.comparisons):
        raise RegressError(
            "no benchmark has a headline score in both the baseline and the current results"
        )
    return RegressReport(reports, tolerance, tuple(warnings))


def render_report_markdown(report: RegressReport) -> str:
    """The comparison tables (one per model pair) and the summary line, as markdown."""
    parts = []
    for pair in report.pairs:
        title = pair.current_model
        if pair.baseline_model != pair.current_model:
            title = f"{pair.current_model} (baseline: {pair.baseline_model})"
        parts.append(
            f"**{escape(title)}**\n\n" + markdown_table(*report_grid(pair), numeric_from=1)
        )
    parts.append(escape(summary_line(report)))
    return "\n\n".join(parts) + "\n"


def report_grid(pair: PairReport) -> tuple[list[str], list[list[Cell]]]:
    """Header and cells of one pair's comparison table; failing rows in bold."""
    header = ["Benchmark", "Baseline", "Current", "Delta", "Status"]
    cells = []
    for cmp in pair.comparisons:
        texts = [
            cmp.benchmark.name,
            _number(cmp.baseline),
            _number(cmp.current),
            MISSING if cmp.delta is None else f"{cmp.delta:+.2f}",
            cmp.status,
        ]
        cells.append([Cell(t, cmp.failed) for t in texts])
    return header, cells


def summary_line(report: RegressReport) -> str:
    """One line saying whether the gate passed and, if not, which benchmarks failed."""
    compared = sum(c.delta is not None for p in report.pairs for c in p.comparisons)
    failures = report.failures
    if not failures:
        return (
            f"PASS: {compared} benchmark score(s) compared, none dropped by more than "
            f"{report.tolerance:g} points."
        )
    return f"FAIL: {len(failures)} of the compared benchmark scores failed: " + "; ".join(
        failure_reason(p, c, report.tolerance) for p, c in failures
    )


def failure_reason(pair: PairReport, cmp: Comparison, tolerance: float) -> str:
    """Why one benchmark failed, naming it and its model."""
    if cmp.status == "MISSING":
        return f"{cmp.benchmark.name} ({pair.current_model}) has no score in the current results"
    return (
        f"{cmp.benchmark.name} ({pair.current_model}) {_number(cmp.baseline)} -> "
        f"{_number(cmp.current)} ({cmp.delta:+.2f}, tolerance {tolerance:g})"
    )


def _side(
    name: str, paths: Iterable[Path | str], benchmarks: list[Benchmark], warnings: list[str]
) -> list[ModelResults]:
    loaded = load_runs(paths)
    if not loaded.runs:
        reasons = "; ".join(loaded.problems) or "no path given"
        raise RegressError(f"the {name} has no usable results: {reasons}")
    warnings.extend(f"{name}: skipped {p}" for p in loaded.problems)
    models = [
        m
        for m in merge_runs(loaded.runs)
        if any(benchmark_source(m, b) is not None for b in benchmarks)
    ]
    if not models:
        raise RegressError(
            f"the {name} results hold no headline score of the selected benchmarks "
            f"({', '.join(b.key for b in benchmarks)})"
        )
    return models


def _pair_models(
    base: list[ModelResults], cur: list[ModelResults], warnings: list[str]
) -> list[tuple[ModelResults, ModelResults]]:
    if len(base) == 1 and len(cur) == 1:
        return [(base[0], cur[0])]
    cur_by_name = {m.model: m for m in cur}
    pairs = [(b, cur_by_name[b.model]) for b in base if b.model in cur_by_name]
    if not pairs:
        raise RegressError(
            "no model in common: baseline has "
            f"{', '.join(m.model for m in base)}; current has {', '.join(m.model for m in cur)}"
        )
    paired = {b.model for b, _ in pairs}
    warnings.extend(
        f"baseline model {m.model} has no current run" for m in base if m.model not in paired
    )
    warnings.extend(
        f"current model {m.model} has no baseline" for m in cur if m.model not in paired
    )
    return pairs


def _compare_pair(
    base: ModelResults,
    cur: ModelResults,
    benchmarks: list[Benchmark],
    tolerance: float,
    mismatches: list[str],
) -> tuple[Comparison, ...]:
    comparisons = []
    for bench in benchmarks:
        b, c = _pair_scores(base, cur, bench)
        if b is None and c is None:
            continue
        if b is not None and c is not None and not b.documents.same_set(c.documents):
            mismatches.append(
                f"{bench.name} ({cur.model}): baseline {_documents(b)}, current {_documents(c)}"
            )
        b_value = None if b is None else b.value
        c_value = None if c is None else c.value
        comparisons.append(
            Comparison(bench, b_value, c_value, _status(bench, b_value, c_value, tolerance))
        )
    return tuple(comparisons)


def _pair_scores(
    base: ModelResults, cur: ModelResults, bench: Benchmark
) -> tuple[Found | None, Found | None]:
    """Both sides' scores from the first source both have, else each side's own first one;
    RegressError when both sides have a score, but only from different tasks."""
    for source in bench.sources:
        b, c = score_value(base, source.headline), score_value(cur, source.headline)
        if b is not None and c is not None:
            return b, c
    b_found, c_found = benchmark_source(base, bench), benchmark_source(cur, bench)
    if b_found is not None and c_found is not None:
        raise RegressError(
            f"{bench.name}: the baseline was scored by {'+'.join(b_found[1].tasks)} and the "
            f"current run by {'+'.join(c_found[1].tasks)}; different tasks are not comparable"
        )
    return (b_found and b_found[1]), (c_found and c_found[1])


def _documents(found: Found) -> str:
    docs = found.documents
    if docs.effective is not None:
        return f"{docs.effective} of {docs.original} documents"
    return "limit " + (f"{docs.limit:g}" if docs.limit is not None else "none")


def _status(bench: Benchmark, base: float | None, cur: float | None, tolerance: float) -> str:
    if cur is None:
        return "MISSING"
    if base is None:
        return "new"
    gain = cur - base if bench.higher_is_better else base - cur
    if gain < -tolerance - _EPSILON:
        return "REGRESSION"
    return "improved" if gain > tolerance + _EPSILON else "ok"


def _number(value: float | None) -> str:
    return MISSING if value is None else f"{value:.2f}"
