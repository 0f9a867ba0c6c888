"""Where the project's packaged data lives, in a checkout and in an installed wheel."""

from __future__ import annotations

import os
import stat
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


def cache_root() -> Path:
    """Where dragonfly-eval keeps files it generates (the tiny checkpoint, task indexes):
    `$XDG_CACHE_HOME/dragonfly-eval`, by default `~/.cache/dragonfly-eval`."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "dragonfly-eval"


def check_regular_file(path: Path, cap: int, error: type[ValueError]) -> None:
    """Refuse, before it is opened, anything but a regular file of at most `cap` bytes: a FIFO
    would block open() and /dev/zero would never end. OSError passes through."""
    info = os.stat(path)
    if not stat.S_ISREG(info.st_mode):
        raise error(f"{path}: not a regular file")
    if info.st_size > cap:
        raise error(f"{path}: larger than {cap // 2**20} MiB")
