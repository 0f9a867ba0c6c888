"""The aggregation functions of corpus-level metrics (CIDEr, POPE's F1), as the gate recomputes them.

Results files and sample logs are untrusted data. A task's aggregation is looked up by the task's
name among the installed lmms-eval tasks and this project's task_yaml/ only, never in a folder a
results file names, and its YAML must pass the task guard `run` uses before lmms-eval's loader
resolves its `!function`s. The functions are called as lmms-eval calls them: with `args` when they
take it, here pointing their output (submission files) into a temporary folder. Some have a sum
form, a function of per-document feature sums, which the bootstrap resamples as counts.
"""

from __future__ import annotations

import argparse
import inspect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

Aggregation = Callable[[list[Any]], float]


class AggregationError(ValueError):
    """Why a task's aggregation function may not be loaded or called."""


@dataclass(frozen=True)
class SumForm:
    """A corpus score that depends on per-document feature sums only: `features` turns one
    document's value into numbers, `score` turns their sums [..., F] over n documents into the
    score [...]."""

    features: Callable[[Any], Sequence[float]]
    score: Callable[[np.ndarray, int], np.ndarray]


def task_aggregation(task: str, metric: str) -> Aggregation | None:
    """The aggregation function lmms-eval uses for `metric` of `task`, from the task's YAML among
    the installed lmms-eval tasks and this project's task_yaml/; None when no such task or metric
    is there. AggregationError when the task guard refuses that YAML."""
    from lmms_eval import utils
    from lmms_eval.api.registry import AGGREGATION_REGISTRY

    from dragonfly_eval.runner.taskcheck import check_task_yaml

    path = _task_yaml(task)
    if path is None:
        return None
    problems = check_task_yaml(path)
    if problems:
        raise AggregationError(f"the task guard refuses {path}: {problems[0]}")
    config = utils.load_yaml_config(str(path), mode="full")
    name = metric.partition(",")[0]
    for item in config.get("metric_list") or ():
        if not isinstance(item, dict) or item.get("metric") != name:
            continue
        function = item.get("aggregation")
        if isinstance(function, str):
            function = AGGREGATION_REGISTRY.get(function)
        return function if callable(function) else None
    return None


def _task_yaml(task: str) -> Path | None:
    """The YAML defining `task` when it lies in lmms-eval's task folder or this project's."""
    import lmms_eval.tasks

    from dragonfly_eval.paths import task_yaml_dir
    from dragonfly_eval.runner.preflight import resolve_tasks

    folders = (Path(lmms_eval.tasks.__file__).resolve().parent, task_yaml_dir().resolve())
    found = [spec for spec in resolve_tasks([task], str(task_yaml_dir())) if spec.name == task]
    if len(found) != 1:
        return None
    path = found[0].yaml_path.resolve()
    return path if any(path.is_relative_to(folder) for folder in folders) else None


def call_aggregation(function: Aggregation, items: list[Any], output_dir: Path) -> float:
    """`function(items)` as lmms-eval's evaluator calls it: with `args` when its signature names
    it (their output_path set to `output_dir`, where e.g. COCO's writes a submission file)."""
    if "args" in inspect.signature(function).parameters:
        value = function(items, args=argparse.Namespace(output_path=str(output_dir)))
    else:
        value = function(items)
    return float(value)


def sum_form(function: Aggregation | None) -> SumForm | None:
    """The sum form of an aggregation (None: a mean of numbers), when it has one."""
    if function is None:
        return MEAN
    key = f"{getattr(function, '__module__', '')}.{getattr(function, '__qualname__', '')}"
    return SUM_FORMS.get(key)


def sum_features(form: SumForm, values: list[Any]) -> np.ndarray | None:
    """The [n, F] features of each document's value; None when a value does not fit the form."""
    try:
        return np.array([form.features(v) for v in values], dtype=float)
    except (KeyError, TypeError, ValueError, IndexError):
        return None


def matches(form: SumForm, features: np.ndarray, exact: float) -> bool:
    """Whether the sum form gives the score the task's own function gave on all documents."""
    value = float(form.score(features.sum(axis=0), len(features)))
    return math.isclose(value, exact, rel_tol=1e-9, abs_tol=1e-12)


def _ratio(top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    # lmms-eval's POPE functions score 0 where the denominator is 0
    safe = np.where(bottom > 0, bottom, 1)
    return np.where(bottom > 0, top / safe, 0.0)


def _pope_features(item: Any) -> tuple[float, ...]:
    pred, truth = item["prediction"], item["ground_truth"]
    return (
        float(truth == "yes" and pred == "yes"),  # true positive
        float(truth == "no" and pred == "yes"),  # false positive
        float(truth == "yes" and pred == "no"),  # false negative
        float(truth == "yes"),
        float(truth == "no"),
        float(item["score"]),
    )


def _pope_f1(sums: np.ndarray, n: int) -> np.ndarray:
    precision = _ratio(sums[..., 0], sums[..., 0] + sums[..., 1])
    recall = _ratio(sums[..., 0], sums[..., 0] + sums[..., 2])
    return _ratio(2 * precision * recall, precision + recall)


def _pope(score: Callable[[np.ndarray, int], np.ndarray]) -> SumForm:
    return SumForm(_pope_features, score)


MEAN = SumForm(lambda value: (float(value),), lambda sums, n: sums[..., 0] / n)
# lmms-eval's POPE aggregations count a confusion table: its sums are their whole input
_POPE = "lmms_eval.tasks.pope.utils.pope_aggregate_"
SUM_FORMS = {
    _POPE + "accuracy": _pope(lambda s, n: s[..., 5] / n),
    _POPE + "precision": _pope(lambda s, n: _ratio(s[..., 0], s[..., 0] + s[..., 1])),
    _POPE + "recall": _pope(lambda s, n: _ratio(s[..., 0], s[..., 0] + s[..., 2])),
    _POPE + "f1_score": _pope(_pope_f1),
    _POPE + "yes_ratio": _pope(lambda s, n: _ratio(s[..., 3], s[..., 3] + s[..., 4])),
}
