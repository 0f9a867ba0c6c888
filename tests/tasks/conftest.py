import pytest


@pytest.fixture(scope="session")
def task_manager():
    """lmms-eval's TaskManager indexing task_yaml/ only (the built-in tasks are not needed)."""
    from lmms_eval.tasks import TaskManager

    from dragonfly_eval.paths import task_yaml_dir

    return TaskManager(
        verbosity="WARNING", include_path=str(task_yaml_dir()), include_defaults=False
    )
