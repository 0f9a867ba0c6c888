"""A test-only lmms-eval model, `oracle`, that answers every document with its gold answer.

It reads the document a request points at (`task_dict[task][split][doc_id]`, as any model does)
and returns the task's gold answer: the text a perfect model would generate, or, for scoring
requests, the lowest loss for the gold continuation. Run on the real-schema copies, every metric
must reach its maximum; anything less means an answer went back to the wrong request or a
scorer is not wired. tests/realschema/conftest.py registers it by entry point, as an outside
package would.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from lmms_eval.api.instance import Instance
from lmms_eval.api.model import lmms
from lmms_eval.models.registry_v2 import ModelManifest

from dragonfly_eval.harness import compat


def _letter(index: int | str) -> str:
    return chr(ord("A") + int(index))


def _most_common(answers: list[str]) -> str:
    return Counter(answers).most_common(1)[0][0]


# Built-in task name (dragonfly_* twins drop their prefix) -> the gold answer of a document, read
# from the columns the task's own scorer compares against.
GOLD: dict[str, Callable[[dict], str]] = {
    "textvqa_val": lambda doc: _most_common(doc["answers"]),
    "chartqa": lambda doc: doc["answer"],
    "docvqa_val": lambda doc: doc["answers"][0],
    "infovqa_val": lambda doc: doc["answers"][0],
    "ai2d": lambda doc: _letter(doc["answer"]),
    "mme": lambda doc: doc["answer"],
    "pope": lambda doc: doc["answer"],
    "pope_adv": lambda doc: doc["answer"],
    "pope_pop": lambda doc: doc["answer"],
    "pope_random": lambda doc: doc["answer"],
    "scienceqa_img": lambda doc: _letter(doc["answer"]),
    "gqa": lambda doc: doc["answer"],
    "mmmu_val": lambda doc: doc["answer"],
    "coco2017_cap_val": lambda doc: doc["answer"][0],
    "seedbench_ppl": lambda doc: doc[f"choice_{doc['answer'].lower()}"],
}

GOLD_LOSS, WRONG_LOSS = 0.0, 10.0


def gold_answer(task: str, doc: dict) -> str:
    """The gold answer of one document of a task; a clear error for a task without a rule."""
    name = task.removeprefix("dragonfly_")
    if name not in GOLD:
        raise KeyError(f"oracle model: no gold-answer rule for task {task!r}; add one to GOLD")
    return GOLD[name](doc)


class Oracle(lmms):
    """Answers each request from its own document's gold answer."""

    def __init__(self, **_: object) -> None:
        super().__init__()
        # lmms-eval 0.7.3 turns (loss, is_greedy) answers into strings; score likelihood tasks
        # through the same patch as the dragonfly model (applied here: the entry point's module
        # is imported while lmms_eval.models is still loading).
        compat.apply()

    def _gold(self, doc_id: int, task: str, split: str) -> str:
        return gold_answer(task, self.task_dict[task][split][doc_id])

    def generate_until(self, requests: list[Instance]) -> list[str]:
        """The gold answer of each request's document."""
        return [self._gold(*request.args[3:6]) for request in requests]

    def loglikelihood(self, requests: list[Instance]) -> list[tuple[float, bool]]:
        """The lowest loss (lmms-eval's scorer takes the argmin) for the gold continuation."""
        answers = []
        for request in requests:
            _, continuation, _, doc_id, task, split = request.args
            is_gold = continuation.strip() == self._gold(doc_id, task, split).strip()
            answers.append((GOLD_LOSS if is_gold else WRONG_LOSS, is_gold))
        return answers

    def generate_until_multi_round(self, requests: list[Instance]) -> list[str]:
        raise NotImplementedError("the oracle model answers single-round tasks only")


MANIFEST = ModelManifest(model_id="oracle", simple_class_path="oracle_model.Oracle")
