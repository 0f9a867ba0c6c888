"""Scoring for biomedical VQA (VQA-RAD, SLAKE, Path-VQA): closed accuracy and open token F1.

A question is *closed* when the document says so (`answer_type` "CLOSED", as SLAKE labels it)
or, for datasets without that label (VQA-RAD, Path-VQA as published on the hub), when its
reference answer is "yes" or "no". Every other question is *open*.

Normalization (both scores): lower-case, punctuation replaced by spaces, the articles "a",
"an", "the" dropped, whitespace collapsed. Closed questions score 1 when the normalized
prediction equals the normalized answer, else 0. Open questions score the token-level F1 of
the normalized prediction against the normalized answer (bag of words, counts clipped).
A prediction that is None, not a string, or empty after normalization scores 0.
"""

from __future__ import annotations

import math
import os
import re
import string
from collections import Counter
from pathlib import Path

from PIL import Image

CLOSED_ANSWERS = frozenset({"yes", "no"})
SHORT_ANSWER_PROMPT = "\nAnswer the question using a single word or phrase."
SLAKE_IMAGE_ENV = "DRAGONFLY_SLAKE_IMAGES"

_PUNCT = re.compile(f"[{re.escape(string.punctuation)}]")
_ARTICLES = frozenset({"a", "an", "the"})


def normalize_answer(text: object) -> str:
    """The comparable form of an answer (see the module docstring); "" for non-strings."""
    if not isinstance(text, str):
        return ""
    words = _PUNCT.sub(" ", text.lower()).split()
    return " ".join(w for w in words if w not in _ARTICLES)


def is_closed(doc: dict) -> bool:
    """Whether a document is a closed question (labelled CLOSED, or a yes/no reference)."""
    label = doc.get("answer_type")
    if isinstance(label, str) and label.strip():
        return label.strip().upper() == "CLOSED"
    return normalize_answer(str(doc["answer"])) in CLOSED_ANSWERS


def closed_score(prediction: object, answer: object) -> float:
    """1.0 when the normalized prediction equals the normalized answer, else 0.0."""
    pred = normalize_answer(prediction)
    return float(bool(pred) and pred == normalize_answer(str(answer)))


def token_f1(prediction: object, answer: object) -> float:
    """Token-level F1 between the normalized prediction and answer (0.0 for an empty side)."""
    pred_tokens = normalize_answer(prediction).split()
    gold_tokens = normalize_answer(str(answer)).split()
    if not pred_tokens or not gold_tokens:
        return 0.0
    overlap = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if overlap == 0:
        return 0.0
    precision = overlap / len(pred_tokens)
    recall = overlap / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def doc_to_text(doc: dict, lmms_eval_specific_kwargs: dict | None = None) -> str:
    """The question followed by the task's post prompt (lmms-eval's short-answer instruction)."""
    kwargs = lmms_eval_specific_kwargs or {}
    pre = kwargs.get("pre_prompt", "")
    post = kwargs.get("post_prompt", SHORT_ANSWER_PROMPT)
    return f"{pre}{doc['question'].strip()}{post}"


def doc_to_visual(doc: dict) -> list[Image.Image]:
    """The image of a hub-style document whose `image` column is decoded by datasets."""
    return [doc["image"].convert("RGB")]


def slake_doc_to_visual(doc: dict) -> list[Image.Image]:
    """SLAKE's image: `img_name` under the folder named by $DRAGONFLY_SLAKE_IMAGES.

    BoKelvin/SLAKE publishes its questions as JSON and its images as imgs.zip; extract the
    archive and point the variable at the folder that holds the `xmlab*/` directories.
    """
    root = os.environ.get(SLAKE_IMAGE_ENV)
    if not root:
        raise RuntimeError(
            f"dragonfly_slake needs ${SLAKE_IMAGE_ENV}: extract imgs.zip of BoKelvin/SLAKE and "
            "set the variable to the folder holding its xmlab*/ directories"
        )
    path = Path(root) / doc["img_name"]
    if not path.is_file():
        raise FileNotFoundError(f"SLAKE image {path} not found (${SLAKE_IMAGE_ENV}={root})")
    with Image.open(path) as image:
        return [image.convert("RGB")]


def slake_english(dataset):
    """SLAKE's English questions only (the published results use the English half)."""
    return dataset.filter(lambda doc: doc["q_lang"] == "en")


def process_results(doc: dict, results: list) -> dict:
    """Per-document record for both metrics; each aggregation keeps its own question type."""
    prediction = results[0] if results else None
    closed = is_closed(doc)
    if closed:
        score = closed_score(prediction, doc["answer"])
    else:
        score = token_f1(prediction, doc["answer"])
    record = {"closed": closed, "score": score}
    return {"closed_accuracy": record, "open_token_f1": record}


def _mean_of(records: list[dict], closed: bool) -> float:
    scores = [r["score"] for r in records if r["closed"] == closed]
    return sum(scores) / len(scores) if scores else math.nan


def aggregate_closed_accuracy(records: list[dict]) -> float:
    """Mean score over closed questions (0-1); NaN when the run held none."""
    return _mean_of(records, closed=True)


def aggregate_open_token_f1(records: list[dict]) -> float:
    """Mean token F1 over open questions (0-1); NaN when the run held none."""
    return _mean_of(records, closed=False)
