"""Where the project's packaged data lives, in a checkout and in an installed wheel."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
_REPO_ROOT = _PACKAGE.parent


def task_yaml_dir() -> Path:
    """The folder holding the dragonfly_* task YAMLs (lmms-eval's --include_path)."""
    checkout = _REPO_ROOT / "task_yaml"
    if checkout.is_dir():
        return checkout
    # an installed wheel maps task_yaml/ to the data folder dragonfly_eval/task_yaml/
    return _PACKAGE / "task_yaml"


def data_file(name: str) -> Path:
    """A data file shipped inside the package (e.g. suite.yaml)."""
    return _PACKAGE / "data" / name


def leaderboards_dir() -> Path:
    """The leaderboards/ folder (generated tables, baseline, reference numbers): the checkout's,
    else the copy an installed wheel holds as dragonfly_eval/leaderboards/."""
    checkout = _REPO_ROOT / "leaderboards"
    return checkout if checkout.is_dir() else _PACKAGE / "leaderboards"
