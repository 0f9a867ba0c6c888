"""The test that fits a metric, on the paired documents of each task of a headline score: a
paired test of means for one task whose metric is a mean of per-document numbers, else a paired
bootstrap of the score, recomputed with the task's own aggregation (aggregations.py) for a
corpus-level metric."""

from __future__ import annotations

import contextlib
import math
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

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
from dragonfly_eval.leaderboard.board.table import Found
from dragonfly_eval.leaderboard.regress.verdict import GateSettings
from dragonfly_eval.leaderboard.stats import (
    Interval,
    paired_bootstrap,
    paired_bootstrap_sums,
    paired_means,
)
from dragonfly_eval.leaderboard.suite import Score
from dragonfly_eval.lmms_files.results import Run
from dragonfly_eval.lmms_files.samples import MetricLog, SampleLogError


def paired_interval(
    score: Score,
    found: Found,
    logs: list[tuple[MetricLog, MetricLog]],
    paired: list[tuple[np.ndarray, np.ndarray]],
    settings: GateSettings,
) -> Interval:
    """The test that fits the metric on the paired documents (positions in each log) of each
    task: a paired test of means for one task whose metric is a mean of per-document numbers,
    else a paired bootstrap of the score. SampleLogError for values the test cannot use,
    AggregationError when the task's aggregation cannot be loaded or fails."""
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
    called as lmms-eval calls it; AggregationError when that function fails."""
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
            raise AggregationError(
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
    recorded = run.aggregations.get(log.task, {}).get(metric.partition(",")[0])
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


def _function(kind: str, log: MetricLog, metric: str, settings: GateSettings) -> Aggregation:
    """The task's aggregation function of a corpus-level metric, from the installed tasks only;
    AggregationError when it cannot be loaded or no installed task defines it."""
    resolve = settings.aggregations or task_aggregation
    name = metric.partition(",")[0]
    try:
        function = resolve(log.task, metric)
    except AggregationError as err:
        raise AggregationError(f"{log.task}: cannot recompute '{name}': {err}") from err
    if function is None:
        raise AggregationError(
            f"{log.task}: cannot recompute '{name}', a corpus-level metric ({kind}): no installed "
            "lmms-eval task or task_yaml/ task of that name defines its aggregation (the gate "
            "never loads code from a folder a results file names)"
        )
    return function


def _ordered(log: MetricLog, positions: np.ndarray, kind: str) -> list[Any]:
    if kind == "mean":
        return log.numbers_at(positions).tolist()
    return log.values_at(positions)
