"""Mistakes in a `run` command line end before lmms-eval starts: exit 2, one line naming the fix,
no traceback, no run folder, and no word of `--resume` when nothing ran."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from dragonfly_eval.cli import main

TINY = "pretrained=dragonfly-tiny,device=cpu"


def refused(argv: list[str], out, capsys) -> str:
    """stderr of `dragonfly-eval run` with `argv`, which must refuse to start."""
    code = main(["run", "--output_path", str(out), *argv])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and "--resume" not in err
    assert "+ " not in err  # the lmms-eval command line: printed as lmms-eval starts
    assert not out.exists()
    return err


@pytest.mark.parametrize(
    ("model_args", "tasks", "says"),
    [
        (
            TINY,
            "dragonfly_mini_vqaa",
            "--tasks dragonfly_mini_vqaa: no such task, group or tag (did you mean "
            "dragonfly_mini_vqa or ",
        ),
        (
            TINY + ",devise=cpu",
            "dragonfly_mini_vqa",
            "unknown model_args for dragonfly: devise (did you mean device?); valid: ",
        ),
        (
            "pretrained={missing},device=cpu",
            "dragonfly_mini_vqa",
            "pretrained={missing}: no such folder; download with `hf download ",
        ),
    ],
    ids=["misspelt-task", "unknown-key", "missing-checkpoint"],
)
def test_a_mistake_is_one_line_naming_the_fix_before_lmms_eval_starts(
    tmp_path, capsys, model_args, tasks, says
):
    missing = tmp_path / "checkpoints" / "dragonfly-v2"
    argv = ["--model_args", model_args.format(missing=missing), "--tasks", tasks]
    err = refused(argv, tmp_path / "out", capsys)
    (line,) = err.splitlines()
    assert line.startswith("dragonfly-eval: cannot start: ")
    assert says.format(missing=missing) in line
    assert "or pass a local folder" in line or "missing" not in says


# runs `dragonfly-eval run ARGV` in a fresh interpreter; prints the heavy modules it imported
# and the child processes it started
PROBE = textwrap.dedent(
    """
    import json, subprocess, sys
    started = []
    class Recorded(subprocess.Popen):
        def __init__(self, cmd, *args, **kwargs):
            started.append(" ".join(map(str, cmd)))
            super().__init__(cmd, *args, **kwargs)
    subprocess.Popen = Recorded
    from dragonfly_eval.cli import main
    code = main(["run", *sys.argv[1:]])
    heavy = sorted(m for m in ("torch", "transformers", "lmms_eval") if m in sys.modules)
    print(json.dumps({"code": code, "imported": heavy, "started": started}))
    """
)


@pytest.mark.parametrize(
    "argv",
    [
        ["--model_args", TINY, "--tasks", "dragonfly_mini_vqaa"],
        ["--model_args", TINY + ",devise=cpu", "--tasks", "dragonfly_mini_vqa"],
        ["--model_args", "pretrained=/nowhere/dragonfly,device=cpu", "--tasks", "dragonfly_mini"],
        ["--model_args", TINY, "--tasks", "dragonfly_mini_vqa", "--limt", "3"],
    ],
    ids=["misspelt-task", "unknown-key", "missing-checkpoint", "wrong-lmms-eval-option"],
)
def test_a_mistake_is_found_without_importing_torch_or_lmms_eval_or_starting_a_check(
    tmp_path, offline_env, argv
):
    cmd = [sys.executable, "-c", PROBE, "--output_path", str(tmp_path / "out"), *argv]
    done = subprocess.run(cmd, env=offline_env, capture_output=True, text=True, timeout=600)
    found = json.loads(done.stdout.splitlines()[-1])
    assert found["code"] == 2, done.stderr
    assert found["imported"] == []
    # only lmms-eval's own parser may be described (once per installed lmms-eval)
    assert all("runner.lmms_options" in child for child in found["started"]), found


def test_a_hub_checkpoint_an_offline_machine_lacks_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # read by the check's own process
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache
    argv = ["--model_args", "pretrained=someorg/dragonfly-x", "--tasks", "dragonfly_mini_vqa"]
    (line,) = refused(argv, tmp_path / "out", capsys).splitlines()
    assert "pretrained=someorg/dragonfly-x: no such folder" in line
    assert "HF_HUB_OFFLINE" in line and "`hf download someorg/dragonfly-x`" in line


def test_run_tasks_list_prints_the_task_names_and_exits_0(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["run", "--output_path", str(out), "--tasks", "list"]) == 0
    names = capsys.readouterr().out.splitlines()
    assert {"dragonfly_mini_vqa", "dragonfly_mini", "ai2d"} <= set(names)
    assert not out.exists()


GENERAL = [
    "dragonfly_ai2d",
    "dragonfly_chartqa",
    "dragonfly_docvqa_val",
    "dragonfly_mme",
    "dragonfly_pope_adv",
    "dragonfly_pope_pop",
    "dragonfly_pope_random",
    "dragonfly_scienceqa_img",
    "dragonfly_textvqa_val",
]


def test_the_token_advice_is_one_line_for_every_task_that_needs_a_token(tmp_path, offline_env):
    env = {k: v for k, v in offline_env.items() if k != "HF_TOKEN"}
    env["HF_HOME"] = str(tmp_path / "hf")  # no saved login
    cmd = [sys.executable, "-m", "dragonfly_eval.cli", "run", "--output_path", "out"]
    cmd += ["--model_args", TINY, "--tasks", ",".join(GENERAL)]
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr[-3000:]
    (advice,) = [line for line in done.stderr.splitlines() if "cannot start" in line]
    assert advice.count("hf auth login") == 1 and len(advice) < 700
    assert "8 tasks (dragonfly_ai2d, " in advice and "and 2 more" in advice
    assert "`hf download DATASET --repo-type dataset" in advice
    assert "lmms-lab-encoder/ai2d, " in advice
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_a_run_that_fails_having_stored_nothing_gives_no_resume_hint_and_no_folder(
    tmp_path, offline_env
):
    """lmms-eval starts, loads the model, and cannot load the (offline) dataset: the run folder
    it got is removed, and the end says nothing of `--resume`."""
    env = {**offline_env, "HF_TOKEN": "hf_example", "HF_HOME": str(tmp_path / "hf")}
    cmd = [sys.executable, "-m", "dragonfly_eval.cli", "run", "--output_path", "out"]
    cmd += ["--model_args", TINY, "--tasks", "dragonfly_ai2d", "--limit", "1"]
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 1, done.stderr[-3000:]
    assert "lmms-eval wrote no results file" in done.stderr
    assert "--resume" not in done.stderr.split("lmms-eval wrote no results file")[-1]
    assert not (tmp_path / "out" / "dragonfly_runs").exists() or not os.listdir(
        tmp_path / "out" / "dragonfly_runs"
    )
