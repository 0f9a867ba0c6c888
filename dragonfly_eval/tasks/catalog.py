"""Read the dragonfly_* task YAMLs without lmms-eval: each task's config."""

from __future__ import annotations

from pathlib import Path

from dragonfly_eval.lmms_files.task_yaml import read_yaml
from dragonfly_eval.paths import task_yaml_dir


def task_configs(root: Path | None = None) -> dict[str, dict]:
    """Task or group name -> its YAML as a dict (`!function` values as `FunctionRef`s), for
    every YAML under root (default task_yaml/)."""
    found: dict[str, dict] = {}
    for path in sorted((root or task_yaml_dir()).rglob("*.yaml")):
        config = read_yaml(path, "refs") or {}
        name = config.get("group") if isinstance(config.get("task"), list) else config.get("task")
        if isinstance(name, str):
            found[name] = config
    return found
