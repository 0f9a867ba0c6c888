"""The terminal view: readable at 100-160 columns, and markup in names printed as written."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from dragonfly_eval.leaderboard.board.table import build_table, grid
from dragonfly_eval.leaderboard.board.terminal import print_leaderboard
from dragonfly_eval.leaderboard.reference import default_reference_path, load_reference
from dragonfly_eval.leaderboard.suite import load_suite

POPE = ("dragonfly_pope_adv", "dragonfly_pope_pop", "dragonfly_pope_random")
GENERAL = {
    "dragonfly_ai2d": {"exact_match,flexible-extract": 0.6362},
    "dragonfly_scienceqa_img": {"exact_match,none": 0.7},
    "dragonfly_mmmu_val": {"mmmu_acc,none": 0.36},
    "dragonfly_mmvet": {"gpt_eval_score,none": 35.9},
    **{t: {"pope_f1_score,none": 0.91, "pope_accuracy,none": 0.9} for t in POPE},
    "dragonfly_mme": {"mme_perception_score,none": 1483.62, "mme_cognition_score,none": 301.4},
    "dragonfly_mmbench_en_dev": {"gpt_eval_score,none": 70.2},
    "dragonfly_textvqa_val": {"exact_match,none": 0.651},
    "dragonfly_chartqa": {"relaxed_overall,none": 0.5},
    "dragonfly_docvqa_val": {"anls,none": 0.8},
}
MODELS = (
    "togethercomputer/Llama-3-8B-Dragonfly-v1",
    "togethercomputer/Llama-3-8B-Dragonfly-Med-v1",
    "/data/checkpoints/run-17/checkpoint-5000",
)


def _render(table, width: int) -> list[str]:
    out = io.StringIO()
    print_leaderboard(table, Console(file=out, width=width, color_system=None))
    return out.getvalue().splitlines()


@pytest.mark.parametrize("width", [100, 120, 160])
def test_the_general_suite_fits_the_terminal_with_every_number_whole(write_run, tmp_path, width):
    for name in MODELS:
        write_run(name, "20240601_120000", GENERAL)
    reference = load_reference(default_reference_path())
    table = build_table([tmp_path / "out"], load_suite(), ["general"], reference)
    lines = _render(table, width)
    assert max(len(line) for line in lines) <= width
    _, cells = grid(table)
    numbers = {c.text for row in cells for c in row[2:]}
    numbers.discard("–")
    text = "\n".join(lines)
    for number in numbers:  # never folded over two lines or cut
        assert number in text, number
    table_rows = [line for line in lines if "1483.6" in line]
    assert len(table_rows) == len(MODELS)
    assert all("togethercomputer/" not in line for line in lines[: len(lines) // 2])
    assert "run date: Llama-3-8B-Dragonfly-v1: 2024-06-01 12:00:00 +08:00" in text


def test_names_with_markup_print_as_written(write_run, tmp_path):
    write_run("[/]oops", "20240601_120000", {"unmapped": {"acc,none": 1.0}})
    write_run("[red]x", "20240601_120000", GENERAL)
    table = build_table([tmp_path / "out"], load_suite(), ["general"])
    text = "\n".join(_render(table, 160))
    assert "[red]x" in text and "[/]oops" in text


def test_a_table_too_wide_for_the_console_is_split_and_loses_no_column():
    data = Path(__file__).parent / "data"
    mini = Path(__file__).parents[2] / "leaderboards" / "mini_baseline"
    table = build_table([mini, data / "lmms_eval_0_7_3_builtin"], load_suite(), ["mini", "general"])
    lines = _render(table, 100)
    assert max(len(line) for line in lines) <= 100
    text = "\n".join(lines)
    _, cells = grid(table)
    for value in {c.text for c in cells[0][2:]} - {"–"}:
        assert value in text, value
    assert text.count("dragonfly-tiny ") >= 3  # the model column repeats in each part
    assert "1012.4" in text and "88.2 (14/17)" in text  # MME and the average: the last columns
