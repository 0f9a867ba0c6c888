"""The task index is lmms-eval's TaskManager index, built torch-free, cached per folder while its
YAMLs are unchanged, and a cached file that is not a valid index is rebuilt, never trusted."""

from __future__ import annotations

import json

import pytest

from dragonfly_eval.lmms_files import task_index
from dragonfly_eval.lmms_files.task_index import (
    build_folder_index,
    folder_index,
    folder_signature,
    unknown_task_lines,
)
from dragonfly_eval.paths import task_yaml_dir


@pytest.fixture
def cache(monkeypatch, tmp_path):
    """An empty cache folder."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "dragonfly-eval"


@pytest.fixture
def builds(monkeypatch) -> list[str]:
    """The folders whose index was built (not read back from the cache)."""
    built: list[str] = []

    def counted(task_dir):
        built.append(str(task_dir))
        return build_folder_index(task_dir)

    monkeypatch.setattr(task_index, "build_folder_index", counted)
    return built


def test_the_index_is_the_one_lmms_eval_s_task_manager_builds():
    from lmms_eval.tasks import TaskManager

    folder = str(task_yaml_dir())
    theirs = TaskManager(verbosity="ERROR")._get_task_and_group(folder)
    assert build_folder_index(folder) == json.loads(json.dumps(theirs))
    assert {"dragonfly_mini", "dragonfly_mini_vqa"} <= set(theirs)


def test_task_index_cache_is_rebuilt_when_a_yaml_changes(cache, builds, tmp_path):
    folder = tmp_path / "tasks"
    folder.mkdir()
    (folder / "a.yaml").write_text("task: a\n")
    assert folder_index(folder) == {"a": {"type": "task", "yaml_path": str(folder / "a.yaml")}}
    assert folder_index(folder) == folder_index(folder) and len(builds) == 1
    (folder / "a.yaml").write_text("task: aa\ntag: t\n")
    (folder / "b.yaml").write_text("task: b\ntag: [t]\n")
    index = folder_index(folder)
    assert index["t"] == {"type": "tag", "task": ["aa", "b"], "yaml_path": -1}
    assert set(index) == {"aa", "b", "t"} and len(builds) == 2


@pytest.mark.parametrize(
    "cached",
    [
        "not json",
        json.dumps([1, 2]),
        json.dumps({"format": task_index.INDEX_FORMAT, "index": {"a": {"type": "eval"}}}),
        json.dumps({"format": task_index.INDEX_FORMAT, "index": {"a": {"type": "task"}}}),
        json.dumps(
            {"format": task_index.INDEX_FORMAT, "index": {"t": {"type": "tag", "task": [1]}}}
        ),
        json.dumps({"format": 0, "index": {}}),
        "1" * 5000,
    ],
    ids=[
        "malformed",
        "a-list",
        "unknown-type",
        "no-path",
        "tag-of-numbers",
        "old-format",
        "huge-int",
    ],
)
def test_a_stale_or_hostile_cached_index_is_rebuilt(cache, builds, tmp_path, cached):
    folder = tmp_path / "tasks"
    folder.mkdir()
    (folder / "a.yaml").write_text("task: a\n")
    path = cache / f"task-index-{folder_signature(folder)}.json"
    path.parent.mkdir(parents=True)
    path.write_text(cached)
    assert folder_index(folder) == {"a": {"type": "task", "yaml_path": str(folder / "a.yaml")}}
    assert len(builds) == 1
    assert json.loads(path.read_text())["index"] == folder_index(folder)  # replaced


def test_a_misspelt_task_gets_the_nearest_names_and_known_ones_pass(cache):
    include = str(task_yaml_dir())
    (line,) = unknown_task_lines("dragonfly_mini_vqaa,dragonfly_mini,ai2d", include)
    assert line.startswith("--tasks dragonfly_mini_vqaa: no such task, group or tag (did you ")
    assert "dragonfly_mini_vqa" in line
    assert unknown_task_lines("dragonfly_mini_*", include) == []
    assert unknown_task_lines(str(task_yaml_dir() / "mini"), include) == []  # a folder
