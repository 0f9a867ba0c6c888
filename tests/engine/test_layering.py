"""Which package may import what: the model never imports what runs it, and the data renderers
need neither torch nor the model; the engine and the vLLM engine never import lmms-eval, the
harness, the runner or the leaderboard; the harness never imports the runner (the run's files are
`run_store`'s, below both); the runner never imports torch or the model (it runs lmms-eval as a
child process)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import dragonfly_eval

PACKAGE = Path(dragonfly_eval.__file__).parent
ABOVE_THE_MODEL = (
    "lmms_eval",
    "dragonfly_eval.engine",
    "dragonfly_eval.vllm",
    "dragonfly_eval.harness",
    "dragonfly_eval.runner",
    "dragonfly_eval.leaderboard",
)
FORBIDDEN = {
    "modeling": (*ABOVE_THE_MODEL, "dragonfly_eval.tiny"),  # the embedded model sits above it
    "tiny": ABOVE_THE_MODEL[1:],  # its training reads the mini tasks with lmms-eval's loader
    "datagen": ("torch", "transformers", "dragonfly_eval.modeling", *ABOVE_THE_MODEL),
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


def package_graph() -> dict[str, set[str]]:
    """Which of dragonfly_eval's packages and top-level modules import which others, any
    import statement counted (inside functions too)."""
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        source = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
        for name in imported_modules(path):
            parts = name.split(".")
            if parts[0] == "dragonfly_eval" and len(parts) > 1 and parts[1] != source:
                graph.setdefault(source, set()).add(parts[1])
    return graph


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


@pytest.mark.parametrize(
    "package",
    ["modeling", "engine", "vllm", "harness", "datagen", "tasks", "progress", "run_store"],
)
def test_no_import_cycle_runs_through_the_model_side(package):
    """The run's files are imported by the harness (writes) and the runner (reads), both from
    below; nothing the package imports imports it back."""
    graph = package_graph()
    assert package in graph or (PACKAGE / f"{package}.py").is_file()
    assert package not in reachable(graph, package)
