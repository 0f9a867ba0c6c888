"""Answers served again (lmms-eval's `--use_cache`, the harness's resume store) give the results
of an uninterrupted run, for every request type: generation, loglikelihood, multiple choice by
likelihood and multi-round. Each run goes through lmms-eval's own CLI."""

import json
import math
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from dragonfly_eval.harness.compat import cache_model_args
from dragonfly_eval.paths import task_yaml_dir

MULTI_ROUND = Path(__file__).parent / "multi_round_task"
TASKS = {
    "dragonfly_mini_chart": "generate_until",
    "dragonfly_mini_mc_ppl": "loglikelihood",
    "dragonfly_mini_vqa_nll": "loglikelihood",
    "dragonfly_test_multi_round": "generate_until_multi_round",
}
MODEL_ARGS = "pretrained=dragonfly-tiny,device=cpu,zoom=low,batch_size=2"
# Fields of a sample log that differ between two runs of the same answers.
RUN_FIELDS = ("time", "date", "token_counts")


@pytest.fixture(scope="module")
def task_folder(tmp_path_factory) -> Path:
    """One --include_path folder holding the mini tasks under test (data paths made absolute)
    and the test-only multi-round task."""
    folder = tmp_path_factory.mktemp("tasks")
    mini = task_yaml_dir() / "mini"
    for name in ("chart", "mc_ppl", "vqa_nll"):
        text = (mini / f"{name}.yaml").read_text()
        data = text.split("test: data/")[1].split("\n")[0]
        (folder / f"{name}.yaml").write_text(
            text.replace(f"data/{data}", str(mini / "data" / data))
        )
    for file in MULTI_ROUND.iterdir():
        if file.is_file():
            shutil.copy(file, folder / file.name)
    return folder


def _lmms_eval(env, tasks: Path, out: Path, *extra: str, model_args: str = MODEL_ARGS) -> str:
    cmd = [sys.executable, "-m", "lmms_eval", "--model", "dragonfly", "--model_args", model_args]
    cmd += ["--include_path", str(tasks), "--tasks", ",".join(TASKS), "--limit", "3"]
    cmd += ["--output_path", str(out), "--log_samples", *extra]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    log = done.stdout + done.stderr
    assert done.returncode == 0 and "Traceback" not in log, log[-5000:]
    return log


def _results(out: Path) -> dict:
    (found,) = out.rglob("[0-9]*_results.json")
    return json.loads(found.read_text())["results"]


def _samples(out: Path) -> dict[str, list[dict]]:
    logs = {}
    for task in TASKS:
        (found,) = out.rglob(f"*_samples_{task}.jsonl")
        records = [json.loads(line) for line in found.read_text().splitlines() if line.strip()]
        logs[task] = [
            {k: v for k, v in r.items() if not any(f in k for f in RUN_FIELDS)} for r in records
        ]
    return logs


@pytest.fixture(scope="module")
def first_run(tmp_path_factory, task_folder, offline_env):
    """An uninterrupted run that fills lmms-eval's cache and the harness's resume store."""
    root = tmp_path_factory.mktemp("cache")
    store = root / "resume.sqlite"
    log = _lmms_eval(
        offline_env,
        task_folder,
        root / "first",
        "--use_cache",
        str(root / "cache"),
        model_args=f"{MODEL_ARGS},resume_store={store}",
    )
    assert "served from cache" not in log
    return root, log


@pytest.mark.slow
def test_second_run_from_lmms_eval_cache_matches_the_first(first_run, task_folder, offline_env):
    root, _ = first_run
    log = _lmms_eval(offline_env, task_folder, root / "second", "--use_cache", str(root / "cache"))
    for request_type in set(TASKS.values()):
        assert "Running " + request_type + " requests" in log
    # every request type came from the cache: the model ran no batch
    assert log.count("served from cache") == len(set(TASKS.values())), log[-5000:]
    assert "dragonfly generate" not in log and "dragonfly loglikelihood" not in log
    assert _results(root / "second") == _results(root / "first")
    assert _samples(root / "second") == _samples(root / "first")
    assert all(isinstance(_results(root / "first")[task], dict) for task in TASKS)


@pytest.mark.slow
def test_run_from_the_resume_store_matches_the_first(first_run, task_folder, offline_env):
    root, _ = first_run
    store = root / "resume.sqlite"
    log = _lmms_eval(
        offline_env, task_folder, root / "resumed", model_args=f"{MODEL_ARGS},resume_store={store}"
    )
    with sqlite3.connect(store) as db:
        counts = dict(db.execute("SELECT request_type, COUNT(*) FROM answers GROUP BY 1"))
    assert set(counts) == {
        "generate_until",
        "loglikelihood",
        "generate_until_multi_round:0",
        "generate_until_multi_round:1",
    }
    for request_type, n in counts.items():
        assert f"{n} of {n} {request_type} answers found" in log
    assert _results(root / "resumed") == _results(root / "first")
    assert _samples(root / "resumed") == _samples(root / "first")


@pytest.mark.slow
def test_a_damaged_cache_is_set_aside_and_the_run_still_matches(
    first_run, task_folder, offline_env
):
    root, _ = first_run
    cache = root / "damaged"
    shutil.copytree(root / "cache", cache)
    db = cache / "cache.db"
    db.write_bytes(db.read_bytes()[: db.stat().st_size // 2])  # a copy killed half-way
    log = _lmms_eval(offline_env, task_folder, root / "after_damage", "--use_cache", str(cache))
    assert f"response cache {db} is damaged" in log
    assert "served from cache" not in log  # every answer computed again
    assert _results(root / "after_damage") == _results(root / "first")
    assert _samples(root / "after_damage") == _samples(root / "first")
    (aside,) = cache.glob("cache.db.damaged-*")
    with sqlite3.connect(db) as rebuilt:  # lmms-eval wrote a sound one at the end
        assert rebuilt.execute("SELECT COUNT(*) FROM responses").fetchone()[0] > 0


def test_cache_key_leaves_out_bookkeeping_and_follows_the_checkpoint_files(tmp_path):
    checkpoint = tmp_path / "ckpt"
    checkpoint.mkdir()
    (checkpoint / "config.json").write_text("{}")
    (checkpoint / "model.safetensors").write_bytes(b"0" * 10)
    one = cache_model_args("dragonfly", f"pretrained={checkpoint},resume_store=/a/s.sqlite")
    two = cache_model_args("dragonfly", f"pretrained={checkpoint},failure_report=/b/f.jsonl")
    assert one == two and "resume_store" not in one
    (checkpoint / "model.safetensors").write_bytes(b"1" * 11)  # retrained in place
    assert cache_model_args("dragonfly", f"pretrained={checkpoint}") != one
    assert cache_model_args("other", "pretrained=x,resume_store=y") == "pretrained=x,resume_store=y"


def test_unwrap_keeps_cached_loglikelihood_pairs_and_failed_scores_are_not_cached():
    import lmms_eval.evaluator as evaluator
    from lmms_eval.caching.response_cache import ResponseCache

    import dragonfly_eval.harness.model  # noqa: F401  (applies the patches, as lmms-eval does)

    assert evaluator.unwrap_generation_output([2.5, False]) == ((2.5, False), None)
    assert evaluator.unwrap_generation_output((2.5, True)) == ((2.5, True), None)
    assert evaluator.unwrap_generation_output(["a", "b", "c"]) == (["a", "b", "c"], None)
    assert ResponseCache._is_valid_response([2.5, False], "loglikelihood")
    assert not ResponseCache._is_valid_response([math.inf, False], "loglikelihood")
