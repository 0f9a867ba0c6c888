"""Fixtures of the reliability tests: the subprocess environment and two shared reference runs."""

from __future__ import annotations

import subprocess
from pathlib import Path
from subprocess import PIPE

import pytest
from reliability_helpers import RESUME_TASKS, run_command


@pytest.fixture(scope="session")
def cli_env(offline_env) -> dict[str, str]:
    """Environment for `dragonfly-eval run` subprocesses: offline, one OpenMP thread each."""
    return {**offline_env, "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="session")
def reference_runs(tmp_path_factory, cli_env) -> tuple[Path, Path]:
    """Two uninterrupted runs of RESUME_TASKS, started together (the CPU time of a run is
    mostly lmms-eval starting up); shared by the resume and determinism tests."""
    outs = (tmp_path_factory.mktemp("reference"), tmp_path_factory.mktemp("twin"))
    procs = [
        subprocess.Popen(
            run_command(out, tasks=RESUME_TASKS), env=cli_env, stdout=PIPE, stderr=PIPE, text=True
        )
        for out in outs
    ]
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stdout[-3000:] + stderr[-5000:]
    return outs
