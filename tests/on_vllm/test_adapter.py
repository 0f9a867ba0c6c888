"""`dragonfly_vllm` through lmms-eval's model interface: the shared adapter's resume store and
failure report work in front of the vLLM engine, and multi-round requests reach it."""

from __future__ import annotations

import json
import sqlite3

import pytest

from tests.on_vllm.vllm_kit import NEEDS_VLLM, noise

pytestmark = [pytest.mark.slow, pytest.mark.vllm, NEEDS_VLLM]
GEN = {"until": ["\n\n"], "max_new_tokens": 6, "temperature": 0}


def _visual(doc):
    if doc["broken"]:
        raise OSError(f"cannot read image of {doc['name']}")
    return [noise(doc["seed"])]


def _requests(docs):
    from lmms_eval.api.instance import Instance

    return [
        Instance(
            "generate_until",
            ("What is it?", GEN, _visual, i, "t", "test"),
            idx=0,
            metadata={"task": "t", "doc_id": i, "repeats": 1},
        )
        for i in docs
    ]


@pytest.fixture(scope="module")
def adapter(released_checkpoint, in_process_engine_env, tmp_path_factory):
    """(dragonfly_vllm model, its resume store, its failure report), built as lmms-eval does."""
    from dragonfly_eval.harness.vllm_model import DragonflyVllm

    folder = tmp_path_factory.mktemp("adapter")
    store, report = folder / "resume.sqlite", folder / "failures.jsonl"
    model = DragonflyVllm.create_from_arg_string(
        f"pretrained={released_checkpoint(2)},dtype=float32,enforce_eager=true,"
        f"resume_store={store},failure_report={report}",
        {"batch_size": 1, "device": None},
    )
    yield model, store, report
    model.engine.close()


def test_answers_are_stored_for_resume_and_failures_reported(adapter):
    model, store, report = adapter
    docs = {i: {"broken": i == 1, "name": f"doc{i}", "seed": 40 + i} for i in range(3)}
    model.task_dict = {"t": {"test": docs}}
    answers = model.generate_until(_requests(docs))
    assert answers[1] == "" and answers[0] and answers[2]
    (failure,) = [json.loads(line) for line in report.read_text().splitlines()]
    assert failure["doc_id"] == 1 and "cannot read image of doc1" in failure["reason"]

    with sqlite3.connect(store) as db:
        rows = db.execute("SELECT doc_id, answer FROM answers ORDER BY doc_id").fetchall()
    assert [(int(d), json.loads(a)) for d, a in rows] == [(0, answers[0]), (2, answers[2])]

    docs[1]["broken"] = False  # the next run answers the failed document only
    again = model.generate_until(_requests(docs))
    assert again[0] == answers[0] and again[2] == answers[2] and again[1]


def _two_rounds(doc, previous_output=None, round_idx=None, previous_round_info=None):
    """Round 1 asks again about a new image; round 2 ends with every answer."""
    if round_idx >= 2:
        return None, None, True, list(previous_output), None
    return [noise(60 + doc["seed"])], "And this one?", False, None, None


def test_multi_round_answers_equal_the_hf_adapters(adapter, released_checkpoint):
    from lmms_eval.api.instance import Instance

    from dragonfly_eval.harness.model import Dragonfly

    model, _, _ = adapter
    hf = Dragonfly(pretrained=str(released_checkpoint(2)), device="cpu", dtype="float32")
    docs = {i: {"broken": False, "name": f"m{i}", "seed": 50 + i} for i in range(2)}
    requests = [
        Instance(
            "generate_until_multi_round",
            ("First question?", GEN, _visual, _two_rounds, i, "m", "test"),
            idx=0,
            metadata={"task": "m", "doc_id": i, "repeats": 1},
        )
        for i in docs
    ]
    results = []
    for each in (model, hf):
        each.task_dict = {"m": {"test": docs}}
        results.append(each.generate_until_multi_round(requests))
    assert results[0] == results[1]
    assert all(len(r) == 2 and all(r) for r in results[0])
