"""The task index: which YAML defines each task, group and tag name, as lmms-eval's TaskManager
indexes its folders, read torch-free and cached per folder.

lmms-eval builds the index by loading every YAML of its ~2000 built-in tasks, after importing
torch, on every start. Here each folder's index is built with `task_yaml`'s "index" mode (tags
read as None, nothing run) into the TaskManager's own shape (`{"type", "yaml_path", "task"}`) and
kept in `paths.cache_root()` while the folder's YAML files (names, sizes, modification times) are
unchanged. The cached file is untrusted: it is read through `safe_json` and checked entry by
entry, and anything else is rebuilt.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib.metadata
import importlib.util
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from dragonfly_eval.lmms_files.task_yaml import TaskYamlError, task_config, task_yaml_files
from dragonfly_eval.paths import cache_root
from dragonfly_eval.safe_json import MAX_RESULTS_BYTES, read_json

INDEX_FORMAT = 2  # bump when a cached index changes shape
KINDS = ("task", "python_task", "group", "tag")
T = TypeVar("T")


def lmms_eval_version() -> str:
    """The installed lmms-eval's version (part of every cache key built from its files)."""
    try:
        return importlib.metadata.version("lmms-eval")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def lmms_eval_dir() -> Path:
    """The installed lmms_eval package's folder, found without importing it."""
    spec = importlib.util.find_spec("lmms_eval")
    if spec is None or not spec.submodule_search_locations:
        raise TaskYamlError("lmms-eval is not installed: `pip install --no-deps lmms-eval==0.7.3`")
    return Path(next(iter(spec.submodule_search_locations))).resolve()


def folder_signature(task_dir: str | Path) -> str:
    """A digest of a folder's path and of the name, size and mtime of each YAML under it."""
    digest = hashlib.sha256(os.path.abspath(task_dir).encode())
    for root, dirs, files in os.walk(task_dir):
        dirs.sort()
        for name in sorted(f for f in files if f.endswith(".yaml")):
            stat = os.stat(os.path.join(root, name))
            digest.update(f"{root}/{name}:{stat.st_size}:{stat.st_mtime_ns};".encode())
    return digest.hexdigest()[:32]


class _CacheProblem(ValueError):
    """A cached file that cannot be read back (rebuilt, never reported)."""


def cached(name: str, build: Callable[[], T], parse: Callable[[Any], T | None]) -> T:
    """`build()`, kept as JSON in `cache_root()/name`: read back through `safe_json` and
    `parse` (which returns None for data that is not a valid entry), else built and stored."""
    path = cache_root() / name
    try:
        found = parse(read_json(path, MAX_RESULTS_BYTES, _CacheProblem))
    except (_CacheProblem, TypeError, ValueError, AttributeError):
        found = None
    if found is not None:
        return found
    value = build()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(json.dumps(value), encoding="utf-8")
        partial.replace(path)
    except OSError:
        pass  # a read-only home only costs the time of building it again
    return value


def _entry(config: dict[str, Any], path: str) -> tuple[str, dict[str, Any]] | None:
    """The index entry of one YAML's merged settings, as TaskManager._get_task_and_group makes
    it: a `class` is a Python task, a `task` list a group, a `task` name a task."""
    task = config.get("task")
    if "class" in config:
        return (task, {"type": "python_task", "yaml_path": path}) if isinstance(task, str) else None
    if isinstance(task, list):
        group = config.get("group")
        return (
            (group, {"type": "group", "task": -1, "yaml_path": path})
            if isinstance(group, str)
            else None
        )
    if isinstance(task, str):
        return task, {"type": "task", "yaml_path": path}
    return None


def build_folder_index(task_dir: str | Path) -> dict[str, dict[str, Any]]:
    """name -> {"type", "yaml_path"[, "task"]} for the tasks, groups and tags under a folder,
    later files replacing earlier ones and a task's `tag`s and `group`s registered as tags (a
    tag that names a group is not); an unreadable YAML is left out."""
    index: dict[str, dict[str, Any]] = {}
    for file in task_yaml_files(task_dir):
        path = str(file)
        try:
            config = task_config(path, "index")
        except TaskYamlError:
            continue  # lmms-eval cannot load it either
        entry = _entry(config, path)
        if entry is None:
            continue
        name, value = entry
        index[name] = value
        if value["type"] != "task":
            continue
        for key in ("tag", "group"):
            tags = config.get(key)
            for tag in [tags] if isinstance(tags, str) else tags if isinstance(tags, list) else []:
                if not isinstance(tag, str):
                    continue
                if tag not in index:
                    index[tag] = {"type": "tag", "task": [name], "yaml_path": -1}
                elif index[tag]["type"] == "tag":
                    index[tag]["task"].append(name)
    return index


def _valid_entry(entry: Any) -> bool:
    if not isinstance(entry, dict) or entry.get("type") not in KINDS:
        return False
    path, task = entry.get("yaml_path"), entry.get("task", -1)
    if entry["type"] == "tag":
        return path == -1 and isinstance(task, list) and all(isinstance(t, str) for t in task)
    return isinstance(path, str) and task == -1 and set(entry) <= {"type", "yaml_path", "task"}


def _parse_index(data: Any) -> dict[str, dict[str, Any]] | None:
    if not isinstance(data, dict) or data.get("format") != INDEX_FORMAT:
        return None
    index = data.get("index")
    if not isinstance(index, dict) or not all(_valid_entry(e) for e in index.values()):
        return None
    return index


def folder_index(task_dir: str | Path) -> dict[str, dict[str, Any]]:
    """`build_folder_index(task_dir)`, from the cache while the folder's YAMLs are unchanged."""
    index = cached(
        f"task-index-{folder_signature(task_dir)}.json",
        lambda: {"format": INDEX_FORMAT, "index": build_folder_index(task_dir)},
        lambda data: None if _parse_index(data) is None else data,
    )
    return index["index"]


def task_folders(include_path: str | list[str] | None) -> list[str]:
    """The folders lmms-eval's TaskManager indexes for an --include_path: its own tasks first."""
    extra = [include_path] if isinstance(include_path, str) else list(include_path or [])
    return [str(lmms_eval_dir() / "tasks"), *extra]


def task_index(include_path: str | list[str] | None = None) -> dict[str, dict[str, Any]]:
    """Every name lmms-eval registers with this --include_path (an earlier folder's entry wins,
    as in its TaskManager)."""
    index: dict[str, dict[str, Any]] = {}
    for folder in task_folders(include_path):
        if os.path.isdir(folder):
            index = {**folder_index(folder), **index}
    return index


def unknown_task_lines(tasks: str, include_path: str | list[str] | None = None) -> list[str]:
    """One line for each name of a `--tasks` value that lmms-eval would not find (looked up as
    its `cli_evaluate` does: a registered task, group or tag, a wildcard, a YAML file, or a
    folder of YAMLs for the whole value), with the nearest registered names."""
    if Path(tasks).is_dir():
        return []
    known = sorted(task_index(include_path))
    lines = []
    for name in tasks.split(","):
        if name in known or "*" in name or Path(name).is_file():
            continue
        near = difflib.get_close_matches(name.strip(), known, n=3)
        hint = f"did you mean {' or '.join(near)}?" if near else "no registered name is close"
        lines.append(
            f"--tasks {name}: no such task, group or tag ({hint} `dragonfly-eval run --tasks "
            "list` lists them all)"
        )
    return lines
