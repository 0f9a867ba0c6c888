"""Image reuse: 24 questions over 4 images with the embedded tiny model, reuse off vs on.

Off: every request encodes its image and prefills its whole image prefix. On: each distinct image
is encoded once and the KV cache of its image prefix (2098 positions) is shared by all questions
on it (model_args image_cache and prefix_cache). Answers must be identical.

    python bench/reuse.py [--batch-size 8] [--repeats 1]
"""

from __future__ import annotations

import argparse
import time

import torch
from common import synthetic_image
from lmms_eval.api.instance import Instance

from dragonfly_eval.harness.model import Dragonfly

QUESTIONS = [
    "Is there a red circle in the image? Please answer yes or no.",
    "What is written on the sign? Answer the question using a single word or phrase.",
    "How many shapes are there?",
    "What is the title of the document?",
    "Describe the image in detail.",
    "What is the value of the tallest bar? Answer with a single word.",
]
SIZES = [(640, 480), (1024, 768), (500, 1200), (2500, 1700)]
GEN_KWARGS = {"until": ["\n\n"], "max_new_tokens": 8, "temperature": 0}


def build_requests(n_images: int = 4) -> tuple[list[Instance], dict]:
    """len(QUESTIONS) generate_until requests per image, interleaved, and their task_dict."""
    images = [synthetic_image(w, h, seed=i) for i, (w, h) in enumerate(SIZES[:n_images])]
    docs, requests = {}, []
    for q, question in enumerate(QUESTIONS):
        for i, image in enumerate(images):
            doc_id = q * len(images) + i
            docs[doc_id] = {"image": image}
            args = (question, GEN_KWARGS, lambda doc: [doc["image"]], doc_id, "bench", "test")
            meta = {"task": "bench", "doc_id": doc_id, "repeats": 1}
            requests.append(Instance("generate_until", args, idx=0, metadata=meta))
    return requests, {"bench": {"test": docs}}


def timed_run(model: Dragonfly, requests: list[Instance]) -> tuple[float, list[str]]:
    """Seconds and answers of one generate_until call over all requests."""
    start = time.perf_counter()
    answers = model.generate_until(requests)
    return time.perf_counter() - start, answers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args(argv)

    requests, task_dict = build_requests()
    common = {"pretrained": "dragonfly-tiny", "device": "cpu", "batch_size": args.batch_size}
    off = Dragonfly(**common, image_cache=False, prefix_cache=False)
    on = Dragonfly(**common, image_cache=True, prefix_cache=True)
    for model in (off, on):
        model.task_dict = task_dict
        model.generate_until(requests[:1])  # warm-up (first-call allocations, thread start)
        if model.prefix is not None:
            model.prefix.store.clear()
            model.prefix.prefills = 0
        model.image_cache.clear()

    off_s, off_answers = timed_run(off, requests)
    on_s, on_answers = timed_run(on, requests)
    identical = off_answers == on_answers
    print(f"requests: {len(requests)} over {len(SIZES)} images, batch size {args.batch_size}")
    print(f"reuse off: {off_s:.2f} s ({off_s / len(requests) * 1e3:.0f} ms/request)")
    print(
        f"reuse on:  {on_s:.2f} s ({on_s / len(requests) * 1e3:.0f} ms/request), "
        f"{on.prefix.prefills} image prefixes prefilled"
    )
    print(
        f"SUMMARY reuse: off {off_s:.2f} s, on {on_s:.2f} s, {off_s / on_s:.2f}x faster, "
        f"answers identical: {identical} ({len(requests)} requests, {len(SIZES)} images, "
        f"{torch.get_num_threads()} torch threads)"
    )
    return 0 if identical else 1


if __name__ == "__main__":
    raise SystemExit(main())
