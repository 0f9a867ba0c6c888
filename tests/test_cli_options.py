"""The `dragonfly-eval` command line as a user reads it: help on every option, one name for the
output folder (the old spellings kept), a wrong flag answered with its subcommand's usage."""

from __future__ import annotations

import argparse
import shutil
import subprocess
from pathlib import Path

import pytest

from dragonfly_eval.cli import build_parser, main


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def test_every_option_of_every_subcommand_has_help_text():
    missing = [
        f"{name} {action.option_strings or action.dest}"
        for name, parser in subcommands().items()
        for action in parser._actions
        if not isinstance(action, argparse._HelpAction) and not action.help
    ]
    assert missing == []


@pytest.mark.parametrize("spelling", ["--output_path", "--output"])
def test_demo_s_folder_is_output_path_and_the_old_spelling_still_works(spelling):
    args, _ = build_parser().parse_known_args(["demo", spelling, "somewhere"])
    assert args.output_path == "somewhere"


@pytest.mark.parametrize("command", ["run", "ablate", "demo"])
def test_the_output_folder_option_is_output_path_for_every_command_that_runs(command):
    options = {o for a in subcommands()[command]._actions for o in a.option_strings}
    assert "--output_path" in options


@pytest.mark.parametrize("spelling", ["--markdown", "--output", "-o"])
def test_the_leaderboard_s_markdown_file_is_markdown_and_the_old_spellings_work(spelling):
    args, _ = build_parser().parse_known_args(["leaderboard", "runs", spelling, "board.md"])
    assert str(args.output) == "board.md"


def test_a_wrong_flag_gets_the_subcommand_s_usage(capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["leaderboard", "runs", "--bogus"])
    err = capsys.readouterr().err
    assert stopped.value.code == 2
    assert err.startswith("usage: dragonfly-eval leaderboard ")
    assert "unrecognized arguments: --bogus" in err


@pytest.mark.parametrize(
    ("command", "option"),
    [("run", "output_path"), ("ablate", "output_path"), ("demo", "output_path")],
)
def test_the_default_output_folders_are_ignored_by_git(command, option):
    repo = Path(__file__).resolve().parents[1]
    if shutil.which("git") is None or not (repo / ".git").exists():
        pytest.skip("not a git checkout")
    folder = subcommands()[command].get_default(option)
    done = subprocess.run(
        ["git", "check-ignore", "-q", f"{folder}/x_results.json"], cwd=repo, timeout=60
    )
    assert done.returncode == 0, f"{folder}/ is not in .gitignore"


def test_results_files_are_dated_in_utc_like_run_ids_unless_timezone_is_given():
    from dragonfly_eval.runner.start import lmms_eval_command

    cmd = lmms_eval_command(["--tasks", "dragonfly_mini_vqa"], "out", False)
    assert cmd[cmd.index("--timezone") + 1] == "UTC"
    mine = lmms_eval_command(["--tasks", "x", "--timezone", "Asia/Tokyo"], "out", False)
    assert mine.count("--timezone") == 1 and "UTC" not in mine
