"""`dragonfly_vllm`'s model_args are checked as `dragonfly`'s are, before vLLM starts, and
importing the project never imports vLLM."""

from __future__ import annotations

import subprocess
import sys

import pytest

from dragonfly_eval.harness.vllm_model import DragonflyVllm


def test_unknown_model_args_are_rejected_with_the_valid_ones(v2_checkpoint):
    with pytest.raises(ValueError) as err:
        DragonflyVllm.create_from_arg_string(f"pretrained={v2_checkpoint},tp_size=2,dtype=float32")
    message = str(err.value)
    assert "tp_size" in message
    for valid in ("tensor_parallel_size", "data_parallel_size", "max_num_seqs", "zoom"):
        assert valid in message


@pytest.mark.parametrize(
    ("model_args", "error"),
    [
        ("dtype=float8", "dtype='float8' is not valid"),
        ("tensor_parallel_size=0", "tensor_parallel_size must be >= 1"),
        ("tensor_parallel_size=two", "tensor_parallel_size='two' is not valid"),
        ("max_num_seqs=0", "max_num_seqs must be >= 1"),
        ("data_parallel_size=0", "data_parallel_size must be >= 1"),
        ("gpu_memory_utilization=1.5", "gpu_memory_utilization"),
        ("enforce_eager=maybe", "enforce_eager='maybe' is not valid"),
        ("max_batch_size=8", "max_batch_size=8 is not supported"),  # refused, not ignored
        ("zoom=sideways", "zoom"),
    ],
)
def test_bad_values_are_refused_before_the_engine_starts(v2_checkpoint, model_args, error):
    with pytest.raises(ValueError, match=error):
        DragonflyVllm.create_from_arg_string(
            f"pretrained={v2_checkpoint},dtype=float32,{model_args}"
        )


def test_a_missing_checkpoint_names_the_path(tmp_path):
    missing = tmp_path / "no-such-checkpoint"
    with pytest.raises(Exception, match=str(missing)):
        DragonflyVllm(pretrained=str(missing), dtype="float32")


def test_the_plugin_adapter_and_engine_import_without_vllm():
    code = (
        "import sys; import dragonfly_eval.vllm, dragonfly_eval.vllm.plugin, "
        "dragonfly_eval.vllm.engine, dragonfly_eval.harness.vllm_model, "
        "dragonfly_eval.harness.manifest; assert 'vllm' not in sys.modules, 'vllm imported'"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
