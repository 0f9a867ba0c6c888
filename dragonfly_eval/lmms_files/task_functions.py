"""Which file and name lmms-eval runs for a task YAML's `!function` target, found without running
anything, and that file's syntax tree: the one resolver the task guard, the pre-flight and the
regression gate share.

lmms-eval's `import_function` first runs the file `normpath(<YAML's folder>/<dotted name>.py)` if
it exists (the dotted name used as a file name), and only then imports the module of that name.
Modules are looked up only inside the installed `dragonfly_eval` and `lmms_eval` packages, with
the import system's own finders, parent package by parent package, none of them run
(`lmms_eval.tasks`' __init__ alone imports torch).
"""

from __future__ import annotations

import ast
import importlib.machinery
import importlib.util
import os
import sys
import warnings
from functools import cache
from pathlib import Path
from typing import Any

from dragonfly_eval.lmms_files.task_yaml import FunctionRef

ALLOWED_PACKAGES = ("dragonfly_eval", "lmms_eval")


@cache
def package_folders() -> tuple[Path, ...]:
    """The real folders of the installed packages whose code task YAMLs may run."""
    folders = []
    for name in ALLOWED_PACKAGES:
        spec = importlib.util.find_spec(name)
        folders += [Path(p).resolve() for p in (spec.submodule_search_locations or [])]
    return tuple(folders)


def inside_packages(path: str) -> bool:
    """Whether a file lies inside the installed allowed packages (links resolved)."""
    real = Path(path).resolve()
    return any(real.is_relative_to(folder) for folder in package_folders())


def allowed_module(module: str) -> bool:
    """Whether a module name (a relative one stays inside the package of the file that names
    it) belongs to the allowed packages."""
    return module.startswith(".") or module.partition(".")[0] in ALLOWED_PACKAGES


def module_file(module: str) -> str | None:
    """The file `importlib.import_module(module)` would run, for modules of the allowed
    packages only; None for any other module or one that is not there."""
    parts = module.split(".")
    if parts[0] not in ALLOWED_PACKAGES or not all(p.isidentifier() for p in parts):
        return None
    try:
        spec = find_spec(module)
    except Exception:  # e.g. a parent that is not a package: lmms-eval cannot import it either
        return None
    if spec is None or not spec.origin or not os.path.isfile(spec.origin):
        return None
    return spec.origin


def find_spec(module: str) -> importlib.machinery.ModuleSpec | None:
    """The spec the import system would use for `module`: its loaded module's, else the one
    the path entry finders (sys.path_hooks) give in the parent package's folders, as
    importlib's PathFinder searches them (a module or package first, else a namespace
    package of every folder that has one), without running the parent packages."""
    loaded = sys.modules.get(module)
    if loaded is not None:
        return getattr(loaded, "__spec__", None)
    parent = module.rpartition(".")[0]
    if not parent:
        return importlib.util.find_spec(module)
    parent_spec = find_spec(parent)
    locations = parent_spec.submodule_search_locations if parent_spec else None
    if not locations:
        return None  # not a package
    portions: list[str] = []
    for location in locations:
        finder = _entry_finder(location)
        spec = finder.find_spec(module) if finder is not None else None
        if spec is None:
            continue
        if spec.loader is not None:
            return spec
        portions += list(spec.submodule_search_locations or [])
    if not portions:
        return None
    spec = importlib.machinery.ModuleSpec(module, None, is_package=True)
    spec.submodule_search_locations = portions
    return spec


def _entry_finder(location: str) -> Any:
    for hook in sys.path_hooks:
        try:
            return hook(location)
        except ImportError:
            continue
    return None


def beside(ref: FunctionRef) -> str:
    """The file beside the YAML that lmms-eval runs first for `ref`: the dotted name as a file
    name."""
    module = ref.target.rpartition(".")[0]
    return os.path.normpath(os.path.join(os.path.dirname(ref.yaml_file), f"{module}.py"))


def ref_source(ref: FunctionRef) -> tuple[str, str, str] | None:
    """(module name, file, attribute) that lmms-eval loads for a `!function` target: the file
    beside the YAML named after the dotted name (run as a module of that name) when it exists,
    else the file of the module of that name (allowed packages only); None when neither is."""
    module, _, name = ref.target.rpartition(".")
    found = beside(ref)
    if os.path.exists(found):
        return module, found, name
    source = module_file(module)
    return None if source is None else (module, source, name)


@cache
def module_tree(source: str) -> ast.Module | None:
    """A module file's syntax tree, read not run (None when it is not Python source)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. invalid escapes in a task's utils.py
            return ast.parse(Path(source).read_bytes(), source)
    except (OSError, SyntaxError, ValueError):
        return None
