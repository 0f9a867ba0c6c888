"""Score mapping and scaling, newest-wins, other tasks, reference rows, averages and bold cells."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dragonfly_eval.leaderboard.board.markdown import render_markdown
from dragonfly_eval.leaderboard.board.table import LeaderboardError, build_table, grid
from dragonfly_eval.leaderboard.reference import ReferenceRow

REAL_RUN = Path(__file__).parent / "data" / "lmms_eval_0_7_3"
POPE = ("dragonfly_pope_adv", "dragonfly_pope_pop", "dragonfly_pope_random")


def _pope(f1: tuple[float, float, float], acc: tuple[float, float, float] | None = None):
    return {
        t: {"pope_f1_score,none": f, **({"pope_accuracy,none": a} if acc else {})}
        for t, f, a in zip(POPE, f1, acc or f1, strict=True)
    }


def _row(table, name):
    (row,) = [r for r in table.rows if r.name == name]
    return row


def test_real_run_maps_scales_and_averages_pope_splits(suite):
    table = build_table([REAL_RUN], suite)
    row = _row(table, "togethercomputer/Llama-3-8B-Dragonfly-v1")
    assert row.values["ai2d"] == pytest.approx(63.62)
    assert row.values["pope"] == pytest.approx((0.8842 + 0.9154 + 0.9358) / 3 * 100)
    assert row.values["pope.accuracy"] == pytest.approx((0.871 + 0.9031 + 0.9262) / 3 * 100)
    assert row.values["mme"] == pytest.approx(1483.6213485394158)  # points, not x100
    assert row.values["mme.cognition"] == pytest.approx(301.42857142857144)
    assert row.dates == ("2024-06-01 12:00:00 +08:00",)
    assert table.suites == ("general",)


def test_unknown_tasks_are_listed_never_dropped_and_mapped_groups_are_not(suite):
    table = build_table([REAL_RUN], suite)
    listed = {t.task: t.metrics for t in table.other_tasks}
    # dragonfly_pope is the group of mapped splits: known, not "other"
    assert listed == {"mmbench_en_test": {}, "ok_vqa_val2014": {"exact_match,none": 0.5521}}


def test_a_group_name_as_task_reads_the_group_result(suite, write_run, tmp_path):
    write_run(
        "org/med",
        "20240101_000000",
        {"dragonfly_vqa_rad": {"closed_accuracy,none": 0.7}, "unrelated": {"x,none": 1.0}},
        groups={"dragonfly_med": {"alias": "dragonfly_med", "closed_accuracy,none": 0.75}},
        group_subtasks={"dragonfly_med": ["dragonfly_vqa_rad"], "unrelated": []},
    )
    table = build_table([tmp_path / "out"], suite)
    assert table.suites == ("med",)
    assert _row(table, "org/med").values["vqa_rad"] == pytest.approx(75.0)
    assert [t.task for t in table.other_tasks] == ["unrelated"]


def test_a_task_of_a_user_group_beside_a_mapped_one_is_still_other(suite, write_run, tmp_path):
    write_run(
        "org/m",
        "20240101_000000",
        {"dragonfly_ai2d": {"exact_match,flexible-extract": 0.5}, "weird": {"acc,none": 0.3}},
        group_subtasks={"my_eval": ["dragonfly_ai2d", "weird"]},
    )
    table = build_table([tmp_path / "out"], suite)
    assert [t.task for t in table.other_tasks] == ["weird"]


def test_pope_needs_all_three_splits(suite, write_run, tmp_path):
    results = _pope((0.8, 0.8, 0.8))
    del results["dragonfly_pope_random"]
    write_run("org/m", "20240101_000000", results)
    table = build_table([tmp_path / "out"], suite, ["general"])
    assert "pope" not in _row(table, "org/m").values


def test_newest_run_wins_and_the_table_names_its_date(suite, write_run, tmp_path):
    write_run("org/m", "20240101_000000", {"dragonfly_ai2d": {"exact_match,flexible-extract": 0.1}})
    write_run("org/m", "20240301_101500", {"dragonfly_ai2d": {"exact_match,flexible-extract": 0.6}})
    table = build_table([tmp_path / "out"], suite, ["general"])
    row = _row(table, "org/m")
    assert row.values["ai2d"] == pytest.approx(60.0)
    assert row.dates == ("2024-03-01 10:15:00 +08:00",)
    (note,) = table.replaced
    assert "2024-03-01 10:15:00" in note and "2024-01-01 00:00:00" in note
    assert "dragonfly_ai2d" in note


def test_auto_suite_choice_follows_the_scores_and_falls_back_to_the_first(
    suite, write_run, tmp_path
):
    write_run("org/m", "20240101_000000", {"unknown": {"acc,none": 0.5}})
    table = build_table([tmp_path / "out"], suite)
    assert table.suites == ("general",)
    assert _row(table, "org/m").values == {}
    assert [t.task for t in table.other_tasks] == ["unknown"]


def test_reference_rows_are_marked_and_only_shown_with_a_value(suite, write_run, tmp_path):
    write_run("org/m", "20240101_000000", {"dragonfly_ai2d": {"exact_match,flexible-extract": 0.5}})
    refs = [
        ReferenceRow("General paper", "Blog", {"ai2d": 63.6}, {}),
        ReferenceRow("Med paper", "Paper", {"vqa_rad": 77.4}, {"vqa_rad.token_f1": 59.6}),
    ]
    table = build_table([tmp_path / "out"], suite, ["general"], refs)
    assert [r.label for r in table.rows] == ["org/m", "General paper †"]
    assert table.rows[1].published and not table.rows[0].published
    med = build_table([tmp_path / "out"], suite, ["med"], refs)
    assert [r.label for r in med.rows] == ["org/m", "Med paper †"]


def test_average_leaves_points_out_and_marks_partial_rows(suite, write_run, tmp_path):
    write_run(
        "org/full",
        "20240101_000000",
        {
            "dragonfly_ai2d": {"exact_match,flexible-extract": 0.5},
            "dragonfly_mme": {"mme_perception_score,none": 1500.0},
            **_pope((0.7, 0.7, 0.7)),
        },
    )
    write_run(
        "org/part", "20240101_000000", {"dragonfly_ai2d": {"exact_match,flexible-extract": 0.9}}
    )
    table = build_table([tmp_path / "out"], suite, ["general"])
    full, part = (table.average(_row(table, n)) for n in ("org/full", "org/part"))
    assert (full.value, full.used, full.total) == (pytest.approx(60.0), 2, 2)
    assert (part.value, part.used, part.total) == (pytest.approx(90.0), 1, 2)
    assert "points excluded" in table.average_title
    header, cells = grid(table)
    assert cells[0][-1].text == "60.0" and cells[1][-1].text == "90.0 (1/2)"
    # the partial row's higher average is not "best": it averages fewer benchmarks
    assert not cells[1][-1].bold


def test_best_value_is_bold_only_when_rows_compete_and_ties_share_it(suite, write_run, tmp_path):
    for name, ai2d in (("org/a", 0.61), ("org/b", 0.61), ("org/c", 0.4)):
        write_run(
            name, "20240101_000000", {"dragonfly_ai2d": {"exact_match,flexible-extract": ai2d}}
        )
    write_run("org/d", "20240101_000000", {"dragonfly_mme": {"mme_perception_score,none": 1.0}})
    _, cells = grid(build_table([tmp_path / "out"], suite, ["general"]))
    ai2d = [row[2] for row in cells]
    assert [c.bold for c in ai2d] == [True, True, False, False]
    assert [row[4].bold for row in cells] == [False] * 4  # one MME value: nothing to beat


def test_lower_is_better_columns_bold_the_smallest(write_run, tmp_path):
    from dragonfly_eval.leaderboard.suite import parse_suite

    suite = parse_suite(
        {
            "suites": {"s": ["err"]},
            "benchmarks": {
                "err": {"task": "t", "metric": "wer,none", "scale": 100, "higher_is_better": False}
            },
        }
    )
    write_run("org/a", "20240101_000000", {"t": {"wer,none": 0.2}})
    write_run("org/b", "20240101_000000", {"t": {"wer,none": 0.1}})
    _, cells = grid(build_table([tmp_path / "out"], suite))
    assert [row[2].bold for row in cells] == [False, True]


def test_no_usable_results_is_an_error_with_the_reasons(suite, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(LeaderboardError, match="no lmms-eval results files"):
        build_table([tmp_path / "empty"], suite)
    with pytest.raises(LeaderboardError, match="no such file"):
        build_table([tmp_path / "missing"], suite)


def _ai2d_run(write_run, model, date, value, effective=3088, limit=None, root=None):
    path = write_run(
        model, date, {"dragonfly_ai2d": {"exact_match,flexible-extract": value}}, root=root
    )
    payload = json.loads(path.read_text())
    payload["n-samples"]["dragonfly_ai2d"] = {"original": 3088, "effective": effective}
    payload["config"]["limit"] = limit
    path.write_text(json.dumps(payload))
    return path


def test_a_partial_cell_shows_its_document_count_and_is_never_best(suite, write_run, tmp_path):
    _ai2d_run(write_run, "org/full", "20240101_000000", 0.5)
    _ai2d_run(write_run, "org/part", "20240101_000000", 0.9, effective=3, limit=3)
    table = build_table([tmp_path / "out"], suite, ["general"])
    header, cells = grid(table)
    by_model = {line[0].text: line[2] for line in cells}
    assert by_model["org/part"].text == "90.0 (n=3)" and not by_model["org/part"].bold
    assert _row(table, "org/part").partial == {"ai2d": "n=3"}
    assert "partial run" in render_markdown(table)


def test_a_newer_limit_run_does_not_replace_a_full_run_by_default(suite, write_run, tmp_path):
    _ai2d_run(write_run, "org/m", "20240101_000000", 0.5)
    _ai2d_run(write_run, "org/m", "20240301_000000", 0.9, effective=3, limit=3)
    largest = build_table([tmp_path / "out"], suite, ["general"])
    assert _row(largest, "org/m").values["ai2d"] == pytest.approx(50.0)
    (note,) = largest.replaced
    assert "partial: n=3" in note
    newest = build_table([tmp_path / "out"], suite, ["general"], prefer="newest")
    assert _row(newest, "org/m").values["ai2d"] == pytest.approx(90.0)
    assert _row(newest, "org/m").partial == {"ai2d": "n=3"}


def test_model_names_with_markup_and_line_breaks_stay_one_escaped_row(suite, write_run, tmp_path):
    hostile = 'evil\r| injected | row |\n<img src=x onerror="alert(1)">[/]oops'
    _ai2d_run(write_run, hostile, "20240101_000000", 0.5)
    markdown = render_markdown(build_table([tmp_path / "out"], suite, ["general"]))
    table_lines = [line for line in markdown.splitlines() if line.startswith("|")]
    assert len(table_lines) == 3  # header, rule and one row: the name split nothing
    assert "\r" not in markdown and "<img" not in markdown and "&lt;img" in markdown
    (row_line,) = [line for line in table_lines if "evil" in line]
    assert row_line.count(" | ") == 6 - 1  # Model, date, 3 benchmarks, average


def test_a_score_that_overflows_when_scaled_is_missing_not_inf(suite, write_run, tmp_path):
    _ai2d_run(write_run, "org/m", "20240101_000000", 1e308)
    table = build_table([tmp_path / "out"], suite, ["general"])
    assert "ai2d" not in _row(table, "org/m").values
    assert "inf" not in render_markdown(table)
