"""Which code the task YAMLs of an lmms-eval command line would run, checked before it starts.

lmms-eval (0.7.3) loads task YAMLs from every `--include_path` folder (all `*.yaml` below it),
from `--tasks` entries that are YAML files or folders, and from the `include:` chains of those;
`--config FILE` can set the same options. It reads them with PyYAML's full loader, where:

- `!function a.b.fn` first executes the file `normpath(<YAML's folder>/a.b.py)` if it exists
  (the dotted name is used as a file name, so `a.b` may also hold `/` and `..`), and only then
  imports the module `a.b`;
- `!!python/name:` and the other python tags resolve Python objects.

Prompts given as strings (`doc_to_text: "{{question}}"`) are rendered with an unsandboxed Jinja
environment, where `{{ lipsum.__globals__ ... }}` reaches `os`.

Here every such YAML is read with a safe loader that records `!function` targets and refuses
every other tag, bounded in size and alias expansion. A target is allowed when the file
lmms-eval would execute lies inside the installed `dragonfly_eval` or `lmms_eval` package,
defines the name there (a name it imports from elsewhere, e.g. `shutil.copy2`, is refused), and
is a function that lmms-eval's installed built-in task YAMLs (or, for `dragonfly_eval.tasks`,
this project's task YAMLs) name under the same key: its role (`doc_to_text`, `process_results`,
`aggregation`, a `filter_list` entry's `function`, ...). lmms-eval calls a filter with keyword
arguments from the YAML, so "any function of the package" would let a YAML call helpers that
run shell commands. That index is built from the installed YAMLs and cached. A template is
refused when it names an attribute (or an item, which Jinja falls back to reading
as an attribute) that jinja2's sandbox forbids. Names computed while rendering cannot be seen
here; `lmms_main.py` runs lmms-eval with its templates rendered in the sandbox for those.
"""

from __future__ import annotations

import ast
import glob
import hashlib
import importlib.machinery
import importlib.metadata
import importlib.util
import json
import os
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from jinja2 import nodes
from jinja2.exceptions import TemplateSyntaxError
from jinja2.sandbox import (
    UNSAFE_ASYNC_GENERATOR_ATTRIBUTES,
    UNSAFE_COROUTINE_ATTRIBUTES,
    UNSAFE_FUNCTION_ATTRIBUTES,
    UNSAFE_GENERATOR_ATTRIBUTES,
    UNSAFE_METHOD_ATTRIBUTES,
    SandboxedEnvironment,
)

from dragonfly_eval.paths import cache_root, check_regular_file

ALLOWED_PACKAGES = ("dragonfly_eval", "lmms_eval")
PROJECT_TASK_MODULES = "dragonfly_eval.tasks"  # the project's functions task YAMLs may name
# the key that holds a filter's `!function` inside a `filter_list` entry, and its role's name
FILTER_KEY, FILTER_ROLE = "function", "filter"
NO_ROLE = "a value of no task setting"
INDEX_FORMAT = 1  # bump when the cached function index changes shape
MAX_YAML_BYTES = 4 * 1024 * 1024
MAX_YAML_NODES = 200_000  # after alias expansion; the largest shipped task YAML has ~100
MAX_INCLUDE_DEPTH = 16
# the folders lmms-eval's TaskManager skips while indexing an --include_path
SKIPPED_DIRS = ("__pycache__", ".ipynb_checkpoints")
# attribute names jinja2's sandbox refuses on some object (it also refuses every name starting
# with "_"); str.format/format_map are only safe through the sandbox's own formatter
UNSAFE_ATTRIBUTES = frozenset(
    {"mro", "format", "format_map"}
    | UNSAFE_FUNCTION_ATTRIBUTES
    | UNSAFE_METHOD_ATTRIBUTES
    | UNSAFE_GENERATOR_ATTRIBUTES
    | UNSAFE_COROUTINE_ATTRIBUTES
    | UNSAFE_ASYNC_GENERATOR_ATTRIBUTES
)
# Jinja filters that read an attribute named by an argument: filter -> positional index
ATTRIBUTE_FILTERS = {
    "attr": 0,
    "map": None,
    "selectattr": 0,
    "rejectattr": 0,
    "groupby": 0,
    "sort": None,
    "sum": None,
    "unique": None,
    "min": None,
    "max": None,
    "join": None,
}


class TaskCheckError(ValueError):
    """A task or config YAML that cannot be checked (unreadable, other tags, too large)."""


@dataclass(frozen=True)
class FunctionRef:
    """One `!function` target and the YAML it appears in (the path as lmms-eval forms it).
    `role` is the task setting that holds it (`doc_to_text`, `aggregation`, `filter`, ...);
    None checks only that some built-in task YAML names the function."""

    target: str
    yaml_file: str
    role: str | None = None


class _Function(str):
    """A `!function` value as read here: the string `"!function <target>"`, marked as a tag."""

    target: str


# libyaml's parser where PyYAML has it: PyYAML's own spent most of indexing lmms-eval's YAMLs
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Recorder(_SafeLoader):
    """A safe loader that records `!function` targets instead of importing them."""

    def __init__(self, stream) -> None:
        super().__init__(stream)
        self.functions: list[str] = []


def _record_function(loader: _Recorder, node: yaml.Node) -> str:
    target = str(loader.construct_scalar(node))
    loader.functions.append(target)
    value = _Function(f"!function {target}")
    value.target = target
    return value


_Recorder.add_constructor("!function", _record_function)


class _RefLoader(yaml.SafeLoader):
    """A safe loader that keeps each `!function` as the FunctionRef lmms-eval would resolve."""


def _construct_ref(loader: _RefLoader, node: yaml.Node) -> FunctionRef:
    return FunctionRef(str(loader.construct_scalar(node)), loader.name)


_RefLoader.add_constructor("!function", _construct_ref)


class _Untagged(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """A safe loader (libyaml's when there) that reads every tagged value as None."""


_Untagged.add_multi_constructor("", lambda loader, suffix, node: None)


def _expanded_size(node: yaml.Node, sizes: dict[int, int], open_nodes: set[int]) -> int:
    """How many nodes `node` holds once aliases are expanded (shared nodes counted once per use,
    computed once each), so that a billion-laughs file is measured, not expanded."""
    key = id(node)
    if key in sizes:
        return sizes[key]
    if key in open_nodes:
        raise TaskCheckError("an alias refers to the node that holds it (a recursive structure)")
    open_nodes.add(key)
    children = node.value if isinstance(node, yaml.CollectionNode) else []
    flat = [part for child in children for part in (child if isinstance(child, tuple) else [child])]
    size = 1 + sum(_expanded_size(child, sizes, open_nodes) for child in flat)
    open_nodes.discard(key)
    sizes[key] = min(size, MAX_YAML_NODES + 1)
    return sizes[key]


def _load(path: str, loader_class: type[yaml.SafeLoader]) -> tuple[Any, list[str]]:
    with open(path, "rb") as handle:
        loader = loader_class(handle)
        try:
            node = loader.get_single_node()
            if node is None:
                return None, []
            if _expanded_size(node, {}, set()) > MAX_YAML_NODES:
                raise TaskCheckError(
                    f"more than {MAX_YAML_NODES} values once its aliases are expanded"
                )
            return loader.construct_document(node), getattr(loader, "functions", [])
        finally:
            loader.dispose()


def read_yaml(path: str | Path, tags: bool | None = True) -> Any:
    """A YAML file's data, read without running anything (`!function` values become the string
    `"!function <target>"`; with `tags=False`, as `yaml.safe_load` reads it; with `tags=None`,
    every tag's value as None, e.g. to index tasks by name). Raises TaskCheckError for other
    tags, files that are not regular or too large, and alias bombs."""
    loader = _Recorder if tags else yaml.SafeLoader if tags is not None else _Untagged
    return _read(str(path), loader)[0]


def _read(path: str, loader_class: type[yaml.SafeLoader]) -> tuple[Any, list[str]]:
    try:
        check_regular_file(Path(path), MAX_YAML_BYTES, TaskCheckError)
    except OSError as err:
        raise TaskCheckError(f"{path}: not a regular file") from err
    try:
        return _load(path, loader_class)
    except TaskCheckError as err:
        raise TaskCheckError(f"{path}: {err}") from err
    except yaml.constructor.ConstructorError as err:
        raise TaskCheckError(f"{path}: tag not allowed in a task YAML ({err.problem})") from err
    except RecursionError as err:
        raise TaskCheckError(f"{path}: nested too deeply") from err
    except (OSError, yaml.YAMLError) as err:
        raise TaskCheckError(f"{path}: cannot be read as YAML ({err})") from err


@cache
def package_folders() -> tuple[Path, ...]:
    """The real folders of the installed packages whose code task YAMLs may run."""
    folders = []
    for name in ALLOWED_PACKAGES:
        spec = importlib.util.find_spec(name)
        folders += [Path(p).resolve() for p in (spec.submodule_search_locations or [])]
    return tuple(folders)


def _inside_packages(path: str) -> bool:
    real = Path(path).resolve()
    return any(real.is_relative_to(folder) for folder in package_folders())


def _outside_message(ref: FunctionRef, runs: str) -> str:
    return (
        f"{ref.yaml_file}: `!function {ref.target}` is not a function of "
        f"{' or '.join(ALLOWED_PACKAGES)}: lmms-eval would run {runs}; task YAMLs may only use "
        "functions of those installed packages (move the code into dragonfly_eval.tasks)"
    )


def _module_file(module: str) -> str | None:
    """The file `importlib.import_module(module)` would run, for modules of the allowed
    packages only. Found with the import system's own finders, package by package, without
    running any of them (`lmms_eval.tasks`' __init__ alone imports torch)."""
    parts = module.split(".")
    if parts[0] not in ALLOWED_PACKAGES or not all(p.isidentifier() for p in parts):
        return None
    try:
        spec = _find_spec(module)
    except Exception:  # e.g. a parent that is not a package: lmms-eval cannot import it either
        return None
    if spec is None or not spec.origin or not os.path.isfile(spec.origin):
        return None
    return spec.origin


def _find_spec(module: str) -> importlib.machinery.ModuleSpec | None:
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
    parent_spec = _find_spec(parent)
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


@cache
def _parsed(source: str) -> ast.Module | None:
    """A module file's syntax tree (None when it is not Python source)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. invalid escapes in a task's utils.py
            return ast.parse(Path(source).read_bytes(), source)
    except (OSError, SyntaxError, ValueError):
        return None


def _binding_problem(source: str, name: str) -> str | None:
    """Why `name` in the module file `source` is not code of the allowed packages, or None.
    The module's last top-level binding of the name counts, as it does when Python runs it."""
    tree = _parsed(source)
    if tree is None:
        return "cannot be read as Python source"
    verdicts, star_sources = [], []
    for node in _module_statements(tree.body):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            verdicts += [None] if node.name == name else []
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            verdicts += [None] if any(getattr(t, "id", None) == name for t in targets) else []
        elif isinstance(node, ast.Import | ast.ImportFrom):
            origin = "." if getattr(node, "level", 0) else getattr(node, "module", None)
            for alias in node.names:
                imported = origin or alias.name
                if alias.name == "*":
                    star_sources.append(imported)
                elif (alias.asname or alias.name.partition(".")[0]) == name:
                    verdicts.append(
                        None if _allowed_module(imported) else f"imports from {imported}"
                    )
    if verdicts:
        return verdicts[-1]
    outside = [m for m in star_sources if not _allowed_module(m)]
    if star_sources and not outside:
        return None
    return f"may take from {outside[0]}" if outside else "does not define"


def _allowed_module(module: str) -> bool:
    # a relative import stays inside the package of the module file being read
    return module.startswith(".") or module.partition(".")[0] in ALLOWED_PACKAGES


def _module_statements(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """The statements that run at module level (into if/try/with blocks, not into defs)."""
    for node in body:
        yield node
        for block in ("body", "orelse", "finalbody"):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                yield from _module_statements(getattr(node, block, []))
        for handler in getattr(node, "handlers", []):
            yield from _module_statements(handler.body)


def _beside(ref: FunctionRef) -> str:
    # lmms-eval's import_function: the dotted name as a file name, beside the YAML
    module = ref.target.rpartition(".")[0]
    return os.path.normpath(os.path.join(os.path.dirname(ref.yaml_file), f"{module}.py"))


def ref_source(ref: FunctionRef) -> tuple[str, str, str] | None:
    """(module name, file, attribute) that lmms-eval loads for a `!function` target: the file
    beside the YAML named after the dotted name (run as a module of that name) when it exists,
    else the file of the module of that name (allowed packages only); None when neither is."""
    module, _, name = ref.target.rpartition(".")
    beside = _beside(ref)
    if os.path.exists(beside):
        return module, beside, name
    source = _module_file(module)
    return None if source is None else (module, source, name)


def _resolved(ref: FunctionRef) -> tuple[str | None, str | None]:
    """(the module file lmms-eval would run for `ref`, why it must not) with one of the two
    None."""
    module = ref.target.rpartition(".")[0]
    found = ref_source(ref)
    if found is None:
        missing = ", which is not installed" if _allowed_module(module) else ""
        return None, _outside_message(ref, f"the module `{module or ref.target}`{missing}")
    source = found[1]
    if not _inside_packages(source):
        if source == _beside(ref):
            source += (
                " (lmms-eval runs a file beside the YAML named after the dotted name before "
                "importing a module)"
            )
        return None, _outside_message(ref, source)
    return source, None


def ref_problem(ref: FunctionRef) -> str | None:
    """Why lmms-eval must not resolve this target, or None when it may."""
    name = ref.target.rpartition(".")[2]
    source, problem = _resolved(ref)
    if source is None:
        return problem
    problem = _binding_problem(source, name)
    if problem:
        return _outside_message(ref, f"`{name}` of {source}, which that file {problem}")
    return _role_problem(ref, source, name)


def _role_problem(ref: FunctionRef, source: str, name: str) -> str | None:
    """Why the function is not allowed in the role `ref` gives it, or None."""
    key = (str(Path(source).resolve()), name)
    roles = sorted(role for role, functions in allowed_functions().items() if key in functions)
    if roles and (ref.role is None or ref.role in roles):
        return None
    used = f"they use it as {', '.join(roles)}" if roles else "none of them names it"
    return (
        f"{ref.yaml_file}: `!function {ref.target}` as {ref.role or NO_ROLE} is not allowed: "
        "task YAMLs may use a function only in a role that lmms-eval's built-in task YAMLs "
        f"(or this project's, for {PROJECT_TASK_MODULES}) use it in, and {used}; lmms-eval "
        "passes a YAML's arguments to it (move the code into a dragonfly_eval.tasks function "
        "that a task YAML of this project names in that role)"
    )


def _function_uses(data: Any) -> Iterator[tuple[str, str]]:
    """(role, target) for each `!function` value of a YAML document: the role is the key that
    holds it (through lists), `filter` for a `filter_list` entry's `function`, NO_ROLE for a
    mapping key or a bare value. Each shared (aliased) container is visited once per role."""
    stack: list[tuple[Any, str]] = [(data, NO_ROLE)]
    seen: set[tuple[int, str]] = set()
    while stack:
        item, role = stack.pop()
        if isinstance(item, _Function):
            yield role, item.target
        elif isinstance(item, dict | list) and (id(item), role) not in seen:
            seen.add((id(item), role))
            if isinstance(item, list):
                stack += [(value, role) for value in item]
                continue
            for key, value in item.items():
                stack.append((key, NO_ROLE))
                named = FILTER_ROLE if key == FILTER_KEY else key
                stack.append((value, named if isinstance(key, str) else NO_ROLE))


def _yaml_refs(path: str, data: Any, functions: list[str]) -> list[FunctionRef]:
    """The `!function` references of one YAML file, each with its role."""
    refs = [FunctionRef(target, path, role) for role, target in _function_uses(data)]
    placed = {ref.target for ref in refs}
    refs += [FunctionRef(t, path, NO_ROLE) for t in functions if t not in placed]
    return list(dict.fromkeys(refs))


def allowed_functions() -> dict[str, frozenset[tuple[str, str]]]:
    """Role -> the (real module file, function name) pairs task YAMLs may use in that role:
    those lmms-eval's installed built-in task YAMLs name there, and the dragonfly_eval.tasks
    functions this project's task YAMLs name there. Read from the YAMLs, so an update of
    lmms-eval updates it; cached on disk while lmms-eval's version and both folders' YAML files
    are unchanged (reading ~2000 YAMLs takes seconds), and in memory per task folder and cache
    folder."""
    from dragonfly_eval.paths import task_yaml_dir

    return _allowed_functions(task_yaml_dir(), cache_root())


@cache
def _allowed_functions(yaml_dir: Path, cache_dir: Path) -> dict[str, frozenset[tuple[str, str]]]:
    from dragonfly_eval.runner.preflight import folder_signature

    lmms_tasks = _package_dir("lmms_eval") / "tasks"
    project = _package_dir(PROJECT_TASK_MODULES)
    digest = hashlib.sha256(f"{INDEX_FORMAT}:{_lmms_eval_version()}".encode())
    for folder in (lmms_tasks, yaml_dir):
        digest.update(folder_signature(str(folder)).encode())
    path = cache_dir / f"task-functions-{digest.hexdigest()[:32]}.json"
    index = _read_function_index(path)
    if index is None:
        index = _build_function_index(lmms_tasks, None)
        for role, functions in _build_function_index(yaml_dir, project).items():
            index[role] = index.get(role, set()) | functions
        _write_function_index(path, index)
    return {role: frozenset(functions) for role, functions in index.items()}


def _package_dir(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    return Path(next(iter(spec.submodule_search_locations or []))).resolve()


def _lmms_eval_version() -> str:
    try:
        return importlib.metadata.version("lmms-eval")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _build_function_index(folder: Path, only_inside: Path | None) -> dict[str, set]:
    """Role -> (real module file, name) for the `!function`s of the YAMLs under `folder` that
    resolve inside the allowed packages (and inside `only_inside`, when given)."""
    index: dict[str, set] = {}
    for path in task_yaml_files(folder):
        try:
            data, functions = _read(str(path), _Recorder)
        except TaskCheckError:
            continue  # lmms-eval cannot load it either
        for ref in _yaml_refs(str(path), data, functions):
            source, _ = _resolved(ref)
            if source is None or ref.role == NO_ROLE:
                continue
            real = Path(source).resolve()
            if only_inside is None or real.is_relative_to(only_inside):
                index.setdefault(ref.role, set()).add((str(real), ref.target.rpartition(".")[2]))
    return index


def _read_function_index(path: Path) -> dict[str, set] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return {role: {(str(f), str(n)) for f, n in pairs} for role, pairs in data.items()}
    except (OSError, ValueError, TypeError, AttributeError):
        return None


def _write_function_index(path: Path, index: dict[str, set]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(json.dumps({r: sorted(f) for r, f in index.items()}), encoding="utf-8")
        partial.replace(path)
    except OSError:
        pass  # a read-only home only costs the time of indexing again


def _attribute_names(node: nodes.Node) -> Iterator[str]:
    """The attribute names a template expression node reads, where they are spelled out."""
    if isinstance(node, nodes.Getattr):
        yield node.attr
    elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
        if isinstance(node.arg.value, str):
            yield node.arg.value
    elif isinstance(node, nodes.Filter) and node.name in ATTRIBUTE_FILTERS:
        index = ATTRIBUTE_FILTERS[node.name]
        args = [node.args[index]] if index is not None and len(node.args) > index else []
        args += [kw.value for kw in node.kwargs if kw.key == "attribute"]
        for arg in args:
            if isinstance(arg, nodes.Const) and isinstance(arg.value, str):
                yield from arg.value.split(".")


def template_problem(text: str) -> str | None:
    """Why a prompt template would need attribute access jinja2's sandbox forbids, or None."""
    if "{{" not in text and "{%" not in text:
        return None
    try:
        tree = SandboxedEnvironment().parse(text)
    except TemplateSyntaxError:
        return None  # lmms-eval cannot render it either
    for node in tree.find_all((nodes.Getattr, nodes.Getitem, nodes.Filter)):
        for attr in _attribute_names(node):
            if attr.startswith("_") or attr in UNSAFE_ATTRIBUTES:
                return f"reads `{attr}`, which jinja2's sandbox forbids"
    return None


def _strings(data: Any) -> Iterator[str]:
    """Every string value in a YAML document, each shared (aliased) container visited once."""
    stack, seen = [data], set()
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict | list) and id(item) not in seen:
            seen.add(id(item))
            stack += list(item.values()) if isinstance(item, dict) else item


def _includes(path: str, data: Any) -> list[str]:
    """The files an `include:` names, resolved as lmms-eval's load_yaml_config does."""
    names = data.get("include") if isinstance(data, dict) else None
    names = [names] if isinstance(names, str) else names if isinstance(names, list) else []
    return [
        n if os.path.isfile(n) else os.path.join(os.path.dirname(path), n)
        for n in names
        if isinstance(n, str)
    ]


def _chain(path: str, parents: tuple[str, ...] = ()) -> Iterator[tuple[str, Any, list[str]]]:
    """(file, data, `!function` targets) for a task YAML and each YAML its `include:` chain
    loads, as lmms-eval follows it (a cycle is followed once; lmms-eval recurses until Python
    stops it). Raises TaskCheckError for a file that cannot be checked."""
    if len(parents) > MAX_INCLUDE_DEPTH:
        raise TaskCheckError(f"{parents[0]}: `include:` chain deeper than {MAX_INCLUDE_DEPTH}")
    data, functions = _read(path, _Recorder)
    yield path, data, functions
    for included in _includes(path, data):
        if os.path.exists(included) and included not in (*parents, path):
            yield from _chain(included, (*parents, path))


def function_refs(path: str | Path) -> list[FunctionRef]:
    """Every `!function` target of a task YAML and of the YAMLs it includes, with its role."""
    return [
        ref
        for file, data, functions in _chain(str(path))
        for ref in _yaml_refs(file, data, functions)
    ]


def _file_problems(path: str, data: Any, functions: list[str]) -> list[str]:
    refs = _yaml_refs(path, data, functions)
    problems = list(dict.fromkeys(p for p in map(ref_problem, refs) if p))
    for text in _strings(data):
        problem = template_problem(text)
        if problem:
            problems.append(
                f"{path}: template {text[:80]!r} {problem} (lmms-eval renders templates "
                "unsandboxed); refer to document fields by name"
            )
    return problems


def task_config(path: str | Path, parents: tuple[str, ...] = ()) -> dict[str, Any]:
    """A task YAML's settings merged with those of its `include:` chain as lmms-eval's
    load_yaml_config merges them (the file's own keys last), every `!function` kept as a
    FunctionRef and nothing run; for YAMLs `check_task_yaml` passed. TaskCheckError when a file
    cannot be read that way."""
    path = str(path)
    if len(parents) > MAX_INCLUDE_DEPTH:
        raise TaskCheckError(f"{parents[0]}: `include:` chain deeper than {MAX_INCLUDE_DEPTH}")
    data = _read(path, _RefLoader)[0]
    if not isinstance(data, dict):
        raise TaskCheckError(f"{path}: not a mapping of settings")
    merged: dict[str, Any] = {}
    for included in reversed(_includes(path, data)):
        if included in (*parents, path):  # lmms-eval recurses until Python stops it
            raise TaskCheckError(f"{path}: `include:` chain comes back to {included}")
        merged.update(task_config(included, (*parents, path)))
    merged.update({k: v for k, v in data.items() if k != "include"})
    return merged


def check_task_yaml(path: str | Path) -> list[str]:
    """Problems with the code a task YAML and the YAMLs it includes would run; empty if none."""
    problems = []
    try:
        for file, data, functions in _chain(str(path)):
            problems += _file_problems(file, data, functions)
    except TaskCheckError as err:
        problems.append(str(err))
    return problems


def task_yaml_files(folder: str | Path) -> list[Path]:
    """The YAML files lmms-eval indexes under an --include_path folder."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if d not in SKIPPED_DIRS]
        found += [Path(root, f) for f in files if f.endswith(".yaml")]
    return sorted(found)


def check_task_folder(folder: str | Path) -> list[str]:
    """Problems with the code the task YAMLs under `folder` would run; empty when none."""
    return [p for path in task_yaml_files(folder) for p in check_task_yaml(path)]


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
        spec = _module_file(f"{plugin}.tasks") and importlib.util.find_spec(f"{plugin}.tasks")
        if spec is None or not _inside_packages(spec.origin):
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
    from dragonfly_eval.runner.cmdline import evaluations

    try:
        runs = evaluations(argv)
    except TaskCheckError as err:
        return [str(err)]
    problems, files = [], []
    for args, env in runs:
        found, found_problems = _loaded_yamls(args, env)
        problems += [p for p in found_problems if p not in problems]
        files += [f for f in found if f not in files]
    return problems + [p for path in files for p in check_task_yaml(path)]
