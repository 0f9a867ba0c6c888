import hashlib
import json

from PIL import Image

from dragonfly_eval.datagen import make_mini
from dragonfly_eval.tasks.mini import mini_data_dir


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


def test_fine_patterns_look_alike_at_336_pixels_and_differ_at_full_size():
    """The zoom-in test's premise: in the low-resolution view (the whole image resized to
    336x336, Pillow bicubic as the processor does) the four panels are the same grey within 2
    levels; at full size they differ across the whole panel."""
    import random

    import numpy as np

    views, full = {}, {}
    for pattern in make_mini.PATTERNS:
        scene = make_mini.fine_scene(random.Random(7), pattern)
        full[pattern] = np.asarray(scene.image).astype(int)
        views[pattern] = np.asarray(scene.image.resize((336, 336), Image.BICUBIC)).astype(int)
    side = make_mini.FINE_PANEL
    for a in make_mini.PATTERNS:
        for b in make_mini.PATTERNS:
            if a < b:
                assert np.abs(views[a] - views[b]).max() <= 2, (a, b)
                differ = (full[a] != full[b]).any(axis=-1).sum()
                assert differ > side * side // 3, (a, b)


def test_fine_family_asks_each_pattern_equally_often():
    answers = [item.record["answers"][0] for item in make_mini.build_items()["fine"]]
    assert {answers.count(p) for p in make_mini.PATTERNS} == {len(answers) // 4}


def test_training_questions_cover_every_family_of_the_suite():
    import random

    asked = set()
    for kind, scene_of in make_mini.SCENES.items():
        for i in range(12):  # the yes/no question is asked of some shape scenes only
            scene = scene_of(random.Random(f"{kind}-{i}"))
            asked |= {family for family, _ in make_mini.questions_for(scene, random.Random(i))}
    assert asked == set(make_mini.FAMILIES)


def _has_color(image, rgb) -> bool:
    import numpy as np

    return bool((np.asarray(image) == np.array(rgb, dtype=np.uint8)).all(axis=-1).any())


def test_chart_bars_are_coloured_by_day_and_clearly_different():
    """A chart's answers show at low resolution: each day's bar has its own colour, and no two
    values are closer than 12 (about 20 pixels of bar height)."""
    import random

    for i in range(30):
        scene = make_mini.chart_scene(random.Random(f"chart-{i}"))
        values, shown = scene.facts["values"], len(scene.facts["labels"])
        assert min(abs(a - b) for a in values for b in values if a != b) >= 12
        for k, day_color in enumerate(make_mini.DAY_COLORS):
            assert _has_color(scene.image, make_mini.COLORS[day_color]) == (k < shown), (i, k)


def test_documents_show_their_kind_by_layout_and_their_vendor_by_logo():
    """Every vendor's logo colour is its own, it appears on the vendor's documents only, and a
    receipt is a narrow slip (the page's grey surround shows at the left)."""
    import random

    logo_colors = {color for _, color in make_mini.VENDOR_LOGOS.values()}
    assert len(logo_colors) == len(make_mini.VENDORS) == len(make_mini.VENDOR_LOGOS)
    seen = set()
    for i in range(40):
        scene = make_mini.doc_scene(random.Random(f"doc-{i}"))
        title, vendor = scene.facts["title"], scene.facts["vendor"]
        seen.add(title)
        for name, (_, color) in make_mini.VENDOR_LOGOS.items():
            assert _has_color(scene.image, make_mini.COLORS[color]) == (name == vendor), i
        surround = scene.image.getpixel((50, 120))
        assert (surround == (150, 150, 150)) == (title == "RECEIPT"), (i, title)
    assert seen == set(make_mini.DOC_TITLES)
