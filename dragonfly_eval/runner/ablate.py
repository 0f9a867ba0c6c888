"""`dragonfly-eval ablate`: the same tasks once per zoom setting, each into OUTPUT/zoom_<setting>/
through `start` (every setting checked before the first run), then the leaderboard's ablation
table (`leaderboard.ablate`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from dragonfly_eval.errors import ExitCode
from dragonfly_eval.leaderboard.ablate import (
    build_ablation,
    parse_zooms,
    render_ablation_markdown,
    with_zoom,
    zoom_folder,
)
from dragonfly_eval.leaderboard.suite import load_suite
from dragonfly_eval.runner import runfiles, start


def ablation_plans(
    model_args: str,
    tasks: str,
    zooms: Sequence[str],
    output_path: Path,
    extra: Sequence[str] = (),
    resume: bool = False,
) -> dict[str, start.Plan]:
    """One run per zoom setting (with --log_samples), each into its own folder; with `resume`
    each continues the newest run in its folder."""
    return {
        zoom: start.Plan(
            ["--model_args", with_zoom(model_args, zoom), "--tasks", tasks, "--log_samples"]
            + list(extra),
            str(zoom_folder(output_path, zoom)),
            runfiles.LATEST if resume else None,
            replace_earlier=True,
        )
        for zoom in zooms
    }


def ablate_again(argv: list[str]) -> start.Again:
    """The command that continues an interrupted ablation: the same one with --resume."""
    return lambda run_id: start.command_line(argv if "--resume" in argv else [*argv, "--resume"])


def run_ablation(
    plans: dict[str, start.Plan], trust_dataset_commands: bool = False, argv: Sequence[str] = ()
) -> dict[str, list[Path]]:
    """Check every setting's run, then run them in order; returns each setting's results files.
    Stops at the first run that fails (`start.Stopped` with its exit code). `argv` is the ablate
    command line, repeated with --resume in the line that Ctrl-C prints."""
    start.check(list(plans.values()), trust_dataset_commands)
    again = ablate_again(list(argv))
    written: dict[str, list[Path]] = {}
    for zoom, plan in plans.items():
        try:
            written[zoom] = start.run(plan, again)
        except start.Stopped as stopped:
            if stopped.exit_code != ExitCode.INTERRUPTED:  # its own line says how to continue
                print(
                    f"dragonfly-eval ablate: the run with zoom={zoom} failed "
                    f"(exit {stopped.exit_code})",
                    file=sys.stderr,
                )
            raise
    return written


def ablate_command(args: argparse.Namespace) -> int:
    """`dragonfly-eval ablate`: returns 0; 2 for bad options; a failed run's exit code."""
    suite = load_suite(args.suite_file)
    zooms = parse_zooms(args.zoom)
    extra = ["--limit", args.limit] if args.limit else []
    plans = ablation_plans(args.model_args, args.tasks, zooms, args.output_path, extra, args.resume)
    written = run_ablation(plans, args.trust_dataset_commands, getattr(args, "argv", None) or [])
    sys.stdout.write(render_ablation_markdown(build_ablation(written, suite)))
    return ExitCode.OK
