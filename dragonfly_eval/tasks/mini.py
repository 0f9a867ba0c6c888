"""Glue for the offline mini suite: its images are PNG files beside the JSON records."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from dragonfly_eval.paths import task_yaml_dir


def mini_data_dir() -> Path:
    """The folder holding the mini suite's records and images (checkout or installed wheel)."""
    return task_yaml_dir() / "mini" / "data"


def doc_to_visual(doc: dict) -> list[Image.Image]:
    """The document's image, loaded from `image_path` (relative to the mini data folder)."""
    path = mini_data_dir() / doc["image_path"]
    if not path.is_file():
        raise FileNotFoundError(
            f"mini-suite image {path} is missing; regenerate the data with "
            "`python -m dragonfly_eval.datagen.make_mini`"
        )
    with Image.open(path) as image:
        return [image.convert("RGB")]


def answer_target(doc: dict) -> str:
    """The reference answer whose likelihood the answer-loss task scores."""
    return doc["answers"][0]


def answer_nll(doc: dict, results: list) -> dict[str, float]:
    """The model's loss on the reference answer (mean negative log-likelihood per token, the
    float the dragonfly model returns for a loglikelihood request)."""
    loss, _greedy = results[0]
    return {"answer_nll": float(loss)}
