import json
from io import StringIO

import pytest
from lmms_eval.api.instance import Instance
from PIL import Image
from reliability_helpers import results_file, run_cli
from rich.console import Console

from dragonfly_eval.harness.model import Dragonfly
from dragonfly_eval.paths import task_yaml_dir
from dragonfly_eval.runner.runfiles import RunFolder, finish_run, new_run_id


def _visual(doc):
    if doc["broken"]:
        raise OSError(f"cannot read image of {doc['name']}")
    return [Image.new("RGB", (40, 30), "red")]


def test_harness_logs_each_failed_request_as_it_happens(tmp_path):
    log = tmp_path / "failures.jsonl"
    model = Dragonfly(
        pretrained="dragonfly-tiny", device="cpu", zoom="low", failure_report=str(log)
    )
    docs = {i: {"broken": i == 1, "name": f"doc{i}"} for i in range(3)}
    model.task_dict = {"t": {"test": docs}}
    gen = {"until": ["\n\n"], "max_new_tokens": 2, "temperature": 0}
    answers = model.generate_until(
        [
            Instance(
                "generate_until",
                ("Question?", gen, _visual, i, "t", "test"),
                idx=0,
                metadata={"task": "t", "doc_id": i, "repeats": 1},
            )
            for i in docs
        ]
    )
    assert answers[1] == "" and answers[0] and answers[2]
    (line,) = log.read_text().splitlines()
    assert json.loads(line) == {
        "task": "t",
        "doc_id": 1,
        "reason": "OSError: cannot read image of doc1",
    }


def _run_with_failures(tmp_path, failures):
    run = RunFolder(tmp_path, new_run_id())
    run.folder.mkdir(parents=True)
    run.failure_log.write_text("".join(json.dumps(f) + "\n" for f in failures))
    return run


def test_finish_run_prints_the_table_and_writes_json_beside_the_results(tmp_path):
    failure = {"task": "dragonfly_x", "doc_id": 7, "reason": "OSError: truncated file"}
    run = _run_with_failures(tmp_path, [failure])
    results = tmp_path / "model" / "20250101_000000_results.json"
    results.parent.mkdir()
    results.write_text("{}")
    text = StringIO()
    finish_run(run, [results], Console(file=text, width=200))
    written = json.loads((results.parent / "20250101_000000_failures.json").read_text())
    assert written == {"failures": [failure], "count": 1}
    table = text.getvalue()
    assert all(word in table for word in ("dragonfly_x", "7", "OSError: truncated file"))


@pytest.mark.parametrize("wrote_results", [True, False])
def test_no_failure_is_announced_only_for_a_run_that_wrote_results(tmp_path, wrote_results):
    run = _run_with_failures(tmp_path, [])
    results = tmp_path / "20250101_000000_results.json"
    results.write_text("{}")
    text = StringIO()
    finish_run(run, [results] if wrote_results else [], Console(file=text, width=200))
    assert ("No request failed." in text.getvalue()) is wrote_results


@pytest.mark.slow
def test_run_reports_documents_whose_visual_raised(tmp_path, cli_env):
    images = task_yaml_dir() / "mini" / "data" / "images"
    records = [
        {"question": "Value?", "answer": "1", "type": "t", "image_path": str(images / name)}
        for name in ("chart_00.png", "missing.png", "chart_01.png")
    ]
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "docs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    chart = (task_yaml_dir() / "mini" / "chart.yaml").read_text()
    (tasks / "broken.yaml").write_text(
        chart.replace("dragonfly_mini_chart", "dragonfly_broken_chart").replace(
            "data/chart.jsonl", str(tasks / "docs.jsonl")
        )
    )
    out = tmp_path / "out"
    done = run_cli(out, cli_env, "--include_path", str(tasks), tasks="dragonfly_broken_chart")
    assert "empty answer because of an error: 1" in done.stderr
    report = results_file(out).with_name(
        results_file(out).name.replace("_results.json", "_failures.json")
    )
    (failure,) = json.loads(report.read_text())["failures"]
    assert failure["task"] == "dragonfly_broken_chart" and failure["doc_id"] == 1
    assert "missing.png" in failure["reason"] and "FileNotFoundError" in failure["reason"]


def test_a_reason_that_looks_like_markup_is_printed_as_text_and_the_json_written(tmp_path):
    reason = "OSError: cannot identify image file [/data/x.png] [bold]"
    run = _run_with_failures(tmp_path, [{"task": "t", "doc_id": 3, "reason": reason}])
    results = tmp_path / "model" / "20250101_000000_results.json"
    results.parent.mkdir()
    results.write_text("{}")
    out = StringIO()
    finish_run(run, [results], Console(file=out, width=200))
    assert reason in out.getvalue()
    written = json.loads(results.with_name("20250101_000000_failures.json").read_text())
    assert written["failures"][0]["reason"] == reason
