"""The one reader of lmms-eval `<date>_results.json` files: a run is one model, one date, the
numbers, stderrs and higher_is_better of each task, and the settings the commands compare.

A results file is untrusted input: it is read only when it is a regular file under a size cap,
and any number, nesting or date that Python cannot hold makes it a skipped input (ResultsError
naming the file), never a crash of the table or the gate.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dragonfly_eval.errors import DragonflyEvalError
from dragonfly_eval.safe_json import MAX_RESULTS_BYTES, read_json

_RESULTS_NAME = re.compile(r"^(results|.*_results|results_.*)\.json$")
# the `<date>` lmms-eval starts the names of a run's results file and sample logs with
DATE_PREFIX = re.compile(r"^(\d{8}_\d{6})")
# lmms-eval's `--timezone` default: its `date` strings carry no offset of their own.
LMMS_EVAL_DEFAULT_ZONE = "Asia/Singapore"
PREFER = ("largest", "newest")
_MAX_GROUP_DEPTH = 32
# model_args that say where, how fast or at what precision the answers are computed, not what is
# evaluated: runs that differ only in these are runs of one row. Every other argument (zoom,
# max_length, revision, and any a model class other than `dragonfly` takes) keys its own row.
NEUTRAL_MODEL_ARGS = frozenset(
    {
        "pretrained",
        "device",
        "device_map",
        "dtype",
        "batch_size",
        "attn_implementation",
        "image_cache",
        "image_cache_mb",
        "prefetch",
        "prefix_cache",
        "prefix_cache_mb",
        "device_resize",
        "deterministic",
        "resume_store",
        "failure_report",
    }
)


# resolved_cli_args that change the prompt or the answer of every document
PROMPT_ARGS = (
    "system_instruction",
    "apply_chat_template",
    "fewshot_as_multiturn",
    "num_fewshot",
    "gen_kwargs",
    "reasoning_tags",
)


class ResultsError(DragonflyEvalError, ValueError):
    """A results file or folder that holds no usable results (a ValueError for safe_json, which
    raises the caller's error class)."""


# The run-cost record that `dragonfly` and `dragonfly_vllm` log into lmms-eval's `throughput`
# block (dragonfly_eval/harness/cost.py); lmms-eval names the record's own numbers avg_<name>.
ENGINES = {"dragonfly": "hf", "dragonfly_vllm": "vllm"}
_MAX_ENGINE_CHARS = 64


@dataclass(frozen=True)
class Cost:
    """What a run cost: its engine (`hf`, `vllm`, or the lmms-eval model name), requests
    answered, samples/s, generated tokens/s, wall seconds of the engine's work, and device
    seconds (wall x CUDA devices; None for a run on the CPU)."""

    engine: str
    samples: int
    samples_per_s: float
    tokens_per_s: float
    wall_s: float
    device_s: float | None = None

    @staticmethod
    def total(costs: Iterable[Cost]) -> Cost | None:
        """Several runs as one (a row merged from runs of different tasks): samples, seconds
        and tokens summed, rates over the summed seconds; None for no run."""
        costs = list(costs)
        if not costs:
            return None
        wall = sum(c.wall_s for c in costs)
        devices = [c.device_s for c in costs]
        return Cost(
            engine="+".join(sorted({c.engine for c in costs})),
            samples=sum(c.samples for c in costs),
            samples_per_s=sum(c.samples for c in costs) / wall,
            tokens_per_s=sum(c.tokens_per_s * c.wall_s for c in costs) / wall,
            wall_s=wall,
            device_s=None if None in devices else sum(d for d in devices if d is not None),
        )


@dataclass(frozen=True)
class Documents:
    """How many documents a task result covers: lmms-eval's n-samples and the run's --limit."""

    effective: int | None
    original: int | None
    limit: float | None

    @property
    def partial(self) -> bool:
        """Whether the result covers fewer documents than the task has (a --limit run)."""
        if self.effective is not None and self.original is not None:
            return self.effective < self.original
        return self.limit is not None

    @property
    def label(self) -> str:
        """How the tables mark a partial result: its document count, else its limit."""
        if self.effective is not None:
            return f"n={self.effective}"
        return f"limit={self.limit:g}" if self.limit is not None else "full"

    @staticmethod
    def total(parts: Iterable[Documents]) -> Documents:
        """The documents behind an average of several task results (e.g. POPE's splits)."""
        parts = list(parts)
        effective = [p.effective for p in parts]
        original = [p.original for p in parts]
        return Documents(
            None if None in effective else sum(effective),
            None if None in original else sum(original),
            next((p.limit for p in parts if p.limit is not None), None),
        )

    def same_set(self, other: Documents) -> bool:
        """Whether two results ran on the same documents (same counts, or same limit)."""
        if None not in (self.effective, self.original, other.effective, other.original):
            return (self.effective, self.original) == (other.effective, other.original)
        return self.limit == other.limit


@dataclass(frozen=True)
class Run:
    """One results file: the model it evaluated, when, and the numeric metrics of each task."""

    path: Path
    model: str
    date: datetime | None
    tasks: Mapping[str, Mapping[str, float]]
    subtasks: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    samples: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    limit: float | None = None
    model_args: str = ""
    variant: str = ""  # the answer-changing model_args, e.g. "zoom=low"; "" when none
    cost: Cost | None = None  # what the run cost, when the model recorded it
    # per task: each "metric,filter"'s finite stderr (lmms-eval writes "N/A" for corpus metrics)
    stderrs: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    # per task: whether a higher value of each metric (a bare name) is better, where recorded
    higher_is_better: Mapping[str, Mapping[str, bool]] = field(default_factory=dict)
    # per task: each metric's aggregation as the task config records it ("mean", or a
    # function's text such as "<function coco_cider at 0x...>")
    aggregations: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    # the PROMPT_ARGS of the run's resolved_cli_args (None where not recorded)
    prompt: Mapping[str, Any] = field(default_factory=dict)

    @property
    def date_label(self) -> str:
        """The run's date as the tables show it, with its UTC offset."""
        return date_label(self.date)

    def documents(self, task: str) -> Documents:
        """The documents behind one task's result; a group sums its subtasks."""
        counts = self._counts(task, set(), 0)
        effective, original = counts if counts else (None, None)
        return Documents(effective, original, self.limit)

    def _counts(self, task: str, seen: set[str], depth: int) -> tuple[int, int] | None:
        if task in self.samples:
            return self.samples[task]
        members = [m for m in self.subtasks.get(task, ()) if m not in seen]
        # lmms-eval nests groups a few levels deep; a file nesting more is not followed.
        if not members or depth > _MAX_GROUP_DEPTH:
            return None
        seen.update(members)
        parts = [self._counts(m, seen, depth + 1) for m in members]
        if any(p is None for p in parts):
            return None
        return sum(p[0] for p in parts), sum(p[1] for p in parts)


@dataclass(frozen=True)
class Replacement:
    """A task result of one run that another run of the same model replaced."""

    model: str
    task: str
    kept: Run
    dropped: Run


@dataclass(frozen=True)
class ModelResults:
    """Everything known about one row after merging its runs task by task: `model` is the row's
    label (see merge_runs)."""

    model: str
    tasks: Mapping[str, tuple[Mapping[str, float], Run]]
    subtasks: Mapping[str, tuple[str, ...]]
    replaced: tuple[Replacement, ...]


@dataclass(frozen=True)
class LoadedRuns:
    """The runs found under some paths, plus why any path or file gave nothing."""

    runs: list[Run]
    problems: list[str]


def date_label(date: datetime | None) -> str:
    """A date as the tables show it: `YYYY-MM-DD HH:MM:SS +HH:MM`, or "undated"."""
    if date is None:
        return "undated"
    text = date.isoformat(sep=" ", timespec="seconds")
    return f"{text[:19]} {text[19:]}"


def find_results_files(path: Path) -> list[Path]:
    """The results files at `path`: the path itself, or every results file under a folder."""
    if path.is_dir():
        # lmms-eval writes benchmark submission files (e.g. COCO's *_alg_results.json) under
        # submissions/; they hold predictions, not scores.
        try:
            return sorted(
                p
                for p in path.rglob("*.json")
                if _RESULTS_NAME.match(p.name) and "submissions" not in p.relative_to(path).parts
            )
        except OSError as err:
            raise ResultsError(f"{path}: cannot list: {err.strerror or err}") from err
    if path.exists() or path.is_symlink():
        return [path]  # read_run says why it is not a readable file, if it is not
    raise ResultsError(f"{path}: no such file or folder")


def read_run(path: Path) -> Run:
    """Parse one lmms-eval results file; raises ResultsError when it holds no usable results."""
    data = _read_document(path)
    if not isinstance(data.get("results"), dict):
        raise ResultsError(f"{path}: not an lmms-eval results file (no 'results' mapping)")
    tasks: dict[str, dict[str, float]] = {}
    stderrs: dict[str, dict[str, float]] = {}
    for section in ("results", "groups"):
        entries = data.get(section)
        if not isinstance(entries, dict):
            continue
        for task, metrics in entries.items():
            if isinstance(metrics, dict):
                tasks.setdefault(str(task), {}).update(numeric_metrics(metrics))
                found = stderr_metrics(metrics)
                if found:
                    stderrs.setdefault(str(task), {}).update(found)
    if not tasks:
        raise ResultsError(f"{path}: the 'results' mapping lists no tasks")
    config = data.get("config") if isinstance(data.get("config"), dict) else {}
    pairs = model_arg_pairs(config.get("model_args"))
    return Run(
        path=path,
        model=model_name(data, path),
        date=run_date(data, path),
        tasks=tasks,
        subtasks=_subtasks(data.get("group_subtasks")),
        samples=_samples(data.get("n-samples")),
        limit=_number(config.get("limit")),
        model_args=_model_args(config.get("model_args")),
        variant=", ".join(f"{k}={v}" for k, v in pairs if k not in NEUTRAL_MODEL_ARGS),
        cost=read_cost(data),
        stderrs=stderrs,
        higher_is_better=_higher_is_better(data.get("higher_is_better")),
        aggregations=_aggregations(data.get("configs")),
        prompt=prompt_settings(data),
    )


def recorded_model_args(path: Path) -> str | None:
    """The model_args a results file records (as `Run.model_args` shows them), or None when it
    records none; ResultsError when the file is not a readable JSON object. For a results file
    that need not hold scores (one a run is still writing)."""
    config = _read_document(path).get("config")
    raw = config.get("model_args") if isinstance(config, dict) else None
    return _model_args(raw) if isinstance(raw, str | dict) else None


def _read_document(path: Path) -> dict[str, Any]:
    data = read_json(path, MAX_RESULTS_BYTES, ResultsError)
    if not isinstance(data, dict):
        raise ResultsError(f"{path}: not an lmms-eval results file (no 'results' mapping)")
    return data


def prompt_settings(results: Mapping[str, Any]) -> dict[str, Any]:
    """The resolved_cli_args of a results document that shape every prompt or answer."""
    config = results.get("config")
    cli = config.get("resolved_cli_args") if isinstance(config, dict) else None
    cli = cli if isinstance(cli, dict) else {}
    return {key: cli.get(key) for key in PROMPT_ARGS}


def read_cost(data: Mapping[str, Any]) -> Cost | None:
    """The run-cost record of a results file (its `throughput` block as `dragonfly` and
    `dragonfly_vllm` log it), or None when the file has none or any of its numbers is not one
    a run can have (a missing, negative, non-finite or wrongly typed value): a malformed record
    is left out, never shown."""
    block = data.get("throughput")
    if not isinstance(block, dict):
        return None
    wall = _number(block.get("total_elapsed_time"))
    rate = _number(block.get("avg_samples_per_s"))
    tokens = block.get("total_gen_tokens")
    samples = _number(block.get("avg_samples"))
    if None in (wall, rate, samples) or not isinstance(tokens, int) or isinstance(tokens, bool):
        return None
    if wall <= 0 or rate <= 0 or tokens < 0 or samples < 1 or not samples.is_integer():
        return None
    device = block.get("avg_device_seconds")
    device_s = _number(device)
    if device is not None and (device_s is None or device_s < 0):
        return None
    config = data.get("config")
    model = config.get("model") if isinstance(config, dict) else None
    engine = model.strip() if isinstance(model, str) and model.strip() else "unknown"
    return Cost(
        engine=ENGINES.get(engine, one_line_text(engine[:_MAX_ENGINE_CHARS])),
        samples=int(samples),
        samples_per_s=samples / wall,  # avg_samples_per_s marks the record; it is the same
        tokens_per_s=tokens / wall,
        wall_s=wall,
        device_s=device_s,
    )


def one_line_text(text: str) -> str:
    """Text with control characters blanked (an engine name from an untrusted file)."""
    return "".join(" " if not ch.isprintable() else ch for ch in text)


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


def stderr_metrics(entry: Mapping[str, Any]) -> dict[str, float]:
    """The finite `"metric_stderr,filter"` values of a task entry, keyed `"metric,filter"`."""
    kept: dict[str, float] = {}
    for key, value in entry.items():
        name, comma, flt = str(key).partition(",")
        number = _number(value)
        if comma and name.endswith("_stderr") and number is not None:
            kept[f"{name.removesuffix('_stderr')},{flt}"] = number
    return kept


def numeric_metrics(entry: Mapping[str, Any]) -> dict[str, float]:
    """The `"metric,filter"` values of a task entry that are finite numbers, stderrs left out."""
    kept: dict[str, float] = {}
    for key, value in entry.items():
        name, comma, _ = str(key).partition(",")
        if not comma or "_stderr" in name:
            continue
        number = _number(value)
        if number is not None:
            kept[str(key)] = number
    return kept


def normalize_model(name: str) -> str:
    """A model name as one row: surrounding whitespace and trailing slashes dropped, case kept."""
    return name.strip().rstrip("/").strip()


def model_arg_pairs(raw: Any) -> list[tuple[str, str]]:
    """The (name, value) pairs of a run's recorded model_args (lmms-eval's `k=v,...` string, or
    a dict from Python API callers), whitespace stripped, in the order given."""
    if isinstance(raw, dict):
        items = [(str(k), v) for k, v in raw.items()]
    elif isinstance(raw, str):
        items = [pair.partition("=")[::2] for pair in raw.split(",") if "=" in pair]
    else:
        return []
    return [
        (key.strip(), value.strip() if isinstance(value, str) else _arg_text(value))
        for key, value in items
        if key.strip()
    ]


def model_name(data: Mapping[str, Any], path: Path) -> str:
    """The `pretrained=` value of the run's model_args, else the name of the folder holding it."""
    config = data.get("config")
    pairs = model_arg_pairs(config.get("model_args") if isinstance(config, dict) else None)
    pretrained = next((value for key, value in pairs if key == "pretrained"), None)
    if pretrained and normalize_model(pretrained):
        return normalize_model(pretrained)
    return normalize_model(path.resolve().parent.name)


def _model_args(raw: Any) -> str:
    # lmms-eval records the --model_args string; a dict (Python API callers) shows as k=v pairs.
    if isinstance(raw, dict):
        return ",".join(f"{k}={_arg_text(v)}" for k, v in raw.items())
    return raw if isinstance(raw, str) else ""


def _arg_text(value: Any) -> str:
    # Never str() a container: a deeply nested one would recurse.
    return str(value) if isinstance(value, str | int | float) else "..."


def run_date(data: Mapping[str, Any], path: Path) -> datetime | None:
    """When the run happened, as an aware datetime: the results' `date`, else the file name's
    date prefix, else None. A date without an offset is in the run's `--timezone`."""
    raw = data.get("date")
    zone = _zone(data, path)
    if raw is None:
        prefix = DATE_PREFIX.match(path.name)
        return _parse_date(prefix.group(1), zone) if prefix else None
    if isinstance(raw, str):
        parsed = _parse_date(raw, zone)
        if parsed is not None:
            return parsed
    elif isinstance(raw, int | float) and not isinstance(raw, bool):
        try:
            return datetime.fromtimestamp(raw, tz=timezone.utc)
        except (OverflowError, OSError, ValueError):
            pass
    raise ResultsError(f"{path}: 'date' {_describe(raw)} is not a date lmms-eval writes")


def merge_runs(runs: Iterable[Run], prefer: str = "largest") -> list[ModelResults]:
    """Group runs into rows and keep one run per (row, task). Rows in label order.

    A row is a model and its answer-changing model_args (`Run.variant`): the runs of one model
    at zoom=full and at zoom=low are two rows. A row's label is the model's name, followed by
    its variant in parentheses when the model has rows of more than one variant
    (`dragonfly-tiny`, `dragonfly-tiny (zoom=low)`).

    prefer="largest": a run over all of a task's documents beats a partial (--limit) one, the
    one with more documents wins among partial runs, and the newest wins among equals.
    prefer="newest": the newest run wins. Undated runs count as older than any dated one.
    """
    if prefer not in PREFER:
        raise ValueError(f"prefer must be one of {PREFER}, not {prefer!r}")
    by_row: dict[tuple[str, str], list[Run]] = {}
    for run in runs:
        by_row.setdefault((run.model, run.variant), []).append(run)
    variants: dict[str, int] = {}
    for model, _ in by_row:
        variants[model] = variants.get(model, 0) + 1
    by_model = {
        f"{model} ({variant})" if variant and variants[model] > 1 else model: rows
        for (model, variant), rows in by_row.items()
    }
    merged = []
    for model in sorted(by_model):
        tasks: dict[str, tuple[Mapping[str, float], Run]] = {}
        subtasks: dict[str, tuple[str, ...]] = {}
        replaced: list[Replacement] = []
        for run in sorted(by_model[model], key=_age_key, reverse=True):
            for group, members in run.subtasks.items():
                subtasks.setdefault(group, members)
        for task in sorted({t for run in by_model[model] for t in run.tasks}):
            holders = [r for r in by_model[model] if task in r.tasks]
            holders.sort(key=lambda r, t=task: _preference_key(r, t, prefer), reverse=True)
            tasks[task] = (holders[0].tasks[task], holders[0])
            replaced.extend(Replacement(model, task, holders[0], r) for r in holders[1:])
        merged.append(ModelResults(model, tasks, subtasks, tuple(replaced)))
    return merged


def _preference_key(run: Run, task: str, prefer: str) -> tuple:
    if prefer == "newest":
        return _age_key(run)
    docs = run.documents(task)
    size = (docs.effective or 0) if docs.partial else 0
    return (not docs.partial, size, _age_key(run))


def _age_key(run: Run) -> tuple[bool, float, str]:
    # Undated runs count as older than any dated one; the path breaks ties deterministically.
    return (run.date is not None, run.date.timestamp() if run.date else 0.0, str(run.path))


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _zone(data: Mapping[str, Any], path: Path) -> tzinfo:
    config = data.get("config")
    cli = config.get("resolved_cli_args") if isinstance(config, dict) else None
    name = cli.get("timezone") if isinstance(cli, dict) else None
    name = name if isinstance(name, str) and name else LMMS_EVAL_DEFAULT_ZONE
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as err:
        raise ResultsError(f"{path}: unknown time zone {name[:40]!r} in --timezone") from err


def _parse_date(text: str, zone: tzinfo) -> datetime | None:
    for parse in (_parse_compact, datetime.fromisoformat):
        try:
            parsed = parse(text)
        except ValueError:
            continue
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=zone)
    return None


def _describe(value: Any) -> str:
    # Never str() a container: a deeply nested one would recurse.
    if isinstance(value, str):
        return repr(value[:40])
    return repr(value) if isinstance(value, int | float) else f"a {type(value).__name__}"


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


def _samples(raw: Any) -> dict[str, tuple[int, int]]:
    counts: dict[str, tuple[int, int]] = {}
    for task, entry in (raw or {}).items() if isinstance(raw, dict) else ():
        if not isinstance(entry, dict):
            continue
        effective, original = entry.get("effective"), entry.get("original")
        if all(isinstance(v, int) and not isinstance(v, bool) for v in (effective, original)):
            counts[str(task)] = (effective, original)
    return counts


def _higher_is_better(raw: Any) -> dict[str, dict[str, bool]]:
    if not isinstance(raw, dict):
        return {}
    return {
        str(task): {str(k): v for k, v in metrics.items() if isinstance(v, bool)}
        for task, metrics in raw.items()
        if isinstance(metrics, dict)
    }


def _aggregations(raw: Any) -> dict[str, dict[str, str]]:
    """Each task config's `metric_list` as metric name -> recorded aggregation text."""
    found: dict[str, dict[str, str]] = {}
    for task, config in raw.items() if isinstance(raw, dict) else ():
        entries = config.get("metric_list") if isinstance(config, dict) else None
        for entry in entries if isinstance(entries, list) else ():
            if not isinstance(entry, dict) or not isinstance(entry.get("metric"), str):
                continue
            value = entry.get("aggregation")
            if isinstance(value, str):
                found.setdefault(str(task), {}).setdefault(entry["metric"], value)
    return found
