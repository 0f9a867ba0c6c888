"""The aggregation functions of corpus-level metrics (CIDEr, POPE's F1), as the gate recomputes them.

Results files and sample logs are untrusted data. A task's aggregation is looked up by the task's
name among the installed lmms-eval tasks and this project's task_yaml/ only, never in a folder a
results file names, and its YAML must pass the task guard `run` uses before any of its code runs.
A `!function` is then resolved to the file and name the guard approved, and that one file is run
as lmms-eval's loader runs it (not the `lmms_eval.tasks` package, whose __init__ imports torch); a
registry name such as `mean` needs no import. The functions are called as lmms-eval calls them:
with `args` when they take it, here pointing their output (submission files) into a temporary
folder. Some have a sum form, a function of per-document feature sums, which the bootstrap
resamples as counts.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import inspect
import math
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from dragonfly_eval.errors import DragonflyEvalError

Aggregation = Callable[[list[Any]], float]


class AggregationError(DragonflyEvalError):
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
    is there. AggregationError when the task guard refuses that YAML or its function's file
    cannot be run.

    Only the one file the guard approved for that `!function` is run, as lmms-eval's loader runs
    it; the packages above it are not imported (`lmms_eval.tasks` imports torch)."""
    from dragonfly_eval.lmms_files.task_guard import check_task_yaml
    from dragonfly_eval.lmms_files.task_yaml import FunctionRef, TaskYamlError
    from dragonfly_eval.lmms_files.task_yaml import task_config as read_config

    path = _task_yaml(task)
    if path is None:
        return None
    problems = check_task_yaml(path)
    if problems:
        raise AggregationError(f"the task guard refuses {path}: {problems[0]}")
    try:
        config = read_config(path)
    except TaskYamlError as err:
        raise AggregationError(str(err)) from err
    name = metric.partition(",")[0]
    for item in config.get("metric_list") or ():
        if not isinstance(item, dict) or item.get("metric") != name:
            continue
        function = item.get("aggregation")
        if isinstance(function, FunctionRef):
            return _load_function(function)
        if isinstance(function, str):
            return _registry_aggregation(function)
        return None
    return None


def registry_mean(arr: list[Any]) -> float:
    """lmms-eval's registered `mean` aggregation (lmms_eval.api.metrics.mean), without importing
    its registry (which imports torch)."""
    return sum(arr) / len(arr)


def _registry_aggregation(name: str) -> Aggregation | None:
    if name == "mean":
        return registry_mean
    from lmms_eval.api.registry import AGGREGATION_REGISTRY

    function = AGGREGATION_REGISTRY.get(name)
    return function if callable(function) else None


def _load_function(ref: Any) -> Aggregation | None:
    """The function a `!function` reference names, from the file the task guard approved for it
    (task_functions.ref_source), that file run as lmms-eval runs it."""
    from dragonfly_eval.lmms_files.task_functions import ref_source

    found = ref_source(ref)
    if found is None:
        return None
    module, file, name = found
    function = getattr(_module(module, file), name, None)
    return function if callable(function) else None


@functools.cache
def _module(name: str, file: str) -> ModuleType:
    """The module `name` run from `file` alone, as lmms-eval runs a `!function`'s file; a module
    of that name already imported from that file is used as it is."""
    loaded = sys.modules.get(name)
    origin = getattr(getattr(loaded, "__spec__", None), "origin", None)
    if origin and os.path.realpath(origin) == os.path.realpath(file):
        return loaded
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise AggregationError(f"{file}: not a Python module")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    # the task's own code: whatever it raises, the gate cannot recompute with it
    except Exception as err:
        raise AggregationError(f"{file} failed to load ({type(err).__name__}: {err})") from err
    return module


def _task_yaml(task: str) -> Path | None:
    """The YAML defining `task` when it lies in lmms-eval's task folder or this project's: the
    file lmms-eval's TaskManager indexes for that name (the folders in its order, the first
    one's tasks first; `lmms_files.task_index`), when that entry is a task."""
    from dragonfly_eval.lmms_files.task_index import folder_index, task_folders
    from dragonfly_eval.paths import task_yaml_dir

    for folder in map(Path, task_folders(str(task_yaml_dir()))):
        if not folder.is_dir():
            continue
        entry = folder_index(folder).get(task)
        if entry is None:
            continue
        if entry["type"] != "task":
            return None
        path = Path(entry["yaml_path"]).resolve()
        return path if path.is_relative_to(folder.resolve()) else None
    return None


def call_aggregation(function: Aggregation, items: list[Any], output_dir: Path) -> float:
    """`function(items)` as lmms-eval's evaluator calls it: with `args` when its signature names
    it (their output_path set to `output_dir`, where e.g. COCO's writes a submission file)."""
    if "args" in inspect.signature(function).parameters:
        value = function(items, args=argparse.Namespace(output_path=str(output_dir)))
    else:
        value = function(items)
    return float(value)


def sum_form(function: Aggregation | None) -> SumForm | None:
    """The sum form of an aggregation (None: a mean of numbers), when it has one. lmms-eval's
    functions are known by the file inside lmms_eval that defines them and their name, however
    that file was loaded (a YAML beside it loads it as `utils`)."""
    if function is None or function is registry_mean:
        return MEAN
    code = getattr(function, "__code__", None)
    if code is None:
        return None
    file = Path(code.co_filename).resolve()
    for folder in _lmms_eval_folders():
        if file.is_relative_to(folder):
            key = f"{file.relative_to(folder).as_posix()}:{getattr(function, '__qualname__', '')}"
            return SUM_FORMS.get(key)
    return None


@functools.cache
def _lmms_eval_folders() -> tuple[Path, ...]:
    spec = importlib.util.find_spec("lmms_eval")
    return tuple(Path(p).resolve() for p in (spec.submodule_search_locations or [])) if spec else ()


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
_POPE = "tasks/pope/utils.py:pope_aggregate_"
SUM_FORMS = {
    _POPE + "accuracy": _pope(lambda s, n: s[..., 5] / n),
    _POPE + "precision": _pope(lambda s, n: _ratio(s[..., 0], s[..., 0] + s[..., 1])),
    _POPE + "recall": _pope(lambda s, n: _ratio(s[..., 0], s[..., 0] + s[..., 2])),
    _POPE + "f1_score": _pope(_pope_f1),
    _POPE + "yes_ratio": _pope(lambda s, n: _ratio(s[..., 3], s[..., 3] + s[..., 4])),
}
