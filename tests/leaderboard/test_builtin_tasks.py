"""lmms-eval's built-in task names reach the table and the gate, with their real metric keys."""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path

import pytest

from dragonfly_eval.leaderboard.board.table import build_table, grid
from dragonfly_eval.leaderboard.regress.gate import compare
from dragonfly_eval.leaderboard.regress.verdict import RegressError
from dragonfly_eval.leaderboard.suite import load_suite
from dragonfly_eval.lmms_files.task_yaml import read_yaml

BUILTIN_RUN = Path(__file__).parent / "data" / "lmms_eval_0_7_3_builtin"
BUILTIN_FILE = next(BUILTIN_RUN.rglob("*_results.json"))
# The task list of the command: lmms-eval --tasks <this>
TASK_LIST = (
    "textvqa_val,chartqa,docvqa_val,ai2d,mme,pope,scienceqa_img,seedbench_ppl,coco2017_cap_val"
)


def _wanted() -> set[str]:
    names = set(TASK_LIST.split(","))
    for bench in load_suite().benchmarks.values():
        for source in bench.sources[1:]:
            names.update(source.tasks)
    return names


@cache
def lmms_eval_task_configs() -> dict[str, dict]:
    """Task or group name -> its config (includes resolved), from lmms-eval's installed YAMLs,
    for the tasks this module checks."""
    import lmms_eval
    from lmms_eval.utils import load_yaml_config

    wanted = _wanted()
    root = Path(os.path.dirname(lmms_eval.__file__)) / "tasks"
    found: dict[str, dict] = {}
    for path in sorted(root.rglob("*.yaml")):
        text = path.read_text(encoding="utf-8", errors="replace")
        if not any(name in text for name in wanted):
            continue  # parsing all of lmms-eval's YAMLs would take most of this test's time
        try:
            raw = read_yaml(path, "index")
        except Exception:  # a few lmms-eval YAMLs are not plain YAML; none of ours is among them
            continue
        name = raw.get("group") if isinstance(raw.get("task"), list) else raw.get("task")
        if name in wanted:
            found[name] = load_yaml_config(str(path), mode="simple")
    return found


def produced_keys(config: dict) -> set[str]:
    """The "<metric>,<filter>" keys lmms-eval writes for a task (or an aggregating group)."""
    metrics = config.get("metric_list") or config.get("aggregate_metric_list") or []
    filters = [f["name"] for f in config.get("filter_list") or []] or ["none"]
    return {f"{m['metric']},{flt}" for m in metrics for flt in filters}


def test_every_builtin_entry_names_a_real_lmms_eval_task_and_metric():
    configs = lmms_eval_task_configs()
    checked = 0
    for bench in load_suite().benchmarks.values():
        for source in bench.sources[1:]:
            for score in (source.headline, *source.extra.values()):
                for task in score.tasks:
                    assert task in configs, (bench.key, task)
                    keys = produced_keys(configs[task])
                    if isinstance(configs[task].get("task"), list) and not keys:
                        continue  # a group without an aggregate: its children are read instead
                    assert score.metric in keys, (bench.key, task, score.metric)
                    checked += 1
    assert checked >= 30


def test_the_results_file_uses_only_keys_lmms_eval_writes_for_exactly_the_task_list():
    data = json.loads(BUILTIN_FILE.read_text())
    assert list(data["n-samples"]) == TASK_LIST.split(",")
    configs = lmms_eval_task_configs()
    for task, entry in data["results"].items():
        produced = produced_keys(configs[task])
        for key in entry:
            name, _, flt = key.partition(",")
            if key != "alias":
                base = name.split("_stderr")[0]
                assert f"{base},{flt}" in produced, (task, key)


def test_a_builtin_run_fills_every_benchmark_column_of_its_tasks(capsys):
    table = build_table([BUILTIN_RUN], load_suite())
    assert table.suites == ("general", "caption")
    (row,) = [r for r in table.rows if r.name == "dragonfly-tiny"]
    expected = {
        "ai2d": 54.21,
        "scienceqa_img": 62.67,
        "pope": 79.77,
        "mme": 1012.4306,
        "textvqa": 41.12,
        "chartqa": 27.08,
        "docvqa": 31.27,
        "coco2017_cap": 65.32,
        "pope.accuracy": 81.33,
        "mme.cognition": 236.0714,
        "coco2017_cap.bleu4": 18.21,
    }
    for key, value in expected.items():
        assert row.values[key] == pytest.approx(value), key
    assert {t.task for t in table.other_tasks} == {"seedbench_ppl"}
    assert row.dates == ("2026-12-01 17:30:00 +08:00",)
    assert not row.partial
    header, cells = grid(table)
    filled = dict(zip(header, cells[0], strict=True))
    assert filled["TextVQA (val)"].text == "41.1" and filled["ChartQA"].text == "27.1"


def _textvqa(root: Path, write_run, model: str, date: str, **tasks: float) -> None:
    write_run(model, date, {t: {"exact_match,none": v} for t, v in tasks.items()}, root=root)


def test_when_both_a_dragonfly_and_a_builtin_result_exist_the_dragonfly_one_is_shown(
    tmp_path, write_run
):
    # the built-in run is newer; the rule is suite.yaml's order, not the date
    _textvqa(tmp_path, write_run, "org/m", "20240101_000000", dragonfly_textvqa_val=0.60)
    _textvqa(tmp_path, write_run, "org/m", "20240301_000000", textvqa_val=0.40)
    table = build_table([tmp_path], load_suite(), ["general"])
    (row,) = table.rows
    assert row.values["textvqa"] == pytest.approx(60.0)
    (note,) = table.alternates
    assert "TextVQA (val) shows dragonfly_textvqa_val" in note and "textvqa_val" in note
    assert "textvqa_val" not in {t.task for t in table.other_tasks}


def test_a_group_run_reads_its_child_and_a_group_aggregate(tmp_path, write_run):
    # `--tasks textvqa`: the group has no aggregate of its own, its child has the score
    write_run(
        "org/child",
        "20240101_000000",
        {"textvqa_val": {"exact_match,none": 0.5}, "textvqa_test": {}},
        root=tmp_path,
        group_subtasks={"textvqa": ["textvqa_val", "textvqa_test"]},
    )
    # a group that carries an aggregate under "groups" is read by its own name
    write_run(
        "org/group",
        "20240101_000000",
        {"textvqa_test": {}},
        root=tmp_path,
        groups={"textvqa": {"alias": "textvqa", "exact_match,none": 0.25}},
        group_subtasks={"textvqa": ["textvqa_test"]},
    )
    table = build_table([tmp_path], load_suite(), ["general"])
    values = {r.name: r.values.get("textvqa") for r in table.rows if not r.published}
    assert values == {"org/child": pytest.approx(50.0), "org/group": pytest.approx(25.0)}
    assert table.other_tasks == ()


def test_builtin_pope_single_task_and_split_tasks(tmp_path, write_run):
    splits = {
        t: {"pope_f1_score,none": f}
        for t, f in zip(("pope_adv", "pope_pop", "pope_random"), (0.7, 0.8, 0.9), strict=True)
    }
    write_run("org/splits", "20240101_000000", splits, root=tmp_path)
    write_run(
        "org/single", "20240101_000000", {"pope": {"pope_f1_score,none": 0.85}}, root=tmp_path
    )
    table = build_table([tmp_path], load_suite(), ["general"])
    values = {r.name: r.values.get("pope") for r in table.rows if not r.published}
    assert values == {"org/single": pytest.approx(85.0), "org/splits": pytest.approx(80.0)}


def test_regress_compares_builtin_runs_and_the_source_both_sides_share(tmp_path, write_run):
    suite = load_suite()
    base, cur = tmp_path / "base", tmp_path / "cur"
    _textvqa(base, write_run, "org/m", "20240101_000000", textvqa_val=0.60)
    _textvqa(cur, write_run, "org/m", "20240201_000000", textvqa_val=0.50)
    report = compare([base], [cur], suite)
    assert [(c.benchmark.key, c.status) for _, c in report.failures] == [("textvqa", "REGRESSION")]
    # the current side also has the dragonfly task: the shared built-in one is compared
    _textvqa(cur, write_run, "org/m", "20240202_000000", dragonfly_textvqa_val=0.70)
    (cmp,) = compare([base], [cur], suite).pairs[0].comparisons
    assert (cmp.baseline, cmp.current) == (pytest.approx(60.0), pytest.approx(50.0))


def test_regress_refuses_sides_scored_by_different_tasks(tmp_path, write_run):
    base, cur = tmp_path / "base", tmp_path / "cur"
    _textvqa(base, write_run, "org/m", "20240101_000000", dragonfly_textvqa_val=0.60)
    _textvqa(cur, write_run, "org/m", "20240201_000000", textvqa_val=0.60)
    with pytest.raises(RegressError, match="different tasks are not comparable"):
        compare([base], [cur], load_suite())
