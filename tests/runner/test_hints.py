"""The hint `dragonfly-eval run` prints when lmms-eval could not reach a task's dataset, checked on
the output of a real offline run."""

import subprocess
import sys
from pathlib import Path

import pytest

from dragonfly_eval.paths import task_yaml_dir
from dragonfly_eval.runner.preflight import resolve_tasks
from dragonfly_eval.runner.start import dataset_hints

TASK = "dragonfly_textvqa_val"  # hub dataset lmms-lab-encoder/textvqa, no `token: true`
DATASET = "lmms-lab-encoder/textvqa"
HF_DOWNLOAD = f"hf download {DATASET} --repo-type dataset --local-dir {DATASET}"


@pytest.fixture(scope="module")
def offline_run(tmp_path_factory, offline_env):
    """`dragonfly-eval run` of a task whose dataset is not on this machine, offline."""
    cwd = tmp_path_factory.mktemp("hints")
    script = Path(sys.executable).with_name("dragonfly-eval")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "dragonfly_eval.cli"]
    args = ["--model_args", "pretrained=dragonfly-tiny,device=cpu", "--tasks", TASK, "--limit", "1"]
    return subprocess.run(
        [*cmd, "run", *args, "--output_path", str(cwd / "out")],
        capture_output=True,
        text=True,
        env=offline_env,
        cwd=cwd,
        timeout=600,
    )


def _hint_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("dragonfly-eval: task ")]


@pytest.mark.slow
def test_unreachable_dataset_hint_names_the_yaml_file_and_hf_download(offline_run):
    assert offline_run.returncode == 1, offline_run.stderr[-3000:]
    # lmms-eval's traceback quotes the line that raises, with a placeholder for the id:
    assert "Couldn't reach '{path}'" in offline_run.stderr
    (hint,) = _hint_lines(offline_run.stderr)
    assert hint.startswith(f"dragonfly-eval: task {TASK}: dataset {DATASET} is not reachable")
    assert str(task_yaml_dir() / "general" / "textvqa_val.yaml") in hint
    assert HF_DOWNLOAD in hint
    assert "huggingface-cli" not in offline_run.stderr


@pytest.mark.slow
def test_hint_names_the_built_in_task_that_was_run(offline_run):
    # The same dataset behind lmms-eval's own textvqa_val: the hint is about that task and its
    # YAML inside lmms-eval, not about the dragonfly_* task that shares the dataset.
    (builtin,) = resolve_tasks(["textvqa_val"], str(task_yaml_dir()))
    (hint,) = dataset_hints(offline_run.stderr, [builtin])
    assert hint.startswith(f"task textvqa_val: dataset {DATASET}")
    assert str(builtin.yaml_path) in hint and "lmms_eval" in str(builtin.yaml_path)
    assert HF_DOWNLOAD in hint


@pytest.mark.slow
def test_tasks_with_a_reachable_or_local_dataset_get_no_hint(offline_run):
    tasks = resolve_tasks(["dragonfly_mini", "dragonfly_chartqa"], str(task_yaml_dir()))
    assert dataset_hints(offline_run.stderr, tasks) == []


def test_the_recommended_download_command_is_installed():
    hf = Path(sys.executable).with_name("hf")
    out = subprocess.run([str(hf), "download", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "--local-dir" in out.stdout and "--repo-type" in out.stdout
