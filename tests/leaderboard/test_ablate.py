"""`dragonfly-eval ablate`: one run per zoom setting, then the ablation table."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from dragonfly_eval.leaderboard.ablate import (
    AblateError,
    build_ablation,
    parse_zooms,
    render_ablation_markdown,
    with_zoom,
)
from dragonfly_eval.runner import cli as harness_cli
from tests.leaderboard.test_regress import run_cli
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


def test_bad_options_exit_2_before_any_run(monkeypatch, capsys):
    def no_run(*args, **kwargs):
        raise AssertionError("ran lmms-eval")

    monkeypatch.setattr(harness_cli, "run_lmms_eval", no_run)
    argv = ["ablate", "--model_args", "pretrained=x", "--tasks", TASK, "--zoom", "low,wide"]
    assert run_cli(argv) == 2
    assert "unknown zoom setting(s) wide" in capsys.readouterr().err


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


def test_a_failed_run_stops_the_ablation_with_its_exit_code(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(harness_cli, "preflight_problems", lambda extra, trust=False: [])
    monkeypatch.setattr(harness_cli, "run_lmms_eval", lambda extra, out, *a, **kw: (1, []))
    argv = ["ablate", "--model_args", "pretrained=dragonfly-tiny", "--tasks", TASK]
    argv += ["--zoom", "low,full"]
    assert run_cli([*argv, "--output_path", str(tmp_path)]) == 1
    assert "the run with zoom=low failed (exit 1)" in capsys.readouterr().err


@pytest.mark.slow
def test_ablate_runs_the_mini_suite_once_per_zoom(tmp_path, offline_env):
    out = tmp_path / "ablation"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "dragonfly_eval.cli",
            "ablate",
            "--model_args",
            "pretrained=dragonfly-tiny,device=cpu,batch_size=2",
            "--tasks",
            "dragonfly_mini_vqa,dragonfly_mini_vqa_nll",
            "--zoom",
            "low,full",
            "--limit",
            "4",
            "--output_path",
            str(out),
        ],
        cwd=tmp_path,
        env=offline_env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for folder in ("zoom_low", "zoom_full"):
        (results,) = (out / folder).rglob("*_results.json")
        config = json.loads(results.read_text())["config"]
        assert f"zoom={folder.removeprefix('zoom_')}" in config["model_args"]
        assert len(list(results.parent.glob("*_samples_dragonfly_mini_vqa*.jsonl"))) == 2
    lines = done.stdout.splitlines()
    assert lines[0] == "| Zoom | Positions per image (v1 / v2) | Mini VQA | Mini answer loss |"
    assert re.fullmatch(
        r"\| low \| 51 / 578 \| \d+\.\d ± \d+\.\d \| \d+\.\d ± \d+\.\d \|", lines[2]
    )
    assert lines[3].startswith("| full | 1479 / 2098 | ")
    assert re.search(
        r"- Mini answer loss: \d of 4 documents scored better with zoom=full", done.stdout
    )
    # `diff` of the two zoom runs agrees with the ablation's count for the answer loss
    better = int(
        re.search(r"- Mini answer loss: (\d) of 4 documents scored better", done.stdout).group(1)
    )
    page = tmp_path / "diff.html"
    diffed = subprocess.run(
        [sys.executable, "-m", "dragonfly_eval.cli", "diff", str(out / "zoom_low")]
        + [str(out / "zoom_full"), "--html", str(page)],
        env=offline_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert diffed.returncode == 0, diffed.stderr[-3000:]
    loss = diffed.stdout[diffed.stdout.index("dragonfly_mini_vqa_nll") :]
    assert re.search(rf"4 documents in both runs: {better} gained, \d lost", loss), diffed.stdout
    assert "dragonfly_mini_vqa_nll" in page.read_text() and "<script" not in page.read_text()


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
