"""Read lmms-eval `<date>_results.json` files into runs: one model, one date, numbers per task."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

_RESULTS_NAME = re.compile(r"^(results|.*_results|results_.*)\.json$")
_DATE_PREFIX = re.compile(r"^(\d{8}_\d{6})")


class ResultsError(ValueError):
    """A results file or folder that holds no usable results."""


@dataclass(frozen=True)
class Run:
    """One results file: the model it evaluated, when, and the numeric metrics of each task."""

    path: Path
    model: str
    date: datetime | None
    tasks: Mapping[str, Mapping[str, float]]
    subtasks: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def date_label(self) -> str:
        """The run's date as the tables show it."""
        return self.date.strftime("%Y-%m-%d %H:%M:%S") if self.date else "undated"


@dataclass(frozen=True)
class Replacement:
    """A task result of an older run that a newer run of the same model replaced."""

    model: str
    task: str
    kept: Run
    dropped: Run


@dataclass(frozen=True)
class ModelResults:
    """Everything known about one model after newest-wins merging of its runs."""

    model: str
    tasks: Mapping[str, tuple[Mapping[str, float], Run]]
    subtasks: Mapping[str, tuple[str, ...]]
    replaced: tuple[Replacement, ...]


@dataclass(frozen=True)
class LoadedRuns:
    """The runs found under some paths, plus why any path or file gave nothing."""

    runs: list[Run]
    problems: list[str]


def find_results_files(path: Path) -> list[Path]:
    """The results files at `path`: the file itself, or every results file under a folder."""
    if path.is_file():
        return [path]
    if path.is_dir():
        # lmms-eval writes benchmark submission files (e.g. COCO's *_alg_results.json) under
        # submissions/; they hold predictions, not scores.
        return sorted(
            p
            for p in path.rglob("*.json")
            if _RESULTS_NAME.match(p.name) and "submissions" not in p.relative_to(path).parts
        )
    raise ResultsError(f"{path}: no such file or folder")


def read_run(path: Path) -> Run:
    """Parse one lmms-eval results file; raises ResultsError when it holds no results mapping."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ResultsError(f"{path}: cannot read: {err.strerror or err}") from err
    except UnicodeDecodeError as err:
        raise ResultsError(f"{path}: not UTF-8 text") from err
    except json.JSONDecodeError as err:
        raise ResultsError(f"{path}: malformed JSON (line {err.lineno}: {err.msg})") from err
    if not isinstance(data, dict) or not isinstance(data.get("results"), dict):
        raise ResultsError(f"{path}: not an lmms-eval results file (no 'results' mapping)")
    tasks: dict[str, dict[str, float]] = {}
    for section in ("results", "groups"):
        entries = data.get(section)
        if not isinstance(entries, dict):
            continue
        for task, metrics in entries.items():
            if isinstance(metrics, dict):
                tasks.setdefault(str(task), {}).update(numeric_metrics(metrics))
    if not tasks:
        raise ResultsError(f"{path}: the 'results' mapping lists no tasks")
    return Run(
        path=path,
        model=model_name(data, path),
        date=run_date(data, path),
        tasks=tasks,
        subtasks=_subtasks(data.get("group_subtasks")),
    )


def load_runs(paths: Iterable[Path | str]) -> LoadedRuns:
    """Read every results file under `paths`, collecting a reason for each one that fails."""
    runs: list[Run] = []
    problems: list[str] = []
    for raw in paths:
        path = Path(raw)
        try:
            files = find_results_files(path)
        except ResultsError as err:
            problems.append(str(err))
            continue
        if not files:
            problems.append(f"{path}: no lmms-eval results files (*_results.json) under it")
        for file in files:
            try:
                runs.append(read_run(file))
            except ResultsError as err:
                problems.append(str(err))
    return LoadedRuns(runs=runs, problems=problems)


def numeric_metrics(entry: Mapping[str, Any]) -> dict[str, float]:
    """The `"metric,filter"` values of a task entry that are finite numbers, stderrs left out."""
    kept: dict[str, float] = {}
    for key, value in entry.items():
        name, comma, _ = str(key).partition(",")
        if not comma or "_stderr" in name:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if math.isfinite(value):
            kept[str(key)] = float(value)
    return kept


def model_name(data: Mapping[str, Any], path: Path) -> str:
    """The `pretrained=` value of the run's model_args, else the name of the folder holding it."""
    config = data.get("config")
    args = config.get("model_args") if isinstance(config, dict) else None
    pretrained: Any = None
    if isinstance(args, dict):
        pretrained = args.get("pretrained")
    elif isinstance(args, str):
        for pair in args.split(","):
            key, eq, value = pair.partition("=")
            if eq and key.strip() == "pretrained":
                pretrained = value.strip()
    if isinstance(pretrained, str) and pretrained:
        return pretrained
    return path.resolve().parent.name


def run_date(data: Mapping[str, Any], path: Path) -> datetime | None:
    """When the run happened: the results' `date`, else the file name's date prefix, else None."""
    raw = data.get("date")
    if isinstance(raw, str):
        for parse in (_parse_compact, datetime.fromisoformat):
            try:
                return parse(raw).replace(tzinfo=None)
            except ValueError:
                pass
    elif isinstance(raw, int | float) and not isinstance(raw, bool) and math.isfinite(raw):
        return datetime.fromtimestamp(raw, tz=timezone.utc).replace(tzinfo=None)
    prefix = _DATE_PREFIX.match(path.name)
    return _parse_compact(prefix.group(1)) if prefix else None


def merge_runs(runs: Iterable[Run]) -> list[ModelResults]:
    """Group runs by model; for each (model, task) the newest run wins. Models in name order."""
    by_model: dict[str, list[Run]] = {}
    for run in runs:
        by_model.setdefault(run.model, []).append(run)
    merged = []
    for model in sorted(by_model):
        tasks: dict[str, tuple[Mapping[str, float], Run]] = {}
        subtasks: dict[str, tuple[str, ...]] = {}
        replaced: list[Replacement] = []
        for run in sorted(by_model[model], key=_age_key, reverse=True):
            for task, metrics in run.tasks.items():
                if task in tasks:
                    replaced.append(Replacement(model, task, kept=tasks[task][1], dropped=run))
                else:
                    tasks[task] = (metrics, run)
            for group, members in run.subtasks.items():
                subtasks.setdefault(group, members)
        merged.append(ModelResults(model, tasks, subtasks, tuple(replaced)))
    return merged


def _age_key(run: Run) -> tuple[bool, datetime, str]:
    # Undated runs count as older than any dated one; the path breaks ties deterministically.
    return (run.date is not None, run.date or datetime.min, str(run.path))


def _parse_compact(text: str) -> datetime:
    return datetime.strptime(text, "%Y%m%d_%H%M%S")


def _subtasks(raw: Any) -> dict[str, tuple[str, ...]]:
    if not isinstance(raw, dict):
        return {}
    return {
        str(group): tuple(str(m) for m in members)
        for group, members in raw.items()
        if isinstance(members, list)
    }
