import importlib
import os

import pytest


def _import_judge():
    """`dragonfly_eval.tasks.judge`, whose lmms-eval utils build an OpenAI client at import time:
    with `openai` installed (vLLM brings it) that needs some key, never used here."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OPENAI_API_KEY", os.environ.get("OPENAI_API_KEY") or "unused")
        return importlib.import_module("dragonfly_eval.tasks.judge")


judge = _import_judge()

CONFIGURED = {
    "OPENAI_API_URL": "http://localhost:8000/v1",
    "OPENAI_API_KEY": "local",
    "MODEL_VERSION": "judge-model",
}


@pytest.fixture
def env(monkeypatch):
    for name in (*judge.JUDGE_ENV, "API_TYPE"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_unconfigured_judge_refuses_with_task_and_variable_names(env):
    with pytest.raises(judge.JudgeNotConfiguredError) as err:
        judge.judge_settings("dragonfly_mmvet")
    message = str(err.value)
    assert "dragonfly_mmvet" in message
    for name in judge.JUDGE_ENV:
        assert name in message


def test_configured_judge_gives_base_and_chat_urls(env):
    for name, value in CONFIGURED.items():
        env.setenv(name, value)
    settings = judge.judge_settings("dragonfly_mmvet")
    assert settings.model == "judge-model"
    assert settings.chat_completions_url == "http://localhost:8000/v1/chat/completions"


@pytest.mark.parametrize(
    ("name", "value", "complaint"),
    [
        ("OPENAI_API_URL", "http://localhost:8000/v1/chat/completions", "base URL"),
        ("API_TYPE", "azure", "API_TYPE"),
        ("MODEL_VERSION", "  ", "MODEL_VERSION"),
    ],
)
def test_misconfigured_judge_is_rejected(env, name, value, complaint):
    for key, configured in CONFIGURED.items():
        env.setenv(key, configured)
    env.setenv(name, value)
    with pytest.raises(judge.JudgeNotConfiguredError, match=complaint):
        judge.judge_settings("dragonfly_mmbench_en_dev")


def test_judged_prompts_refuse_to_build_without_judge(env):
    with pytest.raises(judge.JudgeNotConfiguredError, match="dragonfly_mmvet"):
        judge.mmvet_doc_to_text(
            {"question": "What is shown?"}, {"pre_prompt": "", "post_prompt": ""}
        )
    with pytest.raises(judge.JudgeNotConfiguredError, match="dragonfly_mmbench_en_dev"):
        judge.mmbench_doc_to_text({"question": "Q", "A": "x", "B": "y"}, {"post_prompt": ""})


def test_judged_prompts_match_lmms_eval_once_configured(env):
    for name, value in CONFIGURED.items():
        env.setenv(name, value)
    kwargs = {"pre_prompt": "", "post_prompt": ""}
    assert judge.mmvet_doc_to_text({"question": "What is shown?"}, kwargs) == "What is shown?"


def test_mmvet_judge_failure_raises_instead_of_scoring_zero(env, monkeypatch):
    monkeypatch.setattr(judge.mmvet_utils, "get_chat_response", lambda *a, **k: ("", ""))
    doc = {"question_id": "v1", "question": "Q", "answer": "A", "capability": "rec"}
    with pytest.raises(judge.JudgeFailedError, match="v1"):
        judge.mmvet_process_results(doc, ["prediction"])


def test_mmvet_judge_score_passes_through(env, monkeypatch):
    monkeypatch.setattr(
        judge.mmvet_utils, "get_chat_response", lambda *a, **k: ("0.7", "judge-model")
    )
    doc = {"question_id": "v1", "question": "Q", "answer": "A", "capability": "rec"}
    assert judge.mmvet_process_results(doc, ["prediction"])["gpt_eval_score"]["score"] == 0.7


def _mmbench_record(index, prediction, answer="B"):
    return {
        "index": index,
        "question": "Which?",
        "answer": answer,
        "prediction": prediction,
        "hint": "nan",
        "source": "s",
        "split": "dev",
        "category": "c",
        "L2-category": "l2",
        "A": "cat",
        "B": "dog",
        "C": "nan",
        "D": "nan",
        "E": "nan",
    }


def test_mmbench_judge_failure_raises_instead_of_guessing(env, monkeypatch):
    for name, value in CONFIGURED.items():
        env.setenv(name, value)
    monkeypatch.setattr(judge.MMBench_Evaluator, "_post_request", lambda self, payload: 1 / 0)
    monkeypatch.setattr("lmms_eval.tasks.mmbench.mmbench_evals.time.sleep", lambda seconds: None)
    with pytest.raises(judge.JudgeFailedError, match="localhost:8000/v1/chat/completions"):
        judge.mmbench_dev_judged_score([_mmbench_record(0, "I am not sure")])


def test_mmbench_letters_are_scored_without_calling_the_judge(env, monkeypatch):
    for name, value in CONFIGURED.items():
        env.setenv(name, value)
    monkeypatch.setattr(judge.MMBench_Evaluator, "_post_request", lambda self, payload: 1 / 0)
    records = [_mmbench_record(0, "B"), _mmbench_record(1, "A")]
    assert judge.mmbench_dev_judged_score(records) == pytest.approx(50.0)
