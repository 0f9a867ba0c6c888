"""Task and config YAMLs read without running anything: the one reader of lmms-eval's YAML files.

lmms-eval reads task YAMLs with PyYAML's full loader, where `!function a.b.fn` runs code as the
file loads and `!!python/...` tags build Python objects. Here every YAML is a small regular file
read with a safe loader, bounded in alias expansion, in one of four explicit modes:

- "plain": as `yaml.safe_load` reads it (any tag refused), e.g. a `--config` file;
- "guard": `!function` values become the string `"!function <target>"` (and are recorded), every
  other tag is refused; what the task guard checks;
- "refs": `!function` values become `FunctionRef`s naming the file they are written in;
- "index": every tagged value is None, to index tasks by name.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from dragonfly_eval.errors import DragonflyEvalError
from dragonfly_eval.paths import check_regular_file

Mode = Literal["plain", "guard", "refs", "index"]
MAX_YAML_BYTES = 4 * 1024 * 1024
MAX_YAML_NODES = 200_000  # after alias expansion; the largest shipped task YAML has ~100
MAX_INCLUDE_DEPTH = 16
# the folders lmms-eval's TaskManager skips while indexing an --include_path
SKIPPED_DIRS = ("__pycache__", ".ipynb_checkpoints")


class TaskYamlError(DragonflyEvalError, ValueError):
    """A task or config YAML that cannot be read safely (unreadable, other tags, too large)."""


@dataclass(frozen=True)
class FunctionRef:
    """One `!function` target and the YAML it appears in (the path as lmms-eval forms it).
    `role` is the task setting that holds it (`doc_to_text`, `aggregation`, `filter`, ...);
    None checks only that some built-in task YAML names the function."""

    target: str
    yaml_file: str
    role: str | None = None


class MarkedFunction(str):
    """A `!function` value read in "guard" mode: the string `"!function <target>"`, marked."""

    target: str


# libyaml's parser where PyYAML has it: PyYAML's own spent most of indexing lmms-eval's YAMLs
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Plain(_SafeLoader):  # type: ignore[misc,valid-type]
    """`yaml.safe_load`'s loader (libyaml's when there)."""


class _Guard(_SafeLoader):  # type: ignore[misc,valid-type]
    """A safe loader that records `!function` targets instead of importing them."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self.functions: list[str] = []


def _mark_function(loader: _Guard, node: yaml.Node) -> str:
    target = str(loader.construct_scalar(node))
    loader.functions.append(target)
    value = MarkedFunction(f"!function {target}")
    value.target = target
    return value


_Guard.add_constructor("!function", _mark_function)


class _Refs(yaml.SafeLoader):
    """A safe loader that keeps each `!function` as the FunctionRef lmms-eval would resolve
    (PyYAML's own loader: its `name` is the file being read)."""


_Refs.add_constructor(
    "!function", lambda loader, node: FunctionRef(str(loader.construct_scalar(node)), loader.name)
)


class _Index(_SafeLoader):  # type: ignore[misc,valid-type]
    """A safe loader that reads every tagged value as None."""


_Index.add_multi_constructor("", lambda loader, suffix, node: None)

_LOADERS: dict[str, type] = {"plain": _Plain, "guard": _Guard, "refs": _Refs, "index": _Index}


def _expanded_size(node: yaml.Node, sizes: dict[int, int], open_nodes: set[int]) -> int:
    """How many nodes `node` holds once aliases are expanded (shared nodes counted once per use,
    computed once each), so that a billion-laughs file is measured, not expanded."""
    key = id(node)
    if key in sizes:
        return sizes[key]
    if key in open_nodes:
        raise TaskYamlError("an alias refers to the node that holds it (a recursive structure)")
    open_nodes.add(key)
    children = node.value if isinstance(node, yaml.CollectionNode) else []
    flat = [part for child in children for part in (child if isinstance(child, tuple) else [child])]
    size = 1 + sum(_expanded_size(child, sizes, open_nodes) for child in flat)
    open_nodes.discard(key)
    sizes[key] = min(size, MAX_YAML_NODES + 1)
    return sizes[key]


def _load(path: str, loader_class: type) -> tuple[Any, list[str]]:
    with open(path, "rb") as handle:
        loader = loader_class(handle)
        try:
            node = loader.get_single_node()
            if node is None:
                return None, []
            if _expanded_size(node, {}, set()) > MAX_YAML_NODES:
                raise TaskYamlError(
                    f"more than {MAX_YAML_NODES} values once its aliases are expanded"
                )
            return loader.construct_document(node), getattr(loader, "functions", [])
        finally:
            loader.dispose()


def read_with_functions(path: str | Path, mode: Mode = "guard") -> tuple[Any, list[str]]:
    """A YAML file's data in `mode`, and (in "guard" mode) every `!function` target its loader
    met, placed in the data or not. TaskYamlError naming the file for other tags, files that are
    not small regular files, and alias bombs."""
    path = str(path)
    try:
        check_regular_file(Path(path), MAX_YAML_BYTES, TaskYamlError)
    except OSError as err:
        raise TaskYamlError(f"{path}: not a regular file") from err
    try:
        return _load(path, _LOADERS[mode])
    except TaskYamlError as err:
        raise TaskYamlError(f"{path}: {err}") from err
    except yaml.constructor.ConstructorError as err:
        raise TaskYamlError(f"{path}: tag not allowed in a task YAML ({err.problem})") from err
    except RecursionError as err:
        raise TaskYamlError(f"{path}: nested too deeply") from err
    except (OSError, yaml.YAMLError) as err:
        raise TaskYamlError(f"{path}: cannot be read as YAML ({err})") from err


def read_yaml(path: str | Path, mode: Mode) -> Any:
    """A YAML file's data, read in `mode` (see the module docstring) without running anything."""
    return read_with_functions(path, mode)[0]


def includes(path: str, data: Any) -> list[str]:
    """The files an `include:` names, resolved as lmms-eval's load_yaml_config does."""
    names = data.get("include") if isinstance(data, dict) else None
    names = [names] if isinstance(names, str) else names if isinstance(names, list) else []
    return [
        n if os.path.isfile(n) else os.path.join(os.path.dirname(path), n)
        for n in names
        if isinstance(n, str)
    ]


def include_chain(path: str, parents: tuple[str, ...] = ()) -> Iterator[tuple[str, Any, list[str]]]:
    """(file, data, `!function` targets) in "guard" mode for a task YAML and each YAML its
    `include:` chain loads, as lmms-eval follows it (a cycle is followed once; lmms-eval recurses
    until Python stops it). TaskYamlError for a file that cannot be read."""
    if len(parents) > MAX_INCLUDE_DEPTH:
        raise TaskYamlError(f"{parents[0]}: `include:` chain deeper than {MAX_INCLUDE_DEPTH}")
    data, functions = read_with_functions(path, "guard")
    yield path, data, functions
    for included in includes(path, data):
        if os.path.exists(included) and included not in (*parents, path):
            yield from include_chain(included, (*parents, path))


def task_config(
    path: str | Path, mode: Mode = "refs", parents: tuple[str, ...] = ()
) -> dict[str, Any]:
    """A task YAML's settings merged with those of its `include:` chain as lmms-eval's
    load_yaml_config merges them (the file's own keys last), read in `mode` ("refs": every
    `!function` a FunctionRef; "index": None). TaskYamlError when a file of the chain cannot be
    read, is not a mapping, or the chain comes back on itself or runs too deep."""
    path = str(path)
    if len(parents) > MAX_INCLUDE_DEPTH:
        raise TaskYamlError(f"{parents[0]}: `include:` chain deeper than {MAX_INCLUDE_DEPTH}")
    data = read_yaml(path, mode)
    if not isinstance(data, dict):
        raise TaskYamlError(f"{path}: not a mapping of settings")
    names = data.get("include")
    if names is not None and not isinstance(names, str | list):
        raise TaskYamlError(f"{path}: `include:` names a file or a list of files")
    merged: dict[str, Any] = {}
    for included in reversed(includes(path, data)):
        if included in (*parents, path):  # lmms-eval recurses until Python stops it
            raise TaskYamlError(f"{path}: `include:` chain comes back to {included}")
        merged.update(task_config(included, mode, (*parents, path)))
    merged.update({k: v for k, v in data.items() if k != "include"})
    return merged


def task_yaml_files(folder: str | Path) -> list[Path]:
    """The YAML files lmms-eval indexes under an --include_path folder."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if d not in SKIPPED_DIRS]
        found += [Path(root, f) for f in files if f.endswith(".yaml")]
    return sorted(found)
