import json
import math
import subprocess
import sys

import pytest
import yaml

from dragonfly_eval.paths import data_file, task_yaml_dir


@pytest.mark.slow
def test_mini_suite_runs_offline_with_the_tiny_model(tmp_path, offline_env, v2_checkpoint):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "lmms_eval",
            "--model",
            "dragonfly",
            "--model_args",
            f"pretrained={v2_checkpoint}",
            "--tasks",
            "dragonfly_mini",
            "--include_path",
            str(task_yaml_dir()),
            "--batch_size",
            "1",
            "--output_path",
            str(tmp_path),
            "--verbosity",
            "DEBUG",  # re-raises evaluation errors, so a failure exits non-zero
        ],
        capture_output=True,
        text=True,
        env=offline_env,
        cwd=tmp_path,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    (results_file,) = tmp_path.rglob("[0-9]*_results.json")  # not submissions/*_results.json
    results = json.loads(results_file.read_text())["results"]
    suite = yaml.safe_load(data_file("suite.yaml").read_text())
    for key in suite["suites"]["mini"]:
        benchmark = suite["benchmarks"][key]
        value = results[benchmark["task"]][benchmark["metric"]]
        assert (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and math.isfinite(value)
            and 0.0 <= value <= 10.0
        ), (
            key,
            value,
        )
