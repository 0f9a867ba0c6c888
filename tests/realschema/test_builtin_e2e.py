"""lmms-eval's built-in tasks (unmodified YAMLs) and the dragonfly_* twins, run end to end through
the CLI with the embedded tiny model, from a folder holding hub-layout copies of their datasets."""

import subprocess
import sys

import pytest
from realschema_kit import BUILTIN_TASKS, numbers, read_results, run_lmms_eval, runnable

from dragonfly_eval.paths import task_yaml_dir

TINY = ["--model", "dragonfly", "--model_args", "pretrained=dragonfly-tiny,device=cpu,batch_size=4"]

# Twins whose data differs from the built-in run: POPE's Full config, InfoVQA's config of the
# DocVQA repository, GQA's two configs (its process_docs loads the image config by id).
TWINS = ("dragonfly_pope", "dragonfly_infovqa_val", "dragonfly_gqa")
TWIN_TASKS = ("dragonfly_pope_adv", "dragonfly_pope_pop", "dragonfly_pope_random")
TWIN_TASKS += ("dragonfly_infovqa_val", "dragonfly_gqa")

# Leaderboard column (header prefix) -> the built-in task behind it.
COLUMNS = {
    "TextVQA": "textvqa_val",
    "ChartQA": "chartqa",
    "DocVQA": "docvqa_val",
    "AI2D": "ai2d",
    "MME": "mme",
    "POPE": "pope",
    "ScienceQA": "scienceqa_img",
    "COCO": "coco2017_cap_val",
}


@pytest.fixture(scope="module")
def builtin_run(hub_mirror, realschema_env, tmp_path_factory):
    """The built-in tasks of docs/leaderboard-and-gate.md's lmms-eval command, once, on the
    tiny model."""
    out = tmp_path_factory.mktemp("builtin_run")
    tasks = runnable(BUILTIN_TASKS)
    args = [*TINY, "--tasks", ",".join(tasks), "--output_path", str(out), "--log_samples"]
    run_lmms_eval(args, realschema_env, hub_mirror)
    return out


def _assert_every_task_scored(results: dict, tasks: tuple[str, ...]) -> None:
    for task in tasks:
        assert numbers(results["results"][task]), (task, results["results"][task])
        n = results["n-samples"][task]
        assert n["effective"] == n["original"] > 0, (task, n)


@pytest.mark.slow
def test_builtin_tasks_run_on_the_hub_layout_copies(builtin_run):
    results = read_results(builtin_run)
    _assert_every_task_scored(results, runnable(BUILTIN_TASKS))
    for task in runnable(BUILTIN_TASKS):
        assert list(builtin_run.rglob(f"*_samples_{task}.jsonl")), task


@pytest.mark.slow
def test_dragonfly_twins_run_on_the_same_copies(hub_mirror, realschema_env, tmp_path):
    include = ["--include_path", str(task_yaml_dir())]
    args = [*TINY, "--tasks", ",".join(TWINS), *include, "--output_path", str(tmp_path)]
    run_lmms_eval(args, realschema_env, hub_mirror)
    _assert_every_task_scored(read_results(tmp_path), TWIN_TASKS)


def _first_table(markdown: str) -> list[dict[str, str]]:
    """The rows of the first markdown table as {header: cell}."""
    lines = [line for line in markdown.splitlines() if line.startswith("|")]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    header, rows = cells[0], [row for row in cells[2:] if len(row) == len(cells[0])]
    end = next((i for i, row in enumerate(rows) if row[0] == "Model"), len(rows))
    return [dict(zip(header, row, strict=True)) for row in rows[:end]]


def _is_number(cell: str) -> bool:
    try:
        float(cell.replace("*", "").split()[0])
    except (ValueError, IndexError):
        return False
    return True


@pytest.mark.slow
def test_leaderboard_fills_benchmark_columns_from_builtin_task_names(
    builtin_run, offline_env, tmp_path
):
    table = tmp_path / "leaderboard.md"
    cmd = [sys.executable, "-m", "dragonfly_eval.cli", "leaderboard", str(builtin_run)]
    cmd += ["--suite", "general,caption", "--no-reference", "--output", str(table)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=offline_env, timeout=300)
    assert out.returncode == 0, out.stderr
    (row,) = _first_table(table.read_text())
    expected = [c for c, task in COLUMNS.items() if task in runnable(tuple(COLUMNS.values()))]
    for column in expected:
        (header,) = [h for h in row if h.startswith(column)]
        assert _is_number(row[header]), (column, row[header])
