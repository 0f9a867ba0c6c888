import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def subprocess_env() -> dict[str, str]:
    """Environment for lmms-eval subprocesses: offline, with this checkout importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    return env


@pytest.fixture(scope="session")
def task_manager():
    """lmms-eval's TaskManager indexing task_yaml/ only (the built-in tasks are not needed)."""
    from lmms_eval.tasks import TaskManager

    from dragonfly_eval.paths import task_yaml_dir

    return TaskManager(
        verbosity="WARNING", include_path=str(task_yaml_dir()), include_defaults=False
    )
