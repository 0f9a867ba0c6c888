"""The mini suite's task functions: images loaded from the paths its records give."""

import pytest

from dragonfly_eval.datagen import make_mini
from dragonfly_eval.tasks.mini import doc_to_visual


def test_mini_images_load_as_rgb_from_relative_paths():
    (image,) = doc_to_visual({"image_path": "images/chart_00.png"})
    assert image.mode == "RGB" and image.size == make_mini.SIZE


def test_missing_mini_image_names_the_fix():
    with pytest.raises(FileNotFoundError, match=r"python -m dragonfly_eval\.datagen\.make_mini"):
        doc_to_visual({"image_path": "images/absent.png"})
