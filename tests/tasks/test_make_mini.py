import hashlib
import json

import pytest
from PIL import Image

from dragonfly_eval.tasks import make_mini
from dragonfly_eval.tasks.mini import doc_to_visual, mini_data_dir


def _pixels(path) -> str:
    with Image.open(path) as image:
        return hashlib.sha256(image.convert("RGB").tobytes()).hexdigest()


def _records(folder, family):
    lines = (folder / f"{family}.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def test_generator_reproduces_the_committed_data(tmp_path):
    make_mini.write_mini(tmp_path)
    committed = mini_data_dir()
    for family in make_mini.FAMILIES:
        fresh = _records(tmp_path, family)
        assert fresh == _records(committed, family), f"{family}.jsonl differs: rerun make_mini"
        for record in fresh:
            path = record["image_path"]
            assert _pixels(tmp_path / path) == _pixels(committed / path), path
    committed_images = {p.name for p in (committed / "images").iterdir()}
    assert committed_images == {p.name for p in (tmp_path / "images").iterdir()}


def test_every_family_has_8_to_20_items_with_answers():
    for family, items in make_mini.build_items().items():
        assert 8 <= len(items) <= 20, family
        for item in items:
            answer = item.record.get("answer", item.record.get("answers"))
            assert answer not in (None, "", []), (family, item.record)


def test_yes_no_family_is_balanced():
    answers = [item.record["answer"] for item in make_mini.build_items()["yesno"]]
    assert answers.count("yes") == answers.count("no")


def test_mini_images_load_as_rgb_from_relative_paths():
    (image,) = doc_to_visual({"image_path": "images/chart_00.png"})
    assert image.mode == "RGB" and image.size == make_mini.SIZE


def test_missing_mini_image_names_the_fix():
    with pytest.raises(FileNotFoundError, match="make_mini"):
        doc_to_visual({"image_path": "images/absent.png"})
