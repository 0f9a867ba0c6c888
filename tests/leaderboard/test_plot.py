"""The --plot chart is a real PNG that PIL decodes."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pytest
from PIL import Image

from dragonfly_eval.leaderboard.board.plot import figure, plot
from dragonfly_eval.leaderboard.board.table import Column, Row, Table, build_table
from dragonfly_eval.leaderboard.reference import ReferenceRow

REAL_RUN = Path(__file__).parent / "data" / "lmms_eval_0_7_3"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _assert_png(path: Path) -> tuple[int, int]:
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(path) as image:
        image.load()
        assert image.format == "PNG"
        assert image.width > 0 and image.height > 0
        return image.size


def test_plot_of_runs_and_reference_rows_with_a_points_panel(suite, tmp_path):
    refs = [ReferenceRow("Paper", "Blog", {"ai2d": 63.6, "pope": 91.2}, {})]
    table = build_table([REAL_RUN], suite, ["general"], refs)
    out = plot(table, tmp_path / "sub" / "board.png")
    assert out == tmp_path / "sub" / "board.png"
    _assert_png(out)


@pytest.mark.parametrize(
    "columns",
    [(), (Column("a", "A", "%", True),), (Column("m", "MME (points)", "points", True),)],
)
def test_plot_handles_empty_and_single_unit_tables(tmp_path, columns):
    table = Table(("s",), columns, (), (Row("m", {}),))
    _assert_png(plot(table, tmp_path / "empty.png"))


def test_panels_say_their_direction_and_zero_bars_are_drawn(tmp_path):
    columns = (
        Column("vqa", "Mini VQA", "%", True),
        Column("nll", "Mini answer loss", "nats x100", False),
    )
    table = Table(("mini",), columns, (), (Row("tiny", {"vqa": 0.0, "nll": 661.2}),))
    fig = figure(table)
    try:
        titles = [ax.get_title() for ax in fig.axes]
        assert titles == ["higher is better", "lower is better"]
        vqa_axes = fig.axes[0]
        (bar,) = vqa_axes.patches
        assert bar.get_height() == 0 and bar.get_linewidth() > 0  # an edge line on the axis
        assert [t.get_text() for t in vqa_axes.texts] == ["0.0"]  # every bar says its value
        assert [t.get_text() for t in fig.axes[1].texts] == ["661.2"]
    finally:
        plt.close(fig)


def test_a_model_name_with_math_text_markers_is_drawn_as_written(tmp_path):
    columns = (Column("vqa", "Mini VQA", "%", True),)
    table = Table(("mini",), columns, (), (Row("a$\\frac{$b", {"vqa": 10.0}),))
    _assert_png(plot(table, tmp_path / "math.png"))


MINI_BASELINE = Path(__file__).resolve().parents[2] / "leaderboards" / "mini_baseline"


def test_the_mini_chart_gives_cider_its_own_axis_and_marks_chance():
    """CIDEr x100 (322 for the tiny model) is not a percentage: it gets its own panel, so the
    % panel keeps its 0-100 scale; every bar is labelled; each task with a chance level has a
    dashed mark at it; the chart has a title."""
    from dragonfly_eval.leaderboard.suite import load_suite

    suite = load_suite()
    table = build_table([MINI_BASELINE], suite, ["mini"])
    fig = figure(table)
    try:
        assert fig.get_suptitle() == "Leaderboard: mini (headline scores)"
        panels = {ax.get_ylabel(): ax for ax in fig.axes}
        assert set(panels) == {"score (%)", "CIDEr x100", "nats x100"}
        percent = panels["score (%)"]
        ticks = [t.get_text() for t in percent.get_xticklabels()]
        assert "Mini caption (CIDEr)" not in ticks and len(ticks) == 7
        assert percent.get_ylim()[1] < 150  # not stretched to the CIDEr value
        assert [t.get_text() for t in panels["CIDEr x100"].get_xticklabels()] == [
            "Mini caption (CIDEr)"
        ]
        (row,) = table.rows
        assert sorted(float(t.get_text()) for t in percent.texts) == sorted(
            round(row.values[c.key], 1) for c in table.columns if c.axis == "score (%)"
        )
        chances = [c.chance for c in table.columns if c.chance is not None]
        marks = [seg[0][1] for coll in percent.collections for seg in coll.get_segments()]
        assert sorted(marks) == sorted(chances) and len(chances) == 7
    finally:
        plt.close(fig)


def test_the_zoom_ablation_chart_shows_each_setting_with_its_interval_and_chance(tmp_path):
    from dragonfly_eval.leaderboard.ablate import build_ablation
    from dragonfly_eval.leaderboard.board.plot import CHANCE_STYLE, ablation_figure, plot_ablation
    from dragonfly_eval.leaderboard.suite import load_suite

    files = list(MINI_BASELINE.glob("*_results.json"))
    ablation = build_ablation({"full": files, "low": files}, load_suite())
    fine = [b for b in ablation.benchmarks if b.key == "mini_fine"]
    ablation = type(ablation)(ablation.zooms, ablation.models, tuple(fine))
    fig = ablation_figure(ablation)
    try:
        (ax,) = fig.axes
        assert ax.get_title() == "Mini fine detail (zoom-in)"
        assert [t.get_text().splitlines()[0] for t in ax.get_xticklabels()] == [
            "zoom=full",
            "zoom=low",
        ]
        chance = [line for line in ax.lines if line.get_color() == CHANCE_STYLE["color"]]
        assert [line.get_ydata()[0] for line in chance] == [25.0]
        assert "Zoom-in test" in fig.get_suptitle()
    finally:
        plt.close(fig)
    _assert_png(plot_ablation(ablation, tmp_path / "zoom.png"))
