"""The vLLM engine hands vLLM the questions about one image one after the other, so that vLLM's
encoder cache (about one Dragonfly image) encodes each image once (bench/throughput.py's
image-reuse case measures what that saves)."""

from __future__ import annotations

from dragonfly_eval.engine import GenRequest, GenSettings
from dragonfly_eval.engine.prepare import Prepared
from dragonfly_eval.vllm.engine import by_images


def _item(doc_id: int, digests: list[str], error: str | None = None) -> Prepared:
    request = GenRequest("q", [], GenSettings(), "t", doc_id)
    return Prepared(request, [1, 2], digests, error=error)


def test_questions_about_the_same_images_go_next_to_each_other_in_first_seen_order():
    items = [
        _item(0, ["a"]),
        _item(1, ["b"]),
        _item(2, ["a"]),
        _item(3, []),
        _item(4, ["b"]),
        _item(5, ["a", "b"]),
        _item(6, ["a"]),
        _item(7, []),
    ]
    assert by_images(items) == [0, 2, 6, 1, 4, 3, 7, 5]


def test_failed_items_are_left_out():
    items = [_item(0, ["a"]), _item(1, ["a"], error="unreadable"), _item(2, ["a"])]
    assert by_images(items) == [0, 2]
