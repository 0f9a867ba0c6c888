"""Peak memory of scoring: 4 long-prompt requests at Llama-3's vocabulary (128,256), on the CPU.

A small random Dragonfly v2 (tiny widths, full v2 image geometry: 2098 image positions per
sample) whose language model has Llama-3's vocabulary, scored through the engine in one batch
with the full sequence (no prefix cache). Logits are computed only where a continuation token
is predicted; the full-vocabulary alternative is printed beside it as arithmetic.

    python bench/score_memory.py [--prompt-words 40] [--batch 4]
"""

from __future__ import annotations

import argparse
import resource

import torch
from common import synthetic_image
from throughput import bench_processor, build_model

from dragonfly_eval.engine import Engine, EngineSettings, ScoreRequest
from dragonfly_eval.tiny.config import tiny_config

VOCAB = 128_256
TARGET_GB = 1.5


def peak_rss_gb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prompt-words", type=int, default=40)
    parser.add_argument("--batch", type=int, default=4)
    args = parser.parse_args(argv)

    config = tiny_config(VOCAB)
    model = build_model(config, torch.device("cpu"), torch.float32)
    processor = bench_processor(config)
    engine = Engine(
        model, processor, EngineSettings(batch_size=args.batch, prefix_cache=False, progress=False)
    )
    prompt = "Describe every part of the picture in detail, " * (args.prompt_words // 8)
    requests = [
        ScoreRequest(prompt, " a red square beside a blue circle", [synthetic_image(640, 480, i)])
        for i in range(args.batch)
    ]
    before = peak_rss_gb()
    scores = engine.score(requests)
    after = peak_rss_gb()

    positions = processor.layout_ids([processor.text_ids(prompt)], [1], padding_side="right")[
        "input_ids"
    ].shape[1]
    full_gb = 2 * args.batch * positions * VOCAB * 4 / 2**30  # float32 logits + log_softmax
    print(f"vocabulary {VOCAB:,}, batch {args.batch}, ~{positions} positions per sample")
    print(f"scores: {[round(loss, 3) for loss, _ in scores]}")
    print(f"peak RSS before scoring {before:.2f} GB, after {after:.2f} GB (target < {TARGET_GB})")
    print(f"full-vocabulary logits at every position would take ~{full_gb:.1f} GB more")
    print(
        f"SUMMARY score_memory: peak {after:.2f} GB for {args.batch} requests of ~{positions} "
        f"positions at vocabulary {VOCAB:,} ({'within' if after < TARGET_GB else 'OVER'} "
        f"{TARGET_GB} GB)"
    )
    return 0 if after < TARGET_GB else 1


if __name__ == "__main__":
    raise SystemExit(main())
