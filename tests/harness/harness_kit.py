"""Helpers for driving the `dragonfly` lmms-eval model class with lmms-eval's own `Instance`s.

Requests point at an in-memory task (`Requests.task`) whose documents are dicts holding their
images; the harness reads them through `doc_to_visual(self.task_dict[task][split][doc_id])`, as
lmms-eval's evaluator arranges.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from image_kit import noise_image  # noqa: F401  (the harness tests import it from here)
from lmms_eval.api.instance import Instance
from PIL import Image


def doc_images(doc: dict) -> list[Image.Image]:
    """The `doc_to_visual` of the in-memory task."""
    return doc["images"]


class Requests:
    """Builds lmms-eval `Instance`s over an in-memory task and installs its documents."""

    task = "harness_check"
    split = "test"
    greedy = {"until": [], "max_new_tokens": 6, "temperature": 0}

    def __init__(self) -> None:
        self.docs: dict[int, dict[str, Any]] = {}

    def doc(self, images: list[Image.Image] | tuple = (), **fields: Any) -> int:
        """Add a document holding `images`; returns its doc_id."""
        doc_id = len(self.docs)
        self.docs[doc_id] = {"images": list(images), **fields}
        return doc_id

    def attach(self, model: Any) -> Any:
        """Make the documents visible to `model` as lmms-eval's evaluator does."""
        model.task_dict = {self.task: {self.split: self.docs}}
        return model

    def _instance(self, kind: str, args: tuple, doc_id: int) -> Instance:
        return Instance(
            kind, args, idx=0, metadata={"task": self.task, "doc_id": doc_id, "repeats": 1}
        )

    def gen(
        self,
        context: str,
        doc_id: int,
        doc_to_visual: Callable = doc_images,
        **gen_kwargs: Any,
    ) -> Instance:
        """A generate_until request; greedy with 6 new tokens and no stop string by default."""
        kwargs = {**self.greedy, **gen_kwargs}
        args = (context, kwargs, doc_to_visual, doc_id, self.task, self.split)
        return self._instance("generate_until", args, doc_id)

    def ll(
        self, context: str, continuation: str, doc_id: int, doc_to_visual: Callable = doc_images
    ) -> Instance:
        """A loglikelihood request."""
        args = (context, continuation, doc_to_visual, doc_id, self.task, self.split)
        return self._instance("loglikelihood", args, doc_id)

    def multi_round(
        self,
        context: str,
        doc_id: int,
        doc_to_text: Callable,
        doc_to_visual: Callable = doc_images,
        **gen_kwargs: Any,
    ) -> Instance:
        """A generate_until_multi_round request (doc_to_text drives the later rounds)."""
        kwargs = {**self.greedy, **gen_kwargs}
        args = (context, kwargs, doc_to_visual, doc_to_text, doc_id, self.task, self.split)
        return self._instance("generate_until_multi_round", args, doc_id)


class GenerateSpy:
    """Stands in for `model.generate`, recording each call's keyword arguments and output."""

    def __init__(self, inner: Callable) -> None:
        self.inner = inner
        self.calls: list[dict[str, Any]] = []

    def __call__(self, **kwargs: Any):
        out = self.inner(**kwargs)
        self.calls.append({**kwargs, "output": out})
        return out

    def new_tokens(self, call: int = -1) -> list[list[int]]:
        """The generated ids of each row of one call (prompt removed)."""
        record = self.calls[call]
        return record["output"][:, record["input_ids"].shape[1] :].tolist()
