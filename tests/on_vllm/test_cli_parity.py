"""`lmms-eval --model dragonfly_vllm` answers as `--model dragonfly` does, document by document,
on released-format v2 and v1 checkpoints no test has seen trained (float32, the CPU)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dragonfly_eval.lmms_files.results import read_run
from dragonfly_eval.paths import task_yaml_dir
from tests.on_vllm.vllm_kit import NEEDS_VLLM

pytestmark = [pytest.mark.slow, pytest.mark.vllm, NEEDS_VLLM]
GENERATION, LIKELIHOOD = "dragonfly_mini_chart", "dragonfly_mini_mc_ppl"
LIMIT = 3


def _lmms_eval(model: str, model_args: str, out: Path, env: dict, cwd: Path) -> dict:
    """Run lmms-eval's CLI; the logged samples of each task by doc_id, and under "cost" the
    run-cost record the leaderboard reads from the results file."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "lmms_eval",
            "--model",
            model,
            "--model_args",
            model_args,
            "--tasks",
            f"{GENERATION},{LIKELIHOOD}",
            "--include_path",
            str(task_yaml_dir()),
            "--limit",
            str(LIMIT),
            "--output_path",
            str(out),
            "--log_samples",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    samples = {}
    for task in (GENERATION, LIKELIHOOD):
        (path,) = out.rglob(f"*_samples_{task}.jsonl")
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        samples[task] = {row["doc_id"]: row for row in rows}
    (results,) = out.rglob("*_results.json")
    samples["cost"] = read_run(results).cost
    return samples


def _losses(row: dict) -> list[float]:
    return [float(loss) for loss, _ in row["filtered_resps"]]


@pytest.mark.parametrize("version", [2, 1], ids=["v2-41-crops", "v1-selection"])
def test_vllm_gives_the_hf_engines_answers_and_choices_per_document(
    version, released_checkpoint, engine_env, tmp_path
):
    folder = released_checkpoint(version)
    args = f"pretrained={folder},dtype=float32"
    hf = _lmms_eval("dragonfly", f"{args},device=cpu", tmp_path / "hf", engine_env, tmp_path)
    vllm = _lmms_eval(
        "dragonfly_vllm", f"{args},enforce_eager=true", tmp_path / "vllm", engine_env, tmp_path
    )

    assert sorted(vllm[GENERATION]) == sorted(hf[GENERATION]) == list(range(LIMIT))
    for doc_id, row in hf[GENERATION].items():
        answer = vllm[GENERATION][doc_id]["filtered_resps"]
        assert answer == row["filtered_resps"], doc_id
        assert answer  # random weights answer up to the token limit, never nothing

    assert sorted(vllm[LIKELIHOOD]) == sorted(hf[LIKELIHOOD])
    for doc_id, row in hf[LIKELIHOOD].items():
        ours, theirs = _losses(vllm[LIKELIHOOD][doc_id]), _losses(row)
        assert ours.index(min(ours)) == theirs.index(min(theirs)), doc_id
        assert ours == pytest.approx(theirs, abs=1e-4), doc_id
        assert vllm[LIKELIHOOD][doc_id]["acc"] == row["acc"]

    # each run records what it cost: every request answered (one generation per document, one
    # likelihood per choice), the generated tokens of the same answers, no CUDA device
    for engine, run in (("hf", hf), ("vllm", vllm)):
        cost = run["cost"]
        choices = sum(len(r["filtered_resps"]) for r in run[LIKELIHOOD].values())
        assert (cost.engine, cost.samples, cost.device_s) == (engine, LIMIT + choices, None)
        assert cost.wall_s > 0 and cost.samples_per_s == pytest.approx(cost.samples / cost.wall_s)
    assert hf["cost"].tokens_per_s * hf["cost"].wall_s == pytest.approx(
        vllm["cost"].tokens_per_s * vllm["cost"].wall_s
    )
