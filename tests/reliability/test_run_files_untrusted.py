"""`dragonfly-eval run` looks for the results its run wrote among every `*_results.json` under the
output folder; one that is not a regular file must not stop it."""

from __future__ import annotations

import os
import subprocess
import time

import pytest
from reliability_helpers import run_command


@pytest.mark.slow
def test_a_fifo_named_like_a_results_file_does_not_hang_the_end_of_a_run(tmp_path, cli_env):
    out = tmp_path / "out"
    fifo = out / "org__m" / "20990101_000000_results.json"
    fifo.parent.mkdir(parents=True)
    os.mkfifo(fifo)  # nothing ever writes to it: opening it to read would block forever
    future = time.time() + 86400  # "written after the run started", so it is looked into
    os.utime(fifo, (future, future))
    # lmms-eval stops early on a hub dataset it cannot reach offline (the pre-run checks pass
    # it: a token is set); the run then looks for the results it wrote
    env = {**cli_env, "HF_HOME": str(tmp_path / "hf"), "HF_TOKEN": "unused"}
    done = subprocess.run(
        run_command(out, "--limit", "1", tasks="dragonfly_chartqa"),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1, done.stderr[-3000:]
    assert "lmms-eval wrote no results file with numbers" in done.stderr
