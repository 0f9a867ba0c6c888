"""The CI regression run: the demo (mini suite on the embedded model) against the committed
baseline in leaderboards/. A change that alters the embedded model's outputs fails here."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from dragonfly_eval.leaderboard.suite import load_suite

REPO = Path(__file__).resolve().parents[1]
BASELINE = REPO / "leaderboards" / "mini_baseline"

pytestmark = pytest.mark.slow


def _cli(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dragonfly_eval.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory, offline_env) -> Path:
    out = tmp_path_factory.mktemp("demo")
    done = _cli("demo", "--output", str(out), cwd=out, env=offline_env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out


def test_demo_writes_a_leaderboard_and_a_plot(demo_dir):
    markdown = (demo_dir / "leaderboard.md").read_text()
    assert "| dragonfly-tiny |" in markdown
    for name in load_suite().benchmarks:
        if name.startswith("mini_"):
            assert load_suite().benchmarks[name].name in markdown
    with Image.open(demo_dir / "leaderboard.png") as plot:
        assert plot.format == "PNG" and plot.width > 0


def test_the_demo_draws_the_zoom_comparison_at_a_readable_size(demo_dir):
    """zoom.png is the picture of the demo's point (the fine-detail score with and without the
    zoomed-in crops); it and the leaderboard chart fit a 1280 px window unscaled."""
    for name in ("zoom.png", "leaderboard.png"):
        with Image.open(demo_dir / name) as picture:
            assert picture.format == "PNG"
            assert 500 <= picture.width <= 1199 and picture.height >= 300, picture.size


def test_regress_gate_passes_against_the_committed_baseline(demo_dir, offline_env):
    done = _cli(
        "regress",
        "--baseline",
        str(BASELINE),
        "--current",
        str(demo_dir / "results"),
        "--suite",
        "mini",
        "--exact",  # a deterministic model: any drop beyond the tolerance is real
        cwd=demo_dir,
        env=offline_env,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _metrics(folder: Path) -> dict[str, float]:
    (results_file,) = [p for p in folder.rglob("*_results.json") if p.parent.name != "submissions"]
    results = json.loads(results_file.read_text())["results"]
    return {
        f"{task}/{key}": float(value)
        for task, metrics in results.items()
        for key, value in metrics.items()
        if "_stderr" not in key and isinstance(value, (int, float))
    }


def test_mini_metrics_equal_the_baseline_exactly(demo_dir):
    """The gate lets improvements through and rounds to 0.1 points; the embedded model's outputs
    must not move at all. Its answer loss moves by ~1e-5 relative when, for example, the pooled
    tokens of a crop are laid out column-major instead of row-major, while repeated runs agree
    to the last digit; the bar sits between the two."""
    baseline = _metrics(BASELINE)
    current = _metrics(demo_dir / "results")
    assert set(baseline) == set(current)
    moved = {
        name: (baseline[name], current[name])
        for name in baseline
        if not math.isclose(baseline[name], current[name], rel_tol=1e-6, abs_tol=1e-9)
    }
    assert not moved, (
        f"mini-suite metrics moved (baseline, now): {moved}; if the change is intended, "
        "regenerate leaderboards/mini_baseline (docs/leaderboard-and-gate.md, 'Regression gate')"
    )


def test_the_demo_shows_the_zoom_in_test_working(demo_dir):
    """The demo's last step reruns the fine-detail task at zoom=low: the trained model reads the
    1-pixel patterns only from the zoomed-in crops, so its score falls by 25 points or more, to
    about chance."""
    text = (demo_dir / "zoom.md").read_text()
    assert "| low | 51 / 578 |" in text and "| full | 1479 / 2098 |" in text
    key = "dragonfly_mini_fine/exact_match,none"
    full = _metrics(demo_dir / "results")[key]
    low = _metrics(demo_dir / "zoom_low")[key]
    assert full >= low + 0.25, (full, low)
    assert full >= 0.75 and low <= 0.5, (full, low)


def test_the_readme_quickstart_shows_what_the_demo_prints(demo_dir):
    """The README's Quickstart copies the demo's zoom table (OUT/zoom.md); the copy is wrapped
    at 100 columns, so the two are compared word by word."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    quickstart = readme[readme.index("## Quickstart") :]
    block = quickstart[quickstart.index("```text\n") + len("```text\n") :]
    block = block[: block.index("```")]
    assert block.split() == (demo_dir / "zoom.md").read_text().split(), (
        "the README's Quickstart output is out of date: copy dragonfly-demo/zoom.md into it"
    )


def test_the_embedded_model_page_shows_what_the_demo_scores(demo_dir):
    """docs/embedded-model.md's table of the mini-suite scores (its zoom=full column, in the
    suite's order) and the average it names are the demo's leaderboard row."""
    page = (REPO / "docs" / "embedded-model.md").read_text(encoding="utf-8")
    table = page[page.index("| task | zoom=full | chance |") :].split("\n\n", 1)[0]
    cells = [row.split("|")[2] for row in table.splitlines()[2:]]
    shown = [re.search(r"\d+\.\d", cell).group(0) for cell in cells]
    row = _markdown_row((demo_dir / "leaderboard.md").read_text(), "dragonfly-tiny")
    printed, average = row[2:-1], row[-1]
    assert len(shown) == len(printed) == len(load_suite().suites["mini"]), (shown, printed)
    moved = [(s, p) for s, p in zip(shown, printed, strict=True) if p != "–" and s != p]
    assert not moved, f"docs/embedded-model.md's scores are out of date (page, demo): {moved}"
    assert f"average ({average})" in page


def _markdown_row(markdown: str, label: str) -> list[str]:
    """The cells of the headline table's row (the first table) that starts with `label`."""
    line = next(line for line in markdown.splitlines() if line.startswith(f"| {label} |"))
    return [cell.strip().strip("*") for cell in line.strip("|").split("|")]


def test_the_leaderboard_over_the_demo_folder_shows_both_zoom_runs(demo_dir, offline_env):
    """The zoom=low run is newer and of the same checkpoint, but it is not a newer run of the
    full-zoom row: the leaderboard over the demo's folder shows the full row as the demo printed
    it, and the zoom=low run as its own row."""
    done = _cli(
        "leaderboard",
        str(demo_dir),
        "--suite",
        "mini",
        "--no-reference",
        cwd=demo_dir,
        env=offline_env,
    )
    assert done.returncode == 0, done.stderr
    header = _markdown_row(done.stdout, "Model")
    fine = header.index(load_suite().benchmarks["mini_fine"].name)
    printed = _markdown_row((demo_dir / "leaderboard.md").read_text(), "dragonfly-tiny")
    full = _markdown_row(done.stdout, "dragonfly-tiny")
    assert full[2:] == printed[2:]  # every score and the average, as the demo printed them
    low = _markdown_row(done.stdout, "dragonfly-tiny (zoom=low)")
    key = "dragonfly_mini_fine/exact_match,none"
    assert low[fine] == f"{100 * _metrics(demo_dir / 'zoom_low')[key]:.1f}"
    assert low[fine] != full[fine]


# What guessing scores on each mini task the embedded model is trained for (the suite's design:
# make_mini.py), by the task's headline metric.
CHANCE = {
    "dragonfly_mini_vqa/exact_match,none": 0.13,  # 1 in 10 words, 1 in 6 colours
    "dragonfly_mini_chart/relaxed_overall,none": 0.23,  # 1 in 4 counts, 1 in 3 to 6 days
    "dragonfly_mini_doc/anls,none": 0.22,  # 1 in 4 titles, 1 in 5 vendors
    "dragonfly_mini_mc/exact_match,flexible-extract": 0.25,
    "dragonfly_mini_mc_ppl/acc,none": 0.25,
    "dragonfly_mini_yesno/pope_accuracy,none": 0.5,
    "dragonfly_mini_fine/exact_match,none": 0.25,
}


def test_the_trained_model_scores_well_above_chance_at_full_zoom(demo_dir):
    """Every mini task the training covers is answered from the image: at least 25 points above
    what guessing scores (with 12 to 20 documents a task, guessing reaches that about 1 time in
    20 or less), and the captions share words with the references (random text scores ~0)."""
    scores = _metrics(demo_dir / "results")
    below = {k: (scores[k], chance) for k, chance in CHANCE.items() if scores[k] < chance + 0.25}
    assert not below, f"(score, chance) of the tasks not clearly above chance: {below}"
    assert scores["dragonfly_mini_caption/coco_CIDEr,none"] > 1.0
    assert scores["dragonfly_mini_yesno/pope_f1_score,none"] > 0.75


def test_identical_demo_runs_pass_every_benchmark_caption_included(demo_dir, offline_env):
    """The demo's own output against itself: every corpus metric is recomputed through the task's
    own aggregation as lmms-eval calls it (COCO's CIDEr takes `args`), and nothing is written
    beside the caller."""
    results = str(demo_dir / "results")
    workdir = demo_dir / "gate_cwd"
    workdir.mkdir()
    done = _cli(
        "regress",
        "--baseline",
        results,
        "--current",
        results,
        "--suite",
        "mini",
        cwd=workdir,
        env=offline_env,
    )
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    rows = [line for line in done.stdout.splitlines() if line.startswith("| Mini")]
    assert len(rows) == len(load_suite().suites["mini"]), done.stdout
    assert all(row.endswith("| ok |") for row in rows), done.stdout
    caption = next(row for row in rows if "caption" in row)
    assert "paired bootstrap" in caption
    assert not list(workdir.iterdir())  # COCO's submission file went to a temporary folder
