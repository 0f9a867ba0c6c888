"""Render the offline mini suite (task_yaml/mini/data): synthetic images with known answers.

Run `python -m dragonfly_eval.tasks.make_mini` to (re)write the data. The output is a pure
function of this file and Pillow's bundled default font: the same code writes the same records
and the same pixels, which tests/tasks/test_make_mini.py checks against the committed copy.
"""

from __future__ import annotations

import argparse
import json
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from dragonfly_eval.paths import task_yaml_dir

SEED = 20240601
SIZE = (320, 240)
FAMILIES = ("vqa", "chart", "doc", "mc", "yesno", "caption")

COLORS = {
    "red": (220, 40, 40),
    "green": (40, 160, 60),
    "blue": (40, 80, 220),
    "yellow": (235, 200, 40),
    "purple": (140, 60, 180),
    "orange": (240, 130, 30),
}
SHAPES = ("circle", "square", "triangle", "star")
SIGN_WORDS = ("STOP", "EXIT", "CAFE", "OPEN", "HOTEL", "PARK", "BANK", "TAXI", "BAKERY", "MUSEUM")
CHART_LABELS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat")
VENDORS = ("Acme Supply", "Blue River Ltd", "Northwind", "Sunrise Foods", "Kestrel Tools")


@dataclass(frozen=True)
class Item:
    """One mini-suite document: its JSON record and the image stored at record["image_path"]."""

    record: dict
    image: Image.Image


def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def _canvas(
    color: tuple[int, int, int] = (255, 255, 255),
) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    image = Image.new("RGB", SIZE, color)
    return image, ImageDraw.Draw(image)


def _draw_shape(
    draw: ImageDraw.ImageDraw, shape: str, box: tuple[int, int, int, int], fill
) -> None:
    x0, y0, x1, y1 = box
    if shape == "circle":
        draw.ellipse(box, fill=fill)
    elif shape == "square":
        draw.rectangle(box, fill=fill)
    elif shape == "triangle":
        draw.polygon([((x0 + x1) // 2, y0), (x1, y1), (x0, y1)], fill=fill)
    elif shape == "star":
        cx, cy, r = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2
        points = []
        for k in range(10):
            radius = r if k % 2 == 0 else r * 0.45
            angle = math.pi / 5 * k - math.pi / 2
            points.append(
                (round(cx + radius * math.cos(angle)), round(cy + radius * math.sin(angle)))
            )
        draw.polygon(points, fill=fill)
    else:
        raise ValueError(f"unknown shape {shape!r}")


def _vqa_items(rng: random.Random) -> list[Item]:
    items = []
    for i, word in enumerate(SIGN_WORDS):
        color_name = rng.choice(sorted(COLORS))
        image, draw = _canvas((200, 215, 230))
        draw.rectangle((20, 150, 300, 240), fill=(120, 120, 120))
        draw.rectangle((150, 130, 170, 240), fill=(90, 90, 90))
        draw.rounded_rectangle((40, 40, 280, 140), radius=12, fill=COLORS[color_name])
        draw.text((160, 90), word, font=_font(40), fill=(255, 255, 255), anchor="mm")
        if i % 2 == 0:
            question, answer = "what word is written on the sign?", word.lower()
        else:
            question, answer = "what color is the sign?", color_name
        record = {
            "question_id": i,
            "question": question,
            "answers": [answer] * 10,
            "image_path": f"images/vqa_{i:02d}.png",
        }
        items.append(Item(record, image))
    return items


def _chart_items(rng: random.Random) -> list[Item]:
    items = []
    for i in range(10):
        labels = CHART_LABELS[: 3 + i % 3]
        values = rng.sample(range(5, 95), len(labels))
        image, draw = _canvas()
        draw.line((30, 200, 310, 200), fill=(0, 0, 0), width=2)
        width = 260 // len(labels)
        for k, (label, value) in enumerate(zip(labels, values, strict=True)):
            x0 = 40 + k * width
            top = 200 - round(value * 1.7)
            draw.rectangle((x0, top, x0 + width - 14, 200), fill=COLORS["blue"])
            draw.text(
                (x0 + (width - 14) // 2, top - 4),
                str(value),
                font=_font(14),
                fill=(0, 0, 0),
                anchor="mb",
            )
            draw.text(
                (x0 + (width - 14) // 2, 206), label, font=_font(14), fill=(0, 0, 0), anchor="mt"
            )
        if i % 2 == 0:
            k = rng.randrange(len(labels))
            question, answer = f"What is the value of the {labels[k]} bar?", str(values[k])
        else:
            question, answer = "Which day has the highest value?", labels[values.index(max(values))]
        record = {
            "question": question,
            "answer": answer,
            "type": "human_test",
            "image_path": f"images/chart_{i:02d}.png",
        }
        items.append(Item(record, image))
    return items


def _doc_items(rng: random.Random) -> list[Item]:
    items = []
    fields = ("invoice number", "date", "total", "vendor")
    for i in range(10):
        number = str(rng.randrange(10000, 99999))
        date = f"2024-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}"
        total = f"${rng.randrange(10, 999)}.{rng.randrange(0, 100):02d}"
        vendor = VENDORS[i % len(VENDORS)]
        image, draw = _canvas((250, 250, 245))
        draw.text((20, 14), "INVOICE", font=_font(26), fill=(0, 0, 0))
        draw.line((20, 48, 300, 48), fill=(0, 0, 0), width=1)
        lines = [f"Invoice No: {number}", f"Date: {date}", f"Vendor: {vendor}", f"Total: {total}"]
        for k, line in enumerate(lines):
            draw.text((20, 64 + 30 * k), line, font=_font(18), fill=(20, 20, 20))
        field = fields[i % len(fields)]
        answer = {"invoice number": number, "date": date, "total": total, "vendor": vendor}[field]
        record = {
            "questionId": i,
            "question": f"What is the {field} on this invoice?",
            "answers": [answer],
            "image_path": f"images/doc_{i:02d}.png",
        }
        items.append(Item(record, image))
    return items


def _mc_items(rng: random.Random) -> list[Item]:
    items = []
    for i in range(10):
        shape = SHAPES[i % len(SHAPES)]
        color_name = rng.choice(sorted(COLORS))
        image, draw = _canvas()
        _draw_shape(draw, shape, (100, 60, 220, 180), COLORS[color_name])
        if i % 2 == 0:
            options = list(SHAPES)
            question, answer = "Which shape is shown in the image?", options.index(shape)
        else:
            options = rng.sample([c for c in sorted(COLORS) if c != color_name], 3)
            answer = rng.randrange(4)
            options.insert(answer, color_name)
            question = "What color is the shape?"
        record = {
            "question": question,
            "options": options,
            "answer": answer,
            "image_path": f"images/mc_{i:02d}.png",
        }
        items.append(Item(record, image))
    return items


def _yesno_items(rng: random.Random) -> list[Item]:
    items = []
    for i in range(12):
        shape = SHAPES[rng.randrange(len(SHAPES))]
        color_name = rng.choice(sorted(COLORS))
        image, draw = _canvas()
        _draw_shape(draw, shape, (100, 60, 220, 180), COLORS[color_name])
        asked = shape if i % 2 == 0 else rng.choice([s for s in SHAPES if s != shape])
        record = {
            "question_id": i,
            "question": f"Is there a {asked} in the image?",
            "answer": "yes" if asked == shape else "no",
            "image_path": f"images/yesno_{i:02d}.png",
        }
        items.append(Item(record, image))
    return items


def _caption_items(rng: random.Random) -> list[Item]:
    items = []
    for i in range(10):
        shape = SHAPES[i % len(SHAPES)]
        color_name = rng.choice(sorted(COLORS))
        image, draw = _canvas()
        _draw_shape(draw, shape, (100, 60, 220, 180), COLORS[color_name])
        a_color = ("An " if color_name[0] in "aeiou" else "A ") + color_name
        record = {
            "question_id": f"mini_caption_{i}.png",
            "id": i,
            "answer": [
                f"{a_color} {shape} on a white background.",
                f"A single {color_name} {shape} in the middle of the image.",
                f"The image shows {a_color.lower()} {shape}.",
                f"A simple drawing of {a_color.lower()} {shape}.",
                f"One {color_name} {shape} centered on a plain white canvas.",
            ],
            "image_path": f"images/caption_{i:02d}.png",
        }
        items.append(Item(record, image))
    return items


BUILDERS: dict[str, Callable[[random.Random], list[Item]]] = {
    "vqa": _vqa_items,
    "chart": _chart_items,
    "doc": _doc_items,
    "mc": _mc_items,
    "yesno": _yesno_items,
    "caption": _caption_items,
}


def build_items() -> dict[str, list[Item]]:
    """Every mini-suite item, family by family; deterministic (one seeded RNG per family)."""
    return {family: BUILDERS[family](random.Random(f"{SEED}-{family}")) for family in FAMILIES}


def write_mini(out_dir: Path) -> None:
    """Write `<family>.jsonl` and `images/*.png` for every family under out_dir."""
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    for family, items in build_items().items():
        with open(out_dir / f"{family}.jsonl", "w", encoding="utf-8") as f:
            for item in items:
                f.write(json.dumps(item.record, sort_keys=True) + "\n")
                item.image.save(out_dir / item.record["image_path"], format="PNG")


def main(argv: list[str] | None = None) -> int:
    """Command line: write the mini suite data (default: the task_yaml/mini/data folder)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=task_yaml_dir() / "mini" / "data")
    args = parser.parse_args(argv)
    write_mini(args.out)
    print(f"wrote the mini suite to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
