"""`dragonfly-eval ablate`: one run per zoom setting, then the ablation table."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from dragonfly_eval.leaderboard.ablate import (
    AblateError,
    build_ablation,
    parse_zooms,
    render_ablation_markdown,
    with_zoom,
)
from tests.leaderboard.test_regress_samples import sample_lines, write_samples

TASK = "dragonfly_ai2d"
METRIC = "exact_match,flexible-extract"
REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("low,huge", "unknown zoom setting(s) huge"),
        ("low,low", "at least two different settings"),
        ("full", "at least two different settings"),
    ],
)
def test_bad_zoom_lists_are_refused(raw, message):
    with pytest.raises(AblateError, match=re.escape(message)):
        parse_zooms(raw)


def test_zoom_is_added_to_model_args_and_never_set_twice():
    assert (
        with_zoom("pretrained=x,device=cpu", "low+medium")
        == "pretrained=x,device=cpu,zoom=low+medium"
    )
    with pytest.raises(AblateError, match="must not set zoom"):
        with_zoom("pretrained=x,zoom=full", "low")


def _zoom_run(write_run, root, scores, stderr):
    path = write_run(
        "dragonfly-tiny", "20240101_000000", {TASK: {METRIC: sum(scores) / 4}}, root=root
    )
    payload = json.loads(path.read_text())
    payload["results"][TASK]["exact_match_stderr,flexible-extract"] = stderr
    path.write_text(json.dumps(payload))
    write_samples(path, TASK, sample_lines(scores))
    return path


def test_the_table_has_a_row_per_setting_and_counts_documents_only_full_got(
    tmp_path, write_run, suite
):
    written = {
        "low": [_zoom_run(write_run, tmp_path / "low", [1.0, 0.0, 0.0, 0.0], 0.25)],
        "full": [_zoom_run(write_run, tmp_path / "full", [1.0, 1.0, 1.0, 0.0], "N/A")],
    }
    markdown = render_ablation_markdown(build_ablation(written, suite))
    lines = markdown.splitlines()
    assert lines[0] == "| Zoom | Positions per image (v1 / v2) | AI2D |"
    assert lines[2] == "| low | 51 / 578 | 25.0 ± 49.0 |"
    assert lines[3] == "| full | 1479 / 2098 | 75.0 ± – |"
    assert "- AI2D: 2 of 4 documents scored better with zoom=full than with zoom=low" in markdown


def test_a_corpus_level_metric_gets_no_document_count(tmp_path, write_run, suite):
    task, metric = "dragonfly_coco2017_cap_val", "coco_CIDEr,none"
    written = {}
    for zoom in ("low", "full"):
        path = write_run(
            "dragonfly-tiny", "20240101_000000", {task: {metric: 0.5}}, root=tmp_path / zoom
        )
        lines = sample_lines([0.0, 0.0])
        for line in lines:
            line["coco_CIDEr"] = {"answer": ["a"], "pred": zoom}
        write_samples(path, task, lines)
        written[zoom] = [path]
    markdown = render_ablation_markdown(build_ablation(written, suite))
    assert (
        "- COCO: no per-document score to compare (a corpus-level metric); 2 documents" in markdown
    )
