"""Which code a task YAML would run, checked before anything runs it: the task guard that `run`
(for every YAML a command line loads) and the regression gate (for a task's aggregation) share.

lmms-eval reads task YAMLs with PyYAML's full loader, where `!function a.b.fn` runs the file
beside the YAML named after the dotted name, else imports the module `a.b` (`task_functions`),
and `!!python/name:` and the other python tags resolve Python objects. Prompts given as strings
(`doc_to_text: "{{question}}"`) are rendered with an unsandboxed Jinja environment, where
`{{ lipsum.__globals__ ... }}` reaches `os`.

Here every YAML is read in `task_yaml`'s "guard" mode (other tags refused, bounded in size and
alias expansion). A target is allowed when the file lmms-eval would execute lies inside the
installed `dragonfly_eval` or `lmms_eval` package, defines the name there (a name it imports
from elsewhere, e.g. `shutil.copy2`, is refused), and is a function that lmms-eval's installed
built-in task YAMLs (or, for `dragonfly_eval.tasks`, this project's task YAMLs) name under the
same key: its role (`doc_to_text`, `process_results`, `aggregation`, a `filter_list` entry's
`function`, ...). lmms-eval calls a filter with keyword arguments from the YAML, so "any
function of the package" would let a YAML call helpers that run shell commands. That index is
built from the installed YAMLs and cached. A template is refused when it names an attribute (or
an item, which Jinja falls back to reading as an attribute) that jinja2's sandbox forbids. Names
computed while rendering cannot be seen here; `runner/lmms_main.py` runs lmms-eval with its
templates rendered in the sandbox for those.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

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

from dragonfly_eval.lmms_files.task_functions import (
    ALLOWED_PACKAGES,
    allowed_module,
    beside,
    inside_packages,
    module_tree,
    ref_source,
)
from dragonfly_eval.lmms_files.task_index import (
    cached,
    folder_signature,
    lmms_eval_dir,
    lmms_eval_version,
)
from dragonfly_eval.lmms_files.task_yaml import (
    FunctionRef,
    MarkedFunction,
    TaskYamlError,
    include_chain,
    read_with_functions,
    task_yaml_files,
)
from dragonfly_eval.paths import cache_root, task_yaml_dir

PROJECT_TASK_MODULES = "dragonfly_eval.tasks"  # the project's functions task YAMLs may name
# the key that holds a filter's `!function` inside a `filter_list` entry, and its role's name
FILTER_KEY, FILTER_ROLE = "function", "filter"
NO_ROLE = "a value of no task setting"
INDEX_FORMAT = 1  # bump when the cached function index changes shape
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


def _outside_message(ref: FunctionRef, runs: str) -> str:
    return (
        f"{ref.yaml_file}: `!function {ref.target}` is not a function of "
        f"{' or '.join(ALLOWED_PACKAGES)}: lmms-eval would run {runs}; task YAMLs may only use "
        "functions of those installed packages (move the code into dragonfly_eval.tasks)"
    )


def _binding_problem(source: str, name: str) -> str | None:
    """Why `name` in the module file `source` is not code of the allowed packages, or None.
    The module's last top-level binding of the name counts, as it does when Python runs it."""
    tree = module_tree(source)
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
                        None if allowed_module(imported) else f"imports from {imported}"
                    )
    if verdicts:
        return verdicts[-1]
    outside = [m for m in star_sources if not allowed_module(m)]
    if star_sources and not outside:
        return None
    return f"may take from {outside[0]}" if outside else "does not define"


def _module_statements(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """The statements that run at module level (into if/try/with blocks, not into defs)."""
    for node in body:
        yield node
        for block in ("body", "orelse", "finalbody"):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                yield from _module_statements(getattr(node, block, []))
        for handler in getattr(node, "handlers", []):
            yield from _module_statements(handler.body)


def _resolved(ref: FunctionRef) -> tuple[str | None, str | None]:
    """(the module file lmms-eval would run for `ref`, why it must not) with one of the two
    None."""
    module = ref.target.rpartition(".")[0]
    found = ref_source(ref)
    if found is None:
        missing = ", which is not installed" if allowed_module(module) else ""
        return None, _outside_message(ref, f"the module `{module or ref.target}`{missing}")
    source = found[1]
    if not inside_packages(source):
        if source == beside(ref):
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
        if isinstance(item, MarkedFunction):
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
    return _allowed_functions(task_yaml_dir(), cache_root())


@cache
def _allowed_functions(yaml_dir: Path, cache_dir: Path) -> dict[str, frozenset[tuple[str, str]]]:
    # cache_dir keys the in-memory cache only: `cached` stores under paths.cache_root()
    lmms_tasks = lmms_eval_dir() / "tasks"
    project = _package_dir(PROJECT_TASK_MODULES)
    digest = hashlib.sha256(f"{INDEX_FORMAT}:{lmms_eval_version()}".encode())
    for folder in (lmms_tasks, yaml_dir):
        digest.update(folder_signature(str(folder)).encode())

    def build() -> dict[str, list[list[str]]]:
        index = _build_function_index(lmms_tasks, None)
        for role, functions in _build_function_index(yaml_dir, project).items():
            index[role] = index.get(role, set()) | functions
        return {role: sorted(map(list, functions)) for role, functions in index.items()}

    index = cached(f"task-functions-{digest.hexdigest()[:32]}.json", build, _parse_function_index)
    return {role: frozenset((f, n) for f, n in pairs) for role, pairs in index.items()}


def _parse_function_index(data: Any) -> dict[str, list[list[str]]] | None:
    """A cached function index as written, or None for anything else."""
    if not isinstance(data, dict):
        return None
    for pairs in data.values():
        if not isinstance(pairs, list) or not all(
            isinstance(p, list) and len(p) == 2 and all(isinstance(x, str) for x in p)
            for p in pairs
        ):
            return None
    return data


def _package_dir(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    return Path(next(iter(spec.submodule_search_locations or []))).resolve()


def _build_function_index(folder: Path, only_inside: Path | None) -> dict[str, set]:
    """Role -> (real module file, name) for the `!function`s of the YAMLs under `folder` that
    resolve inside the allowed packages (and inside `only_inside`, when given)."""
    index: dict[str, set] = {}
    for path in task_yaml_files(folder):
        try:
            data, functions = read_with_functions(path)
        except TaskYamlError:
            continue  # lmms-eval cannot load it either
        for ref in _yaml_refs(str(path), data, functions):
            source, _ = _resolved(ref)
            if source is None or ref.role == NO_ROLE:
                continue
            real = Path(source).resolve()
            if only_inside is None or real.is_relative_to(only_inside):
                index.setdefault(ref.role, set()).add((str(real), ref.target.rpartition(".")[2]))
    return index


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


def function_refs(path: str | Path) -> list[FunctionRef]:
    """Every `!function` target of a task YAML and of the YAMLs it includes, with its role."""
    return [
        ref
        for file, data, functions in include_chain(str(path))
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


def check_task_yaml(path: str | Path) -> list[str]:
    """Problems with the code a task YAML and the YAMLs it includes would run; empty if none."""
    problems = []
    try:
        for file, data, functions in include_chain(str(path)):
            problems += _file_problems(file, data, functions)
    except TaskYamlError as err:
        problems.append(str(err))
    return problems


def check_task_folder(folder: str | Path) -> list[str]:
    """Problems with the code the task YAMLs under `folder` would run; empty when none."""
    return [p for path in task_yaml_files(folder) for p in check_task_yaml(path)]
