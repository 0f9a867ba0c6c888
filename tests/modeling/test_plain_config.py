"""The config and the zoom geometry are plain data: neither they nor any project module they
import (at any depth, imports inside functions included) imports torch, Pillow or numpy.

transformers' own `PretrainedConfig` imports torch and Pillow, and so does the `modeling`
package's `__init__` (it registers the model with the Auto classes), so this reads the import
statements of the project's modules rather than `sys.modules`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import dragonfly_eval

ROOT = Path(dragonfly_eval.__file__).parent.parent
HEAVY = ("torch", "PIL", "numpy")


def module_file(name: str) -> Path | None:
    """The source file of a project module (None for a package, whose __init__ is skipped, or a
    name that is not a module of the project)."""
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py") if path.with_suffix(".py").is_file() else None


def imports_of(path: Path) -> set[str]:
    """Every module an import statement of the file names, `from a import b` counted as `a.b`
    too (b may be a submodule)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def heavy_imports(module: str) -> dict[str, list[str]]:
    """Project module -> the heavy libraries it imports, over `module` and every project
    module it imports, transitively."""
    found, seen, todo = {}, set(), [module]
    while todo:
        name = todo.pop()
        path = module_file(name)
        if name in seen or path is None:
            continue
        seen.add(name)
        names = imports_of(path)
        heavy = sorted({n.split(".")[0] for n in names} & set(HEAVY))
        if heavy:
            found[name] = heavy
        todo.extend(n for n in names if n.startswith("dragonfly_eval."))
    return found


@pytest.mark.parametrize(
    "module",
    [
        "dragonfly_eval.modeling.configuration",
        "dragonfly_eval.modeling.geometry",
        "dragonfly_eval.modeling.checkpoint_files",
    ],
)
def test_the_config_and_the_geometry_import_no_torch_pillow_or_numpy(module):
    assert module_file(module) is not None
    assert heavy_imports(module) == {}


def test_the_check_finds_the_heavy_imports_of_the_pixel_code():
    assert heavy_imports("dragonfly_eval.modeling.zoom")["dragonfly_eval.modeling.zoom"] == [
        "PIL",
        "numpy",
        "torch",
    ]
