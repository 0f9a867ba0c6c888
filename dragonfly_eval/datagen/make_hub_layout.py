"""Render small local copies of the hub datasets behind lmms-eval's built-in tasks.

`python -m dragonfly_eval.datagen.make_hub_layout OUT` writes, under OUT, one folder per hub
repository laid out as the hub holds it: `OUT/<org>/<name>/README.md` (a YAML header declaring
`configs` with `data_files` per split) and parquet files in the same folders. Run lmms-eval
from OUT and `datasets.load_dataset("<org>/<name>", name=...)` resolves the repository id to that
folder, so built-in tasks (and the dragonfly_* twins, which use the same ids) run offline
unchanged, GQA's second config included.

Each copy holds a few synthetic documents with known answers, in the column names and types of
the real repository: every column lmms-eval's task utils read, with the type they expect, and
the other columns of the hub card (read for textvqa, ChartQA, DocVQA, ai2d, MME, POPE and
ScienceQA; for SEED-Bench, COCO-Caption2017, GQA and MMMU the upstream datasets' fields). Images are the datasets library's Image feature ({bytes, path} structs), so they
decode to PIL images as the hub's do. The output is a pure function of this file and Pillow's
bundled font.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml
from datasets import Dataset, Features, Image, Sequence, Value
from PIL import Image as PILImage
from PIL import ImageDraw

from dragonfly_eval.datagen.drawing import COLORS, SHAPES, draw_shape, font
from dragonfly_eval.errors import ExitCode

ORG = "lmms-lab-encoder"
SIZE = (192, 144)
STRING = Value("string")
STRINGS = Sequence(Value("string"))


@dataclass(frozen=True)
class HubConfig:
    """One config of a hub repository: its rows per split, their features, the data folder."""

    name: str
    folder: str
    features: Features
    splits: dict[str, list[dict]]


@dataclass(frozen=True)
class HubRepo:
    """A hub dataset repository (`<org>/<name>`) and its configs."""

    repo_id: str
    configs: tuple[HubConfig, ...]


def _scene(shape: str, color: str, text: str | None = None) -> PILImage.Image:
    """A shape of a named color on white, with an optional line of text under it."""
    image = PILImage.new("RGB", SIZE, (255, 255, 255))
    draw = ImageDraw.Draw(image)
    draw_shape(draw, shape, (66, 20, 126, 80), COLORS[color])
    if text is not None:
        draw.text((SIZE[0] // 2, 112), text, font=font(20), fill=(0, 0, 0), anchor="mm")
    return image


def _bars(labels: tuple[str, ...], values: tuple[int, ...]) -> PILImage.Image:
    """A bar chart with each bar's value printed above it."""
    image = PILImage.new("RGB", SIZE, (255, 255, 255))
    draw = ImageDraw.Draw(image)
    width = (SIZE[0] - 20) // len(labels)
    for k, (label, value) in enumerate(zip(labels, values, strict=True)):
        x0, top = 12 + k * width, 120 - value
        draw.rectangle((x0, top, x0 + width - 10, 120), fill=COLORS["blue"])
        draw.text((x0 + 4, top - 14), str(value), font=font(12), fill=(0, 0, 0))
        draw.text((x0 + 4, 124), label, font=font(12), fill=(0, 0, 0))
    return image


def _page(lines: list[str]) -> PILImage.Image:
    """A document page holding lines of text."""
    image = PILImage.new("RGB", SIZE, (250, 250, 245))
    draw = ImageDraw.Draw(image)
    for k, line in enumerate(lines):
        draw.text((10, 10 + 24 * k), line, font=font(16), fill=(0, 0, 0))
    return image


def textvqa() -> HubRepo:
    """lmms-lab-encoder/textvqa: the validation split (textvqa_val)."""
    features = Features(
        {
            "image_id": STRING,
            "question_id": Value("int32"),
            "question": STRING,
            "question_tokens": STRINGS,
            "image": Image(),
            "image_width": Value("int32"),
            "image_height": Value("int32"),
            "flickr_original_url": STRING,
            "flickr_300k_url": STRING,
            "answers": STRINGS,
            "image_classes": STRINGS,
            "set_name": STRING,
            "ocr_tokens": STRINGS,
        }
    )
    rows = []
    for i, (word, shape, color) in enumerate(
        [("stop", "square", "red"), ("cafe", "circle", "green"), ("exit", "triangle", "blue")]
        + [("park", "star", "orange")]
    ):
        question = "what word is written under the shape?"
        rows.append(
            {
                "image_id": f"{i:016x}",
                "question_id": 34602 + i,
                "question": question,
                "question_tokens": question.rstrip("?").split(),
                "image": _scene(shape, color, word.upper()),
                "image_width": SIZE[0],
                "image_height": SIZE[1],
                "flickr_original_url": "",
                "flickr_300k_url": "",
                "answers": [word] * 8 + [f"{word} sign", "unanswerable"],
                "image_classes": ["sign"],
                "set_name": "val",
                "ocr_tokens": [word.upper()],
            }
        )
    return HubRepo(
        f"{ORG}/textvqa", (HubConfig("default", "data", features, {"validation": rows}),)
    )


def chartqa() -> HubRepo:
    """lmms-lab-encoder/ChartQA: the test split (chartqa), human and augmented questions."""
    features = Features({"type": STRING, "question": STRING, "answer": STRING, "image": Image()})
    labels = ("Mon", "Tue", "Wed")
    charts = [(30, 70, 50), (80, 20, 40), (15, 45, 90), (60, 35, 75)]
    rows = []
    for i, values in enumerate(charts):
        if i % 2 == 0:
            question, answer = f"What is the value of the {labels[i % 3]} bar?", str(values[i % 3])
        else:
            question, answer = "Which day has the highest value?", labels[values.index(max(values))]
        kind = "human_test" if i < 2 else "augmented_test"
        rows.append(
            {"type": kind, "question": question, "answer": answer, "image": _bars(labels, values)}
        )
    return HubRepo(f"{ORG}/ChartQA", (HubConfig("default", "data", features, {"test": rows}),))


def docvqa() -> HubRepo:
    """lmms-lab-encoder/DocVQA: configs DocVQA (docvqa_val) and InfographicVQA (infovqa_val)."""
    doc_features = Features(
        {
            "questionId": STRING,
            "question": STRING,
            "question_types": STRINGS,
            "image": Image(),
            "docId": Value("int64"),
            "ucsf_document_id": STRING,
            "ucsf_document_page_no": STRING,
            "answers": STRINGS,
            "data_split": STRING,
        }
    )
    info_features = Features(
        {
            "questionId": STRING,
            "question": STRING,
            "answers": STRINGS,
            "answer_type": STRINGS,
            "image": Image(),
            "image_url": STRING,
            "operation/reasoning": STRINGS,
            "ocr": STRING,
            "data_split": STRING,
        }
    )
    invoices = [("40213", "Acme Supply", "$120.50"), ("58112", "Northwind", "$89.99")]
    invoices.append(("77305", "Kestrel Tools", "$410.00"))
    doc_rows, info_rows = [], []
    for i, (number, vendor, total) in enumerate(invoices):
        image = _page(["INVOICE", f"No: {number}", f"Vendor: {vendor}", f"Total: {total}"])
        field, answer = [("invoice number", number), ("vendor", vendor), ("total", total)][i]
        doc_rows.append(
            {
                "questionId": str(49150 + i),
                "question": f"What is the {field}?",
                "question_types": ["form"],
                "image": image,
                "docId": 14465 + i,
                "ucsf_document_id": f"mirror{i:04d}",
                "ucsf_document_page_no": "1",
                "answers": [answer, answer.lower()],
                "data_split": "val",
            }
        )
        share = 20 + 15 * i
        info_rows.append(
            {
                "questionId": str(65000 + i),
                "question": f"What share of people chose {vendor}?",
                "answers": [f"{share}%"],
                "answer_type": ["single span"],
                "image": _page([vendor, f"{share}%", "chose it"]),
                "image_url": "",
                "operation/reasoning": [],
                "ocr": "",
                "data_split": "val",
            }
        )
    return HubRepo(
        f"{ORG}/DocVQA",
        (
            HubConfig("DocVQA", "DocVQA", doc_features, {"validation": doc_rows}),
            HubConfig("InfographicVQA", "InfographicVQA", info_features, {"validation": info_rows}),
        ),
    )


def ai2d() -> HubRepo:
    """lmms-lab-encoder/ai2d: the test split (ai2d); `answer` is the option index as a string."""
    features = Features(
        {"question": STRING, "options": STRINGS, "answer": STRING, "image": Image()}
    )
    rows = []
    for i, shape in enumerate(SHAPES):
        color = sorted(COLORS)[i]
        rows.append(
            {
                "question": "Which shape does the diagram show?",
                "options": list(SHAPES),
                "answer": str(SHAPES.index(shape)),
                "image": _scene(shape, color),
            }
        )
    return HubRepo(f"{ORG}/ai2d", (HubConfig("default", "data", features, {"test": rows}),))


# A complete question pair (one "Yes", one "No" on the same image) for each category, so MME's
# pairwise aggregation (acc + acc+) can score every category.
MME_CATEGORIES = (("existence", "circle", "red"), ("numerical_calculation", "triangle", "green"))


def mme() -> HubRepo:
    """lmms-lab-encoder/MME: the test split (mme); one perception and one cognition category."""
    features = Features(
        {
            "question_id": STRING,
            "image": Image(),
            "question": STRING,
            "answer": STRING,
            "category": STRING,
        }
    )
    rows = []
    for i, (category, shape, color) in enumerate(MME_CATEGORIES):
        image = _scene(shape, color, "2 + 3" if category == "numerical_calculation" else None)
        other = "star" if shape != "star" else "circle"
        if category == "existence":
            pair = (f"Is there a {shape} in the image?", f"Is there a {other} in the image?")
        else:
            pair = ("Is the answer to the written sum 5?", "Is the answer to the written sum 7?")
        for question, answer in zip(pair, ("Yes", "No"), strict=True):
            rows.append(
                {
                    "question_id": f"{category}/{i:04d}.png",
                    "image": image,
                    "question": f"{question} Please answer yes or no.",
                    "answer": answer,
                    "category": category,
                }
            )
    return HubRepo(f"{ORG}/MME", (HubConfig("default", "data", features, {"test": rows}),))


def pope() -> HubRepo:
    """lmms-lab-encoder/POPE: config default (test: pope) and Full (adversarial/popular/random)."""
    features = Features(
        {
            "id": STRING,
            "question_id": STRING,
            "question": STRING,
            "answer": STRING,
            "image_source": STRING,
            "image": Image(),
            "category": STRING,
        }
    )

    def rows(category: str, offset: int) -> list[dict]:
        found = []
        # one "yes" and one "no" question per split: enough for precision, recall and F1
        for i, (shape, color) in enumerate(zip(SHAPES[:2], ("red", "green"), strict=True)):
            asked = shape if i % 2 == 0 else SHAPES[(i + 1) % len(SHAPES)]
            found.append(
                {
                    "id": str(offset + i),
                    "question_id": str(offset + i + 1),
                    "question": f"Is there a {asked} in the image?",
                    "answer": "yes" if asked == shape else "no",
                    "image_source": f"COCO_val2014_{offset + i:012d}",
                    "image": _scene(shape, color),
                    "category": category,
                }
            )
        return found

    splits = {
        name: rows(name, 100 * k) for k, name in enumerate(("adversarial", "popular", "random"))
    }
    return HubRepo(
        f"{ORG}/POPE",
        (
            HubConfig("default", "data", features, {"test": rows("adversarial", 900)}),
            HubConfig("Full", "Full", features, splits),
        ),
    )


def scienceqa() -> HubRepo:
    """lmms-lab-encoder/ScienceQA: config ScienceQA-IMG, the test split (scienceqa_img)."""
    features = Features(
        {
            "image": Image(),
            "question": STRING,
            "choices": STRINGS,
            "answer": Value("int8"),
            "hint": STRING,
            "task": STRING,
            "grade": STRING,
            "subject": STRING,
            "topic": STRING,
            "category": STRING,
            "skill": STRING,
            "lecture": STRING,
            "solution": STRING,
        }
    )
    rows = []
    for i, (shape, color) in enumerate(
        zip(SHAPES, ("orange", "purple", "green", "red"), strict=True)
    ):
        choices = [c for c in ("red", "green", "orange", "purple") if c != color][: 1 + i % 2]
        choices.insert(i % (len(choices) + 1), color)
        rows.append(
            {
                "image": _scene(shape, color),
                "question": f"What color is the {shape}?",
                "choices": choices,
                "answer": choices.index(color),
                "hint": "Look at the picture." if i % 2 else "",
                "task": "closed choice",
                "grade": "grade2",
                "subject": "natural science",
                "topic": "colors",
                "category": "Identify colors",
                "skill": "Identify colors",
                "lecture": "",
                "solution": f"The {shape} is {color}.",
            }
        )
    return HubRepo(
        f"{ORG}/ScienceQA", (HubConfig("ScienceQA-IMG", "ScienceQA-IMG", features, {"test": rows}),)
    )


def seedbench() -> HubRepo:
    """lmms-lab-encoder/SEED-Bench: the test split (seedbench_ppl); `image` is a list."""
    features = Features(
        {
            "answer": STRING,
            "choice_a": STRING,
            "choice_b": STRING,
            "choice_c": STRING,
            "choice_d": STRING,
            "data_id": STRING,
            "data_type": STRING,
            "question": STRING,
            "question_id": STRING,
            "question_type_id": Value("int16"),
            "image": Sequence(Image()),
        }
    )
    rows = []
    for i, shape in enumerate(SHAPES):
        rows.append(
            {
                "answer": "ABCD"[SHAPES.index(shape)],
                **{
                    f"choice_{letter}": option
                    for letter, option in zip("abcd", SHAPES, strict=True)
                },
                "data_id": f"{i}.jpg",
                "data_type": "image",
                "question": "Which shape is in the picture?",
                "question_id": str(101669 + i),
                "question_type_id": 1,
                "image": [_scene(shape, sorted(COLORS)[i])],
            }
        )
    return HubRepo(f"{ORG}/SEED-Bench", (HubConfig("default", "data", features, {"test": rows}),))


def coco_caption2017() -> HubRepo:
    """lmms-lab-encoder/COCO-Caption2017: the val split (coco2017_cap_val), five captions each."""
    features = Features(
        {
            "question_id": STRING,
            "image": Image(),
            "question": STRING,
            "answer": STRINGS,
            "id": Value("int64"),
            "license": Value("int8"),
            "file_name": STRING,
            "coco_url": STRING,
            "height": Value("int32"),
            "width": Value("int32"),
            "date_captured": STRING,
        }
    )
    rows = []
    for i, (shape, color) in enumerate(
        zip(SHAPES, ("red", "green", "blue", "yellow"), strict=True)
    ):
        name = f"{397133 + i:012d}.jpg"
        rows.append(
            {
                "question_id": name,
                "image": _scene(shape, color),
                "question": "Please carefully observe the image and come up with a caption for the image",
                "answer": [
                    f"A {color} {shape} on a white background.",
                    f"A single {color} {shape} near the top of the picture.",
                    f"The picture shows a {color} {shape}.",
                    f"A simple drawing of a {color} {shape}.",
                    f"One {color} {shape} on a plain white canvas.",
                ],
                "id": 397133 + i,
                "license": 1,
                "file_name": name,
                "coco_url": "",
                "height": SIZE[1],
                "width": SIZE[0],
                "date_captured": "2013-11-14 17:02:52",
            }
        )
    return HubRepo(
        f"{ORG}/COCO-Caption2017", (HubConfig("default", "data", features, {"val": rows}),)
    )


def gqa() -> HubRepo:
    """lmms-lab-encoder/GQA: configs testdev_balanced_instructions (the questions, gqa) and
    testdev_balanced_images (the images, joined on imageId by gqa_process_docs)."""
    question_features = Features(
        {
            "id": STRING,
            "imageId": STRING,
            "question": STRING,
            "answer": STRING,
            "fullAnswer": STRING,
            "isBalanced": Value("bool"),
            "groups": {"global": STRING, "local": STRING},
            "entailed": STRINGS,
            "equivalent": STRINGS,
            "types": {"structural": STRING, "semantic": STRING, "detailed": STRING},
            "semanticStr": STRING,
        }
    )
    image_features = Features({"id": STRING, "image": Image()})
    scenes = [("n1", "circle", "red"), ("n2", "square", "blue")]
    images, questions = [], []
    for image_id, shape, color in scenes:
        images.append({"id": image_id, "image": _scene(shape, color)})
        for kind, question, answer in (
            ("attr", f"What color is the {shape}?", color),
            ("verify", f"Is there a {shape} in the picture?", "yes"),
        ):
            qid = f"{image_id}{kind}"
            questions.append(
                {
                    "id": qid,
                    "imageId": image_id,
                    "question": question,
                    "answer": answer,
                    "fullAnswer": f"The answer is {answer}.",
                    "isBalanced": True,
                    "groups": {"global": kind, "local": f"{kind}-{shape}"},
                    "entailed": [],
                    "equivalent": [qid],
                    "types": {"structural": kind, "semantic": "attr", "detailed": kind},
                    "semanticStr": f"select: {shape} -> {kind}",
                }
            )
    return HubRepo(
        f"{ORG}/GQA",
        (
            HubConfig(
                "testdev_balanced_instructions",
                "testdev_balanced_instructions",
                question_features,
                {"testdev": questions},
            ),
            HubConfig(
                "testdev_balanced_images",
                "testdev_balanced_images",
                image_features,
                {"testdev": images},
            ),
        ),
    )


def mmmu() -> HubRepo:
    """lmms-lab-encoder/MMMU: the validation split (mmmu_val); `options` is a Python list
    literal, `image_1`..`image_7` hold the images the question's `<image n>` tags name, and the
    subject is read from `id` (validation_<Subject>_<n>)."""
    features = Features(
        {
            "id": STRING,
            "question": STRING,
            "options": STRING,
            "explanation": STRING,
            **{f"image_{k}": Image() for k in range(1, 8)},
            "img_type": STRING,
            "answer": STRING,
            "topic_difficulty": STRING,
            "question_type": STRING,
            "subfield": STRING,
        }
    )
    questions = [
        ("Art", "<image 1> Which shape is drawn?", str(list(SHAPES)), "C", "multiple-choice"),
        ("Math", "<image 1> How many corners does the shape have?", "[]", "4", "open"),
        (
            "Physics",
            "<image 1> What color is the shape?",
            "['red', 'blue']",
            "B",
            "multiple-choice",
        ),
    ]
    rows = []
    for i, (subject, question, options, answer, kind) in enumerate(questions):
        shape, color = ("triangle", "green") if i == 0 else ("square", "blue")
        rows.append(
            {
                "id": f"validation_{subject}_{i + 1}",
                "question": question,
                "options": options,
                "explanation": "",
                "image_1": _scene(shape, color),
                **{f"image_{k}": None for k in range(2, 8)},
                "img_type": "['Diagrams']",
                "answer": answer,
                "topic_difficulty": "Easy",
                "question_type": kind,
                "subfield": subject,
            }
        )
    return HubRepo(f"{ORG}/MMMU", (HubConfig("default", "data", features, {"validation": rows}),))


REPOS: tuple[Callable[[], HubRepo], ...] = (
    textvqa,
    chartqa,
    docvqa,
    ai2d,
    mme,
    pope,
    scienceqa,
    seedbench,
    coco_caption2017,
    gqa,
    mmmu,
)


def readme(repo: HubRepo) -> str:
    """The dataset card: a YAML header declaring each config's data_files per split."""
    configs = [
        {
            "config_name": config.name,
            "data_files": [
                {"split": split, "path": f"{config.folder}/{split}-*"} for split in config.splits
            ],
        }
        for config in repo.configs
    ]
    header = yaml.safe_dump({"configs": configs}, sort_keys=False)
    return f"---\n{header}---\n\nA few synthetic documents in the schema of {repo.repo_id}.\n"


def write_repo(repo: HubRepo, out_dir: Path) -> Path:
    """Write one repository's README.md and parquet files under out_dir/<org>/<name>/."""
    root = out_dir / repo.repo_id
    for config in repo.configs:
        (root / config.folder).mkdir(parents=True, exist_ok=True)
        for split, rows in config.splits.items():
            dataset = Dataset.from_list(rows, features=config.features)
            dataset.to_parquet(str(root / config.folder / f"{split}-00000-of-00001.parquet"))
    (root / "README.md").write_text(readme(repo), encoding="utf-8")
    return root


def write_layout(out_dir: Path) -> list[Path]:
    """Write every repository under out_dir; returns their folders."""
    return [write_repo(build(), out_dir) for build in REPOS]


def main(argv: list[str] | None = None) -> int:
    """Command line: write the hub-layout copies into OUT (run lmms-eval from OUT)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder to write <org>/<name>/ repositories into")
    args = parser.parse_args(argv)
    for folder in write_layout(args.out):
        print(folder)
    return ExitCode.OK


if __name__ == "__main__":
    raise SystemExit(main())
