"""The regression gate: every exit code, through the CLI, and the comparison itself."""

from __future__ import annotations

import json
import sys

import pytest

from dragonfly_eval.cli import main as run_cli
from dragonfly_eval.leaderboard.regress.gate import compare
from dragonfly_eval.leaderboard.regress.verdict import RegressError

POPE = ("dragonfly_pope_adv", "dragonfly_pope_pop", "dragonfly_pope_random")


def _scores(ai2d: float | None = 0.6, pope: float | None = 0.85, mme: float | None = 1400.0):
    results = {}
    if ai2d is not None:
        results["dragonfly_ai2d"] = {"exact_match,flexible-extract": ai2d}
    if pope is not None:
        results.update({t: {"pope_f1_score,none": pope} for t in POPE})
    if mme is not None:
        results["dragonfly_mme"] = {"mme_perception_score,none": mme}
    return results


@pytest.fixture
def gate(tmp_path, write_run, suite_file):
    """Write baseline and current runs and run `regress` on them; returns (code, out, err)."""

    def run(baseline, current, *extra: str, capsys=None):
        base = write_run("org/m", "20240101_000000", baseline, root=tmp_path / "base")
        cur = write_run("org/m", "20240201_000000", current, root=tmp_path / "cur")
        argv = ["regress", "--baseline", str(base), "--current", str(cur.parent.parent)]
        return run_cli([*argv, "--suite-file", str(suite_file), *extra])

    return run


def test_exit_0_when_nothing_dropped_beyond_the_tolerance(gate, capsys):
    # AI2D drops exactly the tolerance (0.5 points); MME gains
    assert gate(_scores(ai2d=0.605), _scores(ai2d=0.600, mme=1410.0)) == 0
    out, err = capsys.readouterr()
    assert "| AI2D | 60.50 | 60.00 | -0.50 | ok |" in out
    assert "| MME | 1400.00 | 1410.00 | +10.00 | improved |" in out
    assert "PASS: 3 benchmark score(s) compared" in out
    assert err == (
        "dragonfly-eval regress: no benchmark has sample logs on both sides (lmms-eval "
        "--log_samples): compared the aggregate scores against the tolerance, without intervals\n"
    )


def test_exit_1_names_the_benchmark_that_dropped(gate, capsys):
    assert gate(_scores(pope=0.85), _scores(pope=0.84)) == 1
    out, err = capsys.readouterr()
    assert "| **POPE** | **85.00** | **84.00** | **-1.00** | **REGRESSION** |" in out
    assert "REGRESSION: POPE (org/m) 85.00 -> 84.00 (-1.00, tolerance 0.5)" in err
    assert "AI2D" not in err


def test_a_larger_tolerance_lets_the_same_drop_pass(gate):
    assert gate(_scores(pope=0.85), _scores(pope=0.84), "--tolerance", "1.5") == 0


def test_mme_drops_are_measured_in_points(gate, capsys):
    assert gate(_scores(mme=1400.0), _scores(mme=1399.4)) == 1
    assert "MME (org/m) 1400.00 -> 1399.40" in capsys.readouterr().err


def test_exit_1_when_a_benchmark_lost_its_score(gate, capsys):
    assert gate(_scores(), _scores(mme=None)) == 1
    out, err = capsys.readouterr()
    assert "| **MME** | **1400.00** | **–** | **–** | **MISSING** |" in out
    assert "MME (org/m) has no score in the current results" in err


def test_a_benchmark_only_in_the_current_run_is_new_and_passes(gate, capsys):
    assert gate(_scores(mme=None), _scores()) == 0
    assert "| MME | – | 1400.00 | – | new |" in capsys.readouterr().out


def test_exit_2_for_a_missing_path(tmp_path, write_run, suite_file, capsys):
    base = write_run("org/m", "20240101_000000", _scores())
    code = run_cli(
        [
            "regress",
            "--baseline",
            str(base),
            "--current",
            str(tmp_path / "nope"),
            "--suite-file",
            str(suite_file),
        ]
    )
    assert code == 2
    assert "current has no usable results" in capsys.readouterr().err


def test_exit_2_for_malformed_json(tmp_path, write_run, suite_file, capsys):
    cur = write_run("org/m", "20240101_000000", _scores())
    bad = tmp_path / "bad_results.json"
    bad.write_text('{"results": {')
    code = run_cli(
        ["regress", "--baseline", str(bad), "--current", str(cur), "--suite-file", str(suite_file)]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "baseline has no usable results" in err and "malformed JSON" in err


def test_exit_2_for_an_empty_folder(tmp_path, write_run, suite_file, capsys):
    cur = write_run("org/m", "20240101_000000", _scores())
    (tmp_path / "empty").mkdir()
    code = run_cli(
        [
            "regress",
            "--baseline",
            str(tmp_path / "empty"),
            "--current",
            str(cur),
            "--suite-file",
            str(suite_file),
        ]
    )
    assert code == 2
    assert "no lmms-eval results files" in capsys.readouterr().err


def test_exit_2_when_no_benchmark_overlaps(gate, capsys):
    assert gate(_scores(pope=None, mme=None), _scores(ai2d=None)) == 2
    assert "no benchmark has a headline score in both" in capsys.readouterr().err


def test_exit_2_when_results_hold_no_headline_score(gate, capsys):
    assert gate(_scores(), {"unrelated": {"acc,none": 1.0}}) == 2
    assert "current results hold no headline score" in capsys.readouterr().err


def test_exit_2_for_an_unknown_suite(gate, capsys):
    assert gate(_scores(), _scores(), "--suite", "nope") == 2
    assert "unknown suite 'nope'" in capsys.readouterr().err


def test_suite_option_limits_the_comparison(gate):
    coco = {"dragonfly_coco2017_cap_val": {"coco_CIDEr,none": 1.0}}
    baseline, current = {**_scores(pope=0.85), **coco}, {**_scores(pope=0.80), **coco}
    assert gate(baseline, current, "--suite", "caption") == 0
    assert gate(baseline, current, "--suite", "caption,general") == 1


def test_several_models_are_matched_by_name(tmp_path, write_run, suite):
    for name, ai2d in (("org/a", 0.6), ("org/b", 0.7), ("org/only_base", 0.5)):
        write_run(name, "20240101_000000", _scores(ai2d=ai2d), root=tmp_path / "base")
    for name, ai2d in (("org/a", 0.6), ("org/b", 0.6)):
        write_run(name, "20240201_000000", _scores(ai2d=ai2d), root=tmp_path / "cur")
    report = compare([tmp_path / "base"], [tmp_path / "cur"], suite)
    assert [(p.baseline_model, p.current_model) for p in report.pairs] == [
        ("org/a", "org/a"),
        ("org/b", "org/b"),
    ]
    assert [(p.current_model, c.benchmark.key) for p, c in report.failures] == [("org/b", "ai2d")]
    assert report.warnings[0] == "baseline model org/only_base has no current run"


def test_one_model_per_side_is_compared_whatever_its_name(tmp_path, write_run, suite):
    base = write_run("/ckpt/old-path", "20240101_000000", _scores(), root=tmp_path / "b")
    cur = write_run("dragonfly-tiny", "20240201_000000", _scores(), root=tmp_path / "c")
    (pair,) = compare([base], [cur], suite).pairs
    assert (pair.baseline_model, pair.current_model) == ("/ckpt/old-path", "dragonfly-tiny")


def test_several_models_with_no_name_in_common_cannot_be_compared(tmp_path, write_run, suite):
    for name in ("org/a", "org/b"):
        write_run(name, "20240101_000000", _scores(), root=tmp_path / "base")
        write_run(name + "2", "20240101_000000", _scores(), root=tmp_path / "cur")
    with pytest.raises(RegressError, match="no model in common"):
        compare([tmp_path / "base"], [tmp_path / "cur"], suite)


def test_lower_is_better_benchmarks_fail_when_they_rise(tmp_path, write_run):
    from dragonfly_eval.leaderboard.suite import parse_suite

    suite = parse_suite(
        {
            "suites": {"s": ["err"]},
            "benchmarks": {
                "err": {"task": "t", "metric": "wer,none", "scale": 100, "higher_is_better": False}
            },
        }
    )
    base = write_run("m", "20240101_000000", {"t": {"wer,none": 0.10}}, root=tmp_path / "b")
    cur = write_run("m", "20240201_000000", {"t": {"wer,none": 0.12}}, root=tmp_path / "c")
    assert [c.status for _, c in compare([base], [cur], suite).failures] == ["REGRESSION"]
    assert compare([cur], [base], suite).failures == []


def test_negative_tolerance_is_refused(tmp_path, write_run, suite):
    path = write_run("m", "20240101_000000", _scores())
    with pytest.raises(RegressError, match="tolerance"):
        compare([path], [path], suite, tolerance=-1)


def test_a_bad_file_beside_good_ones_is_a_warning(tmp_path, write_run, suite_file, capsys):
    base = write_run("org/m", "20240101_000000", _scores(), root=tmp_path / "base")
    (base.parent / "broken_results.json").write_text(json.dumps({"no": "results"}))
    cur = write_run("org/m", "20240201_000000", _scores(), root=tmp_path / "cur")
    code = run_cli(
        [
            "regress",
            "--baseline",
            str(tmp_path / "base"),
            "--current",
            str(cur),
            "--suite-file",
            str(suite_file),
        ]
    )
    assert code == 0
    assert "baseline: skipped" in capsys.readouterr().err


@pytest.mark.parametrize("tolerance", ["nan", "inf", "-inf", "-1", "lots"])
def test_a_tolerance_that_is_not_a_finite_number_at_least_0_exits_2(gate, capsys, tolerance):
    # an 80-point drop: nan made every comparison pass
    with pytest.raises(SystemExit) as stop:
        gate(_scores(ai2d=0.9), _scores(ai2d=0.1), f"--tolerance={tolerance}")
    assert stop.value.code == 2
    assert "must be a finite number >= 0" in capsys.readouterr().err


@pytest.mark.parametrize("tolerance", [float("nan"), float("inf")])
def test_compare_refuses_a_non_finite_tolerance(tmp_path, write_run, suite, tolerance):
    path = write_run("m", "20240101_000000", _scores())
    with pytest.raises(RegressError, match="finite number"):
        compare([path], [path], suite, tolerance=tolerance)


def _limited(path, effective: int, limit):
    payload = json.loads(path.read_text())
    payload["n-samples"] = {t: {"original": 10, "effective": effective} for t in payload["results"]}
    payload["config"]["limit"] = limit
    path.write_text(json.dumps(payload))
    return path


def test_sides_run_on_different_documents_exit_2_unless_partial_is_allowed(
    tmp_path, write_run, suite_file, capsys
):
    base = write_run("org/m", "20240101_000000", _scores(), root=tmp_path / "base")
    cur = write_run("org/m", "20240201_000000", _scores(ai2d=0.1), root=tmp_path / "cur")
    _limited(cur, 3, 3)
    argv = ["regress", "--baseline", str(base), "--current", str(cur)]
    argv += ["--suite-file", str(suite_file)]
    assert run_cli(argv) == 2
    err = capsys.readouterr().err
    assert "different documents" in err
    assert "AI2D (org/m): baseline 10 of 10 documents, current 3 of 10 documents" in err
    assert run_cli([*argv, "--allow-partial"]) == 1  # compared: the drop is reported
    err = capsys.readouterr().err
    assert "compared on different documents" in err and "REGRESSION: AI2D" in err


def test_two_runs_with_the_same_limit_are_compared(tmp_path, write_run, suite):
    base = _limited(write_run("m", "20240101_000000", _scores(), root=tmp_path / "b"), 3, 3)
    cur = _limited(write_run("m", "20240201_000000", _scores(), root=tmp_path / "c"), 3, 3)
    assert compare([base], [cur], suite).failures == []


def test_a_model_name_with_rich_markup_prints_at_a_terminal(
    tmp_path, write_run, suite_file, capsys, monkeypatch
):
    base = write_run("[/]oops", "20240101_000000", _scores(), root=tmp_path / "b")
    cur = write_run("[bold]x[/]", "20240201_000000", _scores(ai2d=0.1), root=tmp_path / "c")
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    argv = ["regress", "--baseline", str(base), "--current", str(cur)]
    assert run_cli([*argv, "--suite-file", str(suite_file)]) == 1
    out = capsys.readouterr().out
    assert "[bold]x[/]" in out and "FAIL" in out


def test_the_markdown_report_escapes_model_names(tmp_path, write_run, suite_file, capsys):
    base = write_run(
        "<img src=x onerror=alert(1)>", "20240101_000000", _scores(), root=tmp_path / "b"
    )
    cur = write_run("a|b\rc", "20240201_000000", _scores(), root=tmp_path / "c")
    argv = ["regress", "--baseline", str(base), "--current", str(cur)]
    assert run_cli([*argv, "--suite-file", str(suite_file)]) == 0
    out = capsys.readouterr().out
    assert "<img" not in out and "\r" not in out
    assert "**a\\|b c (baseline: &lt;img src=x onerror=alert(1)>)**" in out
