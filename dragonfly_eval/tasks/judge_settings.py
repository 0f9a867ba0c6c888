"""The LLM judge's configuration from the environment, without importing lmms-eval's judged
task modules (which build an OpenAI client at import time and fail there when `openai` is
installed but unconfigured): what the pre-flight check and `judge` read."""

from __future__ import annotations

import os
from dataclasses import dataclass

JUDGE_ENV = ("OPENAI_API_URL", "OPENAI_API_KEY", "MODEL_VERSION")


class JudgeNotConfiguredError(RuntimeError):
    """Raised when an LLM-judged task starts without a usable judge endpoint."""


@dataclass(frozen=True)
class JudgeSettings:
    """Where the judge lives: base URL, key and model name."""

    base_url: str
    api_key: str
    model: str

    @property
    def chat_completions_url(self) -> str:
        return self.base_url.rstrip("/") + "/chat/completions"


def judge_settings(task: str) -> JudgeSettings:
    """The judge configuration from the environment; raises JudgeNotConfiguredError naming task."""
    missing = [name for name in JUDGE_ENV if not os.environ.get(name, "").strip()]
    problems = []
    if missing:
        problems.append(f"unset: {', '.join(missing)}")
    api_type = os.environ.get("API_TYPE", "openai").strip().lower()
    if api_type != "openai":
        problems.append(
            f"API_TYPE={api_type!r} (only 'openai', i.e. OpenAI-compatible, is supported)"
        )
    url = os.environ.get("OPENAI_API_URL", "").strip()
    if url.rstrip("/").endswith("/chat/completions"):
        problems.append("OPENAI_API_URL must be the base URL (…/v1), without /chat/completions")
    if problems:
        raise JudgeNotConfiguredError(
            f"task {task} is scored by an LLM judge, which is not configured ({'; '.join(problems)}). "
            "Set OPENAI_API_URL (an OpenAI-compatible base URL such as http://localhost:8000/v1), "
            "OPENAI_API_KEY and MODEL_VERSION (the judge model), or run the no-judge variant "
            "(dragonfly_mmbench_en_dev_static for MMBench; MM-Vet has none)."
        )
    return JudgeSettings(
        url, os.environ["OPENAI_API_KEY"].strip(), os.environ["MODEL_VERSION"].strip()
    )
