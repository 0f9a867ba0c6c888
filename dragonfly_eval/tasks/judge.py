"""LLM-judged tasks (MM-Vet, MMBench-EN dev): refuse to run without a judge, fail loudly when it fails.

The judge is any OpenAI-compatible chat-completions server, configured through the variables
lmms-eval reads:

- OPENAI_API_URL: the server's base URL, e.g. `https://api.openai.com/v1` or
  `http://localhost:8000/v1` (lmms-eval's judge appends `/chat/completions`);
- OPENAI_API_KEY: its key (any non-empty string for a local server without auth);
- MODEL_VERSION: the judge model's name as the server knows it;
- API_TYPE: unset or `openai` (the only kind these wrappers support).

lmms-eval reads them when it imports the benchmark's utils, so set them before starting it.
Without them the wrapped `doc_to_text` raises as the task is built, before any inference;
a judge call that fails at scoring time raises instead of scoring the answer 0 (MM-Vet) or
guessing a random option (MMBench).
"""

from __future__ import annotations

import os

from lmms_eval.tasks.mmbench import en_utils as mmbench_utils
from lmms_eval.tasks.mmbench.mmbench_evals import MMBench_Evaluator
from lmms_eval.tasks.mmvet import utils as mmvet_utils

from dragonfly_eval.tasks.judge_settings import (  # noqa: F401  (this module's API)
    JUDGE_ENV,
    JudgeNotConfiguredError,
    JudgeSettings,
    judge_settings,
)

_MMBENCH_FAILURE = "Failed to obtain answer via API"


class JudgeFailedError(RuntimeError):
    """Raised when the judge endpoint gives no usable answer while scoring."""


def mmvet_doc_to_text(doc: dict, lmms_eval_specific_kwargs: dict | None = None) -> str:
    """lmms-eval's MM-Vet prompt, once the judge is known to be configured."""
    judge_settings("dragonfly_mmvet")
    return mmvet_utils.doc_to_text(doc, lmms_eval_specific_kwargs)


def mmvet_process_results(doc: dict, results: list) -> dict:
    """lmms-eval's MM-Vet judging; raises JudgeFailedError where it would silently score 0."""
    scored = mmvet_utils.mmvet_process_results(doc, results)
    if not scored["gpt_eval_score"]["eval_model"]:
        raise JudgeFailedError(
            f"dragonfly_mmvet: the judge at {os.environ.get('OPENAI_API_URL')} gave no answer for "
            f"question {doc.get('question_id')}; check the server and MODEL_VERSION"
        )
    return scored


def mmbench_doc_to_text(doc: dict, lmms_eval_specific_kwargs: dict | None = None) -> str:
    """lmms-eval's MMBench prompt, once the judge is known to be configured."""
    judge_settings("dragonfly_mmbench_en_dev")
    return mmbench_utils.mmbench_doc_to_text(doc, lmms_eval_specific_kwargs)


class _StrictMMBenchEvaluator(MMBench_Evaluator):
    """lmms-eval's MMBench evaluator, raising where it would fall back to a random option."""

    def get_chat_response(
        self, prompt, temperature=0, max_tokens=256, n=1, patience=5, sleep_time=3
    ):
        answer = super().get_chat_response(prompt, temperature, max_tokens, n, patience, sleep_time)
        if answer == _MMBENCH_FAILURE:
            raise JudgeFailedError(
                f"dragonfly_mmbench_en_dev: the judge at {self.API_URL} gave no answer; "
                "check the server and MODEL_VERSION"
            )
        return answer


def mmbench_dev_judged_score(results: list[dict]) -> float:
    """MMBench-EN dev circular accuracy (0-100) with the judge matching free-form answers."""
    settings = judge_settings("dragonfly_mmbench_en_dev")
    evaluator = _StrictMMBenchEvaluator(
        sys_prompt=mmbench_utils.mmbench_evaluator.sys_prompt,
        API_KEY=settings.api_key,
        API_URL=settings.chat_completions_url,
        model_version=settings.model,
    )
    overall, _, _ = evaluator.eval_result(results, eval_method="openai")
    return overall * 100
