"""Wall time and peak memory of `dragonfly-eval regress` on large sample logs, per test kind.

Builds a baseline and a current run of N documents (default 200,000) in a temporary folder, with
sample-log lines shaped like lmms-eval 0.7.3's (target, input, doc_hash, filtered_resps and the
metric values), and runs the gate once per kind in its own process:

- sign test: a 0/1 exact_match (mean) with 2% of the answers flipped;
- t-test: a per-document score in [0, 1] (mean), lowered by 0.01 on average;
- bootstrap: POPE's pope_f1_score (a corpus metric, lmms-eval's aggregation), 1,000 resamples.

    python bench/regress_scale.py [--docs 200000] [--bootstrap 1000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

NULL_HASH = "74234e98afe7498fb5daf1f36ac2d78acc339464f950703b8c019892f982b90b"
KINDS = {
    # kind: (task, metric)
    "sign test": ("dragonfly_ai2d", "exact_match"),
    "t-test": ("dragonfly_ai2d", "relaxed_overall"),
    "bootstrap": ("dragonfly_pope_adv", "pope_f1_score"),
}


def _values(kind: str, n: int, side: str, rng: np.random.Generator) -> list:
    if kind == "sign test":
        right = rng.random(n) < 0.7
        if side == "cur":
            right = right ^ (rng.random(n) < 0.02)
        return [float(r) for r in right]
    if kind == "t-test":
        score = rng.random(n)
        if side == "cur":
            score = np.clip(score - rng.normal(0.01, 0.05, n), 0, 1)
        return [float(s) for s in score]
    truth = rng.random(n) < 0.5
    wrong = rng.random(n) < (0.12 if side == "cur" else 0.1)
    pred = truth ^ wrong
    return [
        {
            "question_id": i,
            "score": float(p == t),
            "prediction": "yes" if p else "no",
            "ground_truth": "yes" if t else "no",
        }
        for i, (p, t) in enumerate(zip(pred, truth, strict=True))
    ]


def _aggregate(kind: str, values: list) -> float:
    if kind != "bootstrap":
        return float(np.mean(values))
    tp = sum(v["prediction"] == "yes" and v["ground_truth"] == "yes" for v in values)
    fp = sum(v["prediction"] == "yes" and v["ground_truth"] == "no" for v in values)
    fn = sum(v["prediction"] == "no" and v["ground_truth"] == "yes" for v in values)
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    return 2 * precision * recall / (precision + recall)


def write_side(root: Path, kind: str, side: str, n: int) -> Path:
    """One run: a results file and its sample log of n documents."""
    task, metric = KINDS[kind]
    values = _values(kind, n, side, np.random.default_rng(0 if side == "base" else 1))
    if kind != "bootstrap":  # the same answers on both sides where the score did not move
        values_base = _values(kind, n, "base", np.random.default_rng(0))
        values = values if side == "cur" else values_base
    folder = root / side / "org__m"
    folder.mkdir(parents=True)
    date = "20240101_000000"
    aggregation = "mean" if kind != "bootstrap" else "<function pope_aggregate_f1_score>"
    results = {
        "results": {task: {"alias": task, f"{metric},none": _aggregate(kind, values)}},
        "configs": {
            task: {"task": task, "metric_list": [{"metric": metric, "aggregation": aggregation}]}
        },
        "n-samples": {task: {"original": n, "effective": n}},
        "config": {"model": "dragonfly", "model_args": "pretrained=org/m", "limit": None},
        "date": date,
    }
    (folder / f"{date}_results.json").write_text(json.dumps(results))
    with open(folder / f"{date}_samples_{task}.jsonl", "w", encoding="utf-8") as handle:
        for i, value in enumerate(values):
            line = {
                "doc_id": i,
                "target": f"answer {i % 977}",
                "filtered_resps": "yes" if i % 3 else "answer",
                "token_counts": [None],
                "doc_hash": NULL_HASH,
                "input_media": [f"images/{i:06d}.png"],
                metric: value,
                "input": f"Question {i}: what does the picture show?\nAnswer with a single word.",
            }
            handle.write(json.dumps(line) + "\n")
    return folder / f"{date}_results.json"


def suite_file(root: Path) -> Path:
    benchmarks = {
        kind.replace(" ", "_"): {
            "name": kind,
            "task": task,
            "metric": f"{metric},none",
            "scale": 100,
        }
        for kind, (task, metric) in KINDS.items()
    }
    path = root / "suite.yaml"
    path.write_text(json.dumps({"suites": {k: [k] for k in benchmarks}, "benchmarks": benchmarks}))
    return path


# the gate in a child process that reports its own peak resident memory (Linux: KiB)
CHILD = """
import resource, sys
from dragonfly_eval.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
finally:
    print("PEAK", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
"""


def run_gate(
    base: Path, cur: Path, suite: Path, kind: str, bootstrap: int
) -> tuple[float, float, str]:
    """Wall seconds, peak resident MiB and the table row of one gate run in its own process."""
    argv = [
        "regress",
        "--baseline",
        str(base),
        "--current",
        str(cur),
        "--bootstrap",
        str(bootstrap),
    ]
    argv += ["--suite", kind.replace(" ", "_"), "--suite-file", str(suite)]
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", CHILD, *argv], capture_output=True, text=True)
    wall = time.perf_counter() - start
    peak = next(
        int(line.split()[1]) for line in done.stderr.splitlines() if line.startswith("PEAK")
    )
    rows = (
        line for line in done.stdout.splitlines() if line.replace("*", "").startswith(f"| {kind}")
    )
    row = next(rows, "")
    said = [line for line in done.stderr.splitlines() if not line.startswith("PEAK")]
    return wall, peak / 1024, row or "\n".join(said)[-300:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=200_000)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--kinds", default=",".join(KINDS))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="regress-scale-") as tmp:
        root = Path(tmp)
        suite = suite_file(root)
        print(f"{args.docs} documents per side, {args.bootstrap} bootstrap resamples")
        for kind in args.kinds.split(","):
            base = write_side(root / kind.replace(" ", "_"), kind, "base", args.docs)
            cur = write_side(root / kind.replace(" ", "_"), kind, "cur", args.docs)
            wall, peak, row = run_gate(base, cur, suite, kind, args.bootstrap)
            print(f"{kind:>10}: {wall:6.1f} s, peak {peak:6.0f} MiB  {row}")


if __name__ == "__main__":
    main()
