"""A non-editable install ships the task YAMLs and package data, not only the Python modules."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SKIP_DIRS = {
    ".git",
    "build",
    "dist",
    ".venv",
    "venv",
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
}


def _ignore(directory: str, names: list[str]) -> set[str]:
    return {n for n in names if n in SKIP_DIRS or n.endswith(".egg-info")}


@pytest.fixture(scope="module")
def wheel_files(tmp_path_factory) -> set[str]:
    """File names inside a wheel built offline from a copy of the working tree."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "src"
    shutil.copytree(REPO, source, ignore=_ignore)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-q",
            "-w",
            str(work / "dist"),
            str(source),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = (work / "dist").glob("dragonfly_eval-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())


@pytest.mark.slow
def test_wheel_ships_every_task_yaml(wheel_files):
    yamls = sorted((REPO / "task_yaml").rglob("*.yaml"))
    missing = [
        str(p.relative_to(REPO))
        for p in yamls
        if f"dragonfly_eval/task_yaml/{p.relative_to(REPO / 'task_yaml').as_posix()}"
        not in wheel_files
    ]
    assert not missing, f"task YAMLs left out of the wheel: {missing}"


@pytest.mark.slow
def test_wheel_ships_package_data_and_the_model(wheel_files):
    data = sorted((REPO / "dragonfly_eval" / "data").glob("*"))
    assert data, "dragonfly_eval/data is empty"
    for path in data:
        assert path.relative_to(REPO).as_posix() in wheel_files
    for module in (REPO / "dragonfly_eval" / "modeling").glob("*.py"):
        assert module.relative_to(REPO).as_posix() in wheel_files
    assert not any(name.startswith("tests/") for name in wheel_files)
