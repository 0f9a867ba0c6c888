"""`dragonfly-eval diff`: documents paired by doc_id, gained/lost/changed, markdown and HTML."""

from __future__ import annotations

import json
from html.parser import HTMLParser

from dragonfly_eval.leaderboard.diff.changes import diff_runs
from tests.leaderboard.test_regress import run_cli
from tests.leaderboard.test_regress_samples import write_samples

TASK = "dragonfly_ai2d"
METRIC = "exact_match,flexible-extract"


def write_side(write_run, root, date, answers, scores, hib=True, task=TASK, key="exact_match"):
    """A results file with its sample log: one line per document."""
    path = write_run("org/m", date, {task: {METRIC: 0.5}}, root=root)
    payload = json.loads(path.read_text())
    payload["higher_is_better"] = {task: {key: hib}}
    path.write_text(json.dumps(payload))
    lines = [
        {
            "doc_id": i,
            "doc_hash": f"h{i}",
            "target": "B",
            "input": f"Question {i}?",
            "filtered_resps": answer,
            key: score,
        }
        for i, (answer, score) in enumerate(zip(answers, scores, strict=True))
    ]
    write_samples(path, task, lines)
    return root


def two_runs(tmp_path, write_run, hib=True):
    a = write_side(
        write_run,
        tmp_path / "a",
        "20240101_000000",
        ["B", "A", "C", "A", "x"],
        [1, 0, 0, 0, 1],
        hib,
    )
    b = write_side(
        write_run,
        tmp_path / "b",
        "20240201_000000",
        ["A", "B", "D", "A", "x"],
        [0, 1, 0, 0, 1],
        hib,
    )
    return a, b


def test_documents_are_classified_and_sorted_by_impact(tmp_path, write_run, suite):
    a, b = two_runs(tmp_path, write_run)
    (diff,) = diff_runs(a, b, suite=suite).tasks
    assert diff.metric == "exact_match" and diff.paired == 5
    assert [(c.doc_id, c.kind) for c in diff.changes] == [
        (0, "lost"),
        (1, "gained"),
        (2, "changed"),
    ]
    lost = diff.changes[0]
    assert (lost.question, lost.target, lost.answer_a, lost.answer_b) == (
        "Question 0?",
        "B",
        "B",
        "A",
    )
    assert (lost.score_a, lost.score_b) == (1.0, 0.0)


def test_a_lower_is_better_metric_gains_when_its_score_falls(tmp_path, write_run, suite):
    a, b = two_runs(tmp_path, write_run, hib=False)
    (diff,) = diff_runs(a, b, suite=suite).tasks
    assert {c.doc_id: c.kind for c in diff.changes} == {0: "gained", 1: "lost", 2: "changed"}


def test_cli_prints_counts_and_the_documents(tmp_path, write_run, suite_file, capsys):
    a, b = two_runs(tmp_path, write_run)
    assert run_cli(["diff", str(a), str(b), "--suite-file", str(suite_file)]) == 0
    out = capsys.readouterr().out
    assert "5 documents in both runs: 1 gained, 1 lost, 1 changed answers." in out
    assert "| 0 | lost | Question 0? | B | B | A | 1 | 0 |" in out
    assert out.index("| 0 | lost") < out.index("| 1 | gained") < out.index("| 2 | changed")


def test_max_rows_cuts_the_list_and_says_so(tmp_path, write_run, suite_file, capsys):
    a, b = two_runs(tmp_path, write_run)
    argv = ["diff", str(a), str(b), "--max-rows", "1", "--suite-file", str(suite_file)]
    assert run_cli(argv) == 0
    out = capsys.readouterr().out
    assert "| 1 | gained" not in out and "and 2 more (--max-rows)" in out


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[str] = []
        self.rows: list[list[str]] = []
        self._row: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "tr":
            self._row = []

    def handle_endtag(self, tag):
        if tag == "tr" and self._row is not None:
            self.rows.append(self._row)
            self._row = None

    def handle_data(self, data):
        if self._row is not None and self.tags[-1] in ("td", "th"):
            self._row.append(data)


def test_html_page_is_self_contained_and_escapes_answers(tmp_path, write_run, suite_file):
    evil = "<script>alert(1)</script>"
    a = write_side(write_run, tmp_path / "a", "20240101_000000", [evil, "A"], [1, 0])
    b = write_side(write_run, tmp_path / "b", "20240201_000000", ["<img src=x>", "A"], [0, 0])
    page = tmp_path / "diff.html"
    argv = ["diff", str(a), str(b), "--html", str(page), "--suite-file", str(suite_file)]
    assert run_cli(argv) == 0
    html = page.read_text()
    assert "<script" not in html and "<img" not in html and "src=" not in html.replace("src=x", "")
    parser = _Collect()
    parser.feed(html)
    assert "script" not in parser.tags and "link" not in parser.tags
    assert ["0", "lost", "Question 0?", "B", evil, "<img src=x>", "1", "0"] in parser.rows


def test_a_side_without_sample_logs_exits_2(tmp_path, write_run, suite_file, capsys):
    a, _ = two_runs(tmp_path, write_run)
    empty = write_run("org/m", "20240301_000000", {TASK: {METRIC: 0.5}}, root=tmp_path / "c")
    assert run_cli(["diff", str(a), str(empty.parent), "--suite-file", str(suite_file)]) == 2
    assert "B: no sample logs" in capsys.readouterr().err


def test_tasks_on_one_side_only_are_listed(tmp_path, write_run, suite_file, capsys):
    a, b = two_runs(tmp_path, write_run)
    write_side(write_run, a, "20240101_000000", ["A"], [1], task="dragonfly_mme")
    assert run_cli(["diff", str(a), str(b), "--suite-file", str(suite_file)]) == 0
    captured = capsys.readouterr()
    assert "dragonfly_mme: only in A" in captured.err and "dragonfly_mme: only in A" in captured.out


def test_images_are_embedded_as_thumbnails_from_inside_the_folder_only(
    tmp_path, write_run, suite_file
):
    from PIL import Image

    images = tmp_path / "data"
    (images / "images").mkdir(parents=True)
    Image.new("RGB", (640, 480), "red").save(images / "images" / "doc0.png")
    Image.new("RGB", (8, 8), "blue").save(tmp_path / "outside.png")
    a = write_side(write_run, tmp_path / "a", "20240101_000000", ["B", "A"], [1, 0])
    b = write_side(write_run, tmp_path / "b", "20240201_000000", ["A", "A"], [0, 0])
    (log,) = (a / "org__m").glob("*_samples_*.jsonl")
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    lines[0]["input_media"] = ["images/doc0.png", "../outside.png"]
    log.write_text("".join(json.dumps(line) + "\n" for line in lines))
    page = tmp_path / "diff.html"
    argv = ["diff", str(a), str(b), "--html", str(page), "--images", str(images)]
    assert run_cli([*argv, "--suite-file", str(suite_file)]) == 0
    html = page.read_text()
    assert html.count('src="data:image/png;base64,') == 1
    assert '<span class="missing">../outside.png</span>' in html
    assert "file:" not in html and "http" not in html
