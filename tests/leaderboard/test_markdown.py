"""Markdown rendering against hand-written golden text."""

from __future__ import annotations

from dragonfly_eval.leaderboard.board.markdown import render_markdown
from dragonfly_eval.leaderboard.board.table import build_table
from dragonfly_eval.leaderboard.reference import ReferenceRow

POPE = ("dragonfly_pope_adv", "dragonfly_pope_pop", "dragonfly_pope_random")

GOLDEN = """\
| Model | Run date | AI2D | POPE | MME (points) | Avg (row's % scores; points excluded) |
| :--- | :--- | ---: | ---: | ---: | ---: |
| org/alpha | 2024-06-01 12:00:00 +08:00 | 61.2 | 82.0 | **1450.0** | 71.6 |
| org/beta | 2024-06-02 09:00:00 +08:00 | 58.7 | – | **1450.0** | 58.7 (1/2) |
| Paper model \\| 7B † | published | **63.6** | **91.2** | – | **77.4** |

Reported beside the headline scores:

| Model | Run date | POPE accuracy | MME cognition |
| :--- | :--- | ---: | ---: |
| org/alpha | 2024-06-01 12:00:00 +08:00 | 81.0 | 300.0 |

† Published numbers, not run by this project. Paper model \\| 7B: Blog (https://example.org/blog).

Other tasks (in the results, not in the suite mapping):

| Model | Task | Run date | Metrics (raw) |
| :--- | :--- | :--- | :--- |
| org/beta | ok_vqa | 2024-06-02 09:00:00 +08:00 | exact_match,none 0.5 |
| org/beta | submission_only | 2024-06-02 09:00:00 +08:00 | no numeric metrics |
"""


def test_markdown_matches_the_golden_text(suite, write_run, tmp_path):
    write_run(
        "org/alpha",
        "20240601_120000",
        {
            "dragonfly_ai2d": {"exact_match,flexible-extract": 0.612},
            "dragonfly_mme": {
                "mme_perception_score,none": 1450.0,
                "mme_cognition_score,none": 300.0,
            },
            **{
                t: {"pope_f1_score,none": f1, "pope_accuracy,none": acc}
                for t, f1, acc in zip(POPE, (0.80, 0.82, 0.84), (0.79, 0.81, 0.83), strict=True)
            },
        },
    )
    write_run(
        "org/beta",
        "20240602_090000",
        {
            "dragonfly_ai2d": {"exact_match,flexible-extract": 0.587},
            "dragonfly_mme": {"mme_perception_score,none": 1450.0},
            "ok_vqa": {"exact_match,none": 0.5},
            "submission_only": {"submission,none": []},
        },
    )
    refs = [
        ReferenceRow(
            "Paper model | 7B", "Blog (https://example.org/blog)", {"ai2d": 63.6, "pope": 91.2}, {}
        )
    ]
    table = build_table([tmp_path / "out"], suite, None, refs)
    assert render_markdown(table) == GOLDEN
