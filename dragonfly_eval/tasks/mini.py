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
            "`python -m dragonfly_eval.tasks.make_mini`"
        )
    with Image.open(path) as image:
        return [image.convert("RGB")]
