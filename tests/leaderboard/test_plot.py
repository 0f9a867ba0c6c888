"""The --plot chart is a real PNG that PIL decodes."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pytest
from PIL import Image

from dragonfly_eval.leaderboard.plot import figure, plot
from dragonfly_eval.leaderboard.reference import ReferenceRow
from dragonfly_eval.leaderboard.table import Column, Row, Table, build_table

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
        assert [t.get_text() for t in vqa_axes.texts] == ["0"]
        assert [t.get_text() for t in fig.axes[1].texts] == [""]
    finally:
        plt.close(fig)


def test_a_model_name_with_math_text_markers_is_drawn_as_written(tmp_path):
    columns = (Column("vqa", "Mini VQA", "%", True),)
    table = Table(("mini",), columns, (), (Row("a$\\frac{$b", {"vqa": 10.0}),))
    _assert_png(plot(table, tmp_path / "math.png"))
