"""The reference implementation's outputs, reproduced through lmms-eval Instances (v1 and v2)."""

import math

from harness_kit import Requests


def test_golden_answers_and_scores_through_the_harness(golden_set, load_harness):
    harness = load_harness(golden_set.checkpoint, batch_size=4)
    cases = golden_set.cases
    kit = Requests()
    doc_ids = [kit.doc([golden_set.image(case["image"])]) for case in cases]
    kit.attach(harness)

    # until=[]: the golden text is the raw greedy decode; the harness only strips it.
    answers = harness.generate_until(
        [
            kit.gen(case["question"], doc_id, until=[], max_new_tokens=8, temperature=0)
            for case, doc_id in zip(cases, doc_ids, strict=True)
        ]
    )
    assert answers == [case["generated_text"].strip() for case in cases]

    scores = harness.loglikelihood(
        [
            kit.ll(case["question"], case["continuation"], doc_id)
            for case, doc_id in zip(cases, doc_ids, strict=True)
        ]
    )
    for case, (loss, greedy) in zip(cases, scores, strict=True):
        # lmms-eval's convention: mean negative log-likelihood per continuation token.
        expected = -case["loglikelihood"] / len(case["continuation_ids"])
        assert math.isclose(loss, expected, rel_tol=1e-3), (case["image"], loss, expected)
        assert greedy is case["is_greedy"]
