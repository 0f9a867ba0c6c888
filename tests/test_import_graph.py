"""The import graph of dragonfly_eval, read from the source (imports at module level and inside
functions alike): it has no cycle, and every package imports only the layers its row allows.

Layers, lowest first: shared readers and paths (`paths`, `safe_json`, `errors`, `progress`,
`run_store`, `lmms_files`) < modeling < tiny (the embedded model) < engine, vllm < harness. The
data renderers (`datagen`) need neither torch nor the model. The runner and the leaderboard run no
model: they import no torch or transformers, and nothing of modeling, engine or the harness's
model classes. The leaderboard never imports the runner; the engine never imports the runner, the
harness or the leaderboard; the harness never imports the runner; the model, the engines and the
renderers never import lmms-eval.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import dragonfly_eval

PACKAGE = Path(dragonfly_eval.__file__).parent
SHARED = ("paths", "safe_json", "errors", "progress", "run_store", "lmms_files")
ABOVE_THE_MODEL = ("tiny", "engine", "vllm", "harness", "runner", "leaderboard")
# package -> the first-party packages (and modules) it must never import, at any depth
FORBIDDEN = {
    **{shared: ("modeling", "datagen", *ABOVE_THE_MODEL) for shared in SHARED},
    "modeling": ABOVE_THE_MODEL,
    "tiny": ABOVE_THE_MODEL[1:],
    "datagen": ("modeling", *ABOVE_THE_MODEL),
    "engine": ("harness", "runner", "leaderboard"),
    "vllm": ("harness", "runner", "leaderboard"),
    "harness": ("runner",),
    "runner": ("modeling", "engine", "vllm", "harness.model", "harness.vllm_model"),
    "leaderboard": ("runner", "modeling", "engine", "vllm", "harness.model", "harness.vllm_model"),
}
# third-party packages a torch-free layer must not import
NO_TORCH = ("torch", "transformers")
TORCH_FREE = (*SHARED, "datagen", "runner", "leaderboard")
# the layers lmms-eval runs, which never import it back (the embedded model's training builds
# the suite's prompts with lmms-eval's own doc_to_text functions, which the task YAMLs name)
NO_LMMS_EVAL = ("modeling", "datagen", "engine", "vllm")


def module_name(path: Path, root: Path = PACKAGE.parent) -> str:
    """The dotted name of a source file of the package (under `root`)."""
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, root: Path = PACKAGE.parent) -> set[str]:
    """Every module an import statement of the file names, relative ones resolved: for `from X
    import name`, `X.name` where that may be a submodule, and `X` itself (graph() keeps the names
    that are modules; X's __init__ counts only when no submodule is named)."""
    this = module_name(path, root)
    package = this if path.name == "__init__.py" else this.rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def graph() -> dict[str, set[str]]:
    """module -> the first-party modules it imports: a `from X import sub` counts as an import
    of X.sub, not of X's __init__ (which Python runs first for any import of X.sub, as it does
    for every module of X)."""
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    edges = {}
    for name, path in sorted(files.items()):
        found = {m for m in imports(path) if m in files and m != name}
        edges[name] = {m for m in found if not any(o.startswith(m + ".") for o in found)}
    return edges


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as [a, b, ..., a], or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(edges.get(node, ())):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state:
                found = visit(target)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def layer_of(module: str) -> str:
    """The package (or shared module) of dragonfly_eval that `module` belongs to."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def test_the_import_graph_has_no_cycle():
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_finder_finds_a_cycle_and_function_level_imports_count(tmp_path):
    source = tmp_path / "dragonfly_eval" / "m.py"
    source.parent.mkdir()
    source.write_text("def f():\n    from dragonfly_eval.b import x\n")
    assert "dragonfly_eval.b" in imports(source, tmp_path)
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_each_package_imports_only_the_layers_below_it(package):
    edges = graph()
    members = [m for m in edges if layer_of(m) == package]
    assert members, package
    wrong = sorted(
        f"{source} imports {target}"
        for source in members
        for target in edges[source]
        for banned in FORBIDDEN[package]
        if target.removeprefix("dragonfly_eval.") == banned
        or target.removeprefix("dragonfly_eval.").startswith(banned + ".")
    )
    assert not wrong, "\n".join(wrong)


def imports_of_packages(package: str, roots: tuple[str, ...]) -> list[str]:
    """`module imports name` for each import, in the package, of a module under one of `roots`
    (third-party top-level packages)."""
    files = [p for p in PACKAGE.rglob("*.py") if layer_of(module_name(p)) == package]
    assert files, package
    return sorted(
        f"{module_name(path)} imports {name}"
        for path in files
        for name in imports(path)
        if name.partition(".")[0] in roots
    )


@pytest.mark.parametrize("package", TORCH_FREE)
def test_torch_free_layers_import_no_torch(package):
    wrong = imports_of_packages(package, NO_TORCH)
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("package", NO_LMMS_EVAL)
def test_what_lmms_eval_runs_never_imports_lmms_eval(package):
    wrong = imports_of_packages(package, ("lmms_eval",))
    assert not wrong, "\n".join(wrong)
