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
    from dragonfly_eval.runner.taskcheck import FunctionRef, TaskCheckError, check_task_yaml
    from dragonfly_eval.runner.taskcheck import task_config as read_config

    path = _task_yaml(task)
    if path is None:
        return None
    problems = check_task_yaml(path)
    if problems:
        raise AggregationError(f"the task guard refuses {path}: {problems[0]}")
    try:
        config = read_config(path)
    except TaskCheckError as err:
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
    (taskcheck.ref_source), that file run as lmms-eval runs it."""
    from dragonfly_eval.runner.taskcheck import ref_source

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
    one's tasks first), when that entry is a task."""
    from dragonfly_eval.paths import task_yaml_dir
    from dragonfly_eval.runner.preflight import cached_index

    spec = importlib.util.find_spec("lmms_eval")  # its __init__ is empty; lmms_eval.tasks' is not
    locations = list(spec.submodule_search_locations or []) if spec else []
    folders = [Path(p, "tasks") for p in locations[:1]] + [task_yaml_dir()]
    for folder in folders:
        if not folder.is_dir():
            continue
        entry = cached_index(str(folder), _index_folder, kind="task-yamls").get(task)
        if entry is None:
            continue
        if not isinstance(entry, list) or len(entry) != 2 or entry[0] != "task":
            return None
        path = Path(str(entry[1])).resolve()
        return path if path.is_relative_to(folder.resolve()) else None
    return None


def _index_folder(folder: str) -> dict[str, list[str]]:
    """name -> [kind, YAML] of the tasks, groups and tags under a folder, as lmms-eval's
    TaskManager._get_task_and_group indexes them: a `class` is a Python task, a `task` list a
    group, a `task` name a task (its `tag`s and `group`s tags), later files replacing earlier
    ones. Read with a safe loader that runs nothing; an unreadable YAML is left out."""
    from dragonfly_eval.runner.taskcheck import SKIPPED_DIRS

    index: dict[str, list[str]] = {}
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if d not in SKIPPED_DIRS]
        for file in files:
            if not file.endswith(".yaml"):
                continue
            path = os.path.join(root, file)
            config = _index_config(path)
            task = config.get("task")
            if "class" in config:
                if isinstance(task, str):
                    index[task] = ["python_task", path]
            elif isinstance(task, list) and isinstance(config.get("group"), str):
                index[config["group"]] = ["group", path]
            elif isinstance(task, str):
                index[task] = ["task", path]
                for key in ("tag", "group"):
                    tags = config.get(key)
                    tags = [tags] if isinstance(tags, str) else tags
                    for tag in tags if isinstance(tags, list) else ():
                        if isinstance(tag, str) and tag not in index:
                            index[tag] = ["tag", ""]
    return index


def _index_config(path: str, depth: int = 0) -> dict[str, Any]:
    """A YAML's settings with its `include:` chain, as lmms-eval's "simple" mode merges them;
    {} when a file of the chain cannot be read."""
    from dragonfly_eval.runner.taskcheck import MAX_INCLUDE_DEPTH, TaskCheckError, read_yaml

    try:
        data = read_yaml(path, tags=None) if depth <= MAX_INCLUDE_DEPTH else None
    except TaskCheckError:
        return {}
    names = data.get("include") if isinstance(data, dict) else None
    names = [names] if isinstance(names, str) else names if names is not None else []
    if not isinstance(data, dict) or not isinstance(names, list):
        return {}
    merged: dict[str, Any] = {}
    for name in reversed(names):
        if not isinstance(name, str):
            return {}
        included = name if os.path.isfile(name) else os.path.join(os.path.dirname(path), name)
        config = _index_config(included, depth + 1)
        if not config:
            return {}
        merged.update(config)
    merged.update(data)
    return merged


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
