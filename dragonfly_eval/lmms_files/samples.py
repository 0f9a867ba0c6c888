"""The one reader of lmms-eval sample logs (`<date>_samples_<task>.jsonl`, written with --log_samples).

lmms-eval 0.7.3 writes one JSON line per document beside `<date>_results.json`: `doc_id`,
`doc_hash` (a hash of the document), `target`, `input` (the prompt), `filtered_resps` (the
answer after the task's filter) and each metric's per-document value under the metric's name
(`"exact_match": 1.0`; a dict for corpus-level metrics such as CIDEr). Like results files, a
sample log is untrusted: a regular file under a size cap, parsed line by line by the same
parser as results files (`safe_json`: a number or nesting Python cannot hold is an error).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from array import array
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dragonfly_eval.errors import DragonflyEvalError
from dragonfly_eval.lmms_files.results import DATE_PREFIX
from dragonfly_eval.paths import check_regular_file
from dragonfly_eval.safe_json import JsonProblem, NumberProblem, parse

MAX_SAMPLES_BYTES = 512 * 2**20
_LOG_NAME = re.compile(r"^(\d{8}_\d{6})_samples_(.+)\.jsonl$")
# the fields lmms-eval writes beside the metric values
LOG_FIELDS = frozenset(
    {
        "doc_id",
        "doc",
        "doc_hash",
        "target",
        "arguments",
        "input",
        "input_media",
        "resps",
        "filtered_resps",
        "token_counts",
    }
)
# the fields that identify a document's content (lmms-eval 0.7.3 hashes `requests[0].doc`,
# which is None, so every doc_hash is NULL_DOC_HASH; the others still tell documents apart)
DOCUMENT_FIELDS = ("doc_hash", "doc", "target", "input")
NULL_DOC_HASH = hashlib.sha256(b"null").hexdigest()


class SampleLogError(DragonflyEvalError, ValueError):
    """A sample log that cannot be read, or lacks what a comparison needs (a ValueError for
    paths.check_regular_file, which raises the caller's error class)."""


class UnrepresentableNumber(SampleLogError):
    """A sample log holding a number no float can hold: a bad input, not a missing value."""


@dataclass(frozen=True)
class SampleLog:
    """One task's sample log: its lines by doc_id."""

    path: Path
    task: str
    records: Mapping[int, Mapping[str, Any]]

    def values(self, metric: str) -> dict[int, Any]:
        """Each document's value of `metric` (a `name,filter` key or a bare name);
        SampleLogError when a document lacks it."""
        name = metric.partition(",")[0]
        missing = [doc for doc, rec in self.records.items() if name not in rec]
        if missing:
            raise SampleLogError(
                f"{self.path}: no per-document '{name}' value for {len(missing)} of "
                f"{len(self.records)} documents (first: doc_id {missing[0]})"
            )
        return {doc: rec[name] for doc, rec in self.records.items()}

    def metrics(self) -> list[str]:
        """The metric names this log holds per document, in the order of its first line."""
        first = next(iter(self.records.values()), {})
        return [key for key in first if key not in LOG_FIELDS]


def sample_log_path(results_file: Path, task: str) -> Path:
    """Where lmms-eval writes `task`'s sample log for a results file (it may not exist)."""
    match = DATE_PREFIX.match(results_file.name)
    prefix = match.group(1) if match else results_file.name.removesuffix("_results.json")
    return results_file.parent / f"{prefix}_samples_{task}.jsonl"


def results_file_of(sample_log: Path) -> Path:
    """The results file lmms-eval wrote beside a sample log (the inverse of sample_log_path)."""
    match = DATE_PREFIX.match(sample_log.name)
    prefix = match.group(1) if match else sample_log.name.partition("_samples_")[0]
    return sample_log.parent / f"{prefix}_results.json"


def find_sample_logs(path: Path) -> dict[str, Path]:
    """The newest sample log of each task under a folder (or the one file given)."""
    files = [path] if path.is_file() else sorted(path.rglob("*_samples_*.jsonl"))
    found: dict[str, Path] = {}
    for file in files:
        match = _LOG_NAME.match(file.name)
        if match is None:
            continue
        task = match.group(2)
        if task not in found or file.name > found[task].name:
            found[task] = file
    return found


def read_sample_log(path: Path, task: str) -> SampleLog:
    """Parse one sample log; SampleLogError naming the file and line when it is unusable."""
    records: dict[int, Mapping[str, Any]] = {}
    for number, line in _lines(path):
        if not line.strip():
            continue
        record = _record(path, number, line)
        doc_id = record["doc_id"]
        if doc_id in records:
            raise SampleLogError(_twice(path, doc_id))
        records[doc_id] = record
    if not records:
        raise SampleLogError(f"{path}: no documents")
    return SampleLog(path, task, records)


@dataclass(frozen=True)
class MetricLog:
    """One task's sample log held as compactly as a comparison of one metric needs: per
    document (sorted by doc_id) its doc_id, an 8-byte digest of each of DOCUMENT_FIELDS (0 where
    absent or null), whether it tells its document apart from others, and its metric value (a
    float array; the values themselves only where some are not numbers)."""

    path: Path
    task: str
    metric: str
    doc_ids: np.ndarray  # int64 [n], ascending
    digests: np.ndarray  # uint64 [n, len(DOCUMENT_FIELDS)]
    telling: np.ndarray  # bool [n]
    numbers: np.ndarray  # float64 [n]: NaN where missing or not a number
    objects: list[Any] | None  # every value (dicts and lists as JSON text), when not all numbers
    problems: tuple[str | None, str | None]  # why there is no value / no number per document

    def values_at(self, positions: np.ndarray) -> list[Any]:
        """The values of the documents at `positions`; SampleLogError when a document of the
        log lacks one."""
        if self.problems[0]:
            raise SampleLogError(self.problems[0])
        if self.objects is None:
            return self.numbers[positions].tolist()
        return [
            parse(v) if type(v) is _JsonText else v
            for v in map(self.objects.__getitem__, positions)
        ]

    def numbers_at(self, positions: np.ndarray | None = None) -> np.ndarray:
        """The values at `positions` (all when None) of a metric that is a finite number per
        document; SampleLogError otherwise (checked on every document of the log)."""
        for problem in self.problems:
            if problem:
                raise SampleLogError(problem)
        return self.numbers if positions is None else self.numbers[positions]


def read_metric_log(path: Path, task: str, metric: str) -> MetricLog:
    """A sample log read for the comparison of one metric (`name,filter` or a bare name), kept
    as a MetricLog; SampleLogError as read_sample_log raises it."""
    name = metric.partition(",")[0]
    ids: list[int] = []
    seen: set[int] = set()
    digests = array("Q")
    telling = array("b")
    numbers = array("d")
    objects: list[Any] = []
    missing: list[int] = []
    not_number: tuple[int, str] | None = None
    not_finite: list[int] = []
    for number, line in _lines(path):
        if not line.strip():
            continue
        record = _record(path, number, line)
        doc_id = record["doc_id"]
        if doc_id in seen:
            raise SampleLogError(_twice(path, doc_id))
        seen.add(doc_id)
        ids.append(doc_id)
        digests.extend(_digest(record.get(key)) for key in DOCUMENT_FIELDS)
        telling.append(
            any(key in record for key in DOCUMENT_FIELDS if key != "doc_hash")
            or record.get("doc_hash") not in (None, NULL_DOC_HASH)
        )
        value = record.get(name, _MISSING)
        if value is _MISSING:
            missing.append(doc_id)
        elif isinstance(value, bool) or not isinstance(value, int | float):
            not_number = not_number or (doc_id, type(value).__name__)
        elif not math.isfinite(value):
            not_finite.append(doc_id)
        numbers.append(float(value) if _is_number(value) else math.nan)
        objects.append(_JsonText(json.dumps(value)) if isinstance(value, dict | list) else value)
    if not ids:
        raise SampleLogError(f"{path}: no documents")
    order = np.argsort(np.asarray(ids, dtype=np.int64), kind="stable")
    problems = (
        f"{path}: no per-document '{name}' value for {len(missing)} of {len(ids)} documents "
        f"(first: doc_id {missing[0]})"
        if missing
        else None,
        f"{path}: '{name}' is not a number per document (doc_id {not_number[0]}: a {not_number[1]})"
        if not_number
        else f"{path}: {len(not_finite)} document(s) have a NaN or infinite '{name}' "
        f"(first: doc_id {not_finite[0]})"
        if not_finite
        else None,
    )
    return MetricLog(
        path,
        task,
        metric,
        np.asarray(ids, dtype=np.int64)[order],
        np.frombuffer(digests, dtype=np.uint64).reshape(len(ids), -1)[order],
        np.frombuffer(telling, dtype=np.int8)[order].astype(bool),
        np.frombuffer(numbers, dtype=np.float64)[order],
        [objects[i] for i in order] if not_number else None,
        problems,
    )


_MISSING = object()


def _is_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float)


def _digest(value: Any) -> int:
    """8 bytes of a field's value (0: absent or null); equal values give equal digests."""
    if value is None:
        return 0
    if isinstance(value, str):
        data = b"s" + value.encode("utf-8", "surrogatepass")
    elif isinstance(value, int | float):  # as Python compares them: 1 == 1.0 == True
        integral = isinstance(value, int) or value.is_integer()
        data = b"n" + (str(int(value)) if integral else value.hex()).encode()
    else:
        data = b"j" + json.dumps(value, sort_keys=True).encode("utf-8", "surrogatepass")
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little") or 1


class _JsonText(str):
    """A document's dict or list value kept as its JSON text (~3x smaller), read on access."""

    __slots__ = ()


def _record(path: Path, number: int, line: str) -> dict[str, Any]:
    try:
        record = parse(line)
    except NumberProblem as err:
        raise UnrepresentableNumber(f"{path}: line {number}: {err}") from err
    except JsonProblem as err:
        raise SampleLogError(f"{path}: line {number} is not usable JSON: {err}") from err
    doc_id = record.get("doc_id") if isinstance(record, dict) else None
    if isinstance(doc_id, bool) or not isinstance(doc_id, int):
        raise SampleLogError(f"{path}: line {number} has no integer doc_id")
    return record


def _twice(path: Path, doc_id: int) -> str:
    return (
        f"{path}: doc_id {doc_id} appears twice (lmms-eval logs one unlabelled line per "
        "filter for a task with several filters; such a log cannot be paired)"
    )


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    # Same guards as results files: never open a FIFO or a device, never read past the cap.
    try:
        check_regular_file(path, MAX_SAMPLES_BYTES, SampleLogError)
        with open(path, encoding="utf-8") as handle:
            yield from enumerate(handle, start=1)
    except OSError as err:
        raise SampleLogError(f"{path}: cannot read: {err.strerror or err}") from err
    except UnicodeDecodeError as err:
        raise SampleLogError(f"{path}: not UTF-8 text") from err
