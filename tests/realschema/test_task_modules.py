"""Every lmms-eval task module that a suite task (task_yaml/**) or its built-in twin uses imports in
this environment, with the packages its functions need when they run. lmms-eval is installed
without its declared dependencies, so a package missing here would otherwise surface only after a
whole evaluation's inference (e.g. MMBench writing its Excel file without openpyxl)."""

import importlib.util
import inspect
import os
from pathlib import Path

import pytest
from lmms_eval.utils import load_yaml_config

from dragonfly_eval.paths import task_yaml_dir
from dragonfly_eval.tasks.catalog import task_configs

# Calls in task code that import a package only when they run (pandas' Excel writer and reader).
LAZY_IMPORTS = {"to_excel": "openpyxl", "ExcelWriter": "openpyxl", "read_excel": "openpyxl"}


def _suite_yamls() -> list[Path]:
    """The project's task YAMLs and the YAML of each dragonfly_* task's built-in twin."""
    from lmms_eval.tasks import TaskManager

    index = TaskManager(verbosity="ERROR").task_index
    twins = {name.removeprefix("dragonfly_") for name in task_configs()}
    builtin = {Path(index[name]["yaml_path"]) for name in twins if name in index}
    return sorted(task_yaml_dir().rglob("*.yaml")) + sorted(builtin)


def _callables(config) -> list:
    """Every function or class a loaded YAML config refers to (its `!function` values)."""
    if isinstance(config, dict):
        return [c for value in config.values() for c in _callables(value)]
    if isinstance(config, list):
        return [c for value in config for c in _callables(value)]
    return [config] if inspect.isfunction(config) or inspect.isclass(config) else []


def _source_file(obj) -> str:
    # A `!function` module loaded from a file path is not in sys.modules, so inspect.getfile
    # cannot find a class's file; its methods' code objects still name it.
    if inspect.isfunction(obj):
        return obj.__code__.co_filename
    return next(v.__code__.co_filename for v in vars(obj).values() if inspect.isfunction(v))


@pytest.fixture(scope="module")
def loaded() -> dict[Path, list]:
    """YAML path -> the functions its `!function` tags import, or the import error."""
    found = {}
    with pytest.MonkeyPatch.context() as patch:
        # MM-Vet's utils build an OpenAI client at import time, which with `openai` installed
        # (vLLM brings it) needs a key: a judged task has one (the pre-flight asks for it)
        patch.setenv("OPENAI_API_KEY", os.environ.get("OPENAI_API_KEY") or "unused")
        for path in _suite_yamls():
            try:
                found[path] = _callables(load_yaml_config(str(path), mode="full"))
            except Exception as error:  # reported with its YAML by the test below
                found[path] = error
    return found


@pytest.mark.slow
def test_every_task_module_of_the_suite_and_its_builtin_twins_imports(loaded):
    failures = {
        str(p): repr(v.__cause__ or v) for p, v in loaded.items() if isinstance(v, Exception)
    }
    assert not failures
    assert any("lmms_eval/tasks/mmbench" in str(path) for path in loaded), "twins not indexed"


@pytest.mark.slow
def test_packages_that_task_functions_import_when_they_run_are_installed(loaded):
    sources = {
        _source_file(obj) for value in loaded.values() if isinstance(value, list) for obj in value
    }
    missing = {
        (source, call, package)
        for source in sorted(sources)
        for call, package in LAZY_IMPORTS.items()
        if call in Path(source).read_text(encoding="utf-8")
        and importlib.util.find_spec(package) is None
    }
    assert not missing, f"install the packages these task modules call at run time: {missing}"
