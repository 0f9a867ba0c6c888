"""Sample-log names: the log of a task beside a results file, and the results file of a log."""

from __future__ import annotations

from pathlib import Path

import pytest

from dragonfly_eval.lmms_files.samples import results_file_of, sample_log_path


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
