"""The model_args names of `dragonfly` and `dragonfly_vllm` are declared once, torch-free
(`harness.model_args`), and the runner's quick check reads names and checkpoint paths from them
without the model."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

from dragonfly_eval.harness.model_args import MODEL_ARGS, model_args_pairs, quick_problems


@pytest.mark.parametrize(
    ("model", "module", "cls"),
    [
        ("dragonfly", "dragonfly_eval.harness.model", "Dragonfly"),
        ("dragonfly_vllm", "dragonfly_eval.harness.vllm_model", "DragonflyVllm"),
    ],
)
def test_the_declared_names_are_those_the_model_class_takes(model, module, cls):
    __import__(module)
    params = inspect.signature(getattr(sys.modules[module], cls).__init__).parameters
    assert sorted(MODEL_ARGS[model]) == sorted(p for p in params if p not in ("self", "unknown"))
    assert sys.modules[module].valid_model_args() == sorted(MODEL_ARGS[model])


def test_the_declaration_imports_no_torch():
    code = "import sys, dragonfly_eval.harness.model_args; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_a_misspelt_name_gets_the_nearest_valid_one(tmp_path):
    (line,) = quick_problems("dragonfly_vllm", "pretrained=x/y, max_num_seq=4")
    assert line.startswith("unknown model_args for dragonfly_vllm: max_num_seq (did you mean ")
    assert "max_num_seqs" in line and "; valid: " in line


def test_a_checkpoint_path_that_is_no_folder_is_named_with_the_fix(tmp_path):
    missing = tmp_path / "nowhere"
    (line,) = quick_problems("dragonfly", f"pretrained={missing},device=cpu")
    assert line.startswith(f"pretrained={missing}: no such folder; download with `hf download ")
    file = tmp_path / "config.json"
    file.write_text("{}")
    assert quick_problems("dragonfly", f"pretrained={file}") == [
        f"pretrained={file}: is a file; give the checkpoint's folder"
    ]


@pytest.mark.parametrize(
    "model_args",
    ["pretrained=dragonfly-tiny", "pretrained=org/model", "", "device=cpu"],
    ids=["named", "hub-id", "empty", "default-checkpoint"],
)
def test_names_and_hub_ids_are_left_to_the_model_s_own_check(model_args):
    assert quick_problems("dragonfly", model_args) == []


def test_a_value_lmms_eval_splits_its_own_way_is_left_to_the_model_s_check():
    assert model_args_pairs('pretrained=x,extra={"a":1,"b":2}') is None
    assert quick_problems("dragonfly", 'pretrained=/nowhere,zoom="low"') is None
    assert model_args_pairs("a=1, b = 2,,") == {"a": "1", "b ": " 2"}
