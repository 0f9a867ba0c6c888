"""`dragonfly-eval leaderboard`: markdown to files and pipes, rich at a terminal, exit codes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from dragonfly_eval.cli import main as run_cli
from tests.lmms_files.conftest import results_payload

REAL_RUN = Path(__file__).parent / "data" / "lmms_eval_0_7_3"


def test_markdown_goes_to_stdout_when_it_is_not_a_terminal(suite_file, capsys):
    assert run_cli(["leaderboard", str(REAL_RUN), "--suite-file", str(suite_file)]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("| Model | Run date | AI2D | POPE | MME (points) |")
    assert (
        "| togethercomputer/Llama-3-8B-Dragonfly-v1 | 2024-06-01 12:00:00 +08:00 | **63.6** |"
        in out
    )  # ties the published 63.6
    assert "Dragonfly v1 (Llama-3-8B) †" in out  # the shipped reference numbers
    assert "ok_vqa_val2014" in out
    assert err == ""


def test_output_file_plot_and_summary(tmp_path, suite_file, capsys):
    out_md, out_png = tmp_path / "board" / "lb.md", tmp_path / "lb.png"
    argv = ["leaderboard", str(REAL_RUN), "--output", str(out_md), "--plot", str(out_png)]
    assert run_cli([*argv, "--suite-file", str(suite_file), "--no-reference"]) == 0
    text = out_md.read_text()
    assert text.startswith("| Model |") and "†" not in text
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out = capsys.readouterr().out
    assert out.startswith("1 model(s) run, 0 published row(s); 3 benchmark(s) (suite: general)")


def test_a_terminal_gets_a_rich_table_and_a_summary_line(suite_file, capsys, monkeypatch):
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert run_cli(["leaderboard", str(REAL_RUN), "--suite-file", str(suite_file)]) == 0
    out = capsys.readouterr().out
    assert "| :--- |" not in out and "───" in out  # a rich rule under the header, not markdown
    assert "other task: togethercomputer/Llama-3-8B-Dragonfly-v1 / ok_vqa_val2014" in out
    assert "published row(s)" in out


def test_empty_folder_and_missing_path_exit_2_with_the_reason(tmp_path, suite_file, capsys):
    (tmp_path / "empty").mkdir()
    assert run_cli(["leaderboard", str(tmp_path / "empty"), "--suite-file", str(suite_file)]) == 2
    assert "no lmms-eval results files" in capsys.readouterr().err
    assert run_cli(["leaderboard", str(tmp_path / "nope"), "--suite-file", str(suite_file)]) == 2
    assert "no such file or folder" in capsys.readouterr().err


def test_bad_inputs_beside_good_ones_are_skipped_and_reported(tmp_path, suite_file, capsys):
    bad = tmp_path / "x_results.json"
    bad.write_text("not json")
    argv = ["leaderboard", str(REAL_RUN), str(bad), "--suite-file", str(suite_file)]
    assert run_cli(argv) == 0
    out, err = capsys.readouterr()
    assert f"skipped {bad}: malformed JSON" in err
    assert "Skipped inputs:" in out and "malformed JSON" in out


def test_suite_option_picks_columns_and_rejects_unknown_names(suite_file, capsys):
    argv = ["leaderboard", str(REAL_RUN), "--suite-file", str(suite_file), "--no-reference"]
    assert run_cli([*argv, "--suite", "caption,med"]) == 0
    assert capsys.readouterr().out.startswith("| Model | Run date | COCO | VQA-RAD |")
    assert run_cli([*argv, "--suite", "bogus"]) == 2
    assert "unknown suite 'bogus'" in capsys.readouterr().err


def test_a_broken_reference_file_exits_2(tmp_path, suite_file, capsys):
    ref = tmp_path / "ref.yaml"
    ref.write_text("rows: []")
    argv = ["leaderboard", str(REAL_RUN), "--suite-file", str(suite_file), "--reference", str(ref)]
    assert run_cli(argv) == 2
    assert "'sources' must be a mapping" in capsys.readouterr().err


def test_runs_at_another_zoom_are_their_own_row_not_a_newer_run(tmp_path, suite_file, capsys):
    """A newer zoom=low run of the same checkpoint must not replace the full-zoom row: the zoom
    changes the answers, so the two runs are two rows, told apart by their label."""
    for name, date, args, score in [
        ("full", "20261201_100000", "pretrained=org/m,device=cpu,batch_size=4", 1.0),
        ("low", "20261201_110000", "pretrained=org/m,device=cpu,batch_size=4,zoom=low", 0.25),
        ("gpu", "20261201_120000", "pretrained=org/m,device=cuda,batch_size=8", 1.0),
    ]:
        payload = results_payload(
            "org/m", date, {"dragonfly_ai2d": {"exact_match,flexible-extract": score}}
        )
        payload["config"]["model_args"] = args
        (tmp_path / name).mkdir()
        (tmp_path / name / f"{date}_results.json").write_text(json.dumps(payload))
    argv = ["leaderboard", str(tmp_path), "--suite-file", str(suite_file), "--no-reference"]
    assert run_cli(argv) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| org/m")]
    # device and batch size do not change the answers: the GPU run is the full row's newer run
    assert rows == [
        "| org/m | 2026-12-01 12:00:00 +08:00 | **100.0** | – | – | 100.0 (1/2) |",
        "| org/m (zoom=low) | 2026-12-01 11:00:00 +08:00 | 25.0 | – | – | 25.0 (1/2) |",
    ]


def test_regress_tasks_keeps_only_the_benchmarks_of_those_tasks(suite_file, capsys):
    argv = ["regress", "--baseline", str(REAL_RUN), "--current", str(REAL_RUN)]
    argv += ["--suite-file", str(suite_file), "--exact"]
    assert run_cli([*argv, "--tasks", "dragonfly_ai2d"]) == 0
    out = capsys.readouterr().out
    assert "| AI2D |" in out and "POPE" not in out
    assert run_cli([*argv, "--tasks", "dragonfly_nosuch"]) == 2
    assert "--tasks dragonfly_nosuch: no benchmark" in capsys.readouterr().err
