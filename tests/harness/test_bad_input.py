"""Bad documents and device out-of-memory: the affected request fails alone, visibly."""

import math
import re

import pytest
import torch
from harness_kit import Requests, doc_images, noise_image
from PIL import Image, ImageFile


def failing_visuals(doc):
    """doc_to_visual of a document whose images cannot be fetched."""
    if doc.get("broken"):
        raise RuntimeError("image server unreachable")
    return doc_images(doc)


@pytest.fixture
def bad_docs(tmp_path, monkeypatch):
    """Documents: doc_to_visual raises; an image that cannot be read; good text-only; a 0x0
    image."""
    # As lmms-eval's task module sets it: truncated files load zero-padded, not as errors.
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    png = tmp_path / "image.png"
    noise_image(41, (80, 80)).save(png)
    with Image.open(png) as unreadable:  # returned unloaded, its file closed: load fails
        pass
    kit = Requests()
    broken = kit.doc([], broken=True)
    closed = kit.doc([unreadable])
    good = kit.doc([])
    empty = kit.doc([Image.new("RGB", (0, 0))])
    return kit, {"broken": broken, "closed": closed, "good": good, "empty": empty}


def _warned(lines, task, doc_id):
    pattern = re.compile(rf"doc_id\D{{0,3}}{doc_id}\b")
    return any(
        line.startswith("WARNING") and task in line and pattern.search(line) for line in lines
    )


def test_failed_documents_get_empty_answers_and_warnings(v2_harness, bad_docs, log_lines):
    kit, ids = bad_docs
    kit.attach(v2_harness)
    reqs = [kit.gen("Describe it.", ids[name], doc_to_visual=failing_visuals) for name in ids]
    answers = dict(zip(ids, v2_harness.generate_until(reqs), strict=True))

    alone = v2_harness.generate_until([kit.gen("Describe it.", ids["good"])])
    assert answers["good"] == alone[0]
    for name in ("broken", "closed", "empty"):
        assert answers[name] == "", name
        assert _warned(log_lines, kit.task, ids[name]), (name, log_lines)
    assert not _warned(log_lines, kit.task, ids["good"])


def test_failed_documents_score_infinite_loss(v2_harness, bad_docs, log_lines):
    kit, ids = bad_docs
    kit.attach(v2_harness)
    reqs = [kit.ll("Describe it.", " a cat", ids[name], failing_visuals) for name in ids]
    scores = dict(zip(ids, v2_harness.loglikelihood(reqs), strict=True))

    alone = v2_harness.loglikelihood([kit.ll("Describe it.", " a cat", ids["good"])])[0]
    assert math.isfinite(scores["good"][0])
    assert scores["good"][0] == pytest.approx(alone[0], rel=1e-5)
    for name in ("broken", "closed", "empty"):
        # lmms-eval's multiple-choice scorer takes the argmin: a failed choice never wins.
        assert scores[name] == (math.inf, False), name
        assert _warned(log_lines, kit.task, ids[name]), name


def _oom_above(limit, inner):
    def run(*args, **kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids.shape[0] > limit:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return inner(*args, **kwargs)

    return run


CONTEXTS = ["Why?", "Tell me a story", "Count to ten.", "What is 2+2?"]


@pytest.mark.parametrize("fits", [1, 2])
def test_out_of_memory_batches_are_split_in_halves(
    v2_harness_direct, kit, monkeypatch, log_lines, fits
):
    harness = v2_harness_direct
    doc = kit.doc([])
    reqs = [kit.gen(c, doc) for c in CONTEXTS]
    kit.attach(harness)
    monkeypatch.setattr(harness, "batch_size", 1)
    expected = harness.generate_until(reqs)

    monkeypatch.setattr(harness, "batch_size", 4)
    monkeypatch.setattr(harness.model, "generate", _oom_above(fits, harness.model.generate))
    assert harness.generate_until(reqs) == expected
    text = "\n".join(log_lines)
    assert "out of memory with 4 requests" in text
    assert f"batches of {fits} requests worked" in text
    assert f"batches of {2 if fits == 1 else 4} requests worked" not in text


def test_out_of_memory_while_scoring_is_split_too(v2_harness_direct, kit, monkeypatch, log_lines):
    harness = v2_harness_direct
    doc = kit.doc([])
    reqs = [kit.ll(c, " yes", doc) for c in CONTEXTS]
    kit.attach(harness)
    expected = harness.loglikelihood(reqs)

    score = harness.model.score_continuations
    monkeypatch.setattr(harness.model, "score_continuations", _oom_above(1, score))
    got = harness.loglikelihood(reqs)
    assert [g for _, g in got] == [g for _, g in expected]
    assert [loss for loss, _ in got] == pytest.approx([loss for loss, _ in expected], rel=1e-5)
    assert "batches of 1 requests worked" in "\n".join(log_lines)


def test_out_of_memory_on_a_single_request_is_not_hidden(v2_harness_direct, kit, monkeypatch):
    harness = v2_harness_direct
    doc = kit.doc([])
    kit.attach(harness)
    monkeypatch.setattr(harness.model, "generate", _oom_above(0, harness.model.generate))
    with pytest.raises(torch.OutOfMemoryError):
        harness.generate_until([kit.gen("Why?", doc), kit.gen("Tell me a story", doc)])
