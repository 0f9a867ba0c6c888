"""`LMMS_EVAL_PLUGINS` in the environment is refused by `run`, `ablate` and `demo` before
anything is imported: lmms-eval imports `<plugin>.models` as soon as `lmms_eval.models` is
imported, and `dragonfly-eval` itself imports it to read the command line."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

COMMANDS = {
    "run": ["run", "--tasks", "mme"],
    "ablate": ["ablate", "--model_args", "pretrained=dragonfly-tiny", "--tasks", "mme"]
    + ["--zoom", "low,full"],
    "demo": ["demo"],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_plugins_in_the_environment_are_refused_before_anything_is_imported(tmp_path, command):
    plugin = tmp_path / "evil_plugin"
    plugin.mkdir()
    marker = tmp_path / "marker"
    (plugin / "__init__.py").write_text(f"open({str(marker)!r}, 'w').write('imported')\n")
    path = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "LMMS_EVAL_PLUGINS": "evil_plugin", "PYTHONPATH": path}
    argv = [*COMMANDS[command], "--output" + ("_path" if command != "demo" else ""), "out"]
    done = subprocess.run(
        [sys.executable, "-m", "dragonfly_eval.cli", *argv],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2, done.stderr[-3000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "LMMS_EVAL_PLUGINS names evil_plugin" in lines[0], done.stderr
    assert not marker.exists()
    assert not (tmp_path / "out").exists()
