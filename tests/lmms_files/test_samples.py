"""Sample logs: their names beside a results file, and how documents are told apart."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dragonfly_eval.lmms_files.samples import read_metric_log, results_file_of, sample_log_path


@pytest.mark.parametrize(
    "results_file",
    [
        Path("out/org__m/20240101_000000_results.json"),
        Path("out/org__m/run7_results.json"),  # no date prefix: the name before _results
    ],
)
@pytest.mark.parametrize("task", ["dragonfly_ai2d", "coco_samples_val"])
def test_results_file_of_is_the_inverse_of_sample_log_path(results_file, task):
    assert results_file_of(sample_log_path(results_file, task)) == results_file


def test_a_dated_results_file_with_a_suffix_shares_its_logs_date_prefix():
    log = sample_log_path(Path("r/20240101_000000_extra_results.json"), "t")
    assert log == Path("r/20240101_000000_samples_t.jsonl")
    assert results_file_of(log) == Path("r/20240101_000000_results.json")


def test_document_fields_are_compared_as_python_compares_them(tmp_path):
    def log(name: str, targets: list) -> object:
        path = tmp_path / name
        lines = [{"doc_id": i, "target": t, "acc": 1.0} for i, t in enumerate(targets)]
        path.write_text("".join(json.dumps(line) + "\n" for line in lines))
        return read_metric_log(path, "dragonfly_ai2d", "acc,none")

    # 1 == 1.0 and key order does not matter; "1" is not 1, and 2**60 + 1 is not 2**60
    a = log("a.jsonl", [1, {"x": 1, "y": 2}, "1", 2**60, None])
    b = log("b.jsonl", [1.0, {"y": 2, "x": 1}, 1, 2**60 + 1, None])
    same = (a.digests == b.digests).all(axis=1).tolist()
    assert same == [True, True, False, False, True]
