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

import contextlib
import functools
import math
import sys
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from warnings import catch_warnings, simplefilter

import numpy as np

from dragonfly_eval.leaderboard.aggregations import (
    Aggregation,
    AggregationError,
    SumForm,
    call_aggregation,
    matches,
    sum_features,
    sum_form,
    task_aggregation,
)
from dragonfly_eval.leaderboard.markdown import escape, markdown_table
from dragonfly_eval.leaderboard.results import ModelResults, Run, load_runs, merge_runs
from dragonfly_eval.leaderboard.samples import (
    DOCUMENT_FIELDS,
    MetricLog,
    SampleLogError,
    UnrepresentableNumber,
    aggregation_name,
    prompt_settings,
    read_metric_log,
    sample_log_path,
)
from dragonfly_eval.leaderboard.stats import (
    DEFAULT_ALPHA,
    DEFAULT_BOOTSTRAP,
    DEFAULT_SEED,
    Interval,
    paired_bootstrap,
    paired_bootstrap_sums,
    paired_means,
)
from dragonfly_eval.leaderboard.suite import Benchmark, Score, Suite
from dragonfly_eval.leaderboard.table import (
    MISSING,
    Cell,
    Found,
    benchmark_source,
    score_value,
)
from dragonfly_eval.safe_json import MAX_RESULTS_BYTES, read_json

DEFAULT_TOLERANCE = 0.5
# Float noise must not turn a drop of exactly the tolerance into a failure.
_EPSILON = 1e-9
# the task's aggregation function for a corpus-level metric: (task, metric) -> function
Aggregations = Callable[[str, str], Aggregation | None]


class RegressError(ValueError):
    """An input with no usable results, or nothing to compare: the gate cannot decide (exit 2)."""


@dataclass(frozen=True)
class Comparison:
    """One benchmark of one model pair. Status: ok, improved, possible drop, REGRESSION,
    MISSING or new. `interval` is the per-document comparison (leaderboard units), when there
    is one; `note` says why there is none; `rule` says which rule decided a per-document
    comparison other than its significance (e.g. the tolerance, when it is underpowered)."""

    benchmark: Benchmark
    baseline: float | None
    current: float | None
    status: str
    interval: Interval | None = None
    note: str | None = None
    rule: str | None = None

    @property
    def delta(self) -> float | None:
        """Current minus baseline, in leaderboard units (on the paired documents when compared
        per document); None when either side is missing."""
        if self.interval is not None:
            return self.interval.delta
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
    alpha: float = DEFAULT_ALPHA
    exact: bool = True

    @property
    def possible_drops(self) -> list[tuple[PairReport, Comparison]]:
        """Drops beyond the tolerance that are not significant: warnings, not failures."""
        return [(p, c) for p in self.pairs for c in p.comparisons if c.status == "possible drop"]

    @property
    def per_document(self) -> bool:
        """Whether any benchmark was compared on per-document scores."""
        return any(c.interval is not None for p in self.pairs for c in p.comparisons)

    @property
    def failures(self) -> list[tuple[PairReport, Comparison]]:
        """The failing benchmarks with the model pair each belongs to."""
        return [(p, c) for p in self.pairs for c in p.comparisons if c.failed]


@dataclass(frozen=True)
class Settings:
    """How the gate decides: `exact` compares aggregates against the tolerance alone."""

    tolerance: float = DEFAULT_TOLERANCE
    alpha: float = DEFAULT_ALPHA
    exact: bool = False
    bootstrap: int = DEFAULT_BOOTSTRAP
    seed: int = DEFAULT_SEED
    aggregations: Aggregations | None = field(default=None, compare=False)


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
    settings: Settings | None = None,
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
    settings = settings or Settings(tolerance=tolerance)
    tolerance = settings.tolerance
    if not math.isfinite(tolerance) or tolerance < 0:
        raise RegressError(f"the tolerance must be a finite number >= 0, not {tolerance}")
    if not 0 < settings.alpha < 1:
        raise RegressError(f"alpha must be between 0 and 1, not {settings.alpha}")
    benchmarks = suite.select(list(suite_names))
    if tasks is not None:
        benchmarks = benchmarks_of_tasks(benchmarks, tasks)
    warnings: list[str] = []
    base_models = _side("baseline", baseline, benchmarks, warnings)
    cur_models = _side("current", current, benchmarks, warnings)
    pairs = _pair_models(base_models, cur_models, warnings)
    mismatches: list[str] = []
    reports = tuple(
        PairReport(
            b.model, c.model, _compare_pair(b, c, benchmarks, settings, mismatches, warnings)
        )
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
    report = RegressReport(reports, tolerance, tuple(warnings), settings.alpha, settings.exact)
    notes = any(c.note for r in reports for c in r.comparisons)
    if not settings.exact and not report.per_document and not notes:
        warnings.append(
            "no benchmark has sample logs on both sides (lmms-eval --log_samples): compared "
            "the aggregate scores against the tolerance, without intervals"
        )
        report = RegressReport(reports, tolerance, tuple(warnings), settings.alpha, True)
    return report


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
    settings: Settings,
    mismatches: list[str],
    warnings: list[str],
) -> tuple[Comparison, ...]:
    comparisons = []
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
        interval, note, rule = None, None, None
        if b is not None and c is not None and not settings.exact:
            label = f"{bench.name} ({cur.model})"
            interval, note = _per_document(label, score, b, c, settings, mismatches, warnings)
        if interval is None:
            status = _status(bench, b_value, c_value, settings.tolerance)
        else:
            status, rule = _interval_status(bench, interval, settings)
        comparisons.append(Comparison(bench, b_value, c_value, status, interval, note, rule))
    return tuple(comparisons)


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


class _AggregateOnly(Exception):
    """Why a benchmark is compared on its aggregate scores: the report's note."""


def _per_document(
    label: str,
    score: Score,
    base: Found,
    cur: Found,
    settings: Settings,
    mismatches: list[str],
    warnings: list[str],
) -> tuple[Interval | None, str | None]:
    """The per-document comparison of one benchmark, or (None, why it is compared on the
    aggregates). Document sets or prompts that differ are added to `mismatches`; a pairing
    that could not be checked, to `warnings`. RegressError for a log no float can read."""
    pairs = list(zip(score.tasks, base.runs, cur.runs, strict=True))
    if not any(sample_log_path(run.path, task).exists() for task, *runs in pairs for run in runs):
        return None, None  # no sample logs at all: the report says so once
    try:
        logs = [
            (
                _log("baseline", b_run, task, score.metric),
                _log("current", c_run, task, score.metric),
            )
            for task, b_run, c_run in pairs
        ]
        for task, b_run, c_run in pairs:
            _check_prompts(label, task, b_run, c_run, mismatches)
        paired = [_pair_documents(label, b, c, mismatches, warnings) for b, c in logs]
        with np.errstate(all="ignore"), catch_warnings():
            simplefilter("ignore", RuntimeWarning)  # overflow: checked on the result below
            interval = _interval(score, base, logs, paired, settings)
        if not interval.finite:
            raise _AggregateOnly(
                "the per-document values overflow a float (the interval came out infinite or "
                "NaN), so the recorded aggregates decide"
            )
    except UnrepresentableNumber as err:
        raise RegressError(str(err)) from err
    except (_AggregateOnly, SampleLogError) as err:
        return None, f"aggregate only: {err}"
    return interval.scaled(score.scale), None


def _log(side: str, run: Run, task: str, metric: str) -> MetricLog:
    path = sample_log_path(run.path, task)
    if not path.exists():
        raise _AggregateOnly(
            f"the {side} has no sample log for {task} ({path.name} beside {run.path.name}; "
            "run lmms-eval with --log_samples)"
        )
    return read_metric_log(path, task, metric)


def _check_prompts(label: str, task: str, base: Run, cur: Run, mismatches: list[str]) -> None:
    b, c = prompt_settings(_results_json(base.path)), prompt_settings(_results_json(cur.path))
    differ = [f"{key} {b[key]!r} vs {c[key]!r}" for key in b if b[key] != c[key]]
    if differ:
        mismatches.append(
            f"{label}: {task} ran with different prompt settings: " + ", ".join(differ)
        )


def _pair_documents(
    label: str, base: MetricLog, cur: MetricLog, mismatches: list[str], warnings: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """The positions in each log of the doc_ids both have with the same document (doc_hash,
    doc, target and input, where logged); the differences go to `mismatches`. lmms-eval 0.7.3
    hashes `null` for every document, so the other fields are what can tell a changed dataset."""
    common, b_at, c_at = np.intersect1d(
        base.doc_ids, cur.doc_ids, assume_unique=True, return_indices=True
    )
    only_base = np.setdiff1d(base.doc_ids, cur.doc_ids, assume_unique=True)
    only_cur = np.setdiff1d(cur.doc_ids, base.doc_ids, assume_unique=True)
    differ = base.digests[b_at] != cur.digests[c_at]  # [common, field]
    problems = []
    if len(only_base) or len(only_cur):
        first = int((only_base if len(only_base) else only_cur)[0])
        problems.append(
            f"{len(only_base)} document(s) only in the baseline, {len(only_cur)} only in the "
            f"current run (e.g. doc_id {first})"
        )
    for column, key in enumerate(DOCUMENT_FIELDS):
        docs = common[differ[:, column]]
        if len(docs):
            problems.append(
                f"{len(docs)} document(s) with a different {key} (the dataset or its prompts "
                f"changed; e.g. doc_id {int(docs[0])})"
            )
    if problems:
        mismatches.append(f"{label}: {base.task}: " + "; ".join(problems))
    if not base.telling[b_at].any() or not cur.telling[c_at].any():
        warnings.append(
            f"{label}: {base.task}: could not check that both sides scored the same documents "
            "(the sample logs hold no target, input or doc, and a doc_hash of null)"
        )
    same = ~differ.any(axis=1)
    if np.count_nonzero(same) < 2:
        raise _AggregateOnly(f"{base.task}: fewer than 2 documents in common")
    return b_at[same], c_at[same]


def _interval(
    score: Score,
    found: Found,
    logs: list[tuple[MetricLog, MetricLog]],
    paired: list[tuple[np.ndarray, np.ndarray]],
    settings: Settings,
) -> Interval:
    """The test that fits the metric: a paired test of means for one task whose metric is a
    mean of per-document numbers, else a paired bootstrap of the score."""
    kinds = [
        _aggregation(score.metric, run, log) for run, (log, _) in zip(found.runs, logs, strict=True)
    ]
    if len(logs) == 1 and kinds[0] == "mean":
        (base, cur), (b_at, c_at) = logs[0], paired[0]
        b, c = base.numbers_at(b_at).tolist(), cur.numbers_at(c_at).tolist()
        return paired_means(b, c, settings.alpha)
    functions = [
        None if kind == "mean" else _function(kind, log, score.metric, settings)
        for kind, (log, _) in zip(kinds, logs, strict=True)
    ]
    forms = [sum_form(f) for f in functions]
    with tempfile.TemporaryDirectory(prefix="dragonfly-regress-") as output:
        tasks = [
            _task_score(log.task, f, Path(output))
            for (log, _), f in zip(logs, functions, strict=True)
        ]
        # one side's values at a time: each task's own score of all documents and the features
        # of its sum form (when that form gives the same score)
        exact, features = [], []
        for task, form, pair, at, kind in zip(tasks, forms, logs, paired, kinds, strict=True):
            (b, b_features), (c, c_features) = (
                _side_score(task, form, log, docs, kind) for log, docs in zip(pair, at, strict=True)
            )
            exact.append((b, c))
            both = b_features is not None and c_features is not None
            features.append((b_features, c_features) if both else None)
        delta = sum(c - b for b, c in exact) / len(exact)
        if all(f is not None for f in features):
            return paired_bootstrap_sums(
                [f[0] for f in features if f is not None],
                [f[1] for f in features if f is not None],
                [form.score for form in forms if form is not None],
                delta,
                settings.alpha,
                settings.bootstrap,
                settings.seed,
            )
        base_values = [
            _ordered(b, at, k) for (b, _), (at, _), k in zip(logs, paired, kinds, strict=True)
        ]
        cur_values = [
            _ordered(c, at, k) for (_, c), (_, at), k in zip(logs, paired, kinds, strict=True)
        ]

        def statistic(values: list[list[Any]]) -> float:
            # the headline: the mean of the tasks' aggregates (e.g. POPE's three splits)
            return sum(t(v) for t, v in zip(tasks, values, strict=True)) / len(values)

        return paired_bootstrap(
            base_values, cur_values, statistic, settings.alpha, settings.bootstrap, settings.seed
        )


def _side_score(
    task: Aggregation, form: SumForm | None, log: MetricLog, positions: np.ndarray, kind: str
) -> tuple[float, np.ndarray | None]:
    """One side's score of a task on the paired documents by the task's own function, and the
    features of its sum form when it has one that reproduces that score (the values are read
    one side at a time: on 200,000 documents each side's are ~100 MB)."""
    values = _ordered(log, positions, kind)
    exact = task(values)
    found = None if form is None else sum_features(form, values)
    return exact, found if form is not None and found is not None and matches(
        form, found, exact
    ) else None


def _task_score(task: str, function: Aggregation | None, output: Path) -> Aggregation:
    """A task's score of a list of per-document values: their mean, or the task's aggregation
    called as lmms-eval calls it; _AggregateOnly when that function fails."""
    if function is None:
        return lambda values: sum(values) / len(values)

    def score(values: list[Any]) -> float:
        from loguru import logger

        logger.disable("lmms_eval")  # e.g. COCO's logs each tokenization
        try:
            with contextlib.redirect_stdout(sys.stderr):  # pycocotools prints; stdout is the report
                return call_aggregation(function, values, output)
        # the task's own code: whatever it raises, the gate falls back to the aggregates
        except Exception as err:
            name = getattr(function, "__name__", "its aggregation")
            raise _AggregateOnly(
                f"{task}: lmms-eval's {name} failed on the logged values "
                f"({type(err).__name__}: {err})"
            ) from err
        finally:
            logger.enable("lmms_eval")

    return score


def _aggregation(metric: str, run: Run, log: MetricLog) -> str:
    """How lmms-eval aggregated a task's metric: "mean" when it averaged the per-document
    values (recorded so in the results' configs or, when not recorded, numbers whose mean is
    the reported score); otherwise the aggregation's name (a corpus-level metric)."""
    recorded = aggregation_name(_results_json(run.path), log.task, metric)
    if recorded is not None:
        return recorded
    try:
        values = log.numbers_at().tolist()
    except SampleLogError:
        return "not recorded"
    reported = run.tasks.get(log.task, {}).get(metric)
    mean = math.fsum(values) / len(values) if _summable(values) else math.nan
    if reported is not None and math.isclose(mean, reported, rel_tol=1e-9, abs_tol=1e-12):
        return "mean"
    return "not recorded"


def _summable(values: Iterable[float]) -> bool:
    # math.fsum raises OverflowError where a partial sum leaves the float range (+-1e308 values)
    try:
        return math.isfinite(math.fsum(values))
    except OverflowError:
        return False


def _function(kind: str, log: MetricLog, metric: str, settings: Settings) -> Aggregation:
    """The task's aggregation function of a corpus-level metric, from the installed tasks only."""
    resolve = settings.aggregations or task_aggregation
    name = metric.partition(",")[0]
    try:
        function = resolve(log.task, metric)
    except AggregationError as err:
        raise _AggregateOnly(f"{log.task}: cannot recompute '{name}': {err}") from err
    if function is None:
        raise _AggregateOnly(
            f"{log.task}: cannot recompute '{name}', a corpus-level metric ({kind}): no installed "
            "lmms-eval task or task_yaml/ task of that name defines its aggregation (the gate "
            "never loads code from a folder a results file names)"
        )
    return function


def _ordered(log: MetricLog, positions: np.ndarray, kind: str) -> list[Any]:
    if kind == "mean":
        return log.numbers_at(positions).tolist()
    return log.values_at(positions)


def _results_json(path: Path) -> dict[str, Any]:
    info = path.stat()
    return _read_results_json(path, info.st_mtime_ns, info.st_size)


@functools.lru_cache(maxsize=64)
def _read_results_json(path: Path, _mtime: int, _size: int) -> dict[str, Any]:
    # read_run already checked this file; it is read again through the same guarded reader
    data = read_json(path, MAX_RESULTS_BYTES, RegressError)
    return data if isinstance(data, dict) else {}


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


def _interval_status(
    bench: Benchmark, interval: Interval, settings: Settings
) -> tuple[str, str | None]:
    """The status of a per-document comparison and, when not its significance, the rule that
    decided it. A drop beyond the tolerance fails when significant; when the comparison is
    underpowered (its test cannot reach alpha on these documents, or there is no spread to
    size it by), the tolerance alone decides; a drop beyond the detectable drop always fails."""
    gain = interval.delta if bench.higher_is_better else -interval.delta
    significant = interval.p_value < settings.alpha
    underpowered = _underpowered(interval, settings.alpha)
    if gain < -settings.tolerance - _EPSILON:
        if significant:
            return "REGRESSION", None
        if underpowered:
            return "REGRESSION", f"underpowered ({underpowered}): decided by the tolerance"
        if interval.detectable is not None and -gain > interval.detectable + _EPSILON:
            return "REGRESSION", (
                f"decided by the detectable drop: {-gain:.2f} is beyond the "
                f"{interval.detectable:.2f} these documents detect"
            )
        return "possible drop", None
    if gain > settings.tolerance + _EPSILON and significant:
        return "improved", None
    return "ok", None


def _underpowered(interval: Interval, alpha: float) -> str | None:
    """Why this comparison cannot find a drop of the tolerance's size significant, or None."""
    if interval.floor_p >= alpha:
        return (
            f"the {interval.test} on these documents gives no p-value below "
            f"{interval.floor_p:.3g} >= alpha {alpha:g}"
        )
    if not math.isfinite(interval.p_value):
        return f"the {interval.test} gave no p-value"
    if interval.detectable is None and interval.delta != 0:
        return "every document changed by the same amount: no spread to size a test by"
    return None


def _number(value: float | None) -> str:
    return MISSING if value is None else f"{value:.2f}"
