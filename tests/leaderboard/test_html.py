"""The HTML leaderboard: the grid of the markdown, escaped, self-contained, with tooltips."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from html.parser import HTMLParser
from pathlib import Path

from test_cli import REAL_RUN, run_cli

from dragonfly_eval.leaderboard.board.html import SCRIPT, render_html
from dragonfly_eval.leaderboard.board.table import build_table, grid
from dragonfly_eval.leaderboard.reference import ReferenceRow

HOSTILE = ["<img src=x onerror=alert(1)>", '"><script>alert(1)</script>']


class Page(HTMLParser):
    """Every start tag with its attributes, and each table's cells: attributes and texts."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.tables: dict[str, list[list[dict]]] = {}
        self._table: str | None = None
        self._cell: dict | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attributes = {k: v or "" for k, v in attrs}
        self.tags.append((tag, attributes))
        if tag == "table":
            self._table = attributes.get("id", "")
            self.tables[self._table] = []
        elif tag == "tr" and self._table is not None:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table is not None:
            self._cell = {"attrs": attributes, "texts": []}
            self.tables[self._table][-1].append(self._cell)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th"):
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None and data.strip():
            self._cell["texts"].append(data)


def _ai2d(write_run, model: str, value: float, effective: int = 10, root=None) -> Path:
    path = write_run(
        model,
        "20240301_120000",
        {"dragonfly_ai2d": {"exact_match,flexible-extract": value}},
        root=root,
    )
    payload = json.loads(path.read_text())
    payload["n-samples"]["dragonfly_ai2d"] = {"original": 10, "effective": effective}
    path.write_text(json.dumps(payload))
    return path


def _board(suite, write_run, tmp_path, reference=()):
    _ai2d(write_run, "org/full", 0.5)
    _ai2d(write_run, "org/part", 0.9, effective=3)
    return build_table([tmp_path / "out"], suite, ["general"], list(reference))


def test_the_page_shows_the_cells_of_the_markdown_grid(suite, write_run, tmp_path):
    ref = ReferenceRow("Paper model", "A paper, 2024", scores={"ai2d": 60.0}, extra={})
    table = _board(suite, write_run, tmp_path, [ref])
    page = Page(render_html(table))
    header, cells = grid(table)
    shown = page.tables["headline-general"]
    assert [c["texts"][0] for c in shown[0]] == header
    # every cell as the grid has it, the run date shortened to its day
    assert [[c["texts"][0] for c in row] for row in shown[1:]] == [
        [c.text[:10] if i == 1 and c.text != "published" else c.text for i, c in enumerate(r)]
        for r in cells
    ]
    # the published row carries its source; the best cell is marked; the partial cell too
    published = next(row for row in shown[1:] if row[0]["texts"][0] == "Paper model †")
    assert published[0]["texts"][1] == "A paper, 2024"
    assert "published: A paper, 2024" in published[0]["attrs"]["title"]
    full = next(row for row in shown[1:] if row[0]["texts"][0] == "org/full")
    part = next(row for row in shown[1:] if row[0]["texts"][0] == "org/part")
    assert published[2]["attrs"]["class"] == "best" and "class" not in full[2]["attrs"]
    assert part[2]["attrs"]["class"] == "partial" and part[2]["texts"] == ["90.0 (n=3)"]
    assert part[2]["attrs"]["data-sort"] == "90.0" and full[3]["attrs"]["data-sort"] == ""


def test_a_cell_tooltip_names_the_run_date_model_args_and_documents(suite, write_run, tmp_path):
    page = Page(render_html(_board(suite, write_run, tmp_path)))
    part = next(r for r in page.tables["headline-general"][1:] if r[0]["texts"][0] == "org/part")
    tip = part[2]["attrs"]["title"]
    assert "partial run (n=3)" in tip
    assert "dragonfly_ai2d: run 2024-03-01 12:00:00 +08:00" in tip
    assert "model_args: pretrained=org/part,dtype=float32" in tip
    assert "documents: 3 of 10" in tip


def test_hostile_model_names_are_text_not_markup(suite, write_run, tmp_path):
    for index, name in enumerate(HOSTILE):
        _ai2d(write_run, name, 0.1 * index, root=tmp_path / "out" / str(index))
    ref = ReferenceRow("<b>paper</b>", "</span><script>alert(2)</script>", {"ai2d": 1.0}, {})
    text = render_html(build_table([tmp_path / "out"], suite, ["general"], [ref]))
    page = Page(text)
    assert [tag for tag, _ in page.tags].count("script") == 1  # the page's own
    assert not any(tag == "b" for tag, _ in page.tags)
    published = page.tables["headline-general"][-1][0]
    assert published["texts"] == ["<b>paper</b> †", "</span><script>alert(2)</script>"]
    assert [attrs["alt"] for tag, attrs in page.tags if tag == "img"] == [
        "Grouped bar chart of the headline scores"
    ]
    labels = [row[0]["texts"][0] for row in page.tables["headline-general"][1:]]
    assert sorted(labels[:-1]) == sorted(HOSTILE)
    assert all(name not in text for name in HOSTILE)


def test_the_page_loads_nothing_from_outside(suite, write_run, tmp_path):
    text = render_html(_board(suite, write_run, tmp_path))
    page = Page(text)
    assert not any(tag == "link" for tag, _ in page.tags)
    linked = [a[k] for _, a in page.tags for k in ("src", "href") if k in a]
    assert linked and all(url.startswith("data:image/png;base64,") for url in linked)
    png = base64.b64decode(linked[0].removeprefix("data:image/png;base64,"))
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    policy = next(a["content"] for t, a in page.tags if a.get("http-equiv"))
    digest = base64.b64encode(hashlib.sha256(SCRIPT.encode()).digest()).decode()
    assert policy.startswith("default-src 'none';") and f"'sha256-{digest}'" in policy


def test_headers_say_how_to_sort(suite, write_run, tmp_path):
    page = Page(render_html(_board(suite, write_run, tmp_path)))
    kinds = [
        (c["attrs"]["data-kind"], c["attrs"]["data-higher"])
        for c in page.tables["headline-general"][0]
    ]
    assert kinds[:3] == [("text", "1"), ("text", "1"), ("number", "1")]
    assert kinds[-1] == ("number", "1")  # the average


def test_cli_writes_the_page_and_keeps_markdown_the_default(tmp_path, suite_file, capsys):
    argv = ["leaderboard", str(REAL_RUN), "--suite-file", str(suite_file), "--no-reference"]
    assert run_cli(argv) == 0
    assert capsys.readouterr().out.startswith("| Model | Run date | AI2D |")
    page_path = tmp_path / "site" / "board.html"
    assert run_cli([*argv, "--html", str(page_path)]) == 0
    assert capsys.readouterr().out.startswith("1 model(s) run, 0 published row(s)")
    page = Page(page_path.read_text(encoding="utf-8"))
    assert (
        page.tables["headline-general"][1][0]["texts"][0]
        == "togethercomputer/Llama-3-8B-Dragonfly-v1"
    )
    assert "ok_vqa_val2014" in page_path.read_text(encoding="utf-8")  # the other tasks note


def test_the_committed_page_is_what_the_readme_command_writes(tmp_path, capsys):
    repo = Path(__file__).resolve().parents[2]
    written = tmp_path / "mini.html"
    argv = ["leaderboard", str(repo / "leaderboards" / "mini_baseline"), "--suite", "mini,general"]
    assert run_cli([*argv, "--html", str(written)]) == 0
    # the chart's PNG bytes vary with matplotlib's version; everything else must match
    chart = re.compile(r"data:image/png;base64,[A-Za-z0-9+/=]+")
    committed = (repo / "leaderboards" / "mini.html").read_text(encoding="utf-8")
    assert chart.sub("", written.read_text(encoding="utf-8")) == chart.sub("", committed), (
        "leaderboards/mini.html is out of date: regenerate it (docs/leaderboard-and-gate.md, 'dragonfly-eval leaderboard')"
    )


def test_model_args_recorded_as_a_mapping_show_as_pairs(suite, write_run, tmp_path):
    path = _ai2d(write_run, "org/m", 0.5)
    payload = json.loads(path.read_text())
    payload["config"]["model_args"] = {"pretrained": "org/m", "zoom": "full", "nested": {"a": 1}}
    path.write_text(json.dumps(payload))
    page = Page(render_html(build_table([tmp_path / "out"], suite, ["general"])))
    tip = page.tables["headline-general"][1][2]["attrs"]["title"]
    assert "model_args: pretrained=org/m,zoom=full,nested=..." in tip
