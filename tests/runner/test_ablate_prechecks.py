"""`dragonfly-eval ablate` checks every zoom setting and every argument before its first run:
a setting the checkpoint's version lacks, a model_args name the model refuses and a --limit
lmms-eval refuses once started all used to fail only inside a run (`full,select` on a v2
checkpoint ran all of `full` first)."""

from __future__ import annotations

import pytest

from dragonfly_eval.cli import main
from dragonfly_eval.runner import start as runner

TINY = "pretrained=dragonfly-tiny,device=cpu"  # the embedded checkpoint is a Dragonfly v2


@pytest.fixture
def no_run(monkeypatch):
    """Fail the test if lmms-eval is started."""

    def started(*args, **kwargs):
        raise AssertionError("lmms-eval was started")

    monkeypatch.setattr(runner, "relay", started)


def ablate(tmp_path, capsys, model_args: str, zoom: str, *extra: str) -> str:
    out = tmp_path / "out"
    argv = ["ablate", "--model_args", model_args, "--tasks", "dragonfly_mini_fine"]
    code = main([*argv, "--zoom", zoom, "--output_path", str(out), *extra])
    err = capsys.readouterr().err
    assert code == 2, err
    assert not out.exists()
    assert "Traceback" not in err
    return err


def test_a_zoom_the_checkpoint_s_version_lacks_is_refused_before_the_first_run(
    tmp_path, capsys, no_run
):
    err = ablate(tmp_path, capsys, TINY, "full,select")
    assert "zoom=select is not valid for dragonfly-tiny (Dragonfly v2)" in err


def test_a_model_args_name_the_model_refuses_is_refused_before_the_first_run(
    tmp_path, capsys, no_run
):
    err = ablate(tmp_path, capsys, TINY + ", Zoom=low", "low,full")
    assert "unknown model_args for dragonfly: Zoom (did you mean zoom?)" in err


@pytest.mark.parametrize(("limit", "message"), [("-5", "--limit -5.0"), ("abc", "usage:")])
def test_a_limit_lmms_eval_refuses_is_refused_before_the_first_run(
    tmp_path, capsys, no_run, limit, message
):
    err = ablate(tmp_path, capsys, TINY, "low,full", "--limit", limit)
    assert message in err
