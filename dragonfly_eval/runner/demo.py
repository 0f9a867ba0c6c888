"""`dragonfly-eval demo`: the mini suite on the embedded dragonfly-tiny model (CPU, offline), its
leaderboard, and the fine-detail task again at zoom=low, with the prose that says what the
numbers mean. Both runs are checked before the first starts (`start.check`)."""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

from rich.console import Console

from dragonfly_eval.errors import ExitCode
from dragonfly_eval.leaderboard.ablate import (
    AblateError,
    build_ablation,
    render_ablation_markdown,
    with_zoom,
    zoom_folder,
)
from dragonfly_eval.leaderboard.board.markdown import render_markdown
from dragonfly_eval.leaderboard.board.table import build_table
from dragonfly_eval.leaderboard.board.terminal import print_leaderboard
from dragonfly_eval.leaderboard.reference import default_reference_path, load_reference
from dragonfly_eval.leaderboard.suite import load_suite
from dragonfly_eval.paths import task_yaml_dir
from dragonfly_eval.runner import runfiles, start
from dragonfly_eval.runner.preflight import Problem, TaskSpec, resolve_tasks, task_problems

DEMO_TASKS = "dragonfly_mini"
# the demo's model_args on each engine
DEMO_MODELS = {
    "dragonfly": "pretrained=dragonfly-tiny,device=cpu,batch_size=4",
    "dragonfly_vllm": "pretrained=dragonfly-tiny,dtype=float32",
}
# vLLM on the CPU takes its KV cache from this variable (GiB); dragonfly-tiny's 1 KB per
# position needs far less than one
DEMO_VLLM_ENV = {"VLLM_CPU_KVCACHE_SPACE": "1"}
DEMO_ZOOM_TASK, DEMO_ZOOM_BENCHMARK = "dragonfly_mini_fine", "mini_fine"
DEMO_SUMMARY = (
    "What the numbers mean: dragonfly-tiny is a 0.2M-parameter Dragonfly trained for about 19 "
    "minutes on 2 CPU cores (`python -m dragonfly_eval.tiny.train`) on rendered scenes of the mini "
    "suite's kinds, drawn from another seed. Chance is 25% on the four-way questions (multiple "
    "choice, fine detail), about 23% on the charts, about 22% (ANLS) on the documents, 50% "
    "accuracy on yes/no and about 13% on the signs; a score above chance was read from the "
    "image. The scores say nothing about the released checkpoints."
)
ZOOM_PROSE = (
    "The fine-detail task asks which pattern (1-pixel stripes, checks, or flat grey) fills a "
    "square panel in a 2016x2016 image. At zoom=low the model sees the image at 336x336, where "
    "the four patterns are the same grey, so it can only guess (chance: 25%); with the 41 "
    "zoomed-in crops the lines are in plain sight."
)


def demo_selection(tasks: list[TaskSpec], problems: list[Problem]) -> tuple[str, list[Problem]]:
    """The demo's --tasks, and the problems of the tasks it leaves out: a task that lacks only
    Java (the mini captioning task) is dropped, so that the demo runs on any fresh machine."""
    left_out = [p for p in problems if p.need == "java"]
    if not left_out:
        return DEMO_TASKS, []
    dropped = {p.task for p in left_out}
    return ",".join(t.name for t in tasks if t.name not in dropped), left_out


def demo_plans(out: Path, tasks: str, model: str) -> tuple[start.Plan, start.Plan]:
    """The demo's two runs on `model`: the mini suite at the model's zoom, the fine-detail task
    at low."""
    model_args = DEMO_MODELS[model]
    full = start.Plan(
        ["--model", model, "--model_args", model_args, "--tasks", tasks, "--log_samples"],
        str(out / "results"),
        runfiles.LATEST,
        replace_earlier=True,
    )
    low = start.Plan(
        ["--model", model, "--model_args", with_zoom(model_args, "low")]
        + ["--tasks", DEMO_ZOOM_TASK, "--log_samples"],
        str(zoom_folder(out, "low")),
        runfiles.LATEST,
        replace_earlier=True,
    )
    return full, low


def demo_again(out: Path, model: str) -> start.Again:
    """The command that continues an interrupted demo: the demo again, into the same folder."""
    engine = [] if model == "dragonfly" else ["--model", model]
    return lambda run_id: start.command_line(["demo", "--output_path", str(out), *engine])


def demo_command(args: argparse.Namespace) -> int:
    """`dragonfly-eval demo`: mini suite on dragonfly-tiny, then the leaderboard."""
    from dragonfly_eval.leaderboard.board.plot import plot  # matplotlib: only when drawing

    start.refuse_environment()
    demo = resolve_tasks([DEMO_TASKS], str(task_yaml_dir()))
    problems = task_problems(demo)
    blocking = [p for p in problems if p.need != "java"]
    if blocking:
        start.refuse(blocking)
    tasks, left_out = demo_selection(demo, problems)
    if args.model == "dragonfly_vllm":
        for name, value in DEMO_VLLM_ENV.items():
            os.environ.setdefault(name, value)
    out = Path(args.output_path)
    full, low = demo_plans(out, tasks, args.model)
    start.check([full, low])
    again = demo_again(out, args.model)
    written = start.run(full, again)
    reference = default_reference_path()
    table = build_table(
        written, load_suite(), ["mini"], load_reference(reference) if reference else []
    )
    markdown = render_markdown(table)
    (out / "leaderboard.md").write_text(markdown)
    plot(table, out / "leaderboard.png")
    console = Console()
    if console.is_terminal:
        print_leaderboard(table, console)
    else:
        print(markdown)
    console.print(DEMO_SUMMARY)
    demo_zoom_test(written, low, out, console, again)
    console.print(
        f"Wrote {out / 'leaderboard.md'}, {out / 'leaderboard.png'}, {out / 'zoom.md'} and "
        f"{out / 'zoom.png'}"
    )
    for problem in left_out:
        console.print(f"Left out {problem.message}")
    return ExitCode.OK


def demo_zoom_test(
    full_results: list[Path], low: start.Plan, out: Path, console: Console, again: start.Again
) -> None:
    """The demo's last step: the fine-detail task again at zoom=low (one 336x336 crop instead of
    41), beside its full-zoom score, written to OUT/zoom.md (printed) and drawn in OUT/zoom.png."""
    from dragonfly_eval.leaderboard.board.plot import plot_ablation  # matplotlib: only when drawing

    console.print(
        "Zoom-in test: the fine-detail task again with zoom=low (the 336x336 view only) ..."
    )
    low_results = start.run(low, again)
    try:
        ablation = build_ablation({"full": full_results, "low": low_results}, load_suite())
    except AblateError as err:
        console.print(f"dragonfly-eval: the zoom-in test has no table: {err}", markup=False)
        raise start.Stopped(err.exit_code) from err
    # the full-zoom run scored the whole mini suite; the table is about the fine-detail task
    benchmarks = tuple(b for b in ablation.benchmarks if b.key == DEMO_ZOOM_BENCHMARK)
    fine_detail = dataclasses.replace(ablation, benchmarks=benchmarks)
    table = render_ablation_markdown(fine_detail)
    plot_ablation(fine_detail, out / "zoom.png")
    text = f"{table}\n{ZOOM_PROSE}\n"
    (out / "zoom.md").write_text(text)
    console.print(text, markup=False, highlight=False)
