"""Suite cost on paper: GPU-hours of dragonfly_general, _caption and _med on one and on 8 GPUs.

A request costs the work on its image (41 crops through the tower, then the 2,098-position image
prefix through the LLM) plus the work on its question (a few dozen more prompt positions and the
answer's tokens). With image reuse (the harness's `image_cache` + `prefix_cache`), an image asked
several questions (POPE: 9,000 questions over 500 images) pays its image work once. The per-request
figures default to the H100 measurement recorded in docs/performance.md (6.4 samples/s at batch
32, 8 new tokens, 46.2 TFLOP per sample of which vision 15.0 and prefill 31.0); `bench/throughput.py
--profile` prints the same three inputs measured on the machine at hand. 8 GPUs run lmms-eval's data
parallel (each rank a slice of every task), so the time divides by 8 up to the slowest slice.

    python bench/suite_cost.py [--samples-per-s 6.4] [--image-share 0.98] [--decode-ms-per-token 0.8]
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

MEASURED_NEW_TOKENS = 8  # new tokens per request in the measurement the figures come from
PROMPT_POSITIONS = 2135  # positions of the measured prompt (bench/throughput.py's question)
IMAGE_POSITIONS = 2098  # of which the image block (v2: 577 + 40 x 37 tokens + separators)
# The H100 run in docs/performance.md: vision 15.0 TFLOP + prefill 31.0 TFLOP of a 46.2 TFLOP sample.
DEFAULT_IMAGE_SHARE = (15.0 + 31.0 * IMAGE_POSITIONS / PROMPT_POSITIONS) / 46.2
DEFAULT_SAMPLES_PER_S = 6.4  # docs/performance.md: 6.59 and 6.35 samples/s on one H100
# Assumed, not measured: one decode step of a batch of 32 on an H100 (8B weights read once,
# about 25 ms with transformers' generate loop) shared by its 32 samples.
DEFAULT_DECODE_MS_PER_TOKEN = 25.0 / 32


@dataclass(frozen=True)
class Benchmark:
    """One benchmark's published size: questions, distinct images, typical answer length."""

    suite: str
    name: str
    questions: int
    images: int
    answer_tokens: int  # typical generated tokens (an assumption: answers stop at end of turn)
    source: str


# Sizes of the evaluation splits the task YAMLs use (task_yaml/); a source marked "not
# re-checked" was written from the card or paper as remembered, so check it before quoting. Where a source gives only the
# question count, images = questions (no reuse assumed).
BENCHMARKS = (
    Benchmark(
        "general",
        "AI2D (test)",
        3088,
        3088,
        2,
        "lmms-lab/ai2d dataset card: test 3,088 (not re-checked against the source here)",
    ),
    Benchmark(
        "general",
        "ScienceQA-IMG (test)",
        2017,
        2017,
        2,
        "lmms-lab/ScienceQA dataset card, ScienceQA-IMG test: 2,017 (not re-checked against the source here)",
    ),
    Benchmark(
        "general",
        "MMMU (val)",
        900,
        900,
        16,
        "lmms-lab/MMMU dataset card: validation 900 (not re-checked against the source here)",
    ),
    Benchmark(
        "general",
        "MM-Vet",
        218,
        200,
        150,
        "MM-Vet paper (Yu et al. 2023): 218 questions on 200 images (not re-checked against the source here)",
    ),
    Benchmark(
        "general",
        "POPE (adv+pop+random)",
        9000,
        500,
        2,
        "POPE paper (Li et al. 2023), COCO setting: 3 x 3,000 questions on 500 images (not re-checked against the source here)",
    ),
    Benchmark(
        "general",
        "MME",
        2374,
        1187,
        2,
        "lmms-lab/MME dataset card: test 2,374 (two yes/no questions per image) (not re-checked against the source here)",
    ),
    Benchmark(
        "general",
        "MMBench-EN (dev)",
        4329,
        4329,
        2,
        "lmms-lab/MMBench dataset card: en dev 4,329 (not re-checked against the source here)",
    ),
    Benchmark(
        "general",
        "TextVQA (val)",
        5000,
        3166,
        4,
        "lmms-lab/textvqa dataset card: validation 5,000; TextVQA paper: 3,166 val images",
    ),
    Benchmark(
        "general", "ChartQA (test)", 2500, 2500, 4, "lmms-lab/ChartQA dataset card: test 2,500"
    ),
    Benchmark(
        "general",
        "DocVQA (val)",
        5349,
        1286,
        6,
        "lmms-lab/DocVQA dataset card: validation 5,349; DocVQA paper: 1,286 val images (not re-checked against the source here)",
    ),
    Benchmark(
        "caption",
        "COCO 2017 caption (val)",
        5000,
        5000,
        20,
        "lmms-lab/COCO-Caption2017 dataset card: val 5,000 (not re-checked against the source here)",
    ),
    Benchmark(
        "caption",
        "Flickr30k (test)",
        31784,
        31784,
        20,
        "lmms-lab/flickr30k dataset card: test 31,784 (not re-checked against the source here)",
    ),
    Benchmark(
        "caption",
        "NoCaps (val)",
        4500,
        4500,
        20,
        "lmms-lab/NoCaps dataset card: validation 4,500 (not re-checked against the source here)",
    ),
    Benchmark(
        "caption",
        "TextCaps (val)",
        3166,
        3166,
        20,
        "lmms-lab/TextCaps dataset card: val 3,166 (not re-checked against the source here)",
    ),
    Benchmark(
        "med",
        "VQA-RAD (test)",
        451,
        203,
        4,
        "flaviagiammarino/vqa-rad dataset card: test 451; VQA-RAD paper: 203 test images",
    ),
    Benchmark(
        "med",
        "SLAKE (test, English)",
        1061,
        96,
        4,
        "SLAKE paper (Liu et al. 2021): English test 1,061 questions on 96 images (not re-checked against the source here)",
    ),
    Benchmark(
        "med",
        "Path-VQA (test)",
        6719,
        858,
        4,
        "flaviagiammarino/path-vqa dataset card: test 6,719; PathVQA paper: 858 test images",
    ),
    Benchmark(
        "med",
        "ROCO radiology (test)",
        8176,
        8176,
        30,
        "eltorio/ROCO-radiology dataset card: test 8,176",
    ),
)


@dataclass(frozen=True)
class RequestCost:
    """Seconds of one GPU per request, split into the image's share and the question's."""

    samples_per_s: float = DEFAULT_SAMPLES_PER_S
    image_share: float = DEFAULT_IMAGE_SHARE
    decode_s_per_token: float = DEFAULT_DECODE_MS_PER_TOKEN / 1e3

    def __post_init__(self) -> None:
        if self.samples_per_s <= 0 or not 0 <= self.image_share <= 1 or self.decode_s_per_token < 0:
            raise ValueError(
                "samples/s must be > 0, the image share within 0..1 and the decode cost >= 0 "
                f"(got {self.samples_per_s}, {self.image_share}, {self.decode_s_per_token})"
            )

    @property
    def image_s(self) -> float:
        return self.image_share / self.samples_per_s

    def question_s(self, answer_tokens: int) -> float:
        """A question's own seconds: the rest of the measured request, with the measured
        decode length replaced by `answer_tokens`."""
        measured = (1 - self.image_share) / self.samples_per_s
        extra = (answer_tokens - MEASURED_NEW_TOKENS) * self.decode_s_per_token
        return max(measured + extra, 0.0)

    def seconds(self, bench: Benchmark, reuse: bool) -> float:
        """GPU seconds of a whole benchmark on one GPU."""
        images = bench.images if reuse else bench.questions
        return images * self.image_s + bench.questions * self.question_s(bench.answer_tokens)


def cost_table(cost: RequestCost) -> list[tuple[str, str, int, int, float, float]]:
    """(suite, benchmark, questions, images, hours without reuse, hours with reuse) per benchmark
    on one GPU, then one row per suite and one for everything (suite "total")."""
    rows = [
        (
            b.suite,
            b.name,
            b.questions,
            b.images,
            cost.seconds(b, False) / 3600,
            cost.seconds(b, True) / 3600,
        )
        for b in BENCHMARKS
    ]
    totals = []
    for suite in dict.fromkeys(b.suite for b in BENCHMARKS):
        part = [r for r in rows if r[0] == suite]
        totals.append((suite, f"dragonfly_{suite}", *_sums(part)))
    return rows + totals + [("total", "all three suites", *_sums(rows))]


def _sums(rows: list[tuple]) -> tuple[int, int, float, float]:
    return tuple(sum(r[k] for r in rows) for k in (2, 3, 4, 5))


def print_table(cost: RequestCost, gpus: int) -> None:
    """The GPU-hours table: one GPU and `gpus` GPUs with data parallel, without and with reuse."""
    print(
        f"per request: {1 / cost.samples_per_s:.3f} s at {cost.samples_per_s:.2f} samples/s, "
        f"image share {cost.image_share:.1%}, decode {cost.decode_s_per_token * 1e3:.2f} ms per "
        f"token per sample"
    )
    header = f"{'benchmark':26} {'questions':>9} {'images':>7} {'1 GPU h':>8} {'reuse h':>8}"
    print(f"{header} {f'{gpus} GPU h':>8} {f'{gpus} reuse h':>10}")
    for suite, name, questions, images, plain, reused in cost_table(cost):
        label = name if suite != "total" else name.upper()
        print(
            f"{label:26} {questions:9,d} {images:7,d} {plain:8.2f} {reused:8.2f} "
            f"{plain / gpus:8.2f} {reused / gpus:10.2f}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples-per-s", type=float, default=DEFAULT_SAMPLES_PER_S)
    parser.add_argument(
        "--image-share",
        type=float,
        default=DEFAULT_IMAGE_SHARE,
        help="share of a request's time spent on its image (tower + image prefix)",
    )
    parser.add_argument(
        "--decode-ms-per-token",
        type=float,
        default=DEFAULT_DECODE_MS_PER_TOKEN,
        help="GPU milliseconds per generated token per sample",
    )
    parser.add_argument("--gpus", type=int, default=8, help="GPUs of the data-parallel column")
    parser.add_argument("--sources", action="store_true", help="print each size's source")
    args = parser.parse_args(argv)
    if args.gpus < 1:
        parser.error("--gpus must be at least 1")
    cost = RequestCost(args.samples_per_s, args.image_share, args.decode_ms_per_token / 1e3)
    print_table(cost, args.gpus)
    if args.sources:
        for bench in BENCHMARKS:
            print(f"{bench.name}: {bench.source}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
