"""The gate on hostile or careless inputs: code named by a results file, changed datasets, too
few documents, overflowing and oversized numbers, extreme options (issue 21)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.leaderboard import test_regress_samples
from tests.leaderboard.test_regress import run_cli
from tests.leaderboard.test_regress_samples import (
    TASK,
    accuracy_scores,
    flipped,
    gate_argv,
    sample_lines,
    write_samples,
)

NULL_DOC_HASH = hashlib.sha256(b"null").hexdigest()  # lmms-eval 0.7.3's doc_hash of every document
runs = test_regress_samples.runs  # the fixture writing two AI2D runs with sample logs

EVIL_UTILS = """
from pathlib import Path

def score(items):
    Path({marker!r}).write_text("ran")
    return 0.5
"""


def evil_include_path(tmp_path: Path, task: str, metric: str) -> tuple[Path, Path]:
    """A folder with a task YAML whose aggregation is a `!function` of a file beside it that
    leaves a marker when it runs; returns (folder, marker)."""
    folder, marker = tmp_path / "evil_tasks", tmp_path / "marker"
    folder.mkdir()
    (folder / "evil_utils.py").write_text(EVIL_UTILS.format(marker=str(marker)))
    (folder / "evil.yaml").write_text(
        f"task: {task}\ndataset_path: json\noutput_type: generate_until\ndoc_to_text: q\n"
        f"metric_list:\n  - metric: {metric}\n    aggregation: !function evil_utils.score\n"
    )
    return folder, marker


def write_side(write_run, root: Path, task: str, metric: str, score: float, lines, include=None):
    path = write_run("org/m", "20240101_000000", {task: {metric: score}}, root=root)
    payload = json.loads(path.read_text())
    if include is not None:
        payload["config"]["resolved_cli_args"] = {"include_path": str(include)}
    path.write_text(json.dumps(payload))
    write_samples(path, task, lines)
    return path


def test_an_aggregation_named_by_the_baselines_include_path_never_runs(tmp_path, write_run, capsys):
    task, metric = "evil_task", "score,none"
    folder, marker = evil_include_path(tmp_path, task, "score")
    suite = {
        "suites": {"evil": ["evil"]},
        "benchmarks": {"evil": {"name": "Evil", "task": task, "metric": metric, "scale": 100}},
    }
    suite_file = tmp_path / "suite.yaml"
    suite_file.write_text(json.dumps(suite))
    lines = sample_lines(accuracy_scores(40, 20), key="score")
    for line in lines:
        line["score"] = {"value": line["score"]}  # a corpus-level metric: not a number
    base = write_side(write_run, tmp_path / "b", task, metric, 0.9, lines, include=folder)
    cur = write_side(write_run, tmp_path / "c", task, metric, 0.8, lines, include=folder)
    argv = ["regress", "--baseline", str(base), "--current", str(cur), "--suite", "evil"]
    code = run_cli([*argv, "--suite-file", str(suite_file)])
    out = capsys.readouterr().out
    assert not marker.exists()
    assert "cannot recompute 'score'" in out and "never loads code from a folder" in out
    assert code == 1  # the recorded aggregates dropped 10 points: not a silent pass


def test_a_task_named_like_an_installed_one_gets_the_installed_aggregation(
    tmp_path, write_run, suite_file, capsys
):
    tasks = ["dragonfly_pope_adv", "dragonfly_pope_pop", "dragonfly_pope_random"]
    folder, marker = evil_include_path(tmp_path, tasks[0], "pope_f1_score")
    paths = []
    for side in ("b", "c"):
        path = write_run(
            "org/m",
            "20240101_000000",
            {t: {"pope_f1_score,none": 0.8} for t in tasks},
            root=tmp_path / side,
        )
        payload = json.loads(path.read_text())
        payload["config"]["resolved_cli_args"] = {"include_path": str(folder)}
        path.write_text(json.dumps(payload))
        for task in tasks:
            lines = sample_lines(accuracy_scores(40, 20))
            for i, line in enumerate(lines):
                truth = "yes" if i % 2 else "no"
                pred = truth if i % 5 else ("no" if truth == "yes" else "yes")
                line["pope_f1_score"] = {
                    "question_id": i,
                    "score": float(pred == truth),
                    "prediction": pred,
                    "ground_truth": truth,
                }
            write_samples(path, task, lines)
        paths.append(path)
    argv = [
        "regress",
        "--baseline",
        str(paths[0]),
        "--current",
        str(paths[1]),
        "--suite",
        "general",
    ]
    code = run_cli([*argv, "--suite-file", str(suite_file)])
    out = capsys.readouterr().out
    assert not marker.exists()
    row = next(line for line in out.splitlines() if line.startswith("| POPE"))
    assert "paired bootstrap (120)" in row and "| ok |" in row and code == 0


def mini_vqa_lines(scores, **changes) -> list[dict]:
    """Lines shaped like a real lmms-eval 0.7.3 mini VQA log: every doc_hash is sha256("null")."""
    lines = []
    for i, s in enumerate(scores):
        line = {
            "doc_id": i,
            "target": changes.get("target", f"word{i}"),
            "filtered_resps": f"word{i}" if s else "other",
            "doc_hash": NULL_DOC_HASH,
            "exact_match": s,
            "input": changes.get("input", f"What word is written in picture {i}?"),
        }
        lines.append(line)
    return lines


@pytest.mark.parametrize("field", ["target", "input"])
def test_a_changed_dataset_is_found_though_every_doc_hash_is_the_hash_of_null(
    runs, suite_file, capsys, field
):
    base = accuracy_scores(12, 6)
    base_path, cur_path = runs(
        base, base, base_lines=mini_vqa_lines(base), cur_lines=mini_vqa_lines(base, **{field: "x"})
    )
    assert run_cli(gate_argv(base_path, cur_path, suite_file)) == 2
    assert f"12 document(s) with a different {field}" in capsys.readouterr().err


def test_logs_that_cannot_tell_documents_apart_say_so(runs, suite_file, capsys):
    base = accuracy_scores()
    lines = [{"doc_id": i, "doc_hash": NULL_DOC_HASH, "exact_match": s} for i, s in enumerate(base)]
    base_path, cur_path = runs(base, base, base_lines=lines, cur_lines=lines)
    assert run_cli(gate_argv(base_path, cur_path, suite_file)) == 0
    assert "could not check that both sides scored the same documents" in capsys.readouterr().err


def test_five_of_six_right_answers_flipped_on_twelve_documents_fail_as_underpowered(
    runs, suite_file, capsys
):
    base = accuracy_scores(12, 6)  # 50.0 -> 8.3: the sign test's p is 0.062
    base_path, cur_path = runs(base, flipped(base, lost=5, gained=0))
    assert run_cli(gate_argv(base_path, cur_path, suite_file)) == 1
    err = capsys.readouterr().err
    assert "REGRESSION: AI2D (org/m) 50.00 -> 8.33" in err
    assert "underpowered" in err and "decided by the tolerance" in err


def test_five_documents_all_lost_fail(runs, suite_file, capsys):
    base_path, cur_path = runs([1.0] * 5, [0.0] * 5)
    assert run_cli(gate_argv(base_path, cur_path, suite_file)) == 1
    assert "underpowered" in capsys.readouterr().err


def test_a_drop_beyond_the_detectable_drop_fails_though_not_significant(runs, suite):
    from dragonfly_eval.leaderboard.regress.gate import compare

    base = [0.5, 0.6, 0.7]
    cur = [0.2, 0.5, 0.35]  # -25 points; on 3 documents the t-test's p is 0.082
    (pair,) = compare(*[[p] for p in runs(base, cur)], suite, ["general"]).pairs
    cmp = next(c for c in pair.comparisons if c.benchmark.key == "ai2d")
    assert cmp.interval.test == "paired t-test" and cmp.interval.p_value > 0.05
    assert cmp.interval.detectable < 25
    assert cmp.status == "REGRESSION" and cmp.rule.startswith("decided by the detectable drop")


def test_per_document_values_that_overflow_fall_back_to_the_aggregates(
    tmp_path, write_run, suite_file, capsys
):
    values = [1e308 if i % 2 else -1e308 for i in range(10)]
    paths = []
    for side, score, sign in (("b", 0.9, 1), ("c", 0.1, -1)):
        lines = sample_lines([0.0] * 10)
        for line, v in zip(lines, values, strict=True):
            line["exact_match"] = sign * v
        paths.append(
            write_side(
                write_run, tmp_path / side, TASK, "exact_match,flexible-extract", score, lines
            )
        )
    assert run_cli(gate_argv(paths[0], paths[1], suite_file)) == 1
    out = capsys.readouterr().out
    assert "overflow a float" in out and "90.00 -> 10.00" in out
    row = next(line for line in out.splitlines() if line.startswith("| **AI2D"))
    assert "**aggregate**" in row and "**REGRESSION**" in row


@pytest.mark.parametrize("digits", [500, 5000])
def test_an_integer_no_float_holds_in_a_sample_log_exits_2_in_one_line(
    runs, suite_file, capsys, digits
):
    base = accuracy_scores(40, 20)
    base_path, cur_path = runs(base, base)
    log = cur_path.parent / f"{cur_path.name[:15]}_samples_{TASK}.jsonl"
    text = log.read_text().replace('"exact_match": 1.0', '"exact_match": ' + "9" * digits, 1)
    log.write_text(text)
    assert run_cli(gate_argv(base_path, cur_path, suite_file)) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert f"line 1: an integer of {digits} digits does not fit a float" in err
    assert log.name in err


def test_a_tiny_alpha_gives_a_verdict_not_an_overflow(runs, suite_file, capsys):
    base = accuracy_scores()
    base_path, cur_path = runs(base, flipped(base, lost=10, gained=6))
    code = run_cli(gate_argv(base_path, cur_path, suite_file, "--alpha", "1e-16"))
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if "AI2D" in line)
    # no 16 changed documents reach p < 1e-16: the tolerance decides the 1-point drop
    assert code == 1 and "underpowered" in out and "sign test (400)" in row


def test_the_pope_count_form_equals_lmms_evals_functions():
    import random

    from lmms_eval.tasks.pope import utils

    from dragonfly_eval.leaderboard.aggregations import matches, sum_features, sum_form

    rng = random.Random(3)
    items = []
    for i in range(300):
        truth, pred = rng.choice(["yes", "no"]), rng.choice(["yes", "no", "maybe"])
        items.append(
            {
                "question_id": i,
                "score": float(pred == truth),
                "prediction": pred,
                "ground_truth": truth,
            }
        )
    names = ["accuracy", "precision", "recall", "f1_score", "yes_ratio"]
    for name in names:
        function = getattr(utils, f"pope_aggregate_{name}")
        form = sum_form(function)
        assert form is not None, name
        assert matches(form, sum_features(form, items), function(items)), name
    assert sum_form(lambda items: 0.0) is None


def test_the_gates_t_test_equals_lmms_evals_paired_ttest():
    import math

    from lmms_eval.api.metrics import paired_ttest

    from dragonfly_eval.leaderboard.stats import paired_t_test

    base = [0.5 + 0.4 * math.sin(i) for i in range(200)]
    for cur in ([s - 0.02 + 0.01 * math.cos(3 * i) for i, s in enumerate(base)], base[::-1]):
        ours, theirs = paired_t_test(base, cur), paired_ttest(cur, base)
        assert ours.delta == pytest.approx(theirs["mean_diff"], rel=1e-12)
        assert ours.low == pytest.approx(theirs["ci_lower"], rel=1e-9)
        assert ours.high == pytest.approx(theirs["ci_upper"], rel=1e-9)
        assert ours.p_value == pytest.approx(theirs["p_value"], rel=1e-6, abs=1e-12)
