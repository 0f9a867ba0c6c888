"""The headline-score mapping (dragonfly_eval/data/suite.yaml): which task and metric make each cell."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dragonfly_eval.errors import DragonflyEvalError
from dragonfly_eval.lmms_files.task_yaml import TaskYamlError, read_yaml
from dragonfly_eval.paths import data_file

UNITS = ("%", "points", "nats x100")


class SuiteError(DragonflyEvalError):
    """The suite mapping is missing or malformed."""


@dataclass(frozen=True)
class Score:
    """One number read from results: `metric` of `tasks` (averaged when several) times `scale`."""

    tasks: tuple[str, ...]
    metric: str
    scale: float


@dataclass(frozen=True)
class Source:
    """One way results can score a benchmark: a headline score and the extras beside it."""

    headline: Score
    extra: Mapping[str, Score] = field(default_factory=dict)

    @property
    def tasks(self) -> tuple[str, ...]:
        """Every task or group name this source reads."""
        names = list(self.headline.tasks)
        for score in self.extra.values():
            names.extend(t for t in score.tasks if t not in names)
        return tuple(names)


@dataclass(frozen=True)
class Benchmark:
    """A leaderboard column: the sources that can score it, in order of preference.

    `sources[0]` is the dragonfly_* task; the others are lmms-eval's built-in tasks for the
    same benchmark. When a model has results from several, the first one listed is shown.
    """

    key: str
    name: str
    sources: tuple[Source, ...]
    unit: str
    higher_is_better: bool
    axis: str = ""  # the chart's value axis: "score (%)", the unit, or the suite's `axis`
    chance: float | None = None  # what guessing scores, in the column's units (the chart's mark)

    @property
    def headline(self) -> Score:
        """The first source's headline score."""
        return self.sources[0].headline

    @property
    def extra(self) -> Mapping[str, Score]:
        """The first source's extras (a built-in source may lack some of them)."""
        return self.sources[0].extra


@dataclass(frozen=True)
class Suite:
    """Named, ordered benchmark lists plus the benchmark definitions they refer to."""

    suites: Mapping[str, tuple[str, ...]]
    benchmarks: Mapping[str, Benchmark]

    def select(self, names: list[str]) -> list[Benchmark]:
        """The benchmarks of the named suites (or of every suite for "all"), in suite order."""
        if "all" in names:
            names = list(self.suites)
        keys: list[str] = []
        for name in names:
            if name not in self.suites:
                raise SuiteError(f"unknown suite {name!r}; known: {', '.join(self.suites)}, all")
            keys.extend(k for k in self.suites[name] if k not in keys)
        return [self.benchmarks[k] for k in keys]

    def mapped_tasks(self) -> set[str]:
        """Every task or group name some benchmark reads, headline or extra."""
        names: set[str] = set()
        for bench in self.benchmarks.values():
            for source in bench.sources:
                names.update(source.tasks)
        return names


def default_suite_path() -> Path:
    """Where the packaged suite mapping lives."""
    return data_file("suite.yaml")


def load_suite(path: Path | str | None = None) -> Suite:
    """Read and validate a suite mapping file (the packaged suite.yaml by default)."""
    path = Path(path) if path is not None else default_suite_path()
    return parse_suite(read_yaml_file(path, "the suite mapping", SuiteError), source=str(path))


def read_yaml_file(path: Path, what: str, error: type[DragonflyEvalError]) -> Any:
    """A YAML data file's content; `error` naming `what` and the path when it cannot be read
    or parsed."""
    try:
        return read_yaml(path, "plain")  # the message names the path and what is wrong
    except TaskYamlError as err:
        raise error(f"cannot read {what} {err}") from err


def parse_suite(raw: Any, source: str = "suite mapping") -> Suite:
    """Validate a suite mapping already loaded into Python objects."""
    if not isinstance(raw, Mapping):
        raise SuiteError(f"{source}: expected a mapping with 'suites' and 'benchmarks'")
    suites_raw, benches_raw = raw.get("suites"), raw.get("benchmarks")
    if not isinstance(suites_raw, Mapping) or not isinstance(benches_raw, Mapping):
        raise SuiteError(f"{source}: 'suites' and 'benchmarks' must both be mappings")
    benchmarks = {
        str(key): _parse_benchmark(str(key), spec, source) for key, spec in benches_raw.items()
    }
    suites: dict[str, tuple[str, ...]] = {}
    for name, keys in suites_raw.items():
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise SuiteError(f"{source}: suite {name!r} must be a list of benchmark keys")
        unknown = [k for k in keys if k not in benchmarks]
        if unknown:
            raise SuiteError(f"{source}: suite {name!r} names undefined benchmarks: {unknown}")
        suites[str(name)] = tuple(keys)
    return Suite(suites=suites, benchmarks=benchmarks)


def _parse_benchmark(key: str, spec: Any, source: str) -> Benchmark:
    where = f"{source}: benchmark {key!r}"
    if not isinstance(spec, Mapping):
        raise SuiteError(f"{where} must be a mapping")
    unit = spec.get("unit", "%")
    if unit not in UNITS:
        raise SuiteError(f"{where}: unit must be one of {UNITS}, not {unit!r}")
    higher = spec.get("higher_is_better", True)
    if not isinstance(higher, bool):
        raise SuiteError(f"{where}: higher_is_better must be true or false")
    axis = spec.get("axis", "score (%)" if unit == "%" else unit)
    if not isinstance(axis, str) or not axis:
        raise SuiteError(f"{where}: axis must be a non-empty text (the chart's value axis)")
    chance = spec.get("chance")
    if chance is not None and (isinstance(chance, bool) or not isinstance(chance, int | float)):
        raise SuiteError(f"{where}: chance must be a number (what guessing scores) or absent")
    first = _parse_source(spec, where, defaults={}, first=None)
    builtin = spec.get("builtin") or []
    if not isinstance(builtin, list):
        raise SuiteError(f"{where}: builtin must be a list of {{task, metric, scale}} entries")
    defaults = {"metric": spec.get("metric"), "scale": spec.get("scale", 1)}
    others = [
        _parse_source(item, f"{where} builtin {index + 1}", defaults, first)
        for index, item in enumerate(builtin)
    ]
    return Benchmark(
        key=key,
        name=str(spec.get("name", key)),
        sources=(first, *others),
        unit=unit,
        higher_is_better=higher,
        axis=axis,
        chance=None if chance is None else float(chance),
    )


def _parse_source(
    spec: Any, where: str, defaults: Mapping[str, Any], first: Source | None
) -> Source:
    """A source from its spec; a built-in one (`first` given) inherits the benchmark's metric
    and scale, and reads each of the first source's extras from its own tasks unless the
    extra names tasks of its own (e.g. MMBench's static variant); its `extra` may override a
    label, or drop it with null."""
    if not isinstance(spec, Mapping):
        raise SuiteError(f"{where} must be a mapping")
    headline = _parse_score({**defaults, **spec}, where, default_tasks=None)
    if first is None:
        extra_raw = spec.get("extra") or {}
        if not isinstance(extra_raw, Mapping):
            raise SuiteError(f"{where}: extra must map labels to scores")
        extra = {
            str(label): _parse_score(item, f"{where} extra {label!r}", headline.tasks)
            for label, item in extra_raw.items()
        }
        return Source(headline, extra)
    extra = {
        label: score
        if score.tasks != first.headline.tasks
        else Score(headline.tasks, score.metric, score.scale)
        for label, score in first.extra.items()
    }
    overrides = spec.get("extra") or {}
    if not isinstance(overrides, Mapping) or not set(overrides) <= set(extra):
        raise SuiteError(f"{where}: extra may only override the labels {sorted(extra)}")
    for label, item in overrides.items():
        if item is None:  # the built-in task has no such metric
            del extra[str(label)]
        else:
            extra[str(label)] = _parse_score(item, f"{where} extra {label!r}", headline.tasks)
    return Source(headline, extra)


def _parse_score(spec: Any, where: str, default_tasks: tuple[str, ...] | None) -> Score:
    if not isinstance(spec, Mapping):
        raise SuiteError(f"{where} must be a mapping")
    task = spec.get("task")
    if task is None and default_tasks is not None:
        tasks = default_tasks
    elif isinstance(task, str):
        tasks = (task,)
    elif isinstance(task, list) and task and all(isinstance(t, str) for t in task):
        tasks = tuple(task)
    else:
        raise SuiteError(f"{where}: task must be a task name or a non-empty list of them")
    metric = spec.get("metric")
    if not isinstance(metric, str) or "," not in metric:
        raise SuiteError(f"{where}: metric must be the full results key '<metric>,<filter>'")
    scale = spec.get("scale", 1)
    if isinstance(scale, bool) or not isinstance(scale, int | float) or scale <= 0:
        raise SuiteError(f"{where}: scale must be a positive number")
    return Score(tasks=tasks, metric=metric, scale=float(scale))
