"""`dragonfly-eval demo --model dragonfly_vllm` runs the mini suite on vLLM (float32, the CPU)
with the embedded model's answers on this project's engine, document by document, and the same
leaderboard; the zoom-in test shows on both engines."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.on_vllm.vllm_kit import NEEDS_VLLM

pytestmark = [pytest.mark.slow, pytest.mark.vllm, NEEDS_VLLM]
FINE = "dragonfly_mini_fine"
MODELS = ("dragonfly", "dragonfly_vllm")
RUN_DATE = re.compile(r"\| \d{4}-\d{2}-\d{2} [^|]*\|")


@pytest.fixture(scope="module")
def demos(tmp_path_factory, engine_env) -> dict[str, Path]:
    """The demo's output folder on each engine."""
    folders = {}
    for model in MODELS:
        out = tmp_path_factory.mktemp(model)
        done = subprocess.run(
            [sys.executable, "-m", "dragonfly_eval.cli", "demo", "--output_path", str(out)]
            + ["--model", model],
            cwd=out,
            env=engine_env,
            capture_output=True,
            text=True,
            timeout=1800,
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        folders[model] = out
    return folders


def _samples(out: Path) -> dict[tuple[str, str], dict[int, dict]]:
    """Every logged sample of a demo, by (its run's folder, task) and doc_id."""
    found = {}
    for path in out.rglob("*_samples_*.jsonl"):
        task = path.stem.split("_samples_", 1)[1]
        run = path.relative_to(out).parts[0]  # results/ (the suite) or zoom_low/
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        found[(run, task)] = {row["doc_id"]: row for row in rows}
    return found


def _likelihoods(resps: list) -> list[tuple[float, str]] | None:
    """A loglikelihood answer as (loss, greedy) per continuation (lmms-eval logs one pair flat,
    several as a list of pairs); None for a generated answer."""
    if resps and all(isinstance(pair, list) for pair in resps):
        return [(float(loss), str(greedy)) for loss, greedy in resps]
    if len(resps) == 2 and str(resps[1]) in ("True", "False"):
        return [(float(resps[0]), str(resps[1]))]
    return None


def _scores(out: Path, file: str) -> list[str]:
    """The table rows of one of the demo's markdown files, without their run dates."""
    rows = [line for line in (out / file).read_text().splitlines() if line.startswith("| ")]
    return [RUN_DATE.sub("| |", row) for row in rows]


def _score(out: Path, run: str, task: str, metric: str) -> float:
    (results,) = (out / run / "dragonfly-tiny").glob("*_results.json")
    return float(json.loads(results.read_text())["results"][task][metric])


def test_vllm_answers_every_demo_document_as_the_hf_engine_does(demos):
    hf, vllm = _samples(demos["dragonfly"]), _samples(demos["dragonfly_vllm"])
    assert sorted(hf) == sorted(vllm) and ("zoom_low", FINE) in hf
    for key, rows in hf.items():
        assert sorted(vllm[key]) == sorted(rows), key
        for doc_id, row in rows.items():
            ours, theirs = vllm[key][doc_id]["filtered_resps"], row["filtered_resps"]
            expected = _likelihoods(theirs)
            if expected is None:  # a generated answer
                assert ours == theirs, (key, doc_id)
                continue
            got = _likelihoods(ours)
            assert got is not None and [g for _, g in got] == [g for _, g in expected], (
                key,
                doc_id,
            )
            losses, reference = [loss for loss, _ in got], [loss for loss, _ in expected]
            assert losses.index(min(losses)) == reference.index(min(reference)), (key, doc_id)
            assert losses == pytest.approx(reference, abs=1e-4), (key, doc_id)


def test_the_demo_leaderboard_and_zoom_table_are_the_same_on_both_engines(demos):
    for file in ("leaderboard.md", "zoom.md"):
        rows = _scores(demos["dragonfly"], file)
        assert any("dragonfly-tiny" in row or "| full |" in row for row in rows), file
        assert _scores(demos["dragonfly_vllm"], file) == rows, file


def test_the_zoom_in_test_shows_on_both_engines(demos):
    metric = "exact_match,none"
    for model, out in demos.items():
        full, low = _score(out, "results", FINE, metric), _score(out, "zoom_low", FINE, metric)
        assert full >= low + 0.25, (model, full, low)
