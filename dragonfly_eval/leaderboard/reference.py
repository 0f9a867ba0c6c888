"""Published reference numbers (leaderboards/reference.yaml): rows that were read, not run."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dragonfly_eval.errors import DragonflyEvalError
from dragonfly_eval.leaderboard.suite import read_yaml_file
from dragonfly_eval.paths import leaderboards_dir

REFERENCE_NAME = "reference.yaml"


class ReferenceFileError(DragonflyEvalError):
    """The reference file is missing or malformed."""


@dataclass(frozen=True)
class ReferenceRow:
    """One published model: its numbers in leaderboard units, keyed like suite.yaml, and a source.

    `scores` maps a benchmark key to its headline number; `extra` maps "benchmark.label" to a
    number reported beside the headline (labels as in suite.yaml's `extra`).
    """

    name: str
    source: str
    scores: Mapping[str, float]
    extra: Mapping[str, float]


def default_reference_path() -> Path | None:
    """reference.yaml in the checkout's leaderboards/, else the copy shipped in the wheel."""
    path = leaderboards_dir() / REFERENCE_NAME
    return path if path.is_file() else None


def load_reference(path: Path | str) -> list[ReferenceRow]:
    """Read and validate a reference file."""
    path = Path(path)
    raw = read_yaml_file(path, "the reference numbers", ReferenceFileError)
    return parse_reference(raw, source=str(path))


def parse_reference(raw: Any, source: str = "reference numbers") -> list[ReferenceRow]:
    """Validate reference numbers already loaded into Python objects."""
    if not isinstance(raw, Mapping):
        raise ReferenceFileError(f"{source}: expected a mapping with 'sources' and 'rows'")
    sources, rows = raw.get("sources"), raw.get("rows")
    if not isinstance(sources, Mapping) or not isinstance(rows, list):
        raise ReferenceFileError(f"{source}: 'sources' must be a mapping and 'rows' a list")
    parsed = []
    for index, row in enumerate(rows):
        where = f"{source}: row {index + 1}"
        if not isinstance(row, Mapping) or not isinstance(row.get("name"), str):
            raise ReferenceFileError(f"{where} needs a name")
        where = f"{source}: row {row['name']!r}"
        source_key = row.get("source")
        if source_key not in sources:
            raise ReferenceFileError(
                f"{where}: source {source_key!r} is not listed under 'sources'"
            )
        extra_raw = row.get("extra") or {}
        if not isinstance(extra_raw, Mapping):
            raise ReferenceFileError(f"{where}: extra must map benchmarks to label -> number")
        extra: dict[str, float] = {}
        for bench, labels in extra_raw.items():
            extra.update(
                {f"{bench}.{k}": v for k, v in _numbers(labels, f"{where} extra {bench}").items()}
            )
        parsed.append(
            ReferenceRow(
                name=row["name"],
                source=_describe(sources[source_key], f"{source}: source {source_key!r}"),
                scores=_numbers(row.get("scores") or {}, f"{where} scores"),
                extra=extra,
            )
        )
    return parsed


def _numbers(raw: Any, where: str) -> dict[str, float]:
    if not isinstance(raw, Mapping):
        raise ReferenceFileError(f"{where} must be a mapping of names to numbers")
    numbers = {}
    for key, value in raw.items():
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise ReferenceFileError(f"{where}: {key} must be a number, not {value!r}")
        numbers[str(key)] = float(value)
    return numbers


def _describe(spec: Any, where: str) -> str:
    if not isinstance(spec, Mapping) or not isinstance(spec.get("title"), str):
        raise ReferenceFileError(f"{where} needs a title")
    url = spec.get("url")
    return f"{spec['title']} ({url})" if url else spec["title"]
