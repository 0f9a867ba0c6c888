"""The leaderboard as data: columns from the suite, rows from runs and published numbers."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from dragonfly_eval.errors import DragonflyEvalError
from dragonfly_eval.leaderboard.reference import ReferenceRow
from dragonfly_eval.leaderboard.suite import Benchmark, Score, Source, Suite
from dragonfly_eval.lmms_files.results import (
    Cost,
    Documents,
    ModelResults,
    Run,
    load_runs,
    merge_runs,
)

MISSING = "–"
PUBLISHED_MARK = "†"


class LeaderboardError(DragonflyEvalError):
    """No usable results to build a table from."""


@dataclass(frozen=True)
class Column:
    """One score column: `key` is a benchmark key, or "benchmark.label" for an extra metric."""

    key: str
    title: str
    unit: str
    higher_is_better: bool
    axis: str = ""  # the chart's value axis (Benchmark.axis); "" reads as the unit's default
    chance: float | None = None  # what guessing scores (Benchmark.chance)


@dataclass(frozen=True)
class Row:
    """One model's values by column key, in leaderboard units; published rows carry a source."""

    name: str
    values: Mapping[str, float]
    dates: tuple[str, ...] = ()
    source: str | None = None
    partial: Mapping[str, str] = field(default_factory=dict)
    found: Mapping[str, Found] = field(default_factory=dict)  # the runs behind each value
    cost: Cost | None = None  # what the runs behind the values cost, when they recorded it

    @property
    def published(self) -> bool:
        """Whether the numbers were copied from a publication rather than run here."""
        return self.source is not None

    @property
    def label(self) -> str:
        """The row's title as shown: published rows carry the footnote mark."""
        return f"{self.name} {PUBLISHED_MARK}" if self.published else self.name


@dataclass(frozen=True)
class OtherTask:
    """A task in the results that the suite mapping does not know: listed, never dropped."""

    model: str
    task: str
    date: str
    metrics: Mapping[str, float]


@dataclass(frozen=True)
class Average:
    """A row's mean over the percentage columns it has a value for."""

    value: float
    used: int
    total: int


@dataclass(frozen=True)
class Table:
    """Everything the markdown, terminal and plot views show."""

    suites: tuple[str, ...]
    columns: tuple[Column, ...]
    extra_columns: tuple[Column, ...]
    rows: tuple[Row, ...]
    other_tasks: tuple[OtherTask, ...] = ()
    replaced: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()
    alternates: tuple[str, ...] = ()
    prefer: str = "largest"
    sections: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (suite, its benchmark keys)
    show_cost: bool = False  # the headline view ends with the run-cost columns (--cost)

    @property
    def average_columns(self) -> tuple[Column, ...]:
        """The columns the average runs over: headline scores in %, never MME-style points."""
        return tuple(c for c in self.columns if c.unit == "%")

    @property
    def average_title(self) -> str:
        """The average column's header, saying what it averages."""
        title = "Avg (row's % scores)"
        others = sorted({c.unit for c in self.columns if c.unit != "%"})
        if others:
            title = f"Avg (row's % scores; {', '.join(others)} excluded)"
        return title

    def average(self, row: Row) -> Average | None:
        """The row's mean over the % columns it has; None when it has none of them."""
        values = [row.values[c.key] for c in self.average_columns if c.key in row.values]
        if not values:
            return None
        return Average(sum(values) / len(values), len(values), len(self.average_columns))


def build_table(
    paths: Iterable[Path | str],
    suite: Suite,
    suite_names: Sequence[str] | None = None,
    reference: Sequence[ReferenceRow] = (),
    prefer: str = "largest",
    cost: bool = False,
) -> Table:
    """Read lmms-eval results under `paths` and lay them out by the suite's headline scores.

    `suite_names` picks the column groups (e.g. ["general"], ["all"]); None picks every suite
    that some run has a score in. `prefer` picks among runs of one model and task (see
    merge_runs). `cost` adds the engine and samples/s of the runs behind each row (`COST_TITLES`).
    Raises LeaderboardError when no path holds a usable run.
    """
    loaded = load_runs(paths)
    if not loaded.runs:
        reasons = "; ".join(loaded.problems) or "no paths given"
        raise LeaderboardError(f"no usable lmms-eval results: {reasons}")
    models = merge_runs(loaded.runs, prefer)
    if suite_names is None:
        suite_names = _suites_with_scores(suite, models)
    benchmarks = suite.select(list(suite_names))
    columns = tuple(_headline_column(b) for b in benchmarks)
    extra_columns = tuple(
        Column(f"{b.key}.{label}", f"{b.name} {label}", b.unit, b.higher_is_better)
        for b in benchmarks
        for label in b.extra
    )
    shown = {c.key for c in columns + extra_columns}
    rows = [_model_row(m, benchmarks) for m in models]
    rows += [
        row for row in (_reference_row(r) for r in reference) if any(k in shown for k in row.values)
    ]
    return Table(
        suites=tuple(suite_names),
        columns=columns,
        extra_columns=extra_columns,
        rows=tuple(rows),
        other_tasks=tuple(t for m in models for t in _other_tasks(m, suite)),
        replaced=tuple(note for m in models for note in _replacement_notes(m)),
        problems=tuple(loaded.problems),
        alternates=tuple(note for m in models for note in _alternate_notes(m, benchmarks)),
        prefer=prefer,
        sections=_sections(suite, suite_names),
        show_cost=cost,
    )


def by_suite(table: Table) -> list[tuple[str, Table]]:
    """The table cut into one table per suite (its columns, the rows with a value in them, its
    own average and best values), suites without a value left out unless none has one; the
    whole table when it has no suite sections."""
    if not table.sections:
        return [(", ".join(table.suites), table)]
    parts = []
    for name, keys in table.sections:
        columns = tuple(c for c in table.columns if c.key in keys)
        extra = tuple(c for c in table.extra_columns if c.key.split(".", 1)[0] in keys)
        shown = {c.key for c in columns}
        rows = tuple(r for r in table.rows if shown & set(r.values))
        parts.append(
            (
                name,
                replace(
                    table,
                    suites=(name,),
                    columns=columns,
                    extra_columns=extra,
                    rows=rows,
                    sections=(),
                ),
            )
        )
    return [part for part in parts if part[1].rows] or parts[:1]


@dataclass(frozen=True)
class Found:
    """A score read from a model's results: its value, the runs and documents behind it."""

    value: float
    runs: tuple[Run, ...]
    tasks: tuple[str, ...]
    documents: Documents


def score_value(model: ModelResults, score: Score) -> Found | None:
    """The score's value for a model and what it came from; None if any task lacks it."""
    raw: list[float] = []
    runs: list[Run] = []
    for task in score.tasks:
        entry = model.tasks.get(task)
        if entry is None or score.metric not in entry[0]:
            return None
        raw.append(entry[0][score.metric])
        runs.append(entry[1])
    value = sum(raw) / len(raw) * score.scale
    if not math.isfinite(value):  # e.g. 1e308 x100: no score rather than "inf"
        return None
    documents = Documents.total(run.documents(t) for run, t in zip(runs, score.tasks, strict=True))
    return Found(value, tuple(runs), score.tasks, documents)


def benchmark_source(model: ModelResults, bench: Benchmark) -> tuple[Source, Found] | None:
    """The first of the benchmark's sources (suite.yaml order) that has a headline score for
    the model, with that score; None when none has."""
    for source in bench.sources:
        found = score_value(model, source.headline)
        if found is not None:
            return source, found
    return None


def best_values(rows: Sequence[Row], column: Column) -> float | None:
    """The best value of a column as displayed (one decimal); None when fewer than two rows compete."""
    # A partial run's cell (fewer documents) does not compete with full runs.
    shown = [
        round(r.values[column.key], 1)
        for r in rows
        if column.key in r.values and column.key not in r.partial
    ]
    if len(shown) < 2:
        return None
    return max(shown) if column.higher_is_better else min(shown)


@dataclass(frozen=True)
class Cell:
    """One displayed cell: its text and whether it is the best of its column."""

    text: str
    bold: bool = False


def grid(
    table: Table,
    extra: bool = False,
    with_dates: bool = True,
    labels: Mapping[str, str] | None = None,
) -> tuple[list[str], list[list[Cell]]]:
    """Header and cells of the headline view (with the average) or of the extra-metrics view.

    The extra view leaves out rows with no extra metric. `with_dates=False` leaves the run-date
    column out; `labels` replaces row labels (e.g. short model names for a terminal).
    """
    columns = table.extra_columns if extra else table.columns
    header = ["Model", *(["Run date"] if with_dates else []), *(c.title for c in columns)]
    best = {c.key: best_values(table.rows, c) for c in columns}
    # Only rows that have every % column, none from a partial run, compete for the best average.
    full = [
        round(a.value, 1)
        for r in table.rows
        if (a := table.average(r)) and a.used == a.total and not r.partial
    ]
    best_average = max(full) if len(full) >= 2 else None
    if not extra:
        header.append(table.average_title)
    cost = table.show_cost and not extra
    if cost:
        header.extend(COST_TITLES)
    cells = []
    for row in table.rows:
        if extra and not any(c.key in row.values for c in columns):
            continue
        dates = "published" if row.published else ", ".join(row.dates) or MISSING
        line = [Cell((labels or {}).get(row.label, row.label))]
        if with_dates:
            line.append(Cell(dates))
        for column in columns:
            value = row.values.get(column.key)
            if value is None:
                line.append(Cell(MISSING))
            elif column.key in row.partial:
                line.append(Cell(f"{value:.1f} ({row.partial[column.key]})"))
            else:
                line.append(Cell(f"{value:.1f}", round(value, 1) == best[column.key]))
        if not extra:
            line.append(_average_cell(table.average(row), None if row.partial else best_average))
        if cost:
            line.extend(cost_cells(row))
        cells.append(line)
    return header, cells


COST_TITLES = ("Engine", "Samples/s")


def cost_cells(row: Row) -> list[Cell]:
    """The engine and samples/s of a row's runs; – for a published row or runs that recorded
    no cost."""
    if row.cost is None:
        return [Cell(MISSING), Cell(MISSING)]
    return [Cell(row.cost.engine), Cell(f"{row.cost.samples_per_s:.3g}")]


def short_labels(rows: Sequence[Row]) -> dict[str, str]:
    """Row label -> the last part of its model path, where no other row shares that part."""
    short = {r.label: r.label.rstrip("/").rsplit("/", 1)[-1] or r.label for r in rows}
    taken: dict[str, int] = {}
    for name in short.values():
        taken[name] = taken.get(name, 0) + 1
    return {label: name if taken[name] == 1 else label for label, name in short.items()}


def _average_cell(average: Average | None, best: float | None) -> Cell:
    if average is None:
        return Cell(MISSING)
    if average.used < average.total:
        return Cell(f"{average.value:.1f} ({average.used}/{average.total})")
    return Cell(f"{average.value:.1f}", round(average.value, 1) == best)


def _headline_column(bench: Benchmark) -> Column:
    title = bench.name if bench.unit == "%" else f"{bench.name} ({bench.unit})"
    return Column(bench.key, title, bench.unit, bench.higher_is_better, bench.axis, bench.chance)


def _sections(suite: Suite, names: Sequence[str]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Each chosen suite with the benchmark keys it shows first (a key in two suites goes to
    the first)."""
    names = list(suite.suites) if "all" in names else list(names)
    taken: set[str] = set()
    sections = []
    for name in names:
        keys = tuple(k for k in suite.suites[name] if k not in taken)
        taken.update(keys)
        if keys:
            sections.append((name, keys))
    return tuple(sections)


def _model_row(model: ModelResults, benchmarks: Sequence[Benchmark]) -> Row:
    values: dict[str, float] = {}
    partial: dict[str, str] = {}
    behind: dict[str, Found] = {}
    dates: set[str] = set()
    for bench in benchmarks:
        chosen = benchmark_source(model, bench)
        if chosen is None:
            continue
        source, _ = chosen
        scores = {bench.key: source.headline}
        scores.update({f"{bench.key}.{label}": s for label, s in source.extra.items()})
        for key, score in scores.items():
            found = score_value(model, score)
            if found is None:
                continue
            values[key] = found.value
            behind[key] = found
            if found.documents.partial:
                partial[key] = found.documents.label
            dates.update(run.date_label for run in found.runs)
    runs = {run.path: run for found in behind.values() for run in found.runs}
    cost = Cost.total(run.cost for run in runs.values() if run.cost is not None)
    return Row(model.model, values, tuple(sorted(dates)), partial=partial, found=behind, cost=cost)


def _reference_row(ref: ReferenceRow) -> Row:
    return Row(name=ref.name, values={**ref.scores, **ref.extra}, source=ref.source)


def _suites_with_scores(suite: Suite, models: Sequence[ModelResults]) -> list[str]:
    picked = [
        name
        for name, keys in suite.suites.items()
        if any(benchmark_source(m, suite.benchmarks[k]) is not None for m in models for k in keys)
    ]
    return picked or list(suite.suites)[:1]


def _related_tasks(model: ModelResults, suite: Suite) -> set[str]:
    """Mapped tasks, the subtasks of mapped groups, and the groups that contain mapped tasks."""
    related = set(suite.mapped_tasks())
    _close(related, model.subtasks)  # down: the members of mapped groups
    parents: dict[str, list[str]] = {}
    for group, members in model.subtasks.items():
        for member in members:
            parents.setdefault(member, []).append(group)
    _close(related, parents)  # up: the groups holding any of them
    return related


def _close(names: set[str], edges: Mapping[str, Sequence[str]]) -> None:
    # Iterative, linear walk: a results file may nest groups thousands deep.
    pending = list(names)
    while pending:
        for name in edges.get(pending.pop(), ()):
            if name not in names:
                names.add(name)
                pending.append(name)


def _other_tasks(model: ModelResults, suite: Suite) -> list[OtherTask]:
    related = _related_tasks(model, suite)
    return [
        OtherTask(model.model, task, run.date_label, metrics)
        for task, (metrics, run) in sorted(model.tasks.items())
        if task not in related
    ]


def _replacement_notes(model: ModelResults) -> list[str]:
    by_pair: dict[tuple[Path, Path], list[str]] = {}
    runs: dict[Path, Run] = {}
    for item in model.replaced:
        by_pair.setdefault((item.kept.path, item.dropped.path), []).append(item.task)
        runs[item.kept.path], runs[item.dropped.path] = item.kept, item.dropped
    notes = []
    for (kept, dropped), tasks in by_pair.items():
        notes.append(
            f"{model.model}: the run of {runs[kept].date_label} ({kept.name}"
            f"{_size_note(runs[kept], tasks)}) replaced the run of {runs[dropped].date_label} "
            f"({dropped.name}{_size_note(runs[dropped], tasks)}) for {', '.join(sorted(tasks))}"
        )
    return notes


def _size_note(run: Run, tasks: Sequence[str]) -> str:
    labels = sorted({d.label for d in (run.documents(t) for t in tasks) if d.partial})
    return f", partial: {', '.join(labels)}" if labels else ""


def _alternate_notes(model: ModelResults, benchmarks: Sequence[Benchmark]) -> list[str]:
    """For each benchmark scored from one source, the other sources the model also has."""
    notes = []
    for bench in benchmarks:
        chosen = benchmark_source(model, bench)
        if chosen is None:
            continue
        others = [
            "+".join(s.headline.tasks)
            for s in bench.sources
            if s is not chosen[0] and score_value(model, s.headline) is not None
        ]
        if others:
            notes.append(
                f"{model.model}: {bench.name} shows {'+'.join(chosen[0].headline.tasks)}; "
                f"also in the results, not shown: {', '.join(others)}"
            )
    return notes
