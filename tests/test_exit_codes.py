"""The one place errors become exit codes: `dragonfly_eval.cli.main`."""

from __future__ import annotations

import argparse

import pytest

from dragonfly_eval import cli
from dragonfly_eval.errors import DragonflyEvalError, ExitCode


class _Unreadable(DragonflyEvalError):
    pass


class _Broken(DragonflyEvalError):
    exit_code = ExitCode.FAILED


def _parser_with(handler):
    parser = argparse.ArgumentParser(prog="dragonfly-eval")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("probe").set_defaults(handler=handler)
    return parser


@pytest.mark.parametrize(("error", "code"), [(_Unreadable, 2), (_Broken, 1)])
def test_an_error_of_the_base_class_is_one_line_and_its_exit_code(monkeypatch, capsys, error, code):
    def handler(args):
        raise error("results.json is not JSON:\n  line 3;\n  fix it")

    monkeypatch.setattr(cli, "build_parser", lambda: _parser_with(handler))
    assert cli.main(["probe"]) == code
    err = capsys.readouterr().err
    assert err == "dragonfly-eval probe: results.json is not JSON: line 3; fix it\n"


def test_other_exceptions_are_not_swallowed(monkeypatch):
    def handler(args):
        raise RuntimeError("a bug")

    monkeypatch.setattr(cli, "build_parser", lambda: _parser_with(handler))
    with pytest.raises(RuntimeError):
        cli.main(["probe"])


def test_exit_codes_keep_their_meaning():
    assert [int(c) for c in ExitCode] == [0, 1, 2, 130]


def test_a_message_naming_a_hostile_file_reaches_the_terminal_without_its_escapes(
    monkeypatch, capsys
):
    def handler(args):
        raise _Unreadable("x\x1b[2J\rname_results.json: malformed JSON")

    monkeypatch.setattr(cli, "build_parser", lambda: _parser_with(handler))
    assert cli.main(["probe"]) == ExitCode.USAGE
    assert (
        capsys.readouterr().err == "dragonfly-eval probe: x [2J name_results.json: malformed JSON\n"
    )
