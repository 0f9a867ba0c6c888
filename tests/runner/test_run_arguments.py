"""Options lmms-eval refuses end with lmms-eval's own message before anything is written, and
model_args given only in a `--config` file are honoured (with the run's own files added)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from dragonfly_eval.cli import main
from dragonfly_eval.runner import start as runner

TINY = "pretrained=dragonfly-tiny,device=cpu,batch_size=2"


@pytest.fixture
def no_lmms_eval(monkeypatch):
    """Fail the test if lmms-eval is started."""

    def started(*args, **kwargs):
        raise AssertionError("lmms-eval was started")

    monkeypatch.setattr(runner, "relay", started)


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--tasks", "dragonfly_mini_vqa", "--limt", "2"],
        ["ablate", "--model_args", TINY, "--tasks", "dragonfly_mini_vqa"]
        + ["--zoom", "low,full", "--limit", "abc"],
    ],
)
def test_an_option_lmms_eval_rejects_gets_its_usage_message_and_no_run_folder(
    tmp_path, capsys, no_lmms_eval, argv
):
    code = main([*argv, "--output_path", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "usage: lmms-eval" in err and "lmms-eval: error:" in err
    assert "Traceback" not in err and "KeyError" not in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("limit", ["-5", "nan"])
def test_a_limit_lmms_eval_refuses_once_started_is_refused_before_the_run(
    tmp_path, capsys, no_lmms_eval, limit
):
    argv = ["run", "--output_path", str(tmp_path / "out"), "--model_args", TINY]
    code = main([*argv, "--tasks", "dragonfly_mini_vqa", "--limit", limit])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.strip().splitlines() == [
        f"dragonfly-eval: cannot start: --limit {float(limit)}: give -1 (all), a fraction 0..1, "
        "or a count >= 1"
    ]
    assert not (tmp_path / "out").exists()


def test_model_args_given_only_in_a_config_file_are_kept_and_get_the_run_files(
    tmp_path, capsys, monkeypatch
):
    config = tmp_path / "cfg.yaml"
    config.write_text(yaml.safe_dump({"model_args": TINY, "tasks": "dragonfly_mini_vqa"}))
    started = []
    monkeypatch.setattr(runner, "relay", lambda cmd: started.append(cmd) or (1, ""))
    code = main(["run", "--output_path", str(tmp_path / "out"), "--config", str(config)])
    assert code == 1 and "KeyError" not in capsys.readouterr().err
    (cmd,) = started
    copy = cmd[cmd.index("--config") + 1]
    (entry,) = yaml.safe_load(open(copy))
    assert entry["model_args"].startswith(TINY + ",resume_store=")
    assert "/dragonfly_runs/" in entry["model_args"] and "failure_report=" in entry["model_args"]


@pytest.mark.slow
def test_a_run_from_a_config_file_s_model_args_writes_results(tmp_path, offline_env):
    config = tmp_path / "cfg.yaml"
    config.write_text(
        yaml.safe_dump({"model_args": TINY, "tasks": "dragonfly_mini_vqa", "limit": 2})
    )
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "dragonfly_eval.cli", "run", "--output_path", str(out)]
        + ["--config", str(config)],
        env=offline_env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (results,) = out.rglob("*_results.json")
    model_args = json.loads(results.read_text())["config"]["model_args"]
    assert model_args.startswith(TINY) and "/dragonfly_runs/" in model_args
