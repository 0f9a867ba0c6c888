"""`dragonfly-eval ablate` runs: every setting checked before the first run, a failed run stops
the ablation with its exit code, and one run per zoom setting feeds the ablation table."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from dragonfly_eval.cli import main
from dragonfly_eval.runner import start

TASK = "dragonfly_ai2d"


def test_bad_options_exit_2_before_any_run(monkeypatch, capsys):
    def no_run(*args, **kwargs):
        raise AssertionError("ran lmms-eval")

    monkeypatch.setattr(start, "run", no_run)
    argv = ["ablate", "--model_args", "pretrained=x", "--tasks", TASK, "--zoom", "low,wide"]
    assert main(argv) == 2
    assert "unknown zoom setting(s) wide" in capsys.readouterr().err


def test_a_failed_run_stops_the_ablation_with_its_exit_code(monkeypatch, tmp_path, capsys):
    def failed(plan, again=None):
        raise start.Stopped(1)

    monkeypatch.setattr(start, "task_problems", lambda tasks, trust=False: [])
    monkeypatch.setattr(start, "run", failed)
    argv = ["ablate", "--model_args", "pretrained=dragonfly-tiny", "--tasks", TASK]
    argv += ["--zoom", "low,full"]
    assert main([*argv, "--output_path", str(tmp_path)]) == 1
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
