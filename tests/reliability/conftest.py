"""Fixtures of the reliability tests: the subprocess environment and two shared reference runs."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from subprocess import PIPE

import pytest
from reliability_helpers import run_command

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def cli_env() -> dict[str, str]:
    """Environment for `dragonfly-eval run` subprocesses: offline, this checkout importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", OMP_NUM_THREADS="1")
    return env


@pytest.fixture(scope="session")
def reference_runs(tmp_path_factory, cli_env) -> tuple[Path, Path]:
    """Two uninterrupted runs of dragonfly_mini_chart, started together (the CPU time of a run is
    mostly lmms-eval starting up); shared by the resume and determinism tests."""
    outs = (tmp_path_factory.mktemp("reference"), tmp_path_factory.mktemp("twin"))
    procs = [
        subprocess.Popen(run_command(out), env=cli_env, stdout=PIPE, stderr=PIPE, text=True)
        for out in outs
    ]
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stdout[-3000:] + stderr[-5000:]
    return outs
