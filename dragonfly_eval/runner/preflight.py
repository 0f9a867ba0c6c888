"""What the chosen tasks need from this machine, checked before lmms-eval loads a model.

lmms-eval builds its tasks only after loading the model, and some needs surface later still:
a `dataset_kwargs: token: true` task raises LocalTokenNotFoundError without a Hugging Face
token, captioning metrics call Java only when the scores are aggregated, after all inference.
Here the task names are resolved the way lmms-eval resolves them (its TaskManager over the cached
task index of `lmms_files.task_index`, groups and tags followed, built-in tasks included) and each
task's YAML is read in `task_yaml`'s "refs" mode, which leaves `!function` targets unimported;
they are resolved to files and read as syntax trees by `lmms_files.task_functions`.
"""

from __future__ import annotations

import ast
import functools
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from dragonfly_eval.lmms_files.task_functions import module_file, module_tree, ref_source
from dragonfly_eval.lmms_files.task_index import folder_index, task_index
from dragonfly_eval.lmms_files.task_yaml import FunctionRef, task_config

JAVA_INSTALL = "apt-get install default-jre-headless"
JUDGE_MODULE = "dragonfly_eval.tasks.judge"
TRUST_FLAG = "--trust-dataset-commands"
# `--tasks` values for which lmms-eval lists names instead of running anything
LISTINGS = ("list", "list_groups", "list_tags", "list_subtasks")
# task names a grouped problem shows before "and N more"
SHOWN_TASKS = 6
# (module, function) calls that run their argument through a shell
SHELL_FUNCTIONS = {
    ("os", "system"),
    ("os", "popen"),
    ("subprocess", "getoutput"),
    ("subprocess", "getstatusoutput"),
}


@dataclass(frozen=True)
class TaskSpec:
    """One task of a run: its name, the YAML that defines it and that YAML's settings."""

    name: str
    yaml_path: Path
    config: dict


@dataclass(frozen=True)
class Problem:
    """Something a task needs that this machine lacks, and how to provide it."""

    task: str
    need: str  # "java", "hf_token", "judge" or "shell"
    message: str


def resolve_tasks(names: list[str], include_path: str | None = None) -> list[TaskSpec]:
    """The tasks lmms-eval would run for `--tasks names` (groups and tags expanded). Names it
    does not know are left out: lmms-eval reports them itself."""
    if not names:
        return []
    from loguru import logger

    # lmms-eval logs every YAML it cannot index at DEBUG level: not for this short look-up.
    logger.disable("lmms_eval")
    try:
        manager = task_manager(include_path)
        found: dict[str, TaskSpec] = {}
        for name in manager.match_tasks(names):
            _expand(manager, name, {}, found)
        for name in names:
            if name not in manager.all_tasks and Path(name).is_file():
                _add(manager, task_config(name), Path(name), {}, found)
    finally:
        logger.enable("lmms_eval")
    return list(found.values())


def task_listing(tasks: str, include_path: str | None = None) -> str:
    """What lmms-eval prints for `--tasks list` (every registered name), `list_groups`,
    `list_tags` or `list_subtasks`, read from the cached task index (the names alone without
    lmms-eval's TaskManager)."""
    if tasks == "list":
        return "\n".join(sorted(task_index(include_path))) + "\n"
    from loguru import logger

    logger.disable("lmms_eval")
    try:
        manager = task_manager(include_path)
        kinds = {"groups": "list_groups", "tags": "list_tags", "subtasks": "list_subtasks"}
        return manager.list_all_tasks(**{f"list_{k}": v == tasks for k, v in kinds.items()})
    finally:
        logger.enable("lmms_eval")


def task_manager(include_path: str | None):
    """lmms-eval's TaskManager over the cached task index (`lmms_files.task_index`): indexing
    lmms-eval's ~2000 built-in YAMLs with PyYAML takes seconds, every time."""
    from lmms_eval.tasks import TaskManager

    class CachedIndexTaskManager(TaskManager):
        def _get_task_and_group(self, task_dir: str) -> dict:
            return folder_index(task_dir)

    return CachedIndexTaskManager(verbosity="ERROR", include_path=include_path)


def _expand(manager, name: str, overrides: dict, found: dict[str, TaskSpec]) -> None:
    """Add the registered task `name`, or every task of the group or tag `name`, to `found`;
    `overrides` are the settings a parent group gives its tasks."""
    from lmms_eval.tasks import GROUP_ONLY_KEYS

    entry = manager.task_index[name]
    if entry["type"] == "tag":
        for task in entry["task"]:
            _expand(manager, task, overrides, found)
        return
    path = Path(entry["yaml_path"])
    config = {**task_config(path), **overrides}
    if entry["type"] == "group":
        passed_on = {k: v for k, v in config.items() if k not in GROUP_ONLY_KEYS}
        for member in config.get("task") or []:
            _add(manager, member, path, passed_on, found)
    elif entry["type"] == "task":
        found.setdefault(name, TaskSpec(name, path, {**config, "task": name}))


def _add(
    manager, member: object, yaml_path: Path, overrides: dict, found: dict[str, TaskSpec]
) -> None:
    """Add one entry of a group's task list: a name, or a dict that configures a task (a
    registered one with changed settings, or one defined in place)."""
    if isinstance(member, str):
        member = {"task": member}
    if not isinstance(member, dict):
        return
    name = member.get("task")
    settings = {**{k: v for k, v in member.items() if k != "task"}, **overrides}
    if isinstance(name, list):
        for sub in name:
            _add(manager, sub, yaml_path, settings, found)
    elif isinstance(name, str) and name in manager.all_tasks:
        _expand(manager, name, settings, found)
    elif isinstance(name, str) and "group" not in member:
        found.setdefault(name, TaskSpec(name, yaml_path, {**member, **overrides}))


def function_refs(value: object) -> Iterator[FunctionRef]:
    """Every `!function` target in a task's settings (each names the YAML it is written in)."""
    if isinstance(value, FunctionRef):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from function_refs(item)
    elif isinstance(value, list):
        for item in value:
            yield from function_refs(item)


def function_source(ref: FunctionRef) -> tuple[Path, str] | None:
    """(module file, function name) that lmms-eval would load for a `!function` target (a file
    beside the YAML first, else the module; `task_functions.ref_source`); None when neither
    exists."""
    found = ref_source(ref)
    return None if found is None else (Path(found[1]), found[2])


def uses_pycocoevalcap(module_file: Path, function: str) -> bool:
    """Whether `function` of the module uses pycocoevalcap, directly or through other
    functions or classes of the same module."""
    return function in _pycocoevalcap_users(str(module_file))


@functools.cache
def _pycocoevalcap_users(module_file: str) -> frozenset[str]:
    # Read from the source rather than imported: importing a task's utils can be slow or
    # need the network, and the preflight must not.
    tree = module_tree(module_file)
    if tree is None:
        return frozenset()
    bound = _names_bound_by_pycocoevalcap(tree)
    return _with_callers(
        tree,
        lambda node, used: bool(used & bound or _names_bound_by_pycocoevalcap(node)),
    )


def runs_shell(module_file: Path, function: str) -> bool:
    """Whether `function` of the module starts a shell (`shell=True`, `os.system`, ...),
    directly or through other functions or classes of the same module."""
    return function in _shell_users(str(module_file))


@functools.cache
def _shell_users(module_file: str) -> frozenset[str]:
    tree = module_tree(module_file)
    return (
        frozenset() if tree is None else _with_callers(tree, lambda node, used: _starts_shell(node))
    )


def _starts_shell(tree: ast.AST) -> bool:
    """Whether the code calls something with `shell=True` or a function that runs a shell."""
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        if any(
            k.arg == "shell" and isinstance(k.value, ast.Constant) and k.value.value is True
            for k in node.keywords
        ):
            return True
        func = node.func
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            if (func.value.id, func.attr) in SHELL_FUNCTIONS:
                return True
    return False


def _with_callers(tree: ast.Module, uses: Callable[[ast.AST, set[str]], bool]) -> frozenset[str]:
    """The module's top-level functions and classes for which `uses(node, names it reads)`
    holds, and those that call them, directly or through each other."""
    definitions = {
        node.name: node
        for node in tree.body
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
    }
    names_used = {
        name: {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
        for name, node in definitions.items()
    }
    users = {name for name, node in definitions.items() if uses(node, names_used[name])}
    grew = True
    while grew:
        callers = {name for name, used in names_used.items() if used & users} - users
        users |= callers
        grew = bool(callers)
    return frozenset(users)


def _names_bound_by_pycocoevalcap(tree: ast.AST) -> set[str]:
    """Names that `import pycocoevalcap...` / `from pycocoevalcap... import ...` bind in tree."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pycocoevalcap"):
            names |= {alias.asname or alias.name for alias in node.names}
        elif isinstance(node, ast.Import):
            names |= {
                alias.asname or alias.name.split(".")[0]
                for alias in node.names
                if alias.name.split(".")[0] == "pycocoevalcap"
            }
    return names


def needs_java(task: TaskSpec) -> bool:
    """Whether the task's scoring runs Java.

    The rule: a function the YAML names (process_results, a metric's aggregation, ...) uses
    pycocoevalcap, directly or through its own module. pycocoevalcap's PTB tokenizer and METEOR
    are Java programs, and every caption metric tokenizes first. This follows the code instead of
    a list of task names, so lmms-eval's captioning tasks (COCO, Flickr30k, NoCaps, TextCaps, ...)
    and this project's (the mini caption task, ROCO) are found alike, and a test split that only
    writes a submission file is not.
    """
    sources = filter(None, map(function_source, function_refs(task.config)))
    return any(uses_pycocoevalcap(path, function) for path, function in sources)


def is_local_dataset(config: dict) -> bool:
    """Whether the task reads a local dataset: `data_files`, or a `dataset_path` that is an
    existing folder (absolute, or relative to the working directory as in the hub layout
    `<org>/<name>/`)."""
    kwargs = config.get("dataset_kwargs") or {}
    path = config.get("dataset_path")
    return "data_files" in kwargs or (isinstance(path, str) and Path(path).is_dir())


def needs_hub_token(task: TaskSpec) -> bool:
    """Whether loading the task's dataset needs a Hugging Face token (`dataset_kwargs: token:
    true` on a hub dataset)."""
    kwargs = task.config.get("dataset_kwargs") or {}
    return bool(kwargs.get("token")) and not is_local_dataset(task.config)


def is_judged(task: TaskSpec) -> bool:
    """Whether the task is scored by this project's LLM judge (its YAML names a function of
    dragonfly_eval.tasks.judge)."""
    judge = module_file(JUDGE_MODULE)
    sources = filter(None, map(function_source, function_refs(task.config)))
    return judge is not None and any(path == Path(judge) for path, _ in sources)


def hub_token_configured() -> bool:
    """Whether a Hugging Face token is available (HF_TOKEN, or a saved `hf auth login`)."""
    from huggingface_hub import get_token

    return bool(get_token())


def java_problem(task: TaskSpec) -> Problem:
    """The problem of a captioning task on a machine without Java."""
    return Problem(
        task.name,
        "java",
        f"task {task.name}: its captioning metrics (pycocoevalcap) run Java, and `java` is not "
        f"on PATH. Install Java (e.g. `{JAVA_INSTALL}`) or leave the task out.",
    )


def hub_layout_route(dataset: str) -> str:
    """How to give a hub dataset a local copy that lmms-eval finds for every task: a folder laid
    out like the hub repo, `<org>/<name>/`, in the working directory."""
    return (
        f"where there is network, run `hf download {dataset} --repo-type dataset --local-dir "
        f"{dataset}`, then start the run from the folder that holds {dataset.split('/')[0]}/ "
        "(lmms-eval loads a folder laid out like the hub repo, found from the working directory)"
    )


def token_problem(tasks: list[TaskSpec]) -> Problem:
    """The problem of `token: true` hub datasets without a Hugging Face token: one for all the
    tasks that need one (the fix is the same for each)."""
    login = "Log in with `hf auth login` (or set HF_TOKEN)"
    if len(tasks) == 1:
        (task,) = tasks
        dataset = str(task.config.get("dataset_path"))
        return Problem(
            task.name,
            "hf_token",
            f"task {task.name}: its YAML ({task.yaml_path}) sets `dataset_kwargs: token: true` "
            f"for the hub dataset {dataset}, and no Hugging Face token is configured. {login}, "
            f"or use a local copy: {hub_layout_route(dataset)}.",
        )
    names = [task.name for task in tasks]
    datasets = list(dict.fromkeys(str(task.config.get("dataset_path")) for task in tasks))
    return Problem(
        ",".join(names),
        "hf_token",
        f"{len(names)} tasks ({shown(names)}) read hub datasets with `dataset_kwargs: token: "
        f"true`, and no Hugging Face token is configured. {login}, or give each dataset a local "
        "copy where there is network (`hf download DATASET --repo-type dataset --local-dir "
        f"DATASET` for {shown(datasets)}) and start the run from the folder that holds them.",
    )


def shown(names: list[str]) -> str:
    """The first SHOWN_TASKS names, then how many more."""
    more = len(names) - SHOWN_TASKS
    return ", ".join(names[:SHOWN_TASKS]) + (f" and {more} more" if more > 0 else "")


def judge_problem(task: TaskSpec) -> Problem | None:
    """The problem of a judged task without a configured judge, or None."""
    from dragonfly_eval.tasks.judge_settings import JudgeNotConfiguredError, judge_settings

    try:
        judge_settings(task.name)
    except JudgeNotConfiguredError as err:
        return Problem(task.name, "judge", str(err))
    return None


def shell_problems(task: TaskSpec) -> list[Problem]:
    """Ways the task's code would pass the dataset's strings to a shell: a function its YAML
    names that starts one (lmms-eval's HD-EPIC `doc_to_visual` runs ffmpeg with the row's
    `video_dir`), or `dataset_kwargs: From_YouTube` (lmms-eval splices each row's `videoID`
    into a yt-dlp command). Either lets a dataset row run any command."""
    trust = f"Vet the dataset, then add {TRUST_FLAG} to run the task anyway, or leave it out."
    problems = []
    kwargs = task.config.get("dataset_kwargs")
    if isinstance(kwargs, dict) and "From_YouTube" in kwargs:
        problems.append(
            Problem(
                task.name,
                "shell",
                f"task {task.name}: its YAML ({task.yaml_path}) sets `dataset_kwargs: "
                "From_YouTube`, for which lmms-eval runs a shell command holding each dataset "
                f"row's `videoID` (a row can run any command). {trust}",
            )
        )
    for ref in function_refs(task.config):
        source = function_source(ref)
        if source and source[0].suffix == ".py" and runs_shell(*source):
            problems.append(
                Problem(
                    task.name,
                    "shell",
                    f"task {task.name}: `!function {ref.target}` ({ref.yaml_file}) starts "
                    "a shell (`shell=True`, `os.system`, ...), directly or through its "
                    "module's functions, with a command task code builds from the dataset's "
                    f"values (a row can run any command). {trust}",
                )
            )
    return problems


def task_problems(tasks: list[TaskSpec], trust_dataset_commands: bool = False) -> list[Problem]:
    """Everything the tasks need that this machine lacks, and (unless the user trusts the
    datasets) task code that would hand dataset strings to a shell; empty when they can all
    run."""
    problems = []
    java = shutil.which("java") is not None
    token = hub_token_configured()
    need_token = []
    for task in tasks:
        if not trust_dataset_commands:
            problems += shell_problems(task)
        if not java and needs_java(task):
            problems.append(java_problem(task))
        if not token and needs_hub_token(task):
            need_token.append(task)
        if is_judged(task):
            problems += filter(None, [judge_problem(task)])
    return problems + ([token_problem(need_token)] if need_token else [])
