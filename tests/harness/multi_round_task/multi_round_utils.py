"""doc_to_text and process_results of the test-only multi-round task (lmms-eval's protocol:
called with round_idx and the previous outputs after each round, until it says it is done)."""

from __future__ import annotations

ROUNDS = 2


def doc_to_text(
    doc, lmms_eval_specific_kwargs=None, previous_output=None, round_idx=None, **_ignored
):
    """The first question, then (visuals, context, done, outputs, info) for each later round."""
    if round_idx is None:
        return f"{doc['question']}\nAnswer the question using a single word or phrase."
    if round_idx >= ROUNDS:
        return None, None, True, list(previous_output), None
    return None, f"You said {previous_output[-1]!r}. Say it again.", False, None, None


def process_results(doc, results):
    """Whether the last round names the first reference answer, and the answers' length."""
    rounds = results[0]
    return {
        "last_round_match": float(doc["answers"][0] in rounds[-1].lower()),
        "answer_chars": float(sum(len(r) for r in rounds)),
    }
