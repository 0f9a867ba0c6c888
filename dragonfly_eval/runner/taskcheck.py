"""Which code the task YAMLs of an lmms-eval command line would run, checked before it starts.

lmms-eval (0.7.3) loads task YAMLs from every `--include_path` folder (all `*.yaml` below it),
from `--tasks` entries that are YAML files or folders, from the task folders of
`LMMS_EVAL_PLUGINS`, and from the `include:` chains of those; `--config FILE` can set the same
options. Here each of those YAMLs goes through the task guard (`lmms_files.task_guard`).
"""

from __future__ import annotations

import glob
import importlib.util
import os
from pathlib import Path
from typing import Any

from dragonfly_eval.lmms_files.task_functions import ALLOWED_PACKAGES, inside_packages, module_file
from dragonfly_eval.lmms_files.task_guard import check_task_yaml
from dragonfly_eval.lmms_files.task_yaml import TaskYamlError, task_yaml_files
from dragonfly_eval.runner.cmdline import evaluations


def plugin_problem(plugins: str) -> str | None:
    """Why an `LMMS_EVAL_PLUGINS` value must not reach lmms-eval, read from the names alone
    (lmms-eval imports `<plugin>.models` as soon as `lmms_eval.models` is imported, so nothing
    may be looked up first); None when it names only the allowed packages."""
    other = [p for p in filter(None, plugins.split(",")) if p not in ALLOWED_PACKAGES]
    if not other:
        return None
    return (
        f"LMMS_EVAL_PLUGINS names {', '.join(other)}: lmms-eval imports <plugin>.models and "
        f"<plugin>.tasks of each, which are not modules of the installed "
        f"{' or '.join(ALLOWED_PACKAGES)} packages; unset LMMS_EVAL_PLUGINS (register models "
        "through the `lmms_eval.models` entry point instead)"
    )


def _plugin_folders(plugins: str) -> tuple[list[str], list[str]]:
    """The task folders lmms-eval adds for LMMS_EVAL_PLUGINS (it imports `<plugin>.tasks`),
    and problems with plugins outside the allowed packages."""
    folders, problems = [], []
    for plugin in filter(None, plugins.split(",")):
        spec = module_file(f"{plugin}.tasks") and importlib.util.find_spec(f"{plugin}.tasks")
        if spec is None or not inside_packages(spec.origin):
            problems.append(
                f"LMMS_EVAL_PLUGINS names {plugin}: lmms-eval would import {plugin}.tasks, "
                f"which is not a module of the installed {' or '.join(ALLOWED_PACKAGES)} packages"
            )
        else:
            folders += list(spec.submodule_search_locations or [])
    return folders, problems


def _loaded_yamls(args: Any, env: dict[str, Any]) -> tuple[list[Path], list[str]]:
    """The task YAML files one lmms-eval evaluation reads, and problems found on the way."""
    include = args.include_path
    folders = (
        [include] if isinstance(include, str) else include if isinstance(include, list) else []
    )
    plugins = str(env.get("LMMS_EVAL_PLUGINS", os.environ.get("LMMS_EVAL_PLUGINS", "")))
    plugin_folders, problems = _plugin_folders(plugins)
    files = [f for folder in [*folders, *plugin_folders] for f in task_yaml_files(folder)]
    tasks = args.tasks if isinstance(args.tasks, str) else ""
    if os.path.isdir(tasks):
        files += [Path(p) for p in sorted(glob.glob(os.path.join(tasks, "*.yaml")))]
    else:
        files += [Path(entry) for entry in tasks.split(",") if os.path.isfile(entry)]
    return files, problems


def check_command(argv: list[str]) -> list[str]:
    """Problems with the code the task YAMLs of the lmms-eval command line `argv` would run
    (every evaluation of its --config file included); empty when none. A command line that
    lmms-eval itself would refuse yields none: lmms-eval stops before reading any task."""
    try:
        runs = evaluations(argv)
    except TaskYamlError as err:
        return [str(err)]
    problems, files = [], []
    for args, env in runs:
        found, found_problems = _loaded_yamls(args, env)
        problems += [p for p in found_problems if p not in problems]
        files += [f for f in found if f not in files]
    return problems + [p for path in files for p in check_task_yaml(path)]
