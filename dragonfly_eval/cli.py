"""`dragonfly-eval`: one command for people — run, leaderboard, regress, diff, ablate, demo."""

from __future__ import annotations

import argparse
import sys

from dragonfly_eval.errors import DragonflyEvalError, ExitCode, one_line


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered by its own module."""
    from dragonfly_eval.leaderboard import cli as leaderboard_cli
    from dragonfly_eval.runner import cli as runner_cli

    parser = argparse.ArgumentParser(
        prog="dragonfly-eval",
        description="Evaluate Dragonfly vision-language models with lmms-eval.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    runner_cli.register(sub)
    leaderboard_cli.register(sub)
    return parser


def subcommand_parser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    """The parser of the subcommand `name`."""
    (subparsers,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return subparsers.choices[name]


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `dragonfly-eval` console script; returns the exit code. Ctrl-C
    outside a run (whose own line says how to continue) ends it with one line, no traceback."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = "dragonfly-eval"
    try:
        parser = build_parser()
        args, rest = parser.parse_known_args(argv)
        args.argv = argv  # to print the command that continues an interrupted run
        command = f"dragonfly-eval {args.command}"
        if args.command == "run":
            args.lmms_eval_args = rest
        elif rest:  # the subcommand's usage, not the top-level one
            subcommand_parser(parser, args.command).error(
                f"unrecognized arguments: {' '.join(rest)}"
            )
        return int(args.handler(args) or ExitCode.OK)
    except DragonflyEvalError as err:
        message = " ".join(one_line(str(err)).split())
        if message:  # an error without one has said why itself
            print(f"{command}: {message}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("dragonfly-eval: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
