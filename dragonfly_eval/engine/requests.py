"""What the engine is asked: typed generation and scoring requests, and generation settings."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from loguru import logger
from PIL import Image

DEFAULT_MAX_NEW_TOKENS = 128
# gen_kwargs keys that `GenSettings.from_gen_kwargs` reads; any other key is reported back.
KNOWN_GEN_KWARGS = frozenset(
    {"until", "max_new_tokens", "min_new_tokens", "temperature", "do_sample", "num_beams", "top_p"}
)

# A request's images: the images themselves, or a function giving them (run in a prefetch
# thread, so a slow or failing document read neither blocks the device nor ends the run).
Images = Sequence[Image.Image] | Callable[[], Any]


def as_bool(value: bool | str | int) -> bool:
    """A boolean from a command-line string ("true", "0", ...) or a Python value."""
    if isinstance(value, str):
        if value.lower() in ("1", "true", "yes", "on"):
            return True
        if value.lower() in ("0", "false", "no", "off", ""):
            return False
        raise ValueError(f"expected a boolean, got {value!r}")
    return bool(value)


@dataclass(frozen=True)
class GenSettings:
    """How one answer is generated; requests with equal settings share a generate() call."""

    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    num_beams: int = 1
    do_sample: bool = False
    temperature: float | None = None
    top_p: float | None = None
    min_new_tokens: int | None = None
    until: tuple[str, ...] = ()

    @classmethod
    def from_gen_kwargs(cls, gen_kwargs: Mapping[str, Any]) -> tuple[GenSettings, list[str]]:
        """Settings from lmms-eval's gen_kwargs, and the keys it has that the engine does not
        use (sorted; the caller reports them). Temperature 0 (or none) means greedy."""
        kwargs = dict(gen_kwargs)
        until = kwargs.get("until") or []
        if isinstance(until, str):
            until = [until]
        temperature = float(kwargs.get("temperature", 0) or 0)
        sample = as_bool(kwargs.get("do_sample", temperature > 0)) and temperature > 0
        top_p = kwargs.get("top_p")
        min_new = kwargs.get("min_new_tokens")
        settings = cls(
            max_new_tokens=int(kwargs.get("max_new_tokens", DEFAULT_MAX_NEW_TOKENS)),
            num_beams=int(kwargs.get("num_beams", 1) or 1),
            do_sample=sample,
            temperature=temperature if sample else None,
            top_p=float(top_p) if sample and top_p is not None else None,
            min_new_tokens=int(min_new) if min_new is not None else None,
            until=tuple(s for s in until if s),
        )
        return settings, sorted(set(kwargs) - KNOWN_GEN_KWARGS)

    def generate_kwargs(self) -> dict[str, Any]:
        """The transformers generate() arguments of these settings (stop strings excluded)."""
        kwargs: dict[str, Any] = {
            "max_new_tokens": self.max_new_tokens,
            "num_beams": self.num_beams,
            "do_sample": self.do_sample,
        }
        if self.min_new_tokens is not None:
            kwargs["min_new_tokens"] = self.min_new_tokens
        if self.do_sample:
            kwargs["temperature"] = self.temperature
            if self.top_p is not None:
                kwargs["top_p"] = self.top_p
        return kwargs


def generation_settings(gen_kwargs: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """lmms-eval's gen_kwargs -> transformers generate() kwargs, and the stop strings."""
    settings, _ = GenSettings.from_gen_kwargs(gen_kwargs)
    return settings.generate_kwargs(), list(settings.until)


@dataclass(frozen=True)
class GenRequest:
    """Generate an answer to `prompt` (plain text; the chat template is applied) about
    `images`. `task` and `doc_id` name the request in logs and failure reports; `error`, when
    set, is why the request could not be built: it fails with that reason without running."""

    prompt: str
    images: Images = ()
    settings: GenSettings = GenSettings()
    task: str = ""
    doc_id: Any = None
    error: str | None = None


@dataclass(frozen=True)
class ScoreRequest:
    """Score `continuation` after `prompt` about `images`: its mean negative log-likelihood per
    token and whether it is the greedy continuation. Fields otherwise as in `GenRequest`."""

    prompt: str
    continuation: str
    images: Images = ()
    task: str = ""
    doc_id: Any = None
    error: str | None = None


Request = GenRequest | ScoreRequest


def cut_at_stop(text: str, until: Sequence[str]) -> str:
    """The answer up to the first stop string, stripped."""
    for stop in until:
        pos = text.find(stop)
        if pos >= 0:
            text = text[:pos]
    return text.strip()


class FailureRecorder:
    """The requests that got the empty answer: each is logged, kept (`failures`: task, doc_id,
    reason) and passed to `on_failure` (e.g. the failure report)."""

    def __init__(self, on_failure: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.failures: list[dict[str, Any]] = []
        self._on_failure = on_failure

    def __call__(self, request: Request, reason: str) -> None:
        logger.warning(
            f"dragonfly: empty answer for task={request.task} doc_id={request.doc_id}: {reason}"
        )
        failure = {"task": request.task, "doc_id": request.doc_id, "reason": reason}
        self.failures.append(failure)
        if self._on_failure is not None:
            self._on_failure(failure)
