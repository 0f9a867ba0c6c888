"""The `run`, `demo` and `ablate` subcommands of `dragonfly-eval`: their options and dispatch.

Each goes through `start` (guard, check, then run); the demo and the ablation have their own
modules (`demo`, `ablate`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dragonfly_eval.errors import ExitCode
from dragonfly_eval.paths import task_yaml_dir
from dragonfly_eval.runner import runfiles, start
from dragonfly_eval.runner.ablate import ablate_command
from dragonfly_eval.runner.demo import DEMO_MODELS, demo_command
from dragonfly_eval.runner.preflight import LISTINGS, TRUST_FLAG, task_listing


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `run`, `demo` and `ablate` subcommands."""
    run = subparsers.add_parser(
        "run",
        help="run lmms-eval with the dragonfly_* tasks available",
        description=(
            "Run lmms-eval with --include_path set to this project's task YAMLs and --model "
            "dragonfly by default. Every other argument goes to lmms-eval unchanged. Exits "
            "non-zero when lmms-eval wrote no results file with numbers (it exits 0 even when "
            "an evaluation failed)."
        ),
    )
    run.add_argument("--output_path", default="results", help="lmms-eval output folder")
    run.add_argument(
        "--resume",
        nargs="?",
        const=runfiles.LATEST,
        metavar="RUN_ID",
        help=(
            "continue an interrupted run of the same command: answers the harness stored after "
            "each batch (OUTPUT_PATH/dragonfly_runs/RUN_ID/resume.sqlite) are not computed "
            "again. RUN_ID is printed when a run starts; without it, the newest run that no "
            "other process is working on. Also turns on lmms-eval's --use_cache, which only "
            "stores a request type once all its requests are done. Without --resume each run "
            "gets a new id and a new store."
        ),
    )
    run.add_argument(
        TRUST_FLAG,
        action="store_true",
        help=(
            "run tasks whose code hands the dataset's strings to a shell (lmms-eval's HD-EPIC "
            "doc_to_visual runs ffmpeg with each row's video_dir; `dataset_kwargs: "
            "From_YouTube` runs yt-dlp with each row's videoID), refused without it: a "
            "dataset row can then run any command, so give it only for datasets you vetted"
        ),
    )
    run.set_defaults(handler=run_command)

    demo = subparsers.add_parser(
        "demo",
        help="offline demo: the mini suite on the embedded tiny model, then a leaderboard",
        description=(
            "The mini suite on the embedded dragonfly-tiny model (CPU, offline), its "
            "leaderboard, and the fine-detail task again at zoom=low. A demo continues the "
            "newest interrupted demo in its folder: stored answers are not computed again, "
            "and the folder keeps one set of results files per run."
        ),
    )
    demo.add_argument(
        "--output_path",
        "--output",
        dest="output_path",
        default="dragonfly-demo",
        metavar="DIR",
        help="folder for the results, leaderboard.md/.png and zoom.md/.png (default "
        "dragonfly-demo; --output is the old spelling)",
    )
    demo.add_argument(
        "--resume",
        action="store_true",
        help="continue the newest interrupted demo in the folder (what a demo does anyway)",
    )
    demo.add_argument(
        "--model",
        choices=tuple(DEMO_MODELS),
        default="dragonfly",
        help="the lmms-eval model: dragonfly (this project's engine, default) or dragonfly_vllm "
        "(vLLM, float32 on the CPU); both give the same answers",
    )
    demo.set_defaults(handler=demo_command)
    _register_ablate(subparsers)


def _register_ablate(subparsers: argparse._SubParsersAction) -> None:
    ablate = subparsers.add_parser(
        "ablate",
        help="run tasks once per zoom setting and print the ablation table",
        description="Runs the tasks once per --zoom setting (like `dragonfly-eval run`, with "
        "--log_samples) into OUTPUT_PATH/zoom_<setting>/, then prints a table: one row per "
        "setting with its positions per image, one column per benchmark (score and 95% "
        "interval), and per benchmark how many documents scored better only with full zoom. "
        "Exit 0; 2 for bad options; a failed run's exit code.",
    )
    ablate.add_argument("--model_args", required=True, help="model_args without zoom=")
    ablate.add_argument("--tasks", required=True, help="lmms-eval tasks, comma-separated")
    ablate.add_argument(
        "--zoom", required=True, help="zoom settings, comma-separated, e.g. low,low+medium,full"
    )
    ablate.add_argument(
        "--output_path",
        type=Path,
        default=Path("ablation"),
        metavar="DIR",
        help="folder for the runs, one OUTPUT_PATH/zoom_<setting>/ each (default ablation)",
    )
    ablate.add_argument("--limit", help="lmms-eval --limit for every run")
    ablate.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted ablation: each setting continues the newest run in its "
        "folder, and answers it stored are not computed again",
    )
    ablate.add_argument(
        "--trust-dataset-commands",
        action="store_true",
        help="as for `dragonfly-eval run`: run tasks whose code hands dataset strings to a shell",
    )
    ablate.add_argument("--suite-file", type=Path, metavar="YAML", help=argparse.SUPPRESS)
    ablate.set_defaults(handler=ablate_command)


def resumed_argv(argv: list[str], resume: str | None, run_id: str | None) -> list[str]:
    """`dragonfly-eval` arguments with `--resume` (as parsed: `resume`) replaced by
    `--resume RUN_ID`, or left out for None."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            if arg == resume:
                continue
        if arg == "--resume":
            skip = resume not in (None, runfiles.LATEST)
            continue
        if arg.startswith("--resume="):
            continue
        out.append(arg)
    return out + (["--resume", run_id] if run_id else [])


def run_command(args: argparse.Namespace) -> int:
    """`dragonfly-eval run ...`."""
    start.refuse_environment()
    extra = args.lmms_eval_args
    tasks = runfiles.option_value(extra, "--tasks")
    if tasks in LISTINGS:  # lmms-eval lists names and runs nothing
        include_path = runfiles.option_value(extra, "--include_path") or str(task_yaml_dir())
        sys.stdout.write(task_listing(tasks, include_path))
        return ExitCode.OK
    plan = start.Plan(extra, args.output_path, args.resume)
    start.check([plan], args.trust_dataset_commands)

    def again(run_id: str | None) -> str:
        argv = getattr(args, "argv", None) or ["run", *extra]
        return start.command_line(resumed_argv(argv, args.resume, run_id))

    for path in start.run(plan, again):
        print(f"dragonfly-eval: results written to {path}", file=sys.stderr)
    return ExitCode.OK
