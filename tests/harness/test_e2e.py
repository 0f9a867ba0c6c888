"""lmms-eval's own CLI and `dragonfly-eval run`, offline, on the tiny v2 fixture."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from dragonfly_eval.paths import task_yaml_dir

TASK = "dragonfly_mini_chart"


def _run(cmd, env, cwd):
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, timeout=600)


def _results(folder):
    # Timestamped results files only (captioning tasks also write submissions/*_results.json).
    return sorted(folder.rglob("[0-9]*_results.json"))


@pytest.mark.slow
def test_lmms_eval_cli_runs_the_plugin_model(tmp_path, offline_env, v2_checkpoint):
    out = _run(
        [
            sys.executable,
            "-m",
            "lmms_eval",
            "--model",
            "dragonfly",
            "--model_args",
            f"pretrained={v2_checkpoint},device=cpu",
            "--tasks",
            TASK,
            "--include_path",
            str(task_yaml_dir()),
            "--batch_size",
            "4",
            "--limit",
            "4",
            "--output_path",
            str(tmp_path / "out"),
            "--log_samples",
        ],
        offline_env,
        tmp_path,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    (results_file,) = _results(tmp_path / "out")
    results = json.loads(results_file.read_text())
    value = results["results"][TASK]["relaxed_overall,none"]
    assert isinstance(value, float) and math.isfinite(value) and 0.0 <= value <= 1.0
    assert results["n-samples"][TASK]["effective"] == 4
    (samples,) = results_file.parent.glob(f"*_samples_{TASK}.jsonl")
    rows = [json.loads(line) for line in samples.read_text().splitlines()]
    assert len(rows) == 4 and all(isinstance(r["filtered_resps"], str) for r in rows)


def _dragonfly_eval(args, env, cwd):
    script = Path(sys.executable).with_name("dragonfly-eval")  # the installed console script
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "dragonfly_eval.cli"]
    return _run([*cmd, "run", *args], env, cwd)


@pytest.mark.slow
def test_dragonfly_eval_run_exits_zero_with_results(tmp_path, offline_env, v2_checkpoint):
    out = _dragonfly_eval(
        [
            "--model_args",
            f"pretrained={v2_checkpoint},device=cpu,batch_size=4",
            "--tasks",
            TASK,
            "--limit",
            "2",
            "--output_path",
            str(tmp_path / "out"),
        ],
        offline_env,
        tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    (results_file,) = _results(tmp_path / "out")
    assert str(results_file) in out.stderr
    assert TASK in json.loads(results_file.read_text())["results"]


@pytest.mark.slow
def test_dragonfly_eval_run_fails_when_no_results_are_written(tmp_path, offline_env):
    # lmms-eval itself exits 0 when a task's dataset cannot be loaded; the wrapper must not. (A
    # missing checkpoint or task no longer gets this far: the pre-run checks refuse them.)
    env = {**offline_env, "HF_HOME": str(tmp_path / "hf"), "HF_TOKEN": "unused"}
    out = _dragonfly_eval(
        [
            "--model_args",
            "pretrained=dragonfly-tiny,device=cpu",
            "--tasks",
            "dragonfly_chartqa",
            "--limit",
            "1",
            "--output_path",
            str(tmp_path / "out"),
        ],
        env,
        tmp_path,
    )
    assert out.returncode == 1, out.stderr[-3000:]
    assert not _results(tmp_path / "out")
    assert "wrote no results" in out.stderr, out.stderr[-3000:]
    assert "lmms-lab-encoder/ChartQA is not reachable" in out.stderr


def _leaderboard(args, env, cwd):
    script = Path(sys.executable).with_name("dragonfly-eval")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "dragonfly_eval.cli"]
    return _run([*cmd, "leaderboard", *args], env, cwd)


@pytest.mark.slow
def test_a_run_records_what_it_cost_and_the_leaderboard_shows_it(tmp_path, offline_env):
    limit = 4
    out = _run(
        [
            sys.executable,
            "-m",
            "lmms_eval",
            "--model",
            "dragonfly",
            "--model_args",
            "pretrained=dragonfly-tiny,device=cpu",
            "--tasks",
            "dragonfly_mini_vqa",
            "--include_path",
            str(task_yaml_dir()),
            "--limit",
            str(limit),
            "--output_path",
            str(tmp_path / "out"),
        ],
        offline_env,
        tmp_path,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    (results_file,) = _results(tmp_path / "out")
    results = json.loads(results_file.read_text())
    record = results["throughput"]
    wall = record["total_elapsed_time"]
    # the engine's work only: more than nothing, less than the whole process took
    assert 0 < wall < 600
    assert record["avg_samples"] == limit
    assert record["avg_samples_per_s"] == pytest.approx(limit / wall)
    # greedy answers of at most the task's max_new_tokens each, the stop token counted
    max_new = 8  # task_yaml/mini/vqa.yaml
    assert isinstance(record["total_gen_tokens"], int)
    assert limit <= record["total_gen_tokens"] <= limit * (max_new + 1)
    assert record["avg_speed"] == pytest.approx(record["total_gen_tokens"] / wall)
    assert "avg_device_seconds" not in record  # a CPU run held no CUDA device

    board = _leaderboard([str(tmp_path / "out"), "--cost", "--no-reference"], offline_env, tmp_path)
    assert board.returncode == 0, board.stderr[-3000:]
    header, _, row = board.stdout.splitlines()[:3]
    assert header.split("|")[-3:-1] == [" Engine ", " Samples/s "]
    assert row.split("|")[-3:-1] == [" hf ", f" {limit / wall:.3g} "]
    plain = _leaderboard([str(tmp_path / "out"), "--no-reference"], offline_env, tmp_path)
    assert "Samples/s" not in plain.stdout
