"""The engine on its own: typed requests in, answers out, no lmms-eval object anywhere."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from image_kit import noise_image

from dragonfly_eval.engine import Engine, EngineSettings, GenRequest, GenSettings, ScoreRequest
from dragonfly_eval.engine.policy import OomPolicy

LONG = GenSettings(max_new_tokens=40)


def _gen_requests(n: int, settings: GenSettings = LONG) -> list[GenRequest]:
    return [
        GenRequest(f"Question {i}?" + " more" * i, [noise_image(i)], settings, "t", i)
        for i in range(n)
    ]


def test_the_engine_imports_no_lmms_eval():
    code = "import sys, dragonfly_eval.engine; print(sorted(m for m in sys.modules if 'lmms' in m))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_batched_answers_equal_one_at_a_time_and_keep_request_order(make_engine):
    requests = _gen_requests(5, GenSettings(max_new_tokens=6))
    scored = [
        ScoreRequest(r.prompt, " a cat" * (1 + r.doc_id % 2), r.images, "t", r.doc_id)
        for r in requests
    ]
    alone = make_engine(batch_size=1, image_cache=False, prefix_cache=False, prefetch=False)
    batched = make_engine(batch_size=4)
    assert batched.generate(requests) == alone.generate(requests)
    got, want = batched.score(scored), alone.score(scored)
    assert [g for _, g in got] == [g for _, g in want]
    assert [loss for loss, _ in got] == pytest.approx([loss for loss, _ in want], abs=1e-4)
    assert batched.caches.prefills == len(requests)  # each image's prefix computed once


def test_a_request_that_could_not_be_built_fails_alone(make_engine):
    engine = make_engine(batch_size=2)
    broken = ScoreRequest("Why?", "", (), "t", 7, error="KeyError: 'answer'")
    good = ScoreRequest("Why?", " yes", (), "t", 8)
    scores = engine.score([broken, good])
    assert scores[0] == (float("inf"), False) and scores[1][0] < float("inf")
    assert engine.failures == [{"task": "t", "doc_id": 7, "reason": "KeyError: 'answer'"}]


def _oom_above(limit: int, inner, sizes: list[int]):
    def run(**kwargs):
        sizes.append(kwargs["input_ids"].shape[0])
        if kwargs["input_ids"].shape[0] > limit:
            raise torch.OutOfMemoryError("out of memory (simulated)")
        return inner(**kwargs)

    return run


def test_out_of_memory_halving_keeps_the_size_that_worked_for_later_batches(
    make_engine, monkeypatch
):
    engine = make_engine(batch_size=4, prefix_cache=False)
    requests = _gen_requests(8, GenSettings(max_new_tokens=2))
    expected = make_engine(batch_size=1, prefix_cache=False).generate(requests)
    sizes: list[int] = []
    monkeypatch.setattr(engine.model, "generate", _oom_above(2, engine.model.generate, sizes))
    assert engine.generate(requests) == expected
    # The first batch of 4 fails once; every later part, the second batch's too, runs at 2.
    assert sizes == [4, 2, 2, 2, 2]


def test_oom_policy_halves_down_to_one_and_reraises_a_single_request():
    policy = OomPolicy(4)
    seen: list[int] = []

    def run(part):
        seen.append(len(part))
        if len(part) > 1:
            raise torch.OutOfMemoryError("simulated")
        return [x * 10 for x in part]

    assert policy.run([1, 2, 3, 4, 5], run) == [(1, 10), (2, 20), (3, 30), (4, 40), (5, 50)]
    assert seen == [4, 2, 1, 1, 1, 1, 1] and policy.size == 1

    def never(part):
        raise torch.OutOfMemoryError("simulated")

    with pytest.raises(torch.OutOfMemoryError):
        policy.run([1], never)


def test_float32_rerun_leaves_the_shared_caches_in_place_and_untouched(tiny_parts, make_engine):
    model, _ = tiny_parts
    engine = make_engine(batch_size=2, prefix_cache=False)
    requests = _gen_requests(2, GenSettings(max_new_tokens=2))
    engine.generate(requests)
    embeddings = engine.caches.embeddings
    stored = {key: value.clone() for key, value in embeddings._items.items()}
    seen_during_rerun = []
    lm = model.language_model

    def poison_once(module, args, output):
        if engine.nonfinite_retries == 0:
            output.logits = torch.full_like(output.logits, float("nan"))
        else:  # the rerun: what a prefetch thread would see now
            seen_during_rerun.append(engine.caches.embeddings is embeddings)
        return output

    handle = lm.register_forward_hook(poison_once)
    try:
        engine.generate(requests)
    finally:
        handle.remove()
    assert engine.nonfinite_retries == 1
    assert seen_during_rerun and all(seen_during_rerun)
    assert set(embeddings._items) == set(stored)
    assert all(torch.equal(embeddings._items[k], v) for k, v in stored.items())


def _new_token_counts(engine, monkeypatch) -> list[int]:
    counts: list[int] = []
    inner = engine.model.generate

    def spy(**kwargs):
        out = inner(**kwargs)
        counts.append(out.shape[1] - kwargs["input_ids"].shape[1])
        return out

    monkeypatch.setattr(engine.model, "generate", spy)
    return counts


def _stop_string(engine, request: GenRequest, monkeypatch) -> tuple[str, int]:
    """A short alphanumeric stop string in the request's unstopped answer, and how many new
    tokens it takes to produce it."""
    tokens: list[list[int]] = []
    inner = engine.model.generate

    def record(**kwargs):
        out = inner(**kwargs)
        tokens.append(out[0, kwargs["input_ids"].shape[1] :].tolist())
        return out

    with monkeypatch.context() as patch:
        patch.setattr(engine.model, "generate", record)
        engine.generate([request])
    ids = tokens[0]
    assert len(ids) == LONG.max_new_tokens, "the untrained model is expected to ramble"
    for k in range(4, len(ids) // 2):
        text, before = engine.processor.decode(ids[:k]), engine.processor.decode(ids[: k - 1])
        tail = text[-3:]
        if len(text) > 3 and tail.isalnum() and tail not in before:
            return tail, k
    raise AssertionError("no alphanumeric stop string in the first half of the answer")


def test_generation_stops_within_a_few_tokens_of_a_stop_string(random_tiny_parts, monkeypatch):
    model, processor = random_tiny_parts
    engine = Engine(model, processor, EngineSettings(batch_size=2, progress=False))
    request = _gen_requests(1)[0]
    stop, needed = _stop_string(engine, request, monkeypatch)
    counts = _new_token_counts(engine, monkeypatch)
    stopped = GenRequest(request.prompt, request.images, GenSettings(40, until=(stop,)), "t", 0)
    (answer,) = engine.generate([stopped])
    assert stop not in answer
    assert counts[0] <= needed + 2 < LONG.max_new_tokens


def test_generation_projects_one_position_per_step_onto_the_vocabulary(tiny_parts, make_engine):
    model, _ = tiny_parts
    widths = []
    handle = model.language_model.register_forward_hook(
        lambda module, args, output: widths.append(output.logits.shape[1])
    )
    try:
        make_engine(batch_size=2, prefix_cache=False).generate(_gen_requests(2, GenSettings(3)))
    finally:
        handle.remove()
    assert widths and set(widths) == {1}


@pytest.mark.parametrize("prefix_cache", [False, True])
def test_scoring_computes_logits_only_at_the_continuation(tiny_parts, make_engine, prefix_cache):
    model, processor = tiny_parts
    continuations = [" a cat", " a black cat on a mat"]
    requests = [
        ScoreRequest("Describe it.", text, [noise_image(i)], "t", i)
        for i, text in enumerate(continuations)
    ]
    rows = []
    handle = model.language_model.lm_head.register_forward_hook(
        lambda module, args, output: rows.append(output.numel() // output.shape[-1])
    )
    try:
        make_engine(batch_size=2, prefix_cache=prefix_cache).score(requests)
    finally:
        handle.remove()
    tokens = [
        len(processor.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in continuations
    ]
    assert rows[-1] == sum(tokens)  # the scoring pass (a prefill, if any, keeps 1 per row)
