"""Reading lmms-eval results files: real layouts, odd versions, bad files, newest-wins merging."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from dragonfly_eval.lmms_files.results import (
    Cost,
    ResultsError,
    find_results_files,
    load_runs,
    merge_runs,
    read_run,
    recorded_model_args,
)

REAL_RUN = Path(__file__).parents[1] / "leaderboard" / "data" / "lmms_eval_0_7_3"
REAL_FILE = next(REAL_RUN.rglob("*_results.json"))


def test_real_layout_reads_model_date_tasks_and_groups():
    run = read_run(REAL_FILE)
    assert run.model == "togethercomputer/Llama-3-8B-Dragonfly-v1"
    # lmms-eval writes `date` in its --timezone, Asia/Singapore unless the run chose another
    assert run.date == datetime(2024, 6, 1, 12, 0, 0, tzinfo=ZoneInfo("Asia/Singapore"))
    assert run.date_label == "2024-06-01 12:00:00 +08:00"
    assert run.tasks["dragonfly_ai2d"] == {"exact_match,flexible-extract": 0.6362}
    assert run.tasks["dragonfly_pope"] == {
        "pope_f1_score,none": 0.9118,
        "pope_accuracy,none": 0.9001,
    }
    assert run.subtasks["dragonfly_pope"] == (
        "dragonfly_pope_adv",
        "dragonfly_pope_pop",
        "dragonfly_pope_random",
    )


def test_stderr_alias_samples_and_non_numeric_values_are_not_metrics():
    run = read_run(REAL_FILE)
    for metrics in run.tasks.values():
        assert not any("_stderr" in key for key in metrics)
        assert "alias" not in metrics and "samples" not in metrics
    assert run.tasks["ok_vqa_val2014"] == {"exact_match,none": 0.5521}
    # a submission-only task stays known, with no numbers
    assert run.tasks["mmbench_en_test"] == {}


def test_samples_files_and_other_json_are_not_results(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "20240101_000000_results.json").write_text("{}")
    (tmp_path / "m" / "20240101_000000_samples_ai2d.jsonl").write_text("{}")
    (tmp_path / "m" / "notes.json").write_text("{}")
    (tmp_path / "m" / "deep").mkdir()
    (tmp_path / "m" / "deep" / "results.json").write_text("{}")
    found = find_results_files(tmp_path)
    assert [p.name for p in found] == ["20240101_000000_results.json", "results.json"]
    assert find_results_files(REAL_RUN) == [REAL_FILE]


def test_model_args_as_dict_and_pretrained_among_other_keys(tmp_path):
    path = tmp_path / "x" / "r_results.json"
    path.parent.mkdir()
    payload = {"results": {"t": {"acc,none": 1}}, "config": {"model_args": {"pretrained": "org/m"}}}
    path.write_text(json.dumps(payload))
    assert read_run(path).model == "org/m"
    payload["config"]["model_args"] = "dtype=bf16, tokenizer_pretrained=no, pretrained = org/n ,x=1"
    path.write_text(json.dumps(payload))
    assert read_run(path).model == "org/n"


def test_folder_name_is_the_model_without_pretrained(tmp_path, write_run):
    path = write_run(None, "20240102_030405", {"t": {"acc,none": 0.5}}, folder="my_model")
    assert read_run(path).model == "my_model"


def test_older_layouts_with_extra_or_missing_keys(tmp_path):
    # no groups, config, date, versions; unknown extra keys; epoch-number date
    path = tmp_path / "old" / "results.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"results": {"t": {"acc,none": 0.25, "acc": 3}}, "novel": {"a": 1}}))
    run = read_run(path)
    assert (run.model, run.date, run.date_label) == ("old", None, "undated")
    assert run.tasks == {"t": {"acc,none": 0.25}}
    path.write_text(json.dumps({"results": {"t": {"acc,none": 1}}, "date": 1717243200.5}))
    assert read_run(path).date == datetime(2024, 6, 1, 12, 0, 0, 500000, tzinfo=timezone.utc)


def test_date_falls_back_to_the_file_name_in_the_runs_time_zone(tmp_path):
    path = tmp_path / "m" / "20240305_101112_results.json"
    path.parent.mkdir()
    config = {"resolved_cli_args": {"timezone": "America/New_York"}}
    path.write_text(json.dumps({"results": {"t": {"acc,none": 1}}, "config": config}))
    run = read_run(path)
    assert run.date == datetime(2024, 3, 5, 10, 11, 12, tzinfo=timezone(timedelta(hours=-5)))
    assert run.date_label == "2024-03-05 10:11:12 -05:00"


def test_nan_booleans_and_lists_are_skipped(tmp_path):
    path = tmp_path / "m" / "r_results.json"
    path.parent.mkdir()
    path.write_text(
        '{"results": {"t": {"a,none": NaN, "b,none": true, "c,none": [1], "d,none": 2}}}'
    )
    assert read_run(path).tasks == {"t": {"d,none": 2.0}}


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('{"results": {"t": ', "malformed JSON (line 1"),
        ("[1, 2]", "no 'results' mapping"),
        ('{"config": {}}', "no 'results' mapping"),
        ('{"results": []}', "no 'results' mapping"),
        ('{"results": {}}', "lists no tasks"),
    ],
)
def test_bad_files_raise_with_the_path_and_reason(tmp_path, text, reason):
    path = tmp_path / "bad_results.json"
    path.write_text(text)
    with pytest.raises(ResultsError, match=re.escape(reason)) as err:
        read_run(path)
    assert str(path) in str(err.value)


def test_load_runs_reports_missing_paths_empty_folders_and_bad_files(tmp_path, write_run):
    good = write_run("org/m", "20240101_000000", {"t": {"acc,none": 1}})
    (tmp_path / "empty").mkdir()
    bad = tmp_path / "bad" / "x_results.json"
    bad.parent.mkdir()
    bad.write_text("{nope")
    loaded = load_runs([good, tmp_path / "empty", tmp_path / "missing", bad.parent])
    assert [r.path for r in loaded.runs] == [good]
    assert len(loaded.problems) == 3
    assert "no lmms-eval results files" in loaded.problems[0]
    assert "no such file or folder" in loaded.problems[1]
    assert "malformed JSON" in loaded.problems[2]


def test_newest_run_wins_per_task_and_the_replacement_is_recorded(write_run):
    old = write_run("org/m", "20240101_000000", {"a": {"acc,none": 0.1}, "b": {"acc,none": 0.2}})
    new = write_run("org/m", "20240202_000000", {"a": {"acc,none": 0.9}})
    other = write_run("org/other", "20230101_000000", {"a": {"acc,none": 0.5}})
    # input order must not matter
    for order in ([old, new, other], [new, other, old]):
        models = merge_runs(read_run(p) for p in order)
        assert [m.model for m in models] == ["org/m", "org/other"]
        m = models[0]
        assert m.tasks["a"][0] == {"acc,none": 0.9} and m.tasks["a"][1].path == new
        assert m.tasks["b"][0] == {"acc,none": 0.2} and m.tasks["b"][1].path == old
        assert [(r.task, r.kept.path, r.dropped.path) for r in m.replaced] == [("a", new, old)]


def test_an_undated_run_loses_to_a_dated_one(write_run):
    undated = write_run("org/m", None, {"a": {"acc,none": 0.9}})
    dated = write_run("org/m", "20200101_000000", {"a": {"acc,none": 0.1}})
    (model,) = merge_runs([read_run(undated), read_run(dated)])
    assert model.tasks["a"][1].path == dated


def _dated(tmp_path, name: str, date, value: float, model: str = "org/m") -> Path:
    path = tmp_path / name / "r_results.json"
    path.parent.mkdir()
    payload = {"results": {"a": {"acc,none": value}}, "date": date}
    payload["config"] = {"model_args": f"pretrained={model}"}
    path.write_text(json.dumps(payload))
    return path


def test_dates_are_compared_with_their_offsets(tmp_path):
    # 00:30 UTC written with +08:00 is older than 01:00 UTC, though its wall time is later
    older = _dated(tmp_path, "older", "2024-06-01T08:30:00+08:00", 0.1)
    newer = _dated(tmp_path, "newer", "2024-06-01T01:00:00+00:00", 0.9)
    (model,) = merge_runs([read_run(older), read_run(newer)], prefer="newest")
    assert model.tasks["a"][1].path == newer
    assert read_run(older).date_label == "2024-06-01 08:30:00 +08:00"


def test_lmms_eval_dates_are_in_singapore_time_unless_the_run_chose_a_zone(tmp_path):
    # lmms-eval's 12:00 (Singapore, 04:00 UTC) is older than an epoch stamp of 05:00 UTC
    lmms = _dated(tmp_path, "lmms", "20240601_120000", 0.1)
    epoch = _dated(tmp_path, "epoch", datetime(2024, 6, 1, 5, tzinfo=timezone.utc).timestamp(), 0.9)
    (model,) = merge_runs([read_run(epoch), read_run(lmms)], prefer="newest")
    assert model.tasks["a"][1].path == epoch
    assert read_run(epoch).date_label == "2024-06-01 05:00:00 +00:00"


def test_model_names_are_normalized_but_keep_their_case(tmp_path):
    paths = [
        _dated(tmp_path, "a", "20240101_000000", 0.1, "org/Model/"),
        _dated(tmp_path, "b", "20240102_000000", 0.2, " org/Model "),
        _dated(tmp_path, "c", "20240103_000000", 0.3, "org/Model"),
        _dated(tmp_path, "d", "20240104_000000", 0.4, "org/model"),
    ]
    models = merge_runs(read_run(p) for p in paths)
    assert [m.model for m in models] == ["org/Model", "org/model"]
    assert models[0].tasks["a"][1].path == paths[2]


def _partial(tmp_path, name: str, date: str, effective: int, original: int = 10, limit=None):
    path = tmp_path / name / f"{date}_results.json"
    path.parent.mkdir()
    payload = {
        "results": {"a": {"acc,none": effective / 100}},
        "n-samples": {"a": {"original": original, "effective": effective}},
        "config": {"model_args": "pretrained=org/m", "limit": limit},
        "date": date,
    }
    path.write_text(json.dumps(payload))
    return path


def test_a_limit_run_is_partial_and_counts_its_documents(tmp_path):
    run = read_run(_partial(tmp_path, "p", "20240101_000000", 3, limit=3))
    docs = run.documents("a")
    assert (docs.partial, docs.label) == (True, "n=3")
    full = read_run(_partial(tmp_path, "f", "20240101_000000", 10, limit=50))
    assert not full.documents("a").partial  # a limit above the task's size covers it all


def test_a_newer_partial_run_does_not_replace_a_full_one_unless_newest_is_preferred(tmp_path):
    full = _partial(tmp_path, "full", "20240101_000000", 10)
    partial = _partial(tmp_path, "part", "20240301_000000", 3, limit=3)
    smaller = _partial(tmp_path, "small", "20240401_000000", 2, limit=2)
    runs = [read_run(p) for p in (full, partial, smaller)]
    (largest,) = merge_runs(runs)
    assert largest.tasks["a"][1].path == full
    (newest,) = merge_runs(runs, prefer="newest")
    assert newest.tasks["a"][1].path == smaller
    (among_partial,) = merge_runs(runs[1:])
    assert among_partial.tasks["a"][1].path == partial  # more documents beat a newer date


# --- the run-cost record (dragonfly_eval/harness/cost.py writes it as lmms-eval's throughput) ---
COST_BLOCK = {
    "total_gen_tokens": 40,
    "total_elapsed_time": 8.0,
    "avg_speed": 5.0,
    "avg_latency": 2.0,
    "avg_samples": 4.0,
    "avg_samples_per_s": 0.5,
}


def _with_cost(tmp_path: Path, block, model="dragonfly_vllm") -> Path:
    data = json.loads(REAL_FILE.read_text())
    data["throughput"] = block
    data["config"]["model"] = model
    path = tmp_path / "20260101_000000_results.json"
    path.write_text(json.dumps(data))
    return path


def test_cost_record_is_read_with_its_engine(tmp_path):
    cost = read_run(_with_cost(tmp_path, COST_BLOCK)).cost
    assert cost == Cost("vllm", 4, 0.5, 5.0, 8.0, None)
    gpu = read_run(_with_cost(tmp_path, {**COST_BLOCK, "avg_device_seconds": 16.0}, "dragonfly"))
    assert gpu.cost == Cost("hf", 4, 0.5, 5.0, 8.0, 16.0)
    assert read_run(_with_cost(tmp_path, COST_BLOCK, "other\nmodel")).cost.engine == "other model"


@pytest.mark.parametrize(
    "change",
    [
        {"total_elapsed_time": 0},
        {"total_elapsed_time": -1.0},
        {"total_elapsed_time": "8"},
        {"total_gen_tokens": True},
        {"total_gen_tokens": 4.5},
        {"total_gen_tokens": -1},
        {"avg_samples": 2.5},
        {"avg_samples": 0},
        {"avg_samples_per_s": None},
        {"avg_device_seconds": -3.0},
        {"avg_device_seconds": [1]},
        {"total_elapsed_time": 1e400},
    ],
    ids=repr,
)
def test_a_malformed_cost_record_is_left_out_not_shown(tmp_path, change):
    block = {**COST_BLOCK, **change}
    run = read_run(_with_cost(tmp_path, {k: v for k, v in block.items() if v is not None}))
    assert run.cost is None
    assert run.tasks  # the scores are still read


def test_a_throughput_block_of_another_model_is_no_cost_record(tmp_path):
    # lmms-eval's own models log throughput without the record's samples
    block = {"total_gen_tokens": 10, "total_elapsed_time": 1.0, "avg_speed": 10.0}
    assert read_run(_with_cost(tmp_path, block, "vllm")).cost is None
    assert read_run(_with_cost(tmp_path, [1, 2])).cost is None


def test_costs_of_several_runs_add_up():
    total = Cost.total([Cost("hf", 4, 0.5, 5.0, 8.0, None), Cost("vllm", 6, 3.0, 30.0, 2.0, 4.0)])
    assert total == Cost("hf+vllm", 10, 1.0, pytest.approx(10.0), 10.0, None)
    assert Cost.total([]) is None


def test_a_run_carries_stderrs_higher_is_better_and_recorded_aggregations():
    run = read_run(REAL_FILE)
    # "N/A" (a corpus metric's stderr) and the _stderr_clt variant are not a metric's stderr
    assert run.stderrs["dragonfly_ai2d"] == {"exact_match,flexible-extract": 0.008655}
    assert run.stderrs["ok_vqa_val2014"] == {"exact_match,none": 0.0052}
    assert "dragonfly_pope" not in run.stderrs
    assert run.higher_is_better["dragonfly_mme"] == {
        "mme_cognition_score": True,
        "mme_perception_score": True,
    }
    assert run.higher_is_better["mmbench_en_test"] == {}  # lmms-eval writes None: unknown
    assert run.aggregations == {"dragonfly_ai2d": {"exact_match": "mean"}}


def test_prompt_settings_are_the_resolved_cli_args_that_shape_prompts(tmp_path):
    payload = {
        "results": {"t": {"acc,none": 0.5}},
        "config": {
            "resolved_cli_args": {"num_fewshot": 2, "apply_chat_template": True, "limit": 5},
        },
    }
    path = tmp_path / "r_results.json"
    path.write_text(json.dumps(payload))
    prompt = read_run(path).prompt
    assert prompt["num_fewshot"] == 2 and prompt["apply_chat_template"] is True
    assert prompt["system_instruction"] is None and "limit" not in prompt


def test_recorded_model_args_need_no_scores_and_refuse_what_is_not_json(tmp_path):
    path = tmp_path / "20240101_000000_results.json"
    path.write_text(json.dumps({"results": {}, "config": {"model_args": {"pretrained": "/m"}}}))
    assert recorded_model_args(path) == "pretrained=/m"
    path.write_text(json.dumps({"results": {}, "config": {}}))
    assert recorded_model_args(path) is None
    path.write_text("[1, 2]")
    with pytest.raises(ResultsError, match="not an lmms-eval results file"):
        recorded_model_args(path)
