"""The regression gate: headline scores of a current run against a baseline, benchmark by benchmark.

With sample logs (lmms-eval's --log_samples) on both sides, each benchmark is compared on its
per-document scores, paired by doc_id: a delta with a 95% interval and a p-value (stats.py), and
a drop beyond the tolerance fails when it is significant, when the comparison is underpowered
(then the tolerance decides), or when it is beyond the drop those documents can detect. Without
them, or with `exact`, the headline aggregates are compared against the tolerance alone. Results
files and sample logs are data: corpus metrics are recomputed only with installed tasks'
aggregations (aggregations.py).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from warnings import catch_warnings, simplefilter

import numpy as np

from dragonfly_eval.leaderboard.aggregations import AggregationError
from dragonfly_eval.leaderboard.board.table import Found, benchmark_source, score_value
from dragonfly_eval.leaderboard.regress.interval import paired_interval
from dragonfly_eval.leaderboard.regress.pairing import (
    pair_documents,
    pair_models,
    prompt_mismatch,
)
from dragonfly_eval.leaderboard.regress.verdict import (
    DEFAULT_TOLERANCE,
    Comparison,
    GateSettings,
    PairReport,
    RegressError,
    RegressReport,
    aggregate_status,
    interval_status,
)
from dragonfly_eval.leaderboard.stats import Interval
from dragonfly_eval.leaderboard.suite import Benchmark, Score, Suite
from dragonfly_eval.lmms_files.results import ModelResults, load_runs, merge_runs
from dragonfly_eval.lmms_files.samples import (
    SampleLogError,
    UnrepresentableNumber,
    read_metric_log,
    sample_log_path,
)


@dataclass(frozen=True)
class Compared:
    """What comparing some benchmarks found besides their comparisons: the document sets or
    prompts that differ (`mismatches`) and the pairings that could not be checked."""

    comparisons: tuple[Comparison, ...]
    mismatches: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class PerDocument:
    """The per-document comparison of one benchmark (leaderboard units), or the note saying
    why it is compared on its aggregates; with what the pairing of its documents found."""

    interval: Interval | None = None
    note: str | None = None
    mismatches: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


def benchmarks_of_tasks(benchmarks: Sequence[Benchmark], tasks: Sequence[str]) -> list[Benchmark]:
    """The benchmarks a source of which is scored by one of `tasks`; RegressError for none."""
    wanted = set(tasks)
    kept = [
        b for b in benchmarks if any(wanted & set(source.headline.tasks) for source in b.sources)
    ]
    if not kept:
        raise RegressError(
            f"--tasks {','.join(tasks)}: no benchmark of the chosen suites is scored by these "
            "tasks (the suite mapping: dragonfly_eval/data/suite.yaml)"
        )
    return kept


def compare(
    baseline: Iterable[Path | str],
    current: Iterable[Path | str],
    suite: Suite,
    suite_names: Sequence[str] = ("all",),
    tolerance: float = DEFAULT_TOLERANCE,
    allow_partial: bool = False,
    settings: GateSettings | None = None,
    tasks: Sequence[str] | None = None,
) -> RegressReport:
    """Compare the headline scores of `current` against `baseline` (results files or folders).

    One model on each side: those two are compared, whatever their names. Several: models are
    matched by name, and models on one side only are reported as warnings. Raises RegressError
    when a side has no usable results, no benchmark has a score on both sides, the two sides
    scored a benchmark with different tasks, or (unless `allow_partial`) ran a benchmark on
    different documents (a different --limit or dataset size, other doc_ids or doc_hashes, or
    other prompt settings). `settings` (default: per-document statistics where sample logs
    exist) overrides `tolerance` when given. `tasks` keeps only the benchmarks scored by one
    of these lmms-eval tasks (RegressError when none is).
    """
    settings = settings or GateSettings(tolerance=tolerance)
    tolerance = settings.tolerance
    if not math.isfinite(tolerance) or tolerance < 0:
        raise RegressError(f"the tolerance must be a finite number >= 0, not {tolerance}")
    if not 0 < settings.alpha < 1:
        raise RegressError(f"alpha must be between 0 and 1, not {settings.alpha}")
    benchmarks = suite.select(list(suite_names))
    if tasks is not None:
        benchmarks = benchmarks_of_tasks(benchmarks, tasks)
    base_models, base_warnings = _side("baseline", baseline, benchmarks)
    cur_models, cur_warnings = _side("current", current, benchmarks)
    models = pair_models(base_models, cur_models)
    warnings = [*base_warnings, *cur_warnings, *models.warnings]
    mismatches: list[str] = []
    reports = []
    for b, c in models.pairs:
        compared = _compare_pair(b, c, benchmarks, settings)
        reports.append(PairReport(b.model, c.model, compared.comparisons))
        mismatches += compared.mismatches
        warnings += compared.warnings
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
    exact = settings.exact
    comparisons = [c for r in reports for c in r.comparisons]
    if not exact and not any(c.interval is not None or c.note for c in comparisons):
        warnings.append(
            "no benchmark has sample logs on both sides (lmms-eval --log_samples): compared "
            "the aggregate scores against the tolerance, without intervals"
        )
        exact = True
    return RegressReport(tuple(reports), tolerance, tuple(warnings), settings.alpha, exact)


def _side(
    name: str, paths: Iterable[Path | str], benchmarks: list[Benchmark]
) -> tuple[list[ModelResults], list[str]]:
    """The rows of one side that score a selected benchmark, and the inputs it skipped."""
    loaded = load_runs(paths)
    if not loaded.runs:
        reasons = "; ".join(loaded.problems) or "no path given"
        raise RegressError(f"the {name} has no usable results: {reasons}")
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
    return models, [f"{name}: skipped {p}" for p in loaded.problems]


def _compare_pair(
    base: ModelResults, cur: ModelResults, benchmarks: list[Benchmark], settings: GateSettings
) -> Compared:
    """The comparisons of one model pair, benchmark by benchmark."""
    comparisons, mismatches, warnings = [], [], []
    for bench in benchmarks:
        score, b, c = _pair_scores(base, cur, bench)
        if b is None and c is None:
            continue
        if b is not None and c is not None and not b.documents.same_set(c.documents):
            mismatches.append(
                f"{bench.name} ({cur.model}): baseline {_documents(b)}, current {_documents(c)}"
            )
        b_value = None if b is None else b.value
        c_value = None if c is None else c.value
        found = PerDocument()
        if b is not None and c is not None and not settings.exact:
            found = per_document(f"{bench.name} ({cur.model})", score, b, c, settings)
            mismatches += found.mismatches
            warnings += found.warnings
        status, rule = aggregate_status(bench, b_value, c_value, settings.tolerance), None
        if found.interval is not None:
            status, rule = interval_status(bench, found.interval, settings)
        comparisons.append(
            Comparison(bench, b_value, c_value, status, found.interval, found.note, rule)
        )
    return Compared(tuple(comparisons), tuple(mismatches), tuple(warnings))


def _pair_scores(
    base: ModelResults, cur: ModelResults, bench: Benchmark
) -> tuple[Score, Found | None, Found | None]:
    """The score compared and both sides' values: from the first source both have, else each
    side's own first one; RegressError when both sides have a score, but from different tasks."""
    for source in bench.sources:
        b, c = score_value(base, source.headline), score_value(cur, source.headline)
        if b is not None and c is not None:
            return source.headline, b, c
    b_found, c_found = benchmark_source(base, bench), benchmark_source(cur, bench)
    if b_found is not None and c_found is not None:
        raise RegressError(
            f"{bench.name}: the baseline was scored by {'+'.join(b_found[1].tasks)} and the "
            f"current run by {'+'.join(c_found[1].tasks)}; different tasks are not comparable"
        )
    return bench.headline, (b_found and b_found[1]), (c_found and c_found[1])


def per_document(
    label: str, score: Score, base: Found, cur: Found, settings: GateSettings
) -> PerDocument:
    """The per-document comparison of one benchmark whose two sides have sample logs, or why it
    is compared on its aggregates (none at all when neither side has one: the report says so
    once). RegressError for a log holding a number no float can hold."""
    pairs = list(zip(score.tasks, base.runs, cur.runs, strict=True))
    if not any(sample_log_path(run.path, task).exists() for task, *runs in pairs for run in runs):
        return PerDocument()
    mismatches: list[str] = []
    warnings: list[str] = []

    def aggregate_only(why: str) -> PerDocument:
        return PerDocument(None, f"aggregate only: {why}", tuple(mismatches), tuple(warnings))

    try:
        logs = []
        for task, b_run, c_run in pairs:
            sides = []
            for side, run in (("baseline", b_run), ("current", c_run)):
                path = sample_log_path(run.path, task)
                if not path.exists():
                    return aggregate_only(
                        f"the {side} has no sample log for {task} ({path.name} beside "
                        f"{run.path.name}; run lmms-eval with --log_samples)"
                    )
                sides.append(read_metric_log(path, task, score.metric))
            logs.append((sides[0], sides[1]))
        mismatches += [m for task, b, c in pairs if (m := prompt_mismatch(label, task, b, c))]
        paired = []
        for b_log, c_log in logs:
            documents = pair_documents(label, b_log, c_log)
            mismatches += [documents.mismatch] if documents.mismatch else []
            warnings += [documents.warning] if documents.warning else []
            if len(documents.base_at) < 2:
                return aggregate_only(f"{b_log.task}: fewer than 2 documents in common")
            paired.append((documents.base_at, documents.cur_at))
        with np.errstate(all="ignore"), catch_warnings():
            simplefilter("ignore", RuntimeWarning)  # overflow: checked on the result below
            interval = paired_interval(score, base, logs, paired, settings)
    except UnrepresentableNumber as err:
        raise RegressError(str(err)) from err
    except (AggregationError, SampleLogError) as err:
        return aggregate_only(str(err))
    if not interval.finite:
        return aggregate_only(
            "the per-document values overflow a float (the interval came out infinite or NaN), "
            "so the recorded aggregates decide"
        )
    return PerDocument(interval.scaled(score.scale), None, tuple(mismatches), tuple(warnings))


def _documents(found: Found) -> str:
    docs = found.documents
    if docs.effective is not None:
        return f"{docs.effective} of {docs.original} documents"
    return "limit " + (f"{docs.limit:g}" if docs.limit is not None else "none")
