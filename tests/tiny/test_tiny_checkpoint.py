"""`dragonfly-tiny` is data: a real checkpoint folder, written once (deterministically, safely
under a race) and loaded by the ordinary path; the modeling modules import in one direction."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoProcessor

from dragonfly_eval import DragonflyForCausalLM, DragonflyProcessor, modeling
from dragonfly_eval.modeling.loading import resolve_checkpoint
from dragonfly_eval.paths import cache_root
from dragonfly_eval.tiny import checkpoint

MODELING = Path(modeling.__file__).parent


def test_the_tiny_name_resolves_to_a_checkpoint_folder_loaded_the_ordinary_way():
    folder = resolve_checkpoint("dragonfly-tiny")
    assert folder.parent == cache_root()
    assert {"config.json", "model.safetensors", "tokenizer.json", "processor_config.json"} <= {
        p.name for p in folder.iterdir()
    }
    by_name = DragonflyForCausalLM.from_pretrained("dragonfly-tiny")
    by_folder = AutoModelForCausalLM.from_pretrained(str(folder))
    assert by_name.state_dict().keys() == by_folder.state_dict().keys()
    assert all(torch.equal(v, by_folder.state_dict()[k]) for k, v in by_name.state_dict().items())
    assert isinstance(AutoProcessor.from_pretrained(str(folder)), DragonflyProcessor)
    assert by_name.language_model.generation_config.eos_token_id == [1, 10]


def test_writing_the_tiny_checkpoint_is_deterministic(tmp_path):
    checkpoint.write_tiny_checkpoint(tmp_path / "a")
    written = tmp_path / "a" / "model.safetensors"
    cached = resolve_checkpoint("dragonfly-tiny") / "model.safetensors"
    assert written.read_bytes() == cached.read_bytes()


RACE = """
import sys
from dragonfly_eval.tiny.checkpoint import tiny_checkpoint
print(tiny_checkpoint())
"""


@pytest.mark.slow
def test_two_processes_writing_the_tiny_checkpoint_at_once_both_get_it(tmp_path):
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", RACE], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=300) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], [err[-1000:] for _, err in outputs]
    folders = {out.decode().strip().splitlines()[-1] for out, _ in outputs}
    assert len(folders) == 1
    assert [p.name for p in (tmp_path / "dragonfly-eval").iterdir()] == [Path(*folders).name]


def dragonfly_imports(path: Path) -> set[str]:
    """The dragonfly_eval modules a module imports, at any depth of its code."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module in ("dragonfly_eval", "dragonfly_eval.modeling"):
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
            elif node.module.startswith("dragonfly_eval."):
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("dragonfly_eval."))
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module":
            found.update(
                arg.value
                for arg in node.args
                if isinstance(arg, ast.Constant) and str(arg.value).startswith("dragonfly_eval.")
            )
    return found


def test_the_modeling_modules_import_each_other_without_a_circle():
    prefix = "dragonfly_eval.modeling."
    graph = {
        p.stem: {m[len(prefix) :] for m in dragonfly_imports(p) if m.startswith(prefix)}
        for p in MODELING.glob("*.py")
        if p.stem != "__init__"
    }
    order: list[str] = []

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, f"import circle: {' -> '.join((*path, module))}"
        if module not in order:
            for imported in sorted(graph.get(module, ())):
                visit(imported, (*path, module))
            order.append(module)

    for module in sorted(graph):
        visit(module, ())
    assert order.index("configuration") < order.index("loading") < order.index("modeling")
