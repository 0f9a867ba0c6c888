"""The task guard allows functions, not packages: a `!function` must be one that lmms-eval's
installed built-in task YAMLs (or this project's, for dragonfly_eval.tasks) name, in the same
role (doc_to_text, process_results, filter, aggregation, ...).

lmms-eval 0.7.3 calls every `filter_list` entry as `get_filter(fn)(**kwargs)` with the YAML's
keys as arguments, so a helper defined inside lmms_eval that runs a shell command
(`mdpbench...tokenize_latex.run_cmd`) ran whatever the YAML said while the rule was "any
function defined inside lmms_eval". A control first shows lmms-eval really does that.
"""

from __future__ import annotations

import lmms_eval.utils
import pytest
from lmms_eval.filters import build_filter_ensemble

from dragonfly_eval.cli import main
from dragonfly_eval.lmms_files import task_guard

RUN_CMD = "lmms_eval.tasks.mdpbench.cdm.modules.tokenize_latex.tokenize_latex.run_cmd"


@pytest.fixture
def no_lmms_eval(monkeypatch):
    """Fail the test if `dragonfly-eval run` starts lmms-eval."""

    def started(*args, **kwargs):
        raise AssertionError("lmms-eval was started")

    monkeypatch.setattr("dragonfly_eval.runner.start.relay", started)


def task_yaml(folder, body: str):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "task.yaml"
    path.write_text(f"task: dragonfly_roles_x\noutput_type: generate_until\n{body}")
    return path


def refusal(tmp_path, capsys, folder) -> str:
    code = main(
        ["run", "--output_path", str(tmp_path / "out"), "--include_path", str(folder)]
        + ["--tasks", "dragonfly_roles_x"]
    )
    err = capsys.readouterr().err
    assert code == 2, err
    assert "refusing to run" in err
    return err


def filter_yaml(folder, function: str, marker) -> object:
    return task_yaml(
        folder,
        "filter_list:\n  - name: x\n    filter:\n"
        f"      - function: !function {function}\n        cmd: touch {marker}\n",
    )


def test_a_filter_that_runs_a_shell_command_is_refused(tmp_path, capsys, monkeypatch):
    marker = tmp_path / "marker"
    path = filter_yaml(tmp_path / "tasks", RUN_CMD, marker)
    # control: lmms-eval builds the filter with the YAML's arguments, which runs the command
    config = lmms_eval.utils.load_yaml_config(str(path))
    entry = config["filter_list"][0]["filter"][0]
    build_filter_ensemble("x", [[entry["function"], {"cmd": entry["cmd"]}]])
    assert marker.exists()
    marker.unlink()

    monkeypatch.setattr("dragonfly_eval.runner.start.relay", None)  # lmms-eval must not start
    err = refusal(tmp_path, capsys, path.parent)
    assert str(path) in err and RUN_CMD in err and "as filter" in err
    assert not marker.exists()


@pytest.mark.parametrize(
    ("role", "function"),
    [
        ("process_results", "lmms_eval.tasks.cinepile.utils.evaluate_semantic_similarity"),
        ("process_results", "lmms_eval.tasks.mathvision.eval_utils.is_equal"),
        ("doc_to_text", "dragonfly_eval.runner.start.relay"),
        ("doc_to_visual", "dragonfly_eval.datagen.make_hub_layout.write_layout"),
    ],
)
def test_functions_no_task_yaml_names_are_refused(tmp_path, capsys, no_lmms_eval, role, function):
    path = task_yaml(tmp_path / "tasks", f"{role}: !function {function}\n")
    err = refusal(tmp_path, capsys, path.parent)
    assert str(path) in err and function in err and "none of them names it" in err


def test_a_built_in_function_is_allowed_only_in_the_role_built_in_yamls_give_it(
    tmp_path, capsys, no_lmms_eval
):
    doc_to_text = "lmms_eval.tasks.chartqa.utils.chartqa_doc_to_text"
    ok = task_yaml(tmp_path / "ok", f"doc_to_text: !function {doc_to_text}\n")
    assert task_guard.check_task_yaml(ok) == []
    path = filter_yaml(tmp_path / "tasks", doc_to_text, tmp_path / "m")
    err = refusal(tmp_path, capsys, path.parent)
    assert str(path) in err and doc_to_text in err and "they use it as doc_to_text" in err


def test_an_alias_is_checked_in_every_role_it_is_used_in(tmp_path):
    visual = "lmms_eval.tasks.chartqa.utils.chartqa_doc_to_visual"
    path = task_yaml(tmp_path, f"doc_to_visual: &v !function {visual}\nprocess_results: *v\n")
    (problem,) = task_guard.check_task_yaml(path)
    assert "as process_results" in problem


def test_the_function_index_comes_from_the_installed_yamls():
    index = task_guard.allowed_functions()
    # what lmms_eval/tasks/chartqa/chartqa.yaml names, by role
    chartqa = str((task_guard._package_dir("lmms_eval") / "tasks/chartqa/utils.py").resolve())
    assert (chartqa, "chartqa_doc_to_text") in index["doc_to_text"]
    assert (chartqa, "chartqa_doc_to_text") not in index["filter"]
    assert not [n for fns in index.values() for _, n in fns if n == "run_cmd"]


def test_the_function_index_is_cached_on_disk_by_lmms_eval_version(tmp_path, monkeypatch):
    built = []

    def build(folder, only_inside):
        built.append(folder)
        return {"doc_to_text": {("/x/utils.py", "f")}}

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(task_guard, "_build_function_index", build)
    task_guard._allowed_functions.cache_clear()
    try:
        first = task_guard.allowed_functions()
        task_guard._allowed_functions.cache_clear()
        assert task_guard.allowed_functions() == first and len(built) == 2  # read back
        task_guard._allowed_functions.cache_clear()
        monkeypatch.setattr(task_guard, "lmms_eval_version", lambda: "0.0.0-other")
        task_guard.allowed_functions()
        assert len(built) == 4  # another lmms-eval version: indexed again
        assert len(list((tmp_path / "dragonfly-eval").glob("task-functions-*.json"))) == 2
    finally:
        task_guard._allowed_functions.cache_clear()
