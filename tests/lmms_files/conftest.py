"""Shared fixtures: a writer of lmms-eval-shaped results files."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


def results_payload(
    pretrained: str | None,
    date: Any,
    results: dict[str, dict[str, Any]],
    groups: dict[str, dict[str, Any]] | None = None,
    group_subtasks: dict[str, list[str]] | None = None,
) -> dict[str, Any]:
    """A results document shaped like lmms-eval 0.7.3's, with aliases, samples and stderrs."""
    entries = {}
    for task, metrics in results.items():
        entry: dict[str, Any] = {"alias": task, "samples": 10}
        for key, value in metrics.items():
            entry[key] = value
            name, _, flt = key.partition(",")
            entry[f"{name}_stderr,{flt}"] = 0.01
        entries[task] = entry
    payload: dict[str, Any] = {
        "results": entries,
        "group_subtasks": group_subtasks or {t: [] for t in results},
        "configs": {t: {"task": t} for t in results},
        "versions": {t: 0.0 for t in results},
        "n-shot": {t: 0 for t in results},
        "higher_is_better": {t: {} for t in results},
        "n-samples": {t: {"original": 10, "effective": 10} for t in results},
        "config": {"model": "dragonfly", "model_args": "", "batch_size": "1"},
        "git_hash": None,
        "lmms_eval_version": "unknown@unknown",
    }
    if groups:
        payload["groups"] = groups
    if pretrained is not None:
        payload["config"]["model_args"] = f"pretrained={pretrained},dtype=float32"
    if date is not None:
        payload["date"] = date
    return payload


@pytest.fixture
def write_run(tmp_path: Path) -> Callable[..., Path]:
    """Write one results file as lmms-eval lays it out: ROOT/<model dir>/<date>_results.json."""

    def write(
        pretrained: str | None,
        date: str | None,
        results: dict[str, dict[str, Any]],
        root: Path | None = None,
        folder: str | None = None,
        **extra: Any,
    ) -> Path:
        folder = folder or (pretrained or "model").replace("/", "__")
        name = f"{date or 'undated'}_results.json"
        path = (root or tmp_path / "out") / folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results_payload(pretrained, date, results, **extra)))
        return path

    return write
