"""The `leaderboard`, `regress` and `diff` subcommands of `dragonfly-eval`."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from rich.console import Console
from rich.text import Text

from dragonfly_eval.errors import ExitCode, one_line
from dragonfly_eval.leaderboard.board.markdown import render_markdown
from dragonfly_eval.leaderboard.board.table import build_table
from dragonfly_eval.leaderboard.board.terminal import (
    leaderboard_summary,
    print_grid,
    print_leaderboard,
)
from dragonfly_eval.leaderboard.diff.changes import (
    DEFAULT_ROWS,
    DiffError,
    diff_runs,
    render_diff_markdown,
)
from dragonfly_eval.leaderboard.diff.html import render_diff_html
from dragonfly_eval.leaderboard.reference import (
    ReferenceRow,
    default_reference_path,
    load_reference,
)
from dragonfly_eval.leaderboard.regress.gate import compare
from dragonfly_eval.leaderboard.regress.render import (
    drop_reason,
    failure_reason,
    render_report_markdown,
    report_grid,
    report_notes,
    summary_line,
)
from dragonfly_eval.leaderboard.regress.verdict import (
    DEFAULT_ALPHA,
    DEFAULT_BOOTSTRAP,
    DEFAULT_TOLERANCE,
    GateSettings,
)
from dragonfly_eval.leaderboard.suite import SuiteError, load_suite
from dragonfly_eval.lmms_files.results import PREFER

SUITE_HELP = "general|general_ext|caption|med|mini|all; comma-separated for several"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `leaderboard`, `regress` and `diff` subcommands to the parser."""
    board = subparsers.add_parser(
        "leaderboard",
        help="build a leaderboard from lmms-eval results",
        description="One row per model (one run per task: see --prefer), headline scores per "
        "benchmark, published reference rows marked †. Markdown to stdout (or --markdown FILE); a "
        "rich table at a terminal; --html FILE also writes a static page. Exit 0, or 2 when no "
        "input holds usable results.",
    )
    board.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="results file or folder")
    board.add_argument(
        "--markdown",
        "--output",
        "-o",
        dest="output",
        type=Path,
        metavar="FILE",
        help="write the markdown table here (--output and -o are the old spellings)",
    )
    board.add_argument(
        "--suite", metavar="SUITE", help=f"{SUITE_HELP} (default: suites with scores)"
    )
    board.add_argument(
        "--plot", type=Path, metavar="FILE.png", help="also draw a grouped bar chart"
    )
    board.add_argument(
        "--html",
        type=Path,
        metavar="FILE",
        help="also write a self-contained HTML page (sortable tables, chart, per-cell tooltips)",
    )
    board.add_argument("--reference", type=Path, metavar="YAML", help="published numbers to show")
    board.add_argument("--no-reference", action="store_true", help="leave published rows out")
    board.add_argument(
        "--prefer",
        choices=PREFER,
        default="largest",
        help="which run of a model and task is shown: largest (a full run over a partial "
        "--limit run, then the most documents, then the newest; default) or newest",
    )
    board.add_argument(
        "--cost",
        action="store_true",
        help="add what each row's runs cost: their engine (hf, vllm) and samples/s, as the "
        "dragonfly models record it in the results (markdown and terminal tables)",
    )
    board.add_argument("--suite-file", type=Path, metavar="YAML", help=argparse.SUPPRESS)
    board.set_defaults(handler=run_leaderboard)

    gate = subparsers.add_parser(
        "regress",
        help="fail when headline scores dropped against a baseline",
        description="Compare headline scores benchmark by benchmark: on per-document scores "
        "paired by doc_id when both sides have sample logs (--log_samples), with a 95% "
        "interval and a p-value, else on the aggregates. Exit 0: no significant drop beyond the "
        "tolerance (a drop beyond it that is not significant is a 'possible drop' warning); 1: "
        "a benchmark dropped significantly beyond it or lost its score; 2: an input has no "
        "usable results (missing path, malformed JSON, nothing in common), the sides ran on "
        "different documents or prompts, or an option is out of range.",
    )
    gate.add_argument(
        "--baseline",
        type=Path,
        required=True,
        metavar="PATH",
        help="results file or folder of the reference run (e.g. the committed baseline)",
    )
    gate.add_argument(
        "--current",
        type=Path,
        required=True,
        metavar="PATH",
        help="results file or folder of the run under test",
    )
    gate.add_argument(
        "--tolerance",
        type=_tolerance,
        default=DEFAULT_TOLERANCE,
        metavar="POINTS",
        help=f"allowed drop in leaderboard points (default {DEFAULT_TOLERANCE})",
    )
    gate.add_argument(
        "--suite", metavar="SUITE", default="all", help=f"{SUITE_HELP} (default: all)"
    )
    gate.add_argument(
        "--tasks",
        metavar="TASKS",
        help="comma-separated lmms-eval tasks: only the benchmarks they score (default: all)",
    )
    gate.add_argument(
        "--allow-partial",
        action="store_true",
        help="compare even when the two sides ran on different documents (--limit runs)",
    )
    gate.add_argument(
        "--alpha",
        type=_alpha,
        default=DEFAULT_ALPHA,
        help=f"significance level of a drop (default {DEFAULT_ALPHA})",
    )
    gate.add_argument(
        "--exact",
        action="store_true",
        help="compare the aggregate scores against the tolerance alone, without statistics "
        "(a deterministic model: any drop beyond the tolerance fails)",
    )
    gate.add_argument(
        "--bootstrap",
        type=_iterations,
        default=DEFAULT_BOOTSTRAP,
        metavar="N",
        help=f"resamples of the paired bootstrap for corpus-level metrics such as CIDEr "
        f"(default {DEFAULT_BOOTSTRAP}; seeded)",
    )
    gate.add_argument("--suite-file", type=Path, metavar="YAML", help=argparse.SUPPRESS)
    gate.set_defaults(handler=run_regress)
    _register_diff(subparsers)


def _register_diff(subparsers: argparse._SubParsersAction) -> None:
    diff = subparsers.add_parser(
        "diff",
        help="which documents changed between two runs (from their sample logs)",
        description="Per task both runs logged (--log_samples): counts of gained, lost and "
        "changed answers, and the documents, most impact first. Markdown to stdout; --html FILE "
        "also writes a self-contained page. Exit 0, or 2 when a side has no sample logs or "
        "the runs have no task in common.",
    )
    diff.add_argument("a", type=Path, metavar="A", help="results folder (or sample log) of run A")
    diff.add_argument("b", type=Path, metavar="B", help="results folder (or sample log) of run B")
    diff.add_argument("--tasks", metavar="TASKS", help="comma-separated tasks (default: all)")
    diff.add_argument("--html", type=Path, metavar="FILE", help="also write an HTML page")
    diff.add_argument(
        "--images",
        type=Path,
        metavar="DIR",
        help="with --html: the folder the logged image paths (input_media) are relative to; "
        "the page embeds each document's images as thumbnails",
    )
    diff.add_argument(
        "--max-rows",
        type=_rows,
        default=DEFAULT_ROWS,
        metavar="N",
        help=f"documents listed per task (default {DEFAULT_ROWS})",
    )
    diff.add_argument("--suite-file", type=Path, metavar="YAML", help=argparse.SUPPRESS)
    diff.set_defaults(handler=run_diff)


def run_leaderboard(args: argparse.Namespace) -> int:
    """Handle `dragonfly-eval leaderboard`; returns the exit code (a SuiteError,
    ReferenceFileError or LeaderboardError when there is nothing to show)."""
    suite = load_suite(args.suite_file)
    reference = [] if args.no_reference else _reference_rows(args.reference)
    suite_names = _suite_names(args.suite)
    table = build_table(args.paths, suite, suite_names, reference, args.prefer, args.cost)
    for problem in table.problems:
        print(one_line(f"dragonfly-eval leaderboard: skipped {problem}"), file=sys.stderr)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(render_markdown(table), encoding="utf-8")
    if args.plot:
        from dragonfly_eval.leaderboard.board.plot import plot  # matplotlib: only when drawing

        plot(table, args.plot)
    if args.html:
        from dragonfly_eval.leaderboard.board.html import write_html  # draws with matplotlib

        write_html(table, args.html)
    if sys.stdout.isatty():
        print_leaderboard(table, Console())
    elif args.output is None and args.html is None:
        sys.stdout.write(render_markdown(table))
    else:
        print(leaderboard_summary(table))
    return ExitCode.OK


def run_regress(args: argparse.Namespace) -> int:
    """Handle `dragonfly-eval regress`; returns OK (pass) or FAILED (a regression); a
    SuiteError or RegressError for unusable input."""
    suite = load_suite(args.suite_file)
    settings = GateSettings(
        tolerance=args.tolerance, alpha=args.alpha, exact=args.exact, bootstrap=args.bootstrap
    )
    report = compare(
        [args.baseline],
        [args.current],
        suite,
        _suite_names(args.suite) or ["all"],
        allow_partial=args.allow_partial,
        settings=settings,
        tasks=_task_names(args.tasks),
    )
    for warning in report.warnings:
        print(one_line(f"dragonfly-eval regress: {warning}"), file=sys.stderr)
    if sys.stdout.isatty():
        console = Console()
        for pair in report.pairs:
            print_grid(console, *report_grid(pair, report), numeric_from=1)
            for note in [] if report.exact else report_notes(pair):
                console.print(Text(one_line(note)))
        console.print(Text(one_line(summary_line(report))))
    else:
        sys.stdout.write(render_report_markdown(report))
    for pair, cmp in report.possible_drops:
        print(
            one_line(f"dragonfly-eval regress: possible drop: {drop_reason(pair, cmp)}"),
            file=sys.stderr,
        )
    for pair, cmp in report.failures:
        reason = failure_reason(pair, cmp, report.tolerance)
        print(one_line(f"dragonfly-eval regress: {cmp.status}: {reason}"), file=sys.stderr)
    return ExitCode.FAILED if report.failures else ExitCode.OK


def run_diff(args: argparse.Namespace) -> int:
    """Handle `dragonfly-eval diff`; returns OK; a SuiteError or DiffError when there is
    nothing to compare."""
    if args.images is not None and (args.html is None or not args.images.is_dir()):
        raise DiffError(f"--images needs --html and a folder; {args.images} is not one")
    suite = load_suite(args.suite_file)
    report = diff_runs(args.a, args.b, _task_names(args.tasks), suite)
    for problem in report.problems:
        print(one_line(f"dragonfly-eval diff: not compared: {problem}"), file=sys.stderr)
    sys.stdout.write(render_diff_markdown(report, args.max_rows))
    if args.html:
        args.html.parent.mkdir(parents=True, exist_ok=True)
        page = render_diff_html(report, args.max_rows, args.images)
        args.html.write_text(page, encoding="utf-8")
    return ExitCode.OK


def _rows(raw: str) -> int:
    """--max-rows: a whole number >= 1."""
    if not raw.isdigit() or int(raw) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, not {raw!r}")
    return int(raw)


def _tolerance(raw: str) -> float:
    """--tolerance: a finite number of points >= 0 (nan would let every drop pass)."""
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, not {raw!r}")
    return value


def _alpha(raw: str) -> float:
    """--alpha: a significance level strictly between 0 and 1."""
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be a number between 0 and 1, not {raw!r}")
    return value


def _iterations(raw: str) -> int:
    """--bootstrap: at least 10 resamples."""
    if not raw.isdigit() or int(raw) < 10:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 10, not {raw!r}")
    return int(raw)


def _task_names(raw: str | None) -> list[str] | None:
    """A --tasks value as names (None: all tasks)."""
    return [t.strip() for t in raw.split(",") if t.strip()] if raw else None


def _suite_names(raw: str | None) -> list[str] | None:
    if raw is None:
        return None
    names = [n.strip() for n in raw.split(",") if n.strip()]
    if not names:
        raise SuiteError("--suite needs at least one suite name")
    return names


def _reference_rows(path: Path | None) -> list[ReferenceRow]:
    if path is None:
        path = default_reference_path()
        if path is None:
            print(
                "dragonfly-eval leaderboard: no reference.yaml found; no published rows",
                file=sys.stderr,
            )
            return []
    return load_reference(path)
