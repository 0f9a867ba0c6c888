"""The `dragonfly-eval diff --html FILE` page: one self-contained HTML file (inline style, no
script, nothing fetched), every text from the sample logs escaped."""

from __future__ import annotations

import base64
import io
from html import escape
from pathlib import Path

from PIL import Image

from dragonfly_eval.leaderboard.diff.changes import (
    DiffReport,
    DocChange,
    TaskDiff,
    counts_line,
    shorten,
)
from dragonfly_eval.safe_json import read_bytes

THUMBNAIL = (128, 128)
MAX_IMAGE_BYTES = 32 * 2**20

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin-bottom: 2em; }
th, td { border: 1px solid #ccc; padding: 4px 8px; vertical-align: top; text-align: left; }
th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.lost td.kind { color: #b00020; font-weight: bold; }
tr.gained td.kind { color: #1b7f3b; font-weight: bold; }
td.text { max-width: 28em; white-space: pre-wrap; word-break: break-word; }
"""


def render_diff_html(report: DiffReport, max_rows: int, images: Path | None = None) -> str:
    """The whole page: a section per task with its counts and changed documents. With
    `images`, the folder the logged image paths (`input_media`) are relative to, each document
    shows its images as embedded thumbnails."""
    title = f"{report.a} (A) vs {report.b} (B)"
    body = [f"<h1>{escape(title)}</h1>"]
    body += [_task_section(diff, max_rows, images) for diff in report.tasks]
    if report.problems:
        items = "".join(f"<li>{escape(p)}</li>" for p in report.problems)
        body.append(f"<h2>Not compared</h2><ul>{items}</ul>")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body>{''.join(body)}</body></html>\n"
    )


def _task_section(diff: TaskDiff, max_rows: int, images: Path | None) -> str:
    heading = escape(diff.task) + (f" ({escape(diff.metric)})" if diff.metric else "")
    parts = [f"<h2>{heading}</h2>", f"<p>{escape(counts_line(diff))}</p>"]
    if diff.changes:
        header = ("doc_id", "change", "question", "target", "answer A", "answer B")
        header += ("score A", "score B") + (("image",) if images else ())
        cells = "".join(f"<th>{h}</th>" for h in header)
        rows = "".join(_row(c, images) for c in diff.changes[:max_rows])
        parts.append(f"<table><thead><tr>{cells}</tr></thead><tbody>{rows}</tbody></table>")
        if len(diff.changes) > max_rows:
            parts.append(f"<p>… and {len(diff.changes) - max_rows} more (--max-rows).</p>")
    return "<section>" + "".join(parts) + "</section>"


def _row(change: DocChange, images: Path | None) -> str:
    texts = (change.question, change.target, change.answer_a, change.answer_b)
    text_cells = "".join(f'<td class="text">{escape(t)}</td>' for t in texts)
    scores = "".join(f'<td class="num">{_score(s)}</td>' for s in (change.score_a, change.score_b))
    image = f"<td>{''.join(_thumbnail(images, m) for m in change.media)}</td>" if images else ""
    return (
        f'<tr class="{change.kind}"><td class="num">{change.doc_id}</td>'
        f'<td class="kind">{change.kind}</td>{text_cells}{scores}{image}</tr>'
    )


def _thumbnail(folder: Path, name: str) -> str:
    """One logged image as an embedded PNG thumbnail, or its escaped name when it is not a
    readable image inside `folder` (a log's path may point anywhere, hold a NUL byte, be too
    long for the file system or end in a symlink loop)."""
    label = escape(shorten(name).replace("\x00", "\ufffd"))  # HTML text cannot hold a NUL
    fallback = f'<span class="missing">{label}</span>'
    try:
        root = folder.resolve()
        path = (root / name).resolve()  # RuntimeError on a symlink loop (Python < 3.13)
        if not path.is_relative_to(root):
            return fallback
        data = read_bytes(path, MAX_IMAGE_BYTES, ValueError)
        with Image.open(io.BytesIO(data)) as image:
            image.thumbnail(THUMBNAIL)
            buffer = io.BytesIO()
            image.convert("RGB").save(buffer, format="PNG")
    except (OSError, ValueError, RuntimeError, Image.DecompressionBombError):
        return fallback
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img alt="{label}" src="data:image/png;base64,{encoded}">'


def _score(score: float | None) -> str:
    return "–" if score is None else f"{score:.4g}"
