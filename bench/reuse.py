"""Image reuse: 24 questions over 4 images with the embedded tiny model, reuse off vs on.

Off: every request encodes its image and prefills its whole image prefix. On: each distinct image
is encoded once and the KV cache of its image prefix (2098 positions) is shared by all questions
on it (engine settings image_cache and prefix_cache). Answers must be identical.

    python bench/reuse.py [--batch-size 8]
"""

from __future__ import annotations

import argparse
import time

import torch
from common import synthetic_image

from dragonfly_eval.engine import Engine, EngineSettings, GenRequest, GenSettings
from dragonfly_eval.modeling import DragonflyProcessor
from dragonfly_eval.modeling.loading import load_dragonfly

QUESTIONS = [
    "Is there a red circle in the image? Please answer yes or no.",
    "What is written on the sign? Answer the question using a single word or phrase.",
    "How many shapes are there?",
    "What is the title of the document?",
    "Describe the image in detail.",
    "What is the value of the tallest bar? Answer with a single word.",
]
SIZES = [(640, 480), (1024, 768), (500, 1200), (2500, 1700)]
SETTINGS = GenSettings(max_new_tokens=8, until=("\n\n",))


def build_requests(n_images: int = 4) -> list[GenRequest]:
    """len(QUESTIONS) generation requests per image, interleaved."""
    images = [synthetic_image(w, h, seed=i) for i, (w, h) in enumerate(SIZES[:n_images])]
    return [
        GenRequest(question, [image], SETTINGS, "bench", q * len(images) + i)
        for q, question in enumerate(QUESTIONS)
        for i, image in enumerate(images)
    ]


def timed_run(engine: Engine, requests: list[GenRequest]) -> tuple[float, list[str]]:
    """Seconds and answers of one generate call over all requests."""
    start = time.perf_counter()
    answers = engine.generate(requests)
    return time.perf_counter() - start, answers


def tiny_engine(batch_size: int, reuse: bool) -> Engine:
    """The embedded tiny model on the CPU, with image and prefix reuse on or off."""
    model = load_dragonfly("dragonfly-tiny", dtype="float32", device=torch.device("cpu"))
    processor = DragonflyProcessor.from_pretrained("dragonfly-tiny")
    settings = EngineSettings(batch_size=batch_size, image_cache=reuse, prefix_cache=reuse)
    return Engine(model, processor, settings)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args(argv)

    requests = build_requests()
    off = tiny_engine(args.batch_size, reuse=False)
    on = tiny_engine(args.batch_size, reuse=True)
    for engine in (off, on):
        engine.generate(requests[:1])  # warm-up (first-call allocations, thread start)
        for store in (engine.caches.embeddings, engine.caches.prefixes):
            if store is not None:
                store.clear()
        engine.caches.prefills = 0

    off_s, off_answers = timed_run(off, requests)
    on_s, on_answers = timed_run(on, requests)
    identical = off_answers == on_answers
    print(f"requests: {len(requests)} over {len(SIZES)} images, batch size {args.batch_size}")
    print(f"reuse off: {off_s:.2f} s ({off_s / len(requests) * 1e3:.0f} ms/request)")
    print(
        f"reuse on:  {on_s:.2f} s ({on_s / len(requests) * 1e3:.0f} ms/request), "
        f"{on.caches.prefills} image prefixes prefilled"
    )
    print(
        f"SUMMARY reuse: off {off_s:.2f} s, on {on_s:.2f} s, {off_s / on_s:.2f}x faster, "
        f"answers identical: {identical} ({len(requests)} requests, {len(SIZES)} images, "
        f"{torch.get_num_threads()} torch threads)"
    )
    return 0 if identical else 1


if __name__ == "__main__":
    raise SystemExit(main())
