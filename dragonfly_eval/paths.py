"""Where the project's packaged data lives, in a checkout and in an installed wheel."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

_REPO_ROOT = Path(__file__).resolve().parent.parent


def task_yaml_dir() -> Path:
    """The folder holding the dragonfly_* task YAMLs (lmms-eval's --include_path)."""
    checkout = _REPO_ROOT / "task_yaml"
    if checkout.is_dir():
        return checkout
    return Path(str(resources.files("dragonfly_eval.task_yaml")))


def data_file(name: str) -> Path:
    """A data file shipped inside the package (e.g. suite.yaml)."""
    return Path(str(resources.files("dragonfly_eval") / "data" / name))


def leaderboards_dir() -> Path:
    """The repository's leaderboards/ folder (generated tables, baseline, reference numbers)."""
    return _REPO_ROOT / "leaderboards"
