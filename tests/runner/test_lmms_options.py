"""lmms-eval's options come from a description cached per installed lmms-eval: the rebuilt parser
reads command lines as lmms-eval's own does, and a stale or hostile cached description is
described again, never trusted."""

from __future__ import annotations

import argparse
import json

import pytest

from dragonfly_eval.runner import cmdline, lmms_options


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    """An empty cache folder, and no parser kept in memory."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    lmms_options.parser.cache_clear()
    yield tmp_path / "cache" / "dragonfly-eval"
    lmms_options.parser.cache_clear()


@pytest.fixture(scope="module")
def real_parser() -> argparse.ArgumentParser:
    return lmms_options._lmms_eval_parser()


ARGVS = [
    [],
    ["--model", "llava", "--tasks", "mme", "--limit", "0.5", "--log_samples"],
    ["--model_a", "pretrained=x", "--include=x", "-c", "cache"],
    ["--tasks=a,b", "--tasks", "c", "--batch_size", "4", "--offset", "3"],
    ["--no_such_option", "1"],
    ["--limit", "abc"],
    ["--cache_requests", "maybe"],
    ["--model"],
]


@pytest.mark.parametrize("argv", ARGVS, ids=lambda argv: " ".join(argv) or "none")
def test_the_rebuilt_parser_reads_a_command_line_as_lmms_eval_s_own(real_parser, argv):
    def parsed(parser):
        try:
            return vars(parser.parse_args(argv))
        except SystemExit as err:
            return err.code

    ours, theirs = parsed(lmms_options.parser()), parsed(real_parser)
    assert ours == theirs


def test_an_option_typed_by_lmms_eval_s_own_function_is_checked_by_it(capsys):
    assert cmdline.usage_refusal(["--seed", "1,2,3,4"]) is None
    assert cmdline.usage_refusal(["--seed", "x,y"]) == 2
    assert cmdline.usage_refusal(["--tasks", "mme"]) is None


def _hostile(spec: dict) -> list[tuple[str, object]]:
    tasks = next(a for a in spec["actions"] if a["dest"] == "tasks")
    return [
        ("malformed", "{not json"),
        ("an-action-kind-of-its-own", {**spec, "actions": [{**tasks, "kind": "eval"}]}),
        ("a-type-by-name", {**spec, "actions": [{**tasks, "type": "os.system"}]}),
        ("no---tasks", {**spec, "actions": [a for a in spec["actions"] if a is not tasks]}),
        ("another-format", {**spec, "format": 0}),
        (
            "a-positional",
            {**spec, "actions": [*spec["actions"], {**tasks, "option_strings": ["x"]}]},
        ),
    ]


def test_a_stale_or_hostile_cached_description_is_described_again(fresh, monkeypatch):
    spec = json.loads(json.dumps(lmms_options._described()))
    lmms_options.parser.cache_clear()
    described = []
    monkeypatch.setattr(lmms_options, "_described", lambda: described.append(1) or spec)
    path = fresh / lmms_options._spec_name()
    for name, cached in _hostile(spec):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(cached if isinstance(cached, str) else json.dumps(cached))
        lmms_options.parser.cache_clear()
        parser = lmms_options.parser()
        assert parser.parse_args(["--tasks", "mme"]).tasks == "mme", name
        assert json.loads(path.read_text()) == spec, name  # the cache holds the real one again
    assert len(described) == len(_hostile(spec))
    lmms_options.parser.cache_clear()
    lmms_options.parser()
    assert len(described) == len(_hostile(spec))  # a valid cached description is read back
