"""How the gate finds a corpus metric's aggregation (issue 21 item 17): among the installed
lmms-eval tasks and task_yaml/ only, through the task guard, running only the one file the
guard approved for the `!function`, never the `lmms_eval.tasks` package (it imports torch)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.leaderboard.test_regress import run_cli
from tests.leaderboard.test_regress_samples import accuracy_scores, sample_lines
from tests.leaderboard.test_regress_untrusted import evil_include_path, write_side


@pytest.fixture(scope="module")
def index_cache(tmp_path_factory) -> Path:
    """One task-index cache for this module's tests (indexing lmms-eval's tasks takes seconds)."""
    return tmp_path_factory.mktemp("cache")


PROBE = """
import json, sys
from dragonfly_eval.leaderboard.aggregations import sum_form, task_aggregation
found = {}
for task in sys.argv[1:]:
    function = task_aggregation(task, "pope_f1_score,none")
    found[task] = [function.__module__, function.__code__.co_filename, sum_form(function) is not None]
loaded = sorted(m for m in ("lmms_eval.tasks", "lmms_eval.api.registry", "torch") if m in sys.modules)
print(json.dumps({"found": found, "loaded": loaded}))
"""


def test_a_function_aggregation_is_loaded_without_importing_lmms_eval_tasks():
    # pope_adv: lmms-eval's own YAML (`!function utils...`, the file beside it);
    # dragonfly_pope_adv: task_yaml/'s (`!function lmms_eval.tasks.pope.utils...`, a module)
    tasks = ["pope_adv", "dragonfly_pope_adv"]
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *tasks], capture_output=True, text=True, check=True
    )
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["loaded"] == []
    import lmms_eval

    pope_utils = Path(lmms_eval.__file__).parent / "tasks" / "pope" / "utils.py"
    beside, module = report["found"]["pope_adv"], report["found"]["dragonfly_pope_adv"]
    # the module names lmms-eval's loader gives them, from the file the guard approved
    assert beside[0] == "utils" and module[0] == "lmms_eval.tasks.pope.utils"
    assert Path(beside[1]).resolve() == Path(module[1]).resolve() == pope_utils.resolve()
    assert beside[2] and module[2]  # both known as POPE's F1: the count form applies


def test_a_registry_aggregation_needs_no_import(tmp_path, monkeypatch, index_cache):
    from dragonfly_eval.leaderboard import aggregations

    monkeypatch.setattr("dragonfly_eval.paths.task_yaml_dir", lambda: tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(index_cache))
    (tmp_path / "t.yaml").write_text(
        "task: dragonfly_mean_task\ndataset_path: json\noutput_type: generate_until\n"
        "doc_to_text: q\nmetric_list:\n  - metric: acc\n    aggregation: mean\n"
    )
    function = aggregations.task_aggregation("dragonfly_mean_task", "acc,none")
    assert function([1.0, 0.0, 0.5]) == 0.5 and aggregations.sum_form(function) is not None


def test_a_task_yaml_the_guard_refuses_still_cannot_recompute(
    tmp_path, write_run, monkeypatch, capsys, index_cache
):
    # the task is found in the searched folder, but its aggregation is a file outside the
    # allowed packages: the guard refuses the YAML, nothing of it runs
    task, metric = "dragonfly_refused", "score,none"
    folder, marker = evil_include_path(tmp_path, task, "score")
    monkeypatch.setattr("dragonfly_eval.paths.task_yaml_dir", lambda: folder)
    monkeypatch.setenv("XDG_CACHE_HOME", str(index_cache))
    suite = {
        "suites": {"evil": ["evil"]},
        "benchmarks": {"evil": {"name": "Evil", "task": task, "metric": metric, "scale": 100}},
    }
    suite_file = tmp_path / "suite.yaml"
    suite_file.write_text(json.dumps(suite))
    lines = sample_lines(accuracy_scores(40, 20), key="score")
    for line in lines:
        line["score"] = {"value": line["score"]}
    base = write_side(write_run, tmp_path / "b", task, metric, 0.9, lines)
    cur = write_side(write_run, tmp_path / "c", task, metric, 0.8, lines)
    argv = ["regress", "--baseline", str(base), "--current", str(cur), "--suite", "evil"]
    code = run_cli([*argv, "--suite-file", str(suite_file)])
    out = capsys.readouterr().out
    assert not marker.exists()
    assert "cannot recompute 'score'" in out and "the task guard refuses" in out
    assert code == 1  # the recorded aggregates decide: a 10-point drop


def test_the_index_follows_include_and_a_later_task_folder_does_not_override(
    tmp_path, monkeypatch, index_cache
):
    from dragonfly_eval.leaderboard import aggregations

    monkeypatch.setattr("dragonfly_eval.paths.task_yaml_dir", lambda: tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(index_cache))
    (tmp_path / "base.yaml").write_text(
        "dataset_path: json\noutput_type: generate_until\ndoc_to_text: q\n"
        "metric_list:\n  - metric: acc\n    aggregation: mean\n"
    )
    (tmp_path / "child.yaml").write_text("include: base.yaml\ntask: dragonfly_child\n")
    # a name lmms-eval's own folder defines comes from there (the TaskManager's precedence)
    (tmp_path / "shadow.yaml").write_text(
        "task: pope_adv\ndataset_path: json\noutput_type: generate_until\ndoc_to_text: q\n"
        "metric_list:\n  - metric: pope_f1_score\n    aggregation: mean\n"
    )
    assert aggregations.task_aggregation("dragonfly_child", "acc,none") is not None
    function = aggregations.task_aggregation("pope_adv", "pope_f1_score,none")
    assert function.__name__ == "pope_aggregate_f1_score"
