"""Render the offline mini suite (task_yaml/mini/data): synthetic images with known answers.

Run `python -m dragonfly_eval.datagen.make_mini` to (re)write the data. The output is a pure
function of this file and Pillow's bundled default font: the same code writes the same records
and the same pixels, which tests/datagen/test_make_mini.py checks against the committed copy.

Each family draws a *scene* (an image and the facts it shows) and asks one question of it. The
embedded model's training script (`dragonfly_eval.tiny.train`) draws the same scenes from another
seed and asks every question a scene allows, so the suite is held out from training by seed.
The `fine` family is the zoom-in test: a square panel in a 2016x2016 image, filled with 1-pixel
stripes or checks or flat grey. The 336x336 low-resolution view averages every panel into the
same grey; the 2016x2016 high-resolution level keeps the lines.
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from dragonfly_eval.datagen.drawing import COLORS, SHAPES, draw_shape, font
from dragonfly_eval.errors import ExitCode
from dragonfly_eval.paths import task_yaml_dir

SEED = 20240601
SIZE = (320, 240)
FINE_SIZE = (2016, 2016)
FINE_PANEL = 672  # pixels per side of the fine family's panel (a third of the image side)
FAMILIES = ("vqa", "chart", "doc", "mc", "yesno", "caption", "fine")
COUNTS = {"vqa": 12, "chart": 12, "doc": 12, "mc": 12, "yesno": 12, "caption": 10, "fine": 20}

SHAPE_COLORS = ("red", "green", "blue", "yellow")  # the shape scenes' colours, in option order
YESNO_OBJECT = "star"  # what the yes/no questions ask about
SIGN_WORDS = ("STOP", "EXIT", "CAFE", "OPEN", "HOTEL", "PARK", "BANK", "TAXI", "BAKERY", "MUSEUM")
CHART_LABELS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat")
DAY_COLORS = ("blue", "orange", "green", "red", "purple", "yellow")  # the bar colour of each day
VENDORS = ("Acme Supply", "Blue River Ltd", "Northwind", "Sunrise Foods", "Kestrel Tools")
DOC_TITLES = ("INVOICE", "RECEIPT", "QUOTE", "ORDER")
VENDOR_LOGOS = {  # each vendor's logo: a shape and a colour
    "Acme Supply": ("triangle", "red"),
    "Blue River Ltd": ("circle", "blue"),
    "Northwind": ("square", "green"),
    "Sunrise Foods": ("circle", "orange"),
    "Kestrel Tools": ("star", "purple"),
}
PATTERNS = ("horizontal", "vertical", "checked", "plain")


@dataclass(frozen=True)
class Scene:
    """One rendered image and the facts it shows (what questions about it are answered from)."""

    kind: str
    image: Image.Image
    facts: dict


@dataclass(frozen=True)
class Item:
    """One mini-suite document: its JSON record and the image stored at record["image_path"]."""

    record: dict
    image: Image.Image


def _canvas(
    color: tuple[int, int, int] = (255, 255, 255), size: tuple[int, int] = SIZE
) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    image = Image.new("RGB", size, color)
    return image, ImageDraw.Draw(image)


# --- scenes ---------------------------------------------------------------------------------
def sign_scene(rng: random.Random) -> Scene:
    """A coloured street sign with one word on it."""
    word, color_name = rng.choice(SIGN_WORDS), rng.choice(sorted(COLORS))
    image, draw = _canvas((200, 215, 230))
    draw.rectangle((20, 150, 300, 240), fill=(120, 120, 120))
    draw.rectangle((150, 130, 170, 240), fill=(90, 90, 90))
    draw.rounded_rectangle((40, 40, 280, 140), radius=12, fill=COLORS[color_name])
    draw.text((160, 90), word, font=font(40), fill=(255, 255, 255), anchor="mm")
    return Scene("sign", image, {"word": word, "color": color_name})


def chart_scene(rng: random.Random) -> Scene:
    """A bar chart of 3 to 6 days with clearly different values, each day's bar in its own
    colour."""
    labels = CHART_LABELS[: rng.randint(3, 6)]
    values = rng.sample(range(10, 95, 12), len(labels))  # at least 12 apart: visibly different
    image, draw = _canvas()
    draw.line((30, 200, 310, 200), fill=(0, 0, 0), width=2)
    width = 260 // len(labels)
    for k, (label, value) in enumerate(zip(labels, values, strict=True)):
        x0 = 40 + k * width
        top = 200 - round(value * 1.7)
        draw.rectangle((x0, top, x0 + width - 14, 200), fill=COLORS[DAY_COLORS[k]])
        centre = x0 + (width - 14) // 2
        draw.text((centre, top - 4), str(value), font=font(14), fill=(0, 0, 0), anchor="mb")
        draw.text((centre, 206), label, font=font(14), fill=(0, 0, 0), anchor="mt")
    return Scene("chart", image, {"labels": list(labels), "values": values})


def doc_scene(rng: random.Random) -> Scene:
    """A small business document: a title, a vendor and some numbers. As with real paperwork,
    each kind of document has its own layout (a receipt is a narrow slip, an invoice has a table,
    a quote a shaded box, an order a list of check boxes) and each vendor its own logo, a coloured
    mark beside its name; the embedded model learns those cues where it cannot read the words."""
    title, vendor = rng.choice(DOC_TITLES), rng.choice(VENDORS)
    number = str(rng.randrange(10000, 99999))
    total = f"${rng.randrange(10, 999)}.{rng.randrange(0, 100):02d}"
    image, draw = _canvas((150, 150, 150))
    ink = (20, 20, 20)
    left, right = (100, 220) if title == "RECEIPT" else (10, 310)
    draw.rectangle((left, 4, right, 236), fill=(250, 250, 245))
    shape, color_name = VENDOR_LOGOS[vendor]
    draw_shape(draw, shape, (right - 46, 10, right - 8, 48), COLORS[color_name])
    if title == "RECEIPT":
        draw.text((left + 8, 54), title, font=font(16), fill=ink)
        draw.text((left + 8, 76), vendor, font=font(12), fill=ink)
        for k in range(5):
            draw.text((left + 8, 100 + 20 * k), f"item {k + 1}", font=font(12), fill=ink)
        draw.text((left + 8, 212), total, font=font(12), fill=ink)
        return Scene("doc", image, {"title": title, "vendor": vendor})
    draw.text((left + 10, 10), title, font=font(32), fill=ink)
    draw.text((left + 10, 52), vendor, font=font(20), fill=ink)
    draw.text((left + 10, 82), f"No: {number}   Total: {total}", font=font(14), fill=ink)
    if title == "INVOICE":  # a ruled table
        for k in range(5):
            draw.line((left + 10, 110 + 28 * k, right - 10, 110 + 28 * k), fill=ink, width=2)
        for x in (left + 10, 160, right - 10):
            draw.line((x, 110, x, 222), fill=ink, width=2)
    elif title == "QUOTE":  # the offer in a shaded box
        draw.rectangle((left + 10, 112, right - 10, 222), fill=(255, 236, 160))
        draw.text((left + 24, 156), "valid for 30 days", font=font(18), fill=ink)
    else:  # ORDER: a list of check boxes
        for k in range(4):
            y = 112 + 28 * k
            draw.rectangle((left + 12, y, left + 30, y + 18), outline=ink, width=2)
            draw.text((left + 40, y), f"article {k + 1}", font=font(16), fill=ink)
    return Scene("doc", image, {"title": title, "vendor": vendor})


def shape_scene(rng: random.Random, shape: str | None = None) -> Scene:
    """One coloured shape in the middle of a white canvas."""
    shape, color_name = shape or rng.choice(SHAPES), rng.choice(SHAPE_COLORS)
    image, draw = _canvas()
    draw_shape(draw, shape, (100, 60, 220, 180), COLORS[color_name])
    return Scene("shape", image, {"shape": shape, "color": color_name})


def _pattern_tile(pattern: str, size: int, rim: int = 6) -> np.ndarray:
    """The fine family's panel, uint8 [size, size, 3]: black-and-white 1-pixel stripes or checks
    (1 and 255, mean 128), or flat grey 128. The contrast fades to grey over the outer `rim`
    pixels (a raised cosine), so that no pattern leaves a trace at its edges once averaged down:
    in the 336x336 view of a 2016x2016 image the four differ by at most 2 grey levels, and only
    at a few edge pixels."""
    y, x = np.mgrid[0:size, 0:size]
    signs = {
        "horizontal": 2 * (y % 2) - 1,
        "vertical": 2 * (x % 2) - 1,
        "checked": (2 * (x % 2) - 1) * (2 * (y % 2) - 1),
        "plain": 0 * x,
    }[pattern]
    depth = np.minimum(np.minimum(x, size - 1 - x), np.minimum(y, size - 1 - y)) + 0.5
    envelope = np.where(depth >= rim, 1.0, 0.5 - 0.5 * np.cos(np.pi * depth / rim))
    grey = np.round(128 + 127 * signs * envelope).astype(np.uint8)  # 1 and 255 around 128
    return np.repeat(grey[..., None], 3, axis=2)


def fine_scene(rng: random.Random, pattern: str | None = None) -> Scene:
    """A large pale image with a few big soft shapes and one patterned square panel.

    The panel is FINE_PANEL pixels wide, its stripes one pixel: the 336x336 view averages every
    pattern into the same grey square, the 2016x2016 level keeps it. The panel sits on even
    coordinates, so its stripes line up with the tower's 14-pixel patches.
    """
    background = tuple(rng.randrange(200, 246) for _ in range(3))
    image, draw = _canvas(background, FINE_SIZE)
    for _ in range(rng.randint(2, 4)):
        x, y, r = rng.randrange(0, 2016), rng.randrange(0, 2016), rng.randrange(150, 400)
        tint = tuple(min(255, c + rng.randrange(-40, 10)) for c in background)
        draw_shape(draw, rng.choice(SHAPES[:2]), (x - r, y - r, x + r, y + r), tint)
    pattern = pattern or rng.choice(PATTERNS)
    x = 2 * rng.randrange(8, (FINE_SIZE[0] - FINE_PANEL) // 2 - 8)
    y = 2 * rng.randrange(8, (FINE_SIZE[1] - FINE_PANEL) // 2 - 8)
    pixels = np.array(image)
    pixels[y : y + FINE_PANEL, x : x + FINE_PANEL] = _pattern_tile(pattern, FINE_PANEL)
    return Scene("fine", Image.fromarray(pixels), {"pattern": pattern, "x": x, "y": y})


SCENES: dict[str, Callable[[random.Random], Scene]] = {
    "sign": sign_scene,
    "chart": chart_scene,
    "doc": doc_scene,
    "shape": shape_scene,
    "fine": fine_scene,
}
SCENE_OF = {
    "vqa": "sign",
    "chart": "chart",
    "doc": "doc",
    "mc": "shape",
    "yesno": "shape",
    "caption": "shape",
    "fine": "fine",
}


# --- questions ------------------------------------------------------------------------------
def _vqa(facts: dict, rng: random.Random, variant: int) -> dict:
    if variant % 2 == 0:
        return {
            "question": "what word is written on the sign?",
            "answers": [facts["word"].lower()] * 10,
        }
    return {"question": "what color is the sign?", "answers": [facts["color"]] * 10}


def _chart(facts: dict, rng: random.Random, variant: int) -> dict:
    labels, values = facts["labels"], facts["values"]
    if variant % 3 == 0:
        question, answer = "How many bars are there?", str(len(labels))
    elif variant % 3 == 1:
        question, answer = "Which day has the highest value?", labels[values.index(max(values))]
    else:
        question, answer = "Which day has the lowest value?", labels[values.index(min(values))]
    return {"question": question, "answer": answer, "type": "human_test"}


def _doc(facts: dict, rng: random.Random, variant: int) -> dict:
    if variant % 2 == 0:
        return {"question": "What is the title of this document?", "answers": [facts["title"]]}
    return {"question": "What is the vendor on this document?", "answers": [facts["vendor"]]}


def _mc(facts: dict, rng: random.Random, variant: int) -> dict:
    if variant % 2 == 0:
        options = list(SHAPES)
        return {
            "question": "Which shape is shown in the image?",
            "options": options,
            "answer": options.index(facts["shape"]),
        }
    options = list(SHAPE_COLORS)
    return {
        "question": "What color is the shape?",
        "options": options,
        "answer": options.index(facts["color"]),
    }


def _yesno(facts: dict, rng: random.Random, variant: int) -> dict:
    """POPE's object-existence question, always about the same object (a star), so that the
    answer is read from the image alone."""
    return {
        "question": f"Is there a {YESNO_OBJECT} in the image?",
        "answer": "yes" if facts["shape"] == YESNO_OBJECT else "no",
    }


def _caption(facts: dict, rng: random.Random, variant: int) -> dict:
    shape, color_name = facts["shape"], facts["color"]
    a_color = ("An " if color_name[0] in "aeiou" else "A ") + color_name
    return {
        "answer": [
            f"{a_color} {shape} on a white background.",
            f"A single {color_name} {shape} in the middle of the image.",
            f"The image shows {a_color.lower()} {shape}.",
            f"A simple drawing of {a_color.lower()} {shape}.",
            f"One {color_name} {shape} centered on a plain white canvas.",
        ]
    }


def _fine(facts: dict, rng: random.Random, variant: int) -> dict:
    return {
        "question": "What pattern fills the grey square: horizontal, vertical, checked or plain?",
        "answers": [facts["pattern"]] * 10,
    }


QUESTIONS: dict[str, Callable[[dict, random.Random, int], dict]] = {
    "vqa": _vqa,
    "chart": _chart,
    "doc": _doc,
    "mc": _mc,
    "yesno": _yesno,
    "caption": _caption,
    "fine": _fine,
}
VARIANTS = {"vqa": 2, "chart": 3, "doc": 2, "mc": 2, "yesno": 1, "caption": 1, "fine": 1}


def _document(family: str, i: int, fields: dict) -> dict:
    """A record in the schema of the benchmark the family stands in for."""
    path = f"images/{family}_{i:02d}.png"
    ids = {
        "vqa": {"question_id": i},
        "doc": {"questionId": i},
        "yesno": {"question_id": i},
        "caption": {"question_id": f"mini_caption_{i}.png", "id": i},
        "fine": {"question_id": i},
    }.get(family, {})
    return {**ids, **fields, "image_path": path}


def build_items(seed: int = SEED) -> dict[str, list[Item]]:
    """Every mini-suite item, family by family; deterministic (one seeded RNG per family).
    Questions take a family's variants in turn; yes/no answers are balanced."""
    items = {}
    for family in FAMILIES:
        rng = random.Random(f"{seed}-{family}")
        family_items = []
        for i in range(COUNTS[family]):
            if family == "fine":  # every pattern equally often
                scene = fine_scene(rng, PATTERNS[i % len(PATTERNS)])
            elif family == "yesno":  # half the answers yes
                others = [s for s in SHAPES if s != YESNO_OBJECT]
                scene = shape_scene(rng, YESNO_OBJECT if i % 2 == 0 else rng.choice(others))
            else:
                scene = SCENES[SCENE_OF[family]](rng)
            fields = QUESTIONS[family](scene.facts, rng, i % VARIANTS[family])
            family_items.append(Item(_document(family, i, fields), scene.image))
        items[family] = family_items
    return items


def questions_for(scene: Scene, rng: random.Random) -> list[tuple[str, dict]]:
    """Every (family, record fields) question the training script asks of a scene; the yes/no
    question of only a third of the scenes without the object, so that half its answers are yes."""
    asked = []
    for family, kind in SCENE_OF.items():
        if family == "yesno" and scene.kind == kind and scene.facts["shape"] != YESNO_OBJECT:
            if rng.random() >= 1 / 3:
                continue
        if kind == scene.kind:
            for variant in range(VARIANTS[family]):
                asked.append((family, QUESTIONS[family](scene.facts, rng, variant)))
    return asked


def write_mini(out_dir: Path) -> None:
    """Write `<family>.jsonl` and `images/*.png` for every family under out_dir."""
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    for family, items in build_items().items():
        with open(out_dir / f"{family}.jsonl", "w", encoding="utf-8") as f:
            for item in items:
                f.write(json.dumps(item.record, sort_keys=True) + "\n")
                item.image.save(out_dir / item.record["image_path"], format="PNG", optimize=True)


def main(argv: list[str] | None = None) -> int:
    """Command line: write the mini suite data (default: the task_yaml/mini/data folder)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=task_yaml_dir() / "mini" / "data")
    args = parser.parse_args(argv)
    write_mini(args.out)
    print(f"wrote the mini suite to {args.out}")
    return ExitCode.OK


if __name__ == "__main__":
    raise SystemExit(main())
