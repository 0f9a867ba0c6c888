"""A non-editable install ships the task YAMLs and package data, not only the Python modules."""

from __future__ import annotations

import json
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
def wheel_build(tmp_path_factory) -> tuple[Path, str]:
    """A wheel built offline from a copy of the working tree, and the build's output."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "src"
    shutil.copytree(REPO, source, ignore=_ignore)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-w",
            str(work / "dist"),
            str(source),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    (built,) = (work / "dist").glob("dragonfly_eval-*.whl")
    return built, done.stdout + done.stderr


@pytest.fixture(scope="module")
def wheel(wheel_build) -> Path:
    """The wheel built from the working tree."""
    return wheel_build[0]


@pytest.mark.slow
def test_the_build_prints_no_setuptools_warning(wheel_build):
    """No deprecated license table, no data folder that "would be ignored"."""
    output = wheel_build[1]
    assert "Warning" not in output and "would be ignored" not in output, output[-3000:]


@pytest.fixture(scope="module")
def wheel_files(wheel) -> set[str]:
    """File names inside the wheel."""
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
    tiny = sorted((REPO / "dragonfly_eval" / "tiny").rglob("*.*"))
    assert {"model.safetensors", "tokenizer.json", "train.py"} <= {p.name for p in tiny}
    for path in tiny:
        if "__pycache__" not in path.parts:
            assert path.relative_to(REPO).as_posix() in wheel_files
    assert not any(name.startswith("tests/") for name in wheel_files)


def test_wheel_ships_every_module_of_every_package(wheel_files):
    """A package missing from pyproject's list would install without it (datagen/, say, whose
    renderers the embedded model's training imports)."""
    modules = [m for m in (REPO / "dragonfly_eval").rglob("*.py") if "__pycache__" not in m.parts]
    names = [m.relative_to(REPO).as_posix() for m in modules]
    assert names and [name for name in names if name not in wheel_files] == []


INSTALLED_CHECK = """
import json
from dragonfly_eval.paths import task_yaml_dir
from dragonfly_eval.leaderboard.reference import default_reference_path
from dragonfly_eval.leaderboard.suite import load_suite
from dragonfly_eval.tiny.checkpoint import build_tiny_processor
from dragonfly_eval.tasks.mini import doc_to_visual, mini_data_dir
record = json.loads((mini_data_dir() / "vqa.jsonl").read_text().splitlines()[0])
print(json.dumps({
    "package": __import__("dragonfly_eval").__file__,
    "yamls": len(list(task_yaml_dir().rglob("*.yaml"))),
    "reference": str(default_reference_path()),
    "benchmarks": len(load_suite().benchmarks),
    "image": list(doc_to_visual(record)[0].size),
    "tiny_zoom": build_tiny_processor().zoom,
}))
"""


@pytest.mark.slow
def test_installed_wheel_finds_its_data_outside_a_checkout(wheel, tmp_path):
    """The data lookups work from site-packages, not only from a source checkout."""
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    out = subprocess.run(
        [sys.executable, "-c", INSTALLED_CHECK],
        cwd=tmp_path,
        env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert found["package"].startswith(str(target))
    assert found["yamls"] == len(list((REPO / "task_yaml").rglob("*.yaml")))
    assert found["reference"].startswith(str(target))
    assert found["benchmarks"] > 0 and found["image"][0] > 0 and found["tiny_zoom"] == "full"
