"""Read the dragonfly_* task YAMLs without lmms-eval: each task's config."""

from __future__ import annotations

from pathlib import Path

import yaml

from dragonfly_eval.paths import task_yaml_dir


class _IgnoreTagsLoader(yaml.SafeLoader):
    """A safe loader that reads `!function a.b.c` as the plain string "a.b.c"."""


_IgnoreTagsLoader.add_multi_constructor(
    "!", lambda loader, suffix, node: loader.construct_scalar(node)
)


def read_yaml(path: Path) -> dict:
    """One task or group YAML as a dict, `!function` references kept as strings."""
    with open(path, encoding="utf-8") as f:
        return yaml.load(f, Loader=_IgnoreTagsLoader) or {}


def task_configs(root: Path | None = None) -> dict[str, dict]:
    """Task or group name -> its YAML as a dict, for every YAML under root (default task_yaml/)."""
    found: dict[str, dict] = {}
    for path in sorted((root or task_yaml_dir()).rglob("*.yaml")):
        config = read_yaml(path)
        name = config.get("group") if isinstance(config.get("task"), list) else config.get("task")
        if isinstance(name, str):
            found[name] = config
    return found
