"""Which code a task YAML makes lmms-eval run, checked before lmms-eval reads it.

lmms-eval resolves `!function a.b.fn` by first executing `a/b.py` beside the YAML, if such a file
exists, and only then importing the module `a.b`; it reads YAML with PyYAML's full loader, which
also resolves `!!python/name:` tags. A task folder can therefore run any code it ships. Here a
`!function` target must be a module of this project or of lmms-eval, with no file beside the YAML
that would shadow it, and no other tag than `!function` is accepted. `include:`d files are
checked the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

ALLOWED_PREFIXES = ("dragonfly_eval.", "lmms_eval.")


@dataclass(frozen=True)
class FunctionRef:
    """One `!function` target and the YAML it appears in."""

    target: str
    yaml_file: Path


class _Recorder(yaml.SafeLoader):
    """A safe loader that records `!function` targets instead of importing them."""

    def __init__(self, stream) -> None:
        super().__init__(stream)
        self.functions: list[str] = []


def _record_function(loader: _Recorder, node: yaml.Node) -> str:
    target = loader.construct_scalar(node)
    loader.functions.append(str(target))
    return f"!function {target}"


_Recorder.add_constructor("!function", _record_function)


def _read(path: Path) -> tuple[dict, list[str]]:
    with path.open("rb") as handle:
        loader = _Recorder(handle)
        try:
            data = loader.get_single_data()
        finally:
            loader.dispose()
    return (data if isinstance(data, dict) else {}), loader.functions


def function_refs(path: Path, _seen: set[Path] | None = None) -> list[FunctionRef]:
    """Every `!function` target of a task YAML and of the YAMLs it includes.

    Raises ValueError for YAML that uses other tags (e.g. `!!python/name:`) or cannot be read.
    """
    seen = _seen if _seen is not None else set()
    path = path.resolve()
    if path in seen:
        return []
    seen.add(path)
    try:
        data, functions = _read(path)
    except yaml.constructor.ConstructorError as err:
        raise ValueError(f"{path}: tag not allowed in a task YAML ({err.problem})") from err
    except (OSError, yaml.YAMLError) as err:
        raise ValueError(f"{path}: cannot be read as YAML ({err})") from err
    refs = [FunctionRef(f, path) for f in functions]
    includes = data.get("include") or []
    for name in [includes] if isinstance(includes, str) else includes:
        included = Path(name) if Path(name).is_file() else path.parent / name
        if included.is_file():
            refs += function_refs(included, seen)
    return refs


def ref_problem(ref: FunctionRef) -> str | None:
    """Why lmms-eval must not resolve this target, or None when it may."""
    module = ref.target.rpartition(".")[0]
    if not ref.target.startswith(ALLOWED_PREFIXES) or not module:
        return (
            f"{ref.yaml_file}: `!function {ref.target}` is not a function of dragonfly_eval or "
            "lmms_eval; task YAMLs may only use functions from those packages (move the code "
            "into dragonfly_eval.tasks)"
        )
    shadow = ref.yaml_file.parent / (module.replace(".", "/") + ".py")
    if shadow.exists():
        return (
            f"{ref.yaml_file}: `!function {ref.target}` would run {shadow} (lmms-eval prefers a "
            "file beside the YAML over the installed module); remove that file"
        )
    return None


def task_yaml_files(folder: Path) -> list[Path]:
    """The YAML files lmms-eval indexes under an --include_path folder."""
    if folder.is_file():
        return [folder]
    return sorted(p for p in folder.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())


def check_task_folder(folder: Path) -> list[str]:
    """Problems with the code the task YAMLs under `folder` would run; empty when none."""
    problems = []
    for path in task_yaml_files(folder):
        try:
            refs = function_refs(path)
        except ValueError as err:
            problems.append(str(err))
            continue
        problems += [p for p in map(ref_problem, refs) if p]
    return problems
