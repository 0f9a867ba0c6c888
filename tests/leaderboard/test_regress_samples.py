"""The statistical gate: per-document scores from sample logs, paired by doc_id."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from dragonfly_eval.leaderboard.regress.gate import compare
from dragonfly_eval.leaderboard.regress.verdict import GateSettings
from dragonfly_eval.lmms_files.samples import sample_log_path
from tests.leaderboard.test_regress import run_cli

TASK = "dragonfly_ai2d"
METRIC = "exact_match,flexible-extract"


def accuracy_scores(n: int = 400, correct: int = 280) -> list[float]:
    """n documents, the first `correct` answered right."""
    return [1.0] * correct + [0.0] * (n - correct)


def flipped(scores: list[float], lost: int, gained: int) -> list[float]:
    """The same documents with `lost` right answers turned wrong and `gained` wrong ones right."""
    out = list(scores)
    right = [i for i, s in enumerate(scores) if s == 1.0]
    wrong = [i for i, s in enumerate(scores) if s == 0.0]
    for i in right[:lost]:
        out[i] = 0.0
    for i in wrong[:gained]:
        out[i] = 1.0
    return out


def write_samples(results: Path, task: str, lines: list[dict]) -> Path:
    path = sample_log_path(results, task)
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path


def sample_lines(scores: list[float], key: str = "exact_match", **extra) -> list[dict]:
    return [
        {
            "doc_id": i,
            "doc_hash": f"h{i}",
            "target": "A",
            "filtered_resps": "A" if s else "B",
            key: s,
            **extra,
        }
        for i, s in enumerate(scores)
    ]


@pytest.fixture
def runs(tmp_path, write_run):
    """Write a baseline and a current run of AI2D with sample logs; returns their paths."""

    def write(base_scores, cur_scores, base_lines=None, cur_lines=None):
        paths = []
        for side, date, scores, lines in (
            ("base", "20240101_000000", base_scores, base_lines),
            ("cur", "20240201_000000", cur_scores, cur_lines),
        ):
            mean = sum(scores) / len(scores)
            path = write_run("org/m", date, {TASK: {METRIC: mean}}, root=tmp_path / side)
            if lines is not False:
                write_samples(path, TASK, lines if lines is not None else sample_lines(scores))
            paths.append(path)
        return paths

    return write


def gate_argv(base: Path, cur: Path, suite_file: Path, *extra: str) -> list[str]:
    argv = ["regress", "--baseline", str(base), "--current", str(cur), "--suite", "general"]
    return [*argv, "--suite-file", str(suite_file), *extra]


def ai2d(report):
    (pair,) = report.pairs
    return next(c for c in pair.comparisons if c.benchmark.key == "ai2d")


def test_a_one_point_net_drop_of_10_lost_and_6_gained_is_a_possible_drop(
    runs, suite, suite_file, capsys
):
    base = accuracy_scores()
    base_path, cur_path = runs(base, flipped(base, lost=10, gained=6))
    cmp = ai2d(compare([base_path], [cur_path], suite, ["general"]))
    assert cmp.status == "possible drop"
    assert cmp.delta == pytest.approx(-1.0)
    assert cmp.interval.low < 0 < cmp.interval.high
    assert cmp.interval.p_value > 0.05 and cmp.interval.test == "sign test"
    assert run_cli(gate_argv(base_path, cur_path, suite_file)) == 0
    out, err = capsys.readouterr()
    row = next(line for line in out.splitlines() if line.startswith("| AI2D"))
    detectable = f"{cmp.interval.detectable:.2f}"
    assert row.startswith("| AI2D | 70.00 | 69.00 | -1.00 | -2.78 to +1.17 | 0.454 |")
    assert f"| {detectable} | sign test (400) | possible drop |" in row
    assert float(detectable) > 1.0  # 400 documents cannot see a 1-point drop
    assert "1 possible drop(s), not significant: AI2D (org/m) -1.00" in out
    assert (
        "dragonfly-eval regress: possible drop: AI2D (org/m) -1.00, 95% CI -2.78 to +1.17, p=0.454, sign test"
        in err
    )


def test_a_ten_point_drop_of_50_lost_and_10_gained_is_a_regression(runs, suite, suite_file, capsys):
    base = accuracy_scores()
    base_path, cur_path = runs(base, flipped(base, lost=50, gained=10))
    cmp = ai2d(compare([base_path], [cur_path], suite, ["general"]))
    assert cmp.status == "REGRESSION"
    assert cmp.delta == pytest.approx(-10.0)
    assert cmp.interval.p_value < 0.001
    assert cmp.interval.high < 0
    assert run_cli(gate_argv(base_path, cur_path, suite_file)) == 1
    out, err = capsys.readouterr()
    assert "| **1.6e-07** |" in out and "**REGRESSION**" in out
    assert (
        "REGRESSION: AI2D (org/m) 70.00 -> 60.00 (-10.00, tolerance 0.5, 95% CI -12.51 to -6.44, p=1.6e-07, sign test)"
        in err
    )


def test_four_losses_of_400_get_the_sign_test_not_the_t_test(runs, suite):
    from lmms_eval.api.metrics import paired_ttest

    base = accuracy_scores()
    cur = flipped(base, lost=4, gained=0)
    cmp = ai2d(compare(runs(base, cur)[:1], runs(base, cur)[1:], suite, ["general"]))
    assert cmp.interval.p_value == pytest.approx(0.125)
    # 4 changed documents cannot make the sign test significant: the tolerance decides
    assert cmp.status == "REGRESSION" and cmp.rule.startswith("underpowered")
    # docs/leaderboard-and-gate.md's comparison: lmms-eval's paired t-test would call this drop significant
    assert paired_ttest(cur, base)["p_value"] == pytest.approx(0.045, abs=0.001)


def test_non_binary_scores_get_lmms_evals_paired_t_test(runs, suite):
    base = [0.5 + 0.4 * math.sin(i) for i in range(200)]
    cur = [s - 0.02 + 0.01 * math.cos(3 * i) for i, s in enumerate(base)]
    cmp = ai2d(compare(*[[p] for p in runs(base, cur)], suite, ["general"]))
    assert cmp.interval.test == "paired t-test"
    assert cmp.status == "REGRESSION"
    assert cmp.interval.delta == pytest.approx(-2.0, abs=0.1)


def test_exact_mode_ignores_the_sample_logs(runs, suite):
    base = accuracy_scores()
    paths = runs(base, flipped(base, lost=10, gained=6))
    report = compare([paths[0]], [paths[1]], suite, ["general"], settings=GateSettings(exact=True))
    assert ai2d(report).status == "REGRESSION" and ai2d(report).interval is None


def test_a_missing_sample_log_falls_back_to_the_aggregate_and_says_so(runs, suite_file, capsys):
    base = accuracy_scores()
    base_path, cur_path = runs(base, flipped(base, lost=10, gained=6), cur_lines=False)
    assert run_cli(gate_argv(base_path, cur_path, suite_file)) == 1  # tolerance alone
    out = capsys.readouterr().out
    assert "the current has no sample log for dragonfly_ai2d" in out
    assert "--log_samples" in out


def test_documents_on_one_side_only_exit_2_unless_partial_is_allowed(runs, suite_file, capsys):
    base = accuracy_scores()
    cur = flipped(base, lost=10, gained=6)
    base_path, cur_path = runs(base, cur, cur_lines=sample_lines(cur)[:-3])
    assert run_cli(gate_argv(base_path, cur_path, suite_file)) == 2
    err = capsys.readouterr().err
    assert "3 document(s) only in the baseline, 0 only in the current run" in err
    assert run_cli(gate_argv(base_path, cur_path, suite_file, "--allow-partial")) == 0
    out = capsys.readouterr().out
    assert "sign test (397)" in out


def test_a_different_doc_hash_means_a_different_dataset(runs, suite_file, capsys):
    base = accuracy_scores()
    lines = sample_lines(base)
    lines[7]["doc_hash"] = "changed"
    base_path, cur_path = runs(base, base, cur_lines=lines)
    assert run_cli(gate_argv(base_path, cur_path, suite_file)) == 2
    assert "1 document(s) with a different doc_hash" in capsys.readouterr().err


def test_different_prompt_settings_are_not_comparable(runs, suite_file, capsys):
    base = accuracy_scores()
    base_path, cur_path = runs(base, base)
    payload = json.loads(cur_path.read_text())
    payload["config"]["resolved_cli_args"] = {"gen_kwargs": "temperature=0.7"}
    cur_path.write_text(json.dumps(payload))
    assert run_cli(gate_argv(base_path, cur_path, suite_file)) == 2
    err = capsys.readouterr().err
    assert "dragonfly_ai2d ran with different prompt settings: gen_kwargs None vs" in err


def test_a_metric_without_per_document_values_is_compared_on_the_aggregate(
    runs, suite_file, capsys
):
    base = accuracy_scores()
    cur = flipped(base, lost=10, gained=6)
    base_path, cur_path = runs(base, cur, cur_lines=sample_lines(cur, key="other"))
    assert run_cli(gate_argv(base_path, cur_path, suite_file)) == 1
    out = capsys.readouterr().out
    assert "AI2D: aggregate only:" in out and "no per-document 'exact_match' value" in out
    assert "| **AI2D** | **70.00** | **69.00** | **-1.00** | **–** |" in out


def test_nan_per_document_scores_never_make_an_interval(runs, suite_file, capsys):
    base = accuracy_scores()
    lines = sample_lines(base)
    lines[3]["exact_match"] = float("nan")
    base_path, cur_path = runs(base, base, cur_lines=lines)
    assert run_cli(gate_argv(base_path, cur_path, suite_file)) == 0
    out = capsys.readouterr().out
    assert "1 document(s) have a NaN or infinite 'exact_match' (first: doc_id 3)" in out


def test_a_log_that_repeats_a_document_is_refused(runs, suite_file, capsys):
    base = accuracy_scores()
    base_path, cur_path = runs(base, base, cur_lines=sample_lines(base) * 2)
    run_cli(gate_argv(base_path, cur_path, suite_file))
    assert "doc_id 0 appears twice" in capsys.readouterr().out


def test_corpus_level_metrics_get_a_seeded_paired_bootstrap(tmp_path, write_run, suite):
    task, metric = "dragonfly_coco2017_cap_val", "coco_CIDEr,none"
    paths = []
    for side, shift in (("base", 0.0), ("cur", -0.3)):
        values = [{"score": (i % 5) / 4 + shift} for i in range(60)]
        total = sum(v["score"] for v in values) / 60
        path = write_run("m", "20240101_000000", {task: {metric: total}}, root=tmp_path / side)
        lines = sample_lines([0.0] * 60)
        for line, value in zip(lines, values, strict=True):
            line["coco_CIDEr"] = value
        write_samples(path, task, lines)
        paths.append(path)
    calls = []

    def aggregations(name, metric_key):
        calls.append((name, metric_key))
        return lambda items: sum(item["score"] for item in items) / len(items)

    settings = GateSettings(bootstrap=200, aggregations=aggregations)
    first = compare([paths[0]], [paths[1]], suite, ["caption"], settings=settings)
    again = compare([paths[0]], [paths[1]], suite, ["caption"], settings=settings)
    (cmp,) = first.pairs[0].comparisons
    assert calls[0] == (task, metric)
    assert cmp.interval.test == "paired bootstrap"
    assert cmp.interval.delta == pytest.approx(-30.0)
    assert cmp.interval == again.pairs[0].comparisons[0].interval
    assert cmp.status == "REGRESSION"


def test_the_aggregation_of_a_corpus_metric_is_loaded_from_the_task_yaml():
    from dragonfly_eval.leaderboard.aggregations import task_aggregation

    f1 = task_aggregation("dragonfly_mini_yesno", "pope_f1_score,none")
    assert callable(f1)
    assert task_aggregation("dragonfly_mini_yesno", "no_such_metric,none") is None


def test_a_terminal_gets_the_interval_columns_and_the_notes(runs, suite_file, capsys, monkeypatch):
    import sys

    base = accuracy_scores()
    base_path, cur_path = runs(base, flipped(base, lost=10, gained=6))
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert run_cli(gate_argv(base_path, cur_path, suite_file, "--suite", "general")) == 0
    out = capsys.readouterr().out
    assert "possible drop" in out and "-2.78 to +1.17" in out and "PASS" in out


@pytest.mark.parametrize(
    ("option", "value"), [("--alpha", "0"), ("--alpha", "1.5"), ("--bootstrap", "5")]
)
def test_out_of_range_statistics_options_exit_2(runs, suite_file, capsys, option, value):
    base = accuracy_scores()
    base_path, cur_path = runs(base, base)
    with pytest.raises(SystemExit) as stop:
        run_cli(gate_argv(base_path, cur_path, suite_file, option, value))
    assert stop.value.code == 2
    assert option in capsys.readouterr().err


def test_logs_with_one_document_in_common_are_compared_on_their_aggregates(runs, suite):
    scores = accuracy_scores(4, 3)
    shifted = [
        dict(line, doc_id=line["doc_id"] + 3, doc_hash=f"h{line['doc_id'] + 3}")
        for line in sample_lines(scores)
    ]
    base_path, cur_path = runs(scores, scores, sample_lines(scores), shifted)
    report = compare([base_path], [cur_path], suite, ["general"], allow_partial=True)
    cmp = ai2d(report)
    assert cmp.interval is None and cmp.status == "ok"
    assert cmp.note == f"aggregate only: {TASK}: fewer than 2 documents in common"
    assert report.warnings == (
        f"compared on different documents: AI2D (org/m): {TASK}: 3 document(s) only in the "
        "baseline, 3 only in the current run (e.g. doc_id 0)",
    )


def test_an_aggregation_that_fails_on_the_logged_values_leaves_the_aggregates_to_decide(
    runs, suite
):
    def broken(items):
        raise ZeroDivisionError("no items")

    scores = accuracy_scores()
    logged = sample_lines(flipped(scores, lost=5, gained=0))  # not the reported mean
    base_path, cur_path = runs(scores, scores, logged, logged)
    settings = GateSettings(aggregations=lambda task, metric: broken)
    cmp = ai2d(compare([base_path], [cur_path], suite, ["general"], settings=settings))
    assert cmp.interval is None and cmp.status == "ok"
    assert cmp.note == (
        f"aggregate only: {TASK}: lmms-eval's broken failed on the logged values "
        "(ZeroDivisionError: no items)"
    )
