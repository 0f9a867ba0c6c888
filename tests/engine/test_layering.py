"""Which package may import what: the engine and the vLLM engine never import lmms-eval, the
harness, the runner or the leaderboard; the harness never imports the runner (the run's files are
`run_store`'s, below both); the runner never imports torch or the model (it runs lmms-eval as a
child process)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import dragonfly_eval

PACKAGE = Path(dragonfly_eval.__file__).parent
FORBIDDEN = {
    "engine": (
        "lmms_eval",
        "dragonfly_eval.harness",
        "dragonfly_eval.runner",
        "dragonfly_eval.leaderboard",
    ),
    "harness": ("dragonfly_eval.runner", "dragonfly_eval.leaderboard"),
    "vllm": ("lmms_eval", "dragonfly_eval.harness", "dragonfly_eval.runner"),
    "runner": (
        "torch",
        "transformers",
        "dragonfly_eval.modeling",
        "dragonfly_eval.engine",
        "dragonfly_eval.harness.model",
    ),
}


def imported_modules(path: Path) -> set[str]:
    """Every module an `import` or `from ... import` statement of the file names."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_stay_on_their_side(package):
    files = sorted((PACKAGE / package).glob("*.py"))
    assert files
    for path in files:
        for name in imported_modules(path):
            bad = [f for f in FORBIDDEN[package] if name == f or name.startswith(f + ".")]
            assert not bad, f"{path.name} imports {name}"
